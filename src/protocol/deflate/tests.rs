//! permessage-deflate: negotiation against Autobahn's, browsers' and broken offers; round
//! trips through every window; interop with a plain raw inflater; the window honoured; size
//! limits against bombs; corrupt and fragmented input.

use proptest::prelude::*;

use super::*;
use crate::proptest_runner::runner;

// --- Negotiation ---

/// The response to a plain offer.
const PLAIN: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The response to `lines`, if any offer is accepted, checked against the agreement.
fn answer(lines: &[&str]) -> Option<String> {
    let agreement = negotiate(lines.iter().copied())?;
    let expected = if agreement.window_bits_offered {
        format!("{PLAIN}; server_max_window_bits={}", agreement.window_bits)
    } else {
        assert_eq!(agreement.window_bits, 15, "{lines:?}");
        PLAIN.to_owned()
    };
    assert_eq!(agreement.response(), expected, "{lines:?}");
    Some(agreement.response())
}

/// The response with `server_max_window_bits=N`.
fn with_window(bits: u8) -> Option<String> {
    Some(format!("{PLAIN}; server_max_window_bits={bits}"))
}

#[test]
fn offers_are_accepted_as_rfc_7692_allows() {
    let plain = Some(PLAIN.to_owned());
    let cases: &[(&[&str], Option<String>)] = &[
        // What browsers send (Chrome, Firefox, Safari).
        (
            &["permessage-deflate; client_max_window_bits"],
            plain.clone(),
        ),
        (&["permessage-deflate"], plain.clone()),
        // Autobahn's 13.* offers.
        (
            &["permessage-deflate; client_no_context_takeover"],
            plain.clone(),
        ),
        (
            &["permessage-deflate; server_no_context_takeover"],
            plain.clone(),
        ),
        (
            &["permessage-deflate; client_no_context_takeover; client_max_window_bits"],
            plain.clone(),
        ),
        (
            &["permessage-deflate; server_max_window_bits=9"],
            with_window(9),
        ),
        (
            &["permessage-deflate; server_max_window_bits=15"],
            with_window(15),
        ),
        (
            &["permessage-deflate; server_max_window_bits=8, permessage-deflate"],
            plain.clone(),
        ),
        (
            &[
                "permessage-deflate; server_max_window_bits=8",
                "permessage-deflate; server_max_window_bits=12",
            ],
            with_window(12),
        ),
        (
            &[
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
               server_max_window_bits=10; client_max_window_bits=10",
            ],
            with_window(10),
        ),
        (
            &["permessage-deflate; client_max_window_bits=8"],
            plain.clone(),
        ),
        (
            &["permessage-deflate; client_max_window_bits=15"],
            plain.clone(),
        ),
        // The first acceptable offer wins, across offers and lines.
        (
            &["permessage-deflate; server_max_window_bits=11, permessage-deflate"],
            with_window(11),
        ),
        (
            &[
                "x-webkit-deflate-frame",
                "permessage-deflate, permessage-deflate; server_max_window_bits=9",
            ],
            plain.clone(),
        ),
        (
            &["x-webkit-deflate-frame, permessage-deflate"],
            plain.clone(),
        ),
        (
            &["permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=11"],
            with_window(11),
        ),
        // Quoted values, whitespace, case, empty list elements.
        (
            &["permessage-deflate; server_max_window_bits=\"10\""],
            with_window(10),
        ),
        (
            &["permessage-deflate; server_max_window_bits=\"1\\0\""],
            with_window(10),
        ),
        (
            &["permessage-deflate; client_max_window_bits=\"15\""],
            plain.clone(),
        ),
        (
            &["  permessage-deflate\t;  server_max_window_bits = 13 ;client_max_window_bits  "],
            with_window(13),
        ),
        (
            &["permessage-deflate;client_no_context_takeover"],
            plain.clone(),
        ),
        (
            &["PerMessage-Deflate; Server_Max_Window_Bits=14"],
            with_window(14),
        ),
        (&[", ,permessage-deflate,"], plain.clone()),
        (
            &["x-foo; a=\"quoted, with a comma\", permessage-deflate"],
            plain.clone(),
        ),
    ];
    for (lines, expected) in cases {
        assert_eq!(&answer(lines), expected, "{lines:?}");
    }
}

