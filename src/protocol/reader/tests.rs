use std::io::{self, Read};

use proptest::prelude::*;

use super::*;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A client's frame: FIN, RSV1, opcode, masked payload.
fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn whole(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, false, opcode, payload)
}

/// A stream handing out at most `step` bytes per read, then the end.
struct Trickle {
    bytes: Vec<u8>,
    at: usize,
    step: usize,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn reader() -> MessageReader {
    MessageReader::new(Vec::new(), 512, 1 << 20, false)
}

/// Everything read from `bytes` (in reads of `step`), up to the first failure.
fn read_all(bytes: Vec<u8>, step: usize) -> (Vec<Incoming>, Failure) {
    let mut reader = reader();
    let mut stream = Trickle { bytes, at: 0, step };
    let mut got = Vec::new();
    loop {
        match reader.read(&mut stream) {
            Ok(incoming) => got.push(incoming),
            Err(failure) => return (got, failure),
        }
    }
}

fn first(bytes: Vec<u8>) -> Result<Incoming, Failure> {
    reader().read(&mut Trickle {
        bytes,
        at: 0,
        step: 1 << 20,
    })
}

#[test]
fn whole_and_fragmented_messages_with_control_frames_between() {
    let mut bytes = whole(TEXT, "héllo".as_bytes());
    bytes.extend(whole(BINARY, &[0, 159, 255]));
    // "€" (3 bytes) split across fragments, a ping between them.
    let euro = "€".as_bytes();
    bytes.extend(frame(false, false, TEXT, &[b'a', euro[0]]));
    bytes.extend(whole(PING, b"p"));
    bytes.extend(frame(false, false, CONTINUATION, &euro[1..2]));
    bytes.extend(frame(true, false, CONTINUATION, &[euro[2], b'b']));
    bytes.extend(whole(PONG, b""));
    bytes.extend(whole(TEXT, b""));
    bytes.extend(whole(CLOSE, &[0x03, 0xe8, b'b', b'y', b'e']));
    for step in [1, 2, 3, 7, 512, 1 << 20] {
        let (got, end) = read_all(bytes.clone(), step);
        assert_eq!(
            got,
            [
                Incoming::Text("héllo".into()),
                Incoming::Binary(vec![0, 159, 255]),
                Incoming::Ping(b"p".to_vec()),
                Incoming::Text("a€b".into()),
                Incoming::Pong,
                Incoming::Text(String::new()),
                Incoming::Close(Some(1000)),
            ],
            "step {step}"
        );
        assert!(matches!(end, Failure::Gone), "{end:?}");
    }
}

#[test]
fn leftover_bytes_from_the_upgrade_come_first() {
    let mut leftover = whole(TEXT, b"early");
    let late = whole(TEXT, b"late");
    leftover.extend_from_slice(&late[..3]);
    let mut reader = MessageReader::new(leftover, 512, 1 << 20, false);
    let mut stream = Trickle {
        bytes: late[3..].to_vec(),
        at: 0,
        step: 1,
    };
    assert_eq!(
        reader.read(&mut stream).unwrap(),
        Incoming::Text("early".into())
    );
    assert_eq!(
        reader.read(&mut stream).unwrap(),
        Incoming::Text("late".into())
    );
}

#[test]
fn a_text_message_fails_at_the_fragment_that_breaks_its_utf8() {
    // The first fragment ends inside a character: fine so far.
    let mut bytes = frame(false, false, TEXT, &[b'o', 0xe2, 0x82]);
    // The second breaks it; the final fragment never comes.
    bytes.extend(frame(false, false, CONTINUATION, b"x"));
    let (got, end) = read_all(bytes, 1 << 20);
    assert!(got.is_empty());
    assert!(matches!(end, Failure::InvalidUtf8), "{end:?}");
    // Within one frame too: the bad byte fails it before the rest of the frame arrives.
    let mut one = frame(true, false, TEXT, &[b'a', b'b', 0xff, b'c', b'd', b'e']);
    one.truncate(one.len() - 2);
    let (_, end) = read_all(one, 1);
    assert!(matches!(end, Failure::InvalidUtf8), "{end:?}");
    // A message may not end inside a character.
    let (_, end) = read_all(whole(TEXT, &[b'o', 0xe2, 0x82]), 1 << 20);
    assert!(matches!(end, Failure::InvalidUtf8), "{end:?}");
    // Nor may a close reason be invalid.
    let (_, end) = read_all(whole(CLOSE, &[0x03, 0xe8, 0xff]), 1 << 20);
    assert!(matches!(end, Failure::InvalidUtf8), "{end:?}");
}

#[test]
fn protocol_breaches_fail_with_a_reason() {
    let unmasked = {
        let mut f = whole(TEXT, b"hi");
        f[1] &= 0x7f;
        f.drain(2..6);
        f
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked", unmasked),
        ("rsv1 without deflate", frame(true, true, TEXT, b"x")),
        ("rsv2", {
            let mut f = whole(TEXT, b"x");
            f[0] |= 0x20;
            f
        }),
        ("rsv3", {
            let mut f = whole(TEXT, b"x");
            f[0] |= 0x10;
            f
        }),
        ("fragmented ping", frame(false, false, PING, b"")),
        ("big ping", whole(PING, &[0; 126])),
        ("lone continuation", whole(CONTINUATION, b"x")),
        ("reserved data opcode", whole(0x3, b"x")),
        ("reserved control opcode", whole(0xB, b"")),
        ("close of one byte", whole(CLOSE, &[3])),
    ];
    let mut nested = frame(false, false, TEXT, b"a");
    nested.extend(whole(TEXT, b"b"));
    cases.push(("a message inside a message", nested));
    for (name, bytes) in cases {
        let (got, end) = read_all(bytes, 1 << 20);
        assert!(got.is_empty(), "{name}: {got:?}");
        assert!(matches!(end, Failure::Protocol(_)), "{name}: {end:?}");
    }
}

#[test]
fn close_codes_a_peer_may_not_send_are_answered_as_1002() {
    for (code, reported) in [
        (1000, 1000),
        (1003, 1003),
        (1007, 1007),
        (1013, 1013),
        (3000, 3000),
        (4999, 4999),
        (999, 1002),
        (1004, 1002),
        (1005, 1002),
        (1006, 1002),
        (1014, 1002),
        (1015, 1002),
        (2000, 1002),
        (5000, 1002),
    ] {
        let got = first(whole(CLOSE, &u16::to_be_bytes(code))).unwrap();
        assert_eq!(got, Incoming::Close(Some(reported)), "{code}");
    }
    assert_eq!(first(whole(CLOSE, b"")).unwrap(), Incoming::Close(None));
}

#[test]
fn messages_and_frames_over_the_limit_fail_before_they_are_read() {
    let mut reader = MessageReader::new(Vec::new(), 512, 100, false);
    // Only the header of a 1 MiB frame: the limit is known before any payload arrives.
    let header = frame(true, false, BINARY, &vec![0; 1 << 20])[..14].to_vec();
    let result = reader.read(&mut Trickle {
        bytes: header,
        at: 0,
        step: 14,
    });
    assert!(matches!(result, Err(Failure::TooBig)), "{result:?}");
    // Fragments that add up to more than the limit.
    let mut reader = MessageReader::new(Vec::new(), 512, 100, false);
    let mut bytes = frame(false, false, BINARY, &[0; 60]);
    bytes.extend(frame(true, false, CONTINUATION, &[0; 60]));
    let result = reader.read(&mut Trickle {
        bytes,
        at: 0,
        step: 1 << 20,
    });
    assert!(matches!(result, Err(Failure::TooBig)), "{result:?}");
}

#[test]
fn the_end_of_the_stream_is_gone_at_a_boundary_or_mid_frame() {
    let (_, end) = read_all(Vec::new(), 1);
    assert!(matches!(end, Failure::Gone));
    let cut = whole(TEXT, b"hello")[..5].to_vec();
    let (_, end) = read_all(cut, 1);
    assert!(matches!(end, Failure::Gone));
    let mut half = frame(false, false, TEXT, b"he");
    half.extend(&frame(true, false, CONTINUATION, b"llo")[..4]);
    let mut reader = reader();
    let result = reader.read(&mut Trickle {
        bytes: half,
        at: 0,
        step: 3,
    });
    assert!(matches!(result, Err(Failure::Gone)));
    assert!(reader.in_message());
}

#[test]
fn unmasking_handles_every_length_and_alignment() {
    let mask = [1, 2, 3, 4];
    for len in 0..20 {
        let original: Vec<u8> = (0..len as u8).collect();
        let bytes: Vec<u8> = (original.iter().enumerate())
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        for split in 0..=len {
            let mut copy = bytes.clone();
            let (head, tail) = copy.split_at_mut(split);
            unmask(head, mask, 0);
            unmask(tail, mask, split);
            assert_eq!(copy, original, "{len} split at {split}");
        }
    }
}

/// One message as sent: its kind, its bytes, and how they were cut into fragments.
fn message() -> impl Strategy<Value = (bool, Vec<u8>, Vec<usize>)> {
    let text = any::<String>().prop_map(|s| (true, s.into_bytes()));
    let binary = proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| (false, b));
    (
        prop_oneof![text, binary],
        proptest::collection::vec(0..40usize, 0..4),
    )
        .prop_map(|((is_text, bytes), cuts)| (is_text, bytes, cuts))
}