#[test]
fn offers_the_server_cannot_take_are_declined() {
    let declined: &[&[&str]] = &[
        &[],
        &[""],
        &[" , ,, "],
        &["x-webkit-deflate-frame"],
        &["deflate-frame; no_context_takeover"],
        &["permessage-deflate-x"],
        &["\"permessage-deflate\""],
        // zlib cannot compress with an 8-bit window.
        &["permessage-deflate; server_max_window_bits=8"],
        // Unknown parameters.
        &["permessage-deflate; foo"],
        &["permessage-deflate; foo=bar"],
        &["permessage-deflate; no_context_takeover"],
        // Repeated parameters.
        &["permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"],
        &["permessage-deflate; client_max_window_bits; client_max_window_bits"],
        &["permessage-deflate; client_max_window_bits=9; CLIENT_MAX_WINDOW_BITS=9"],
        &["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
        &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
        // Values where none belongs, or none where one must be.
        &["permessage-deflate; server_no_context_takeover=x"],
        &["permessage-deflate; client_no_context_takeover=\"\""],
        &["permessage-deflate; client_no_context_takeover="],
        &["permessage-deflate; server_max_window_bits"],
        &["permessage-deflate; server_max_window_bits="],
        // Windows out of range or not written as RFC 7692 7.1.2 says.
        &["permessage-deflate; server_max_window_bits=16"],
        &["permessage-deflate; server_max_window_bits=7"],
        &["permessage-deflate; server_max_window_bits=0"],
        &["permessage-deflate; server_max_window_bits=09"],
        &["permessage-deflate; server_max_window_bits=+9"],
        &["permessage-deflate; server_max_window_bits=-9"],
        &["permessage-deflate; server_max_window_bits=1.5"],
        &["permessage-deflate; server_max_window_bits=ten"],
        &["permessage-deflate; server_max_window_bits=\" 10\""],
        &["permessage-deflate; client_max_window_bits=16"],
        &["permessage-deflate; client_max_window_bits=7"],
        &["permessage-deflate; client_max_window_bits=08"],
        // Garbage.
        &["permessage-deflate;"],
        &["permessage-deflate;;"],
        &["permessage-deflate; =10"],
        &["permessage-deflate; server_max_window_bits=10 10"],
        &["permessage-deflate; server_max_window_bits=\"10"],
        &["permessage-deflate; server_max_window_bits=1\"0\""],
        &["permessage-deflate; server_max_window_bits=\"10\"x"],
        &["permessage-deflate; server_max_window_bits=\"10\\\""],
        &["permessage-deflate; server_max_window_bits==10"],
        &["permessage-deflate; client_max_window_bits=é"],
        &["permessage-deflate; a b"],
        &["permessage deflate"],
        &["💥; permessage-deflate"],
        &["\u{0}"],
        // A quoted string left open swallows the rest of its line.
        &["x-foo; a=\"oops, permessage-deflate"],
    ];
    for lines in declined {
        assert_eq!(answer(lines), None, "{lines:?}");
    }
}

#[test]
fn the_agreement_holds_the_window_to_compress_with() {
    let agreement = negotiate(["permessage-deflate; server_max_window_bits=9"]);
    assert_eq!(
        agreement,
        Some(Agreement {
            window_bits: 9,
            window_bits_offered: true
        })
    );
    let agreement = negotiate(["permessage-deflate; client_max_window_bits=9"]);
    assert_eq!(
        agreement,
        Some(Agreement {
            window_bits: 15,
            window_bits_offered: false
        })
    );
}

// --- Data ---

/// A xorshift generator: the same data on every run.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// `len` random bytes.
    fn random(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// `len` bytes of a JSON array of readings, as a signal's payload would be.
fn json_like(len: usize) -> Vec<u8> {
    let mut rng = Bytes(0x5eed_1234_abcd_ef01);
    let symbols = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "TSLA"];
    let mut text = String::from("[");
    let mut seq = 1000;
    while text.len() < len {
        let symbol = symbols[rng.below(6) as usize];
        let (price, cents, volume) = (100 + rng.below(400), rng.below(100), rng.below(5000));
        text += &format!(
            "{{\"seq\":{seq},\"symbol\":\"{symbol}\",\"price\":{price}.{cents:02},\"volume\":{volume},\"ok\":true}},"
        );
        seq += 1;
    }
    text.truncate(len);
    text.into_bytes()
}

/// Inflates `fragments` as one message with a fresh inflater.
fn inflate(fragments: &[&[u8]], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut inflater = Inflater::new();
    let mut out = Vec::new();
    for fragment in fragments {
        inflater.push(fragment, &mut out, limit)?;
    }
    inflater.finish(&mut out, limit)?;
    Ok(out)
}

/// Inflates a message as RFC 7692 7.2.2 says, with nothing of ours: a fresh raw inflater
/// given the payload and the tail at once, with room for `len` bytes.
fn plain_inflate(compressed: &[u8], len: usize, window_bits: u8) -> Result<Vec<u8>, String> {
    let mut inflater = Decompress::new_with_window_bits(false, window_bits);
    let input = [compressed, &TAIL].concat();
    let mut out = Vec::with_capacity(len + 64);
    inflater
        .decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .map_err(|e| e.to_string())?;
    if inflater.total_in() != input.len() as u64 {
        return Err(format!("read {} of {}", inflater.total_in(), input.len()));
    }
    Ok(out)
}

/// Inflates with a `window_bits` inflater and 64 bytes of output at a time, so that every
/// back-reference further than the output at hand has to come from its window.
fn windowed_inflate(compressed: &[u8], window_bits: u8) -> Result<Vec<u8>, String> {
    let mut inflater = Decompress::new_with_window_bits(false, window_bits);
    let mut input: &[u8] = &[compressed, &TAIL].concat();
    let mut out = Vec::new();
    loop {
        let mut chunk = [0u8; 64];
        let read = inflater.total_in();
        let written = inflater.total_out();
        inflater
            .decompress(input, &mut chunk, FlushDecompress::Sync)
            .map_err(|e| e.to_string())?;
        let produced = (inflater.total_out() - written) as usize;
        out.extend_from_slice(&chunk[..produced]);
        input = &input[(inflater.total_in() - read) as usize..];
        if input.is_empty() && produced < chunk.len() {
            break;
        }
        if produced == 0 && inflater.total_in() == read {
            return Err("stuck".to_owned());
        }
    }
    Ok(out)
}

// --- Compression ---

#[test]
fn messages_round_trip_through_every_window() {
    let mut rng = Bytes(7);
    for len in [0, 1, 100, 4 << 10, 1 << 20] {
        for data in [rng.random(len), json_like(len)] {
            for bits in 9..=15 {
                if len == 1 << 20 && !(bits == 9 || bits == 15) {
                    continue; // the two ends are enough for the slow case
                }
                let compressed = compress(&data, bits);
                let limit = data.len();
                assert_eq!(
                    inflate(&[&compressed], limit),
                    Ok(data.clone()),
                    "{len} {bits}"
                );
                let plain = plain_inflate(&compressed, len, 15);
                assert!(
                    plain.as_ref() == Ok(&data),
                    "interop {len} {bits}: {plain:?}"
                );
            }
        }
    }
}

#[test]
fn json_compresses_to_a_third_and_tiny_messages_do_not() {
    let json = json_like(4 << 10);
    let compressed = compress(&json, 15);
    assert!(compressed.len() * 3 <= json.len(), "{}", compressed.len());
    // Deflate's output of typical JSON is smaller from MIN_COMPRESSED bytes on, not below.
    let signal =
        br#"{"user":"ann","text":"see you at noon in the usual room, bring the notes","n":1}"#;
    assert_eq!(signal.len(), MIN_COMPRESSED);
    assert!(compress(signal, 15).len() < signal.len());
    let short = br#"{"user":"ann","text":"ok"}"#;
    assert!(compress(short, 15).len() >= short.len());
}

#[test]
fn an_empty_message_is_one_byte() {
    // RFC 7692 7.2.3.6.
    assert_eq!(compress(b"", 15), [0x00]);
    assert_eq!(inflate(&[&[0x00]], 0), Ok(Vec::new()));
}

#[test]
fn the_window_asked_for_is_the_window_used() {
    // A block repeated 2000 bytes on: a 15-bit window matches it, a 9-bit one (512) cannot.
    let mut rng = Bytes(99);
    let block = rng.random(300);
    let data = [block.clone(), rng.random(2000), block].concat();
    let narrow = compress(&data, 9);
    assert_eq!(windowed_inflate(&narrow, 9), Ok(data.clone()));
    let wide = compress(&data, 15);
    assert!(wide.len() < narrow.len());
    assert_eq!(windowed_inflate(&wide, 15), Ok(data.clone()));
    // The check itself: a 9-bit inflater fails on the 15-bit window's back-reference.
    assert!(windowed_inflate(&wide, 9).is_err());
}

#[test]
fn each_message_is_a_stream_of_its_own() {
    // The same bytes whatever the thread's compressors did before (no context takeover).
    let data = json_like(3000);
    let fresh: Vec<Vec<u8>> = (9..=15)
        .map(|bits| {
            let data = data.clone();
            std::thread::spawn(move || compress(&data, bits))
                .join()
                .unwrap()
        })
        .collect();
    let other = json_like(5000);
    for _ in 0..2 {
        for bits in 9..=15 {
            compress(&other[1000..], bits);
            assert_eq!(
                compress(&data, bits),
                fresh[usize::from(bits - 9)],
                "{bits}"
            );
        }
    }
}

#[test]
fn windows_outside_the_range_are_clamped() {
    let data = json_like(1000);
    assert_eq!(compress(&data, 8), compress(&data, 9));
    assert_eq!(compress(&data, 0), compress(&data, 9));
    assert_eq!(compress(&data, 16), compress(&data, 15));
    assert_eq!(compress(&data, u8::MAX), compress(&data, 15));
}

#[test]
fn the_stored_fallback_inflates_too() {
    let mut rng = Bytes(3);
    for len in [0, 1, 100, 65535, 65536, 200_000] {
        let data = rng.random(len);
        let stored = stored(&data);
        assert_eq!(inflate(&[&stored], len), Ok(data.clone()), "{len}");
        assert!(plain_inflate(&stored, len, 15) == Ok(data), "{len}");
    }
    assert_eq!(stored(b""), compress(b"", 15));
}

// --- Inflation ---

#[test]
fn a_limit_is_a_limit() {
    let data = json_like(50_000);
    let compressed = compress(&data, 15);
    assert_eq!(inflate(&[&compressed], data.len()), Ok(data.clone()));
    assert_eq!(
        inflate(&[&compressed], data.len() - 1),
        Err(InflateError::TooBig)
    );
    assert_eq!(inflate(&[&compressed], 0), Err(InflateError::TooBig));
    assert_eq!(inflate(&[&compressed], usize::MAX), Ok(data));
}

#[test]
fn a_bomb_stops_at_the_limit() {
    // A megabyte of zeros compresses to about 1 KiB; with its sync flush kept, the segment
    // can be repeated (each one's back-references reach only zeros): 16 KiB of it inflates to
    // 16 MiB, and the same fragment pushed again and again to as much as is pushed.
    let segment = [compress(&vec![0; 1 << 20], 15), TAIL.to_vec()].concat();
    let fragment = segment.repeat((16 << 10) / segment.len());
    assert!(fragment.len() <= 16 << 10, "{}", fragment.len());
    for limit in [0, 1000, 1 << 20, 40 << 20] {
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        let mut pushed = 0;
        let result = loop {
            // Up to 1000 fragments: 16 GiB inflated, were it not for the limit.
            if pushed == 1000 {
                break Ok(());
            }
            pushed += 1;
            if let Err(e) = inflater.push(&fragment, &mut out, limit) {
                break Err(e);
            }
            assert!(out.len() <= limit, "{limit}: {}", out.len());
        };
        assert_eq!(result, Err(InflateError::TooBig), "{limit}");
        assert!(out.len() <= limit + CHUNK, "{limit}: {}", out.len());
        assert!(
            out.capacity() <= limit + CHUNK,
            "{limit}: {}",
            out.capacity()
        );
        let per_fragment = (fragment.len() / segment.len()) << 20;
        assert!(
            pushed <= limit / per_fragment + 1,
            "{limit}: {pushed} fragments"
        );
    }
}

#[test]
fn corrupt_data_is_corrupt() {
    let valid = compress(&json_like(2000), 15);
    let cases: &[&[u8]] = &[
        // Block type 3 (reserved).
        &[0xff; 16],
        &[0x07],
        // A stored block whose NLEN is not LEN's complement.
        &[0x00, 0x05, 0x00, 0x05, 0x00, b'h', b'e', b'l', b'l', b'o'],
        // A fixed-Huffman block starting with a back-reference (length 3, distance 1) to
        // nothing.
        &[0x03, 0x02, 0x00],
        &[0x00, 0xff, 0xff, 0xff, 0xff],
    ];
    for case in cases {
        assert_eq!(
            inflate(&[case], 1 << 20),
            Err(InflateError::Corrupt),
            "{case:x?}"
        );
    }
    let mut garbled = valid.clone();
    garbled.truncate(valid.len() / 2);
    garbled.extend_from_slice(&[0xff; 64]);
    assert!(inflate(&[&garbled], 1 << 20).is_err());
}

#[test]
fn a_final_block_ends_the_message_and_the_rest_is_ignored() {
    // A sender may end a message with BFINAL set (RFC 7692 7.2.3.4); the tail then follows
    // the stream's end.
    let data = json_like(2000);
    let mut compressor = Compress::new(Compression::new(6), false);
    let mut finished = Vec::with_capacity(4000);
    compressor
        .compress_vec(&data, &mut finished, FlushCompress::Finish)
        .unwrap();
    assert_eq!(inflate(&[&finished], data.len()), Ok(data.clone()));
    assert_eq!(inflate(&[&finished, &[0x00]], data.len()), Ok(data));
    // RFC 7692 7.2.3.4's example.
    let hello: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(inflate(&[hello], 5), Ok(b"Hello".to_vec()));
}

#[test]
fn the_rfc_examples_inflate() {
    // RFC 7692 7.2.3.1 (one fragment), 7.2.3.1 (split in two), 7.2.3.3 (no compression).
    let hello = b"Hello".to_vec();
    let compressed: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    assert_eq!(inflate(&[compressed], 5), Ok(hello.clone()));
    assert_eq!(
        inflate(&[&compressed[..3], &compressed[3..]], 5),
        Ok(hello.clone())
    );
    let stored: &[u8] = &[
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    assert_eq!(inflate(&[stored], 5), Ok(hello.clone()));
    // Ours is what 7.2.3.1 shows, or shorter.
    assert!(compress(b"Hello", 15).len() <= compressed.len());
}

#[test]
fn fragments_split_anywhere_inflate_the_same() {
    let data = json_like(3000);
    let compressed = compress(&data, 15);
    for at in 0..=compressed.len() {
        let (a, b) = compressed.split_at(at);
        assert_eq!(inflate(&[a, b], data.len()), Ok(data.clone()), "{at}");
    }
    let bytes: Vec<&[u8]> = compressed.chunks(1).collect();
    assert_eq!(inflate(&bytes, data.len()), Ok(data));
}

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 300;

/// Any data, compressed with any window and cut into any fragments, inflates back; any
/// bytes at all inflate or fail without panicking and without passing the limit.
#[test]
fn compressed_data_round_trips_and_any_input_is_safe() {
    let data = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..5000),
        (0usize..20_000).prop_map(json_like),
        prop::collection::vec(prop::sample::select(b"{}[]:,\"ab01 ".to_vec()), 0..5000),
    ];
    let cuts = prop::collection::vec(any::<prop::sample::Index>(), 0..4);
    runner(CASES)
        .run(&(data, 9u8..=15, cuts), |(data, bits, cuts)| {
            let compressed = compress(&data, bits);
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(compressed.len() + 1)).collect();
            at.sort_unstable();
            let mut fragments = Vec::new();
            let mut start = 0;
            for end in at.into_iter().chain([compressed.len()]) {
                fragments.push(&compressed[start..end]);
                start = end;
            }
            prop_assert_eq!(inflate(&fragments, data.len()), Ok(data.clone()));
            if !data.is_empty() {
                prop_assert_eq!(
                    inflate(&fragments, data.len() - 1),
                    Err(InflateError::TooBig)
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    runner(CASES * 10)
        .run(
            &(prop::collection::vec(any::<u8>(), 0..200), 0usize..2000),
            |(bytes, limit)| {
                let mut inflater = Inflater::new();
                let mut out = Vec::new();
                let result = inflater
                    .push(&bytes, &mut out, limit)
                    .and_then(|()| inflater.finish(&mut out, limit));
                prop_assert!(out.len() <= limit + 1, "{} > {}", out.len(), limit);
                if result.is_ok() {
                    prop_assert!(out.len() <= limit);
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
}