proptest! {
    /// Any messages, cut into any fragments with pings between, read in any chunk size, come
    /// out whole and in order.
    #[test]
    fn any_fragmentation_and_any_read_size_give_the_messages_back(
        messages in proptest::collection::vec(message(), 1..6),
        step in 1..64usize,
    ) {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for (is_text, payload, cuts) in &messages {
            let mut pieces = Vec::new();
            let mut rest = &payload[..];
            for cut in cuts {
                let cut = (*cut).min(rest.len());
                pieces.push(&rest[..cut]);
                rest = &rest[cut..];
            }
            pieces.push(rest);
            let count = pieces.len();
            for (i, piece) in pieces.into_iter().enumerate() {
                let opcode = match (i, *is_text) {
                    (0, true) => TEXT,
                    (0, false) => BINARY,
                    _ => CONTINUATION,
                };
                bytes.extend(frame(i + 1 == count, false, opcode, piece));
                if i + 1 < count {
                    bytes.extend(whole(PING, &[i as u8]));
                    expected.push(Incoming::Ping(vec![i as u8]));
                }
            }
            expected.push(match is_text {
                true => Incoming::Text(String::from_utf8(payload.clone()).unwrap()),
                false => Incoming::Binary(payload.clone()),
            });
        }
        // Pings come out when read, before the message they interrupt ends.
        let (got, end) = read_all(bytes, step);
        prop_assert!(matches!(end, Failure::Gone));
        prop_assert_eq!(got, expected);
    }

    /// Any bytes at all: a message, a failure, never a panic, and no more than the limit held.
    #[test]
    fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut reader = MessageReader::new(Vec::new(), 16, 64, true);
        let mut stream = Trickle { bytes, at: 0, step: 7 };
        while reader.read(&mut stream).is_ok() {}
    }
}
