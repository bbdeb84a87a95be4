//! permessage-deflate (RFC 7692), without sockets: which offer of a client's
//! `Sec-WebSocket-Extensions` the server accepts and what it answers ([`negotiate`]), a
//! message's compressed payload ([`compress`]) and a received one's inflation under a size
//! limit ([`Inflater`]).
//!
//! The server always answers with `server_no_context_takeover` and
//! `client_no_context_takeover`: every message is a deflate stream of its own in both
//! directions, so no connection keeps a compressor or a window between messages, and a signal
//! is compressed once for all its receivers that use the same window size.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's name (RFC 7692 6).
const EXTENSION: &str = "permessage-deflate";
/// The end of a sync flush (an empty stored block's length and its complement): removed from
/// every compressed message and put back before inflating one (RFC 7692 7.2.1, 7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// The smallest compression window zlib makes raw deflate with (asked for 8, it uses 9, which
/// a client that asked for 8 could not read).
const MIN_WINDOW_BITS: u8 = 9;
/// The largest window (32 KiB), deflate's own limit: the default, and what we inflate with.
const MAX_WINDOW_BITS: u8 = 15;
/// zlib's compression level: the lowest that brings a 4 KiB JSON signal to a third of its
/// size or less (level 1 stays above for most JSON; the figures are in the commit log).
const LEVEL: u32 = 2;
/// Output an [`Inflater`] makes room for at a time: the most it writes past a limit.
const CHUNK: usize = 16 << 10;

/// Messages shorter than this are sent uncompressed (RSV1 clear, RFC 7692 6.1): below it,
/// deflate's output of typical JSON is no smaller than its input (the figures are in the
/// commit log), and compressing would cost both ends time for nothing.
pub(crate) const MIN_COMPRESSED: usize = 80;

// --- Negotiation (RFC 7692 5 and 7.1, RFC 6455 9.1) ---

/// What the server agreed to with a client that offered permessage-deflate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreement {
    /// The window the server compresses this client's messages with, in bits (9 to 15).
    pub(crate) window_bits: u8,
    /// Whether the offer limited that window (`server_max_window_bits`), which the response
    /// must then state (RFC 7692 7.1.2.1).
    pub(crate) window_bits_offered: bool,
}

impl Agreement {
    /// The value of the `Sec-WebSocket-Extensions` response header. It never has
    /// `client_max_window_bits`: the server inflates with a 15-bit window, which reads what
    /// any smaller one made (RFC 7692 7.1.2.2).
    pub(crate) fn response(&self) -> String {
        let window = if self.window_bits_offered {
            format!("; server_max_window_bits={}", self.window_bits)
        } else {
            String::new()
        };
        format!("{EXTENSION}; server_no_context_takeover; client_no_context_takeover{window}")
    }
}

/// The first `permessage-deflate` offer the server can accept, from the values of every
/// `Sec-WebSocket-Extensions` request header line in order; `None` when there is none (the
/// connection then goes on uncompressed).
///
/// A line holds comma-separated offers, each `name *( ";" param )` with `param` being
/// `token [ "=" ( token | quoted-string ) ]` and whitespace allowed around the separators;
/// names compare ASCII case-insensitively. An offer is declined, and the next one tried, when
/// it has an unknown or repeated parameter, a value where none belongs, a window size outside
/// 8 to 15, `server_max_window_bits=8` (zlib cannot compress with that window), or does not
/// parse. A quoted string left open runs to the end of its line.
pub(crate) fn negotiate<'a>(offers: impl IntoIterator<Item = &'a str>) -> Option<Agreement> {
    (offers.into_iter())
        .flat_map(|line| split_unquoted(line, b','))
        .find_map(accept)
}

/// The parameters permessage-deflate knows, in the order of [`accept`]'s `seen`.
const PARAMS: [&str; 4] = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
];

/// The agreement for one offer, or `None` when it is another extension or one the server
/// declines.
fn accept(offer: &str) -> Option<Agreement> {
    let mut parts = split_unquoted(offer, b';');
    let name = parts.next()?.trim_matches(is_space);
    if !name.eq_ignore_ascii_case(EXTENSION) {
        return None;
    }
    let mut seen = [false; PARAMS.len()];
    let mut window_bits = None;
    for part in parts {
        let (name, value) = parameter(part)?;
        let known = PARAMS.iter().position(|p| name.eq_ignore_ascii_case(p))?;
        if std::mem::replace(&mut seen[known], true) {
            return None;
        }
        match (PARAMS[known], value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("server_max_window_bits", Some(value)) => {
                window_bits = Some(window_size(&value).filter(|&n| n >= MIN_WINDOW_BITS)?);
            }
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(value)) => {
                window_size(&value)?;
            }
            _ => return None,
        }
    }
    Some(Agreement {
        window_bits: window_bits.unwrap_or(MAX_WINDOW_BITS),
        window_bits_offered: window_bits.is_some(),
    })
}

/// One `token [ "=" value ]` parameter: its name and its value, unquoted. `None` when it does
/// not parse, or the value, unquoted, is not a token (RFC 6455 9.1).
fn parameter(text: &str) -> Option<(&str, Option<Cow<'_, str>>)> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.trim_matches(is_space))),
        None => (text, None),
    };
    let name = name.trim_matches(is_space);
    if !is_token(name) {
        return None;
    }
    let value = match value {
        None => None,
        Some(quoted) if quoted.starts_with('"') => Some(Cow::Owned(unquote(quoted)?)),
        Some(token) => Some(Cow::Borrowed(token)),
    };
    match value {
        Some(value) if !is_token(&value) => None,
        value => Some((name, value)),
    }
}

/// The text of a quoted string (RFC 9110 5.6.4), its escapes undone; `None` unless `text` is
/// exactly one quoted string.
fn unquote(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut unquoted = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => unquoted.push(chars.next()?),
            '"' => return None,
            c => unquoted.push(c),
        }
    }
    Some(unquoted)
}

/// A window size as RFC 7692 7.1.2 writes it: a decimal from 8 to 15 without leading zeros.
fn window_size(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

/// The pieces of `text` between `separator`s that stand outside quoted strings (in which a
/// backslash escapes the next character); a quoted string left open runs to the end.
fn split_unquoted(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, byte) in text.bytes().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted {
                match byte {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if byte == b'"' {
                quoted = true;
            } else if byte == separator {
                rest = Some(&text[i + 1..]);
                return Some(&text[..i]);
            }
        }
        rest = None;
        Some(text)
    })
}

/// Whether `text` is an HTTP token (RFC 9110 5.6.2).
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && (text.bytes()).all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Optional whitespace (RFC 9110 5.6.3).
fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

// --- Compression (RFC 7692 7.2.1) ---

thread_local! {
    /// This thread's compressors, one per window size (index: bits - 9), each made on first
    /// use: a deflate state takes a few hundred KiB, and only the fan-out and writer threads
    /// compress.
    static COMPRESSORS: RefCell<[Option<Compress>; 7]> = const { RefCell::new([const { None }; 7]) };
}

/// The payload of a compressed message (RSV1 set) carrying `payload`: raw deflate with a
/// `window_bits` window (9 to 15; the nearest of those otherwise), ended by a sync flush whose
/// final `00 00 ff ff` is removed. Every call is a stream of its own (no context takeover).
pub(crate) fn compress(payload: &[u8], window_bits: u8) -> Vec<u8> {
    let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
    let slot = usize::from(bits - MIN_WINDOW_BITS);
    let compressed = COMPRESSORS.try_with(|compressors| {
        let mut compressors = compressors.try_borrow_mut().ok()?;
        let compressor = compressors[slot].get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(LEVEL), false, bits)
        });
        compressor.reset();
        let compressed = deflate(compressor, payload);
        if compressed.is_none() {
            // Never seen: start the next message on a new compressor.
            compressors[slot] = None;
        }
        compressed
    });
    compressed.ok().flatten().unwrap_or_else(|| stored(payload))
}

/// `payload` through `compressor` (fresh or reset) with a sync flush, less the flush's tail;
/// `None` if zlib fails, which a reset compressor given memory does not.
fn deflate(compressor: &mut Compress, payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(payload.len() / 2 + 64);
    let mut input = payload;
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        let (read, written) = (compressor.total_in(), compressor.total_out());
        compressor
            .compress_vec(input, &mut out, FlushCompress::Sync)
            .ok()?;
        let consumed = usize::try_from(compressor.total_in() - read).ok()?;
        input = input.get(consumed..)?;
        // Done once all is read and the flush fitted (zlib stops only when out of room).
        if out.len() < out.capacity() {
            if input.is_empty() {
                break;
            }
            if consumed == 0 && compressor.total_out() == written {
                return None;
            }
        }
    }
    out.ends_with(&TAIL).then(|| {
        out.truncate(out.len() - TAIL.len());
        out
    })
}

/// `payload` in stored (uncompressed) deflate blocks, framed as [`compress`] frames its
/// output: what is sent should zlib ever fail, rather than panicking.
fn stored(payload: &[u8]) -> Vec<u8> {
    const MAX_BLOCK: usize = u16::MAX as usize;
    let mut out = Vec::with_capacity(payload.len() + payload.len() / MAX_BLOCK * 5 + 6);
    for block in payload.chunks(MAX_BLOCK) {
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        // Not final, stored, padded to the byte; then LEN and its complement (RFC 1951 3.2.4).
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    // The sync flush's empty block, whose LEN and NLEN are the tail the receiver adds.
    out.push(0x00);
    out
}

// --- Inflation (RFC 7692 7.2.2) ---

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It inflates to more than the size limit (the reader closes with 1009).
    TooBig,
    /// It is not valid deflate data (the reader fails the connection).
    Corrupt,
}

impl fmt::Display for InflateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InflateError::TooBig => "the message inflates to more than the size limit",
            InflateError::Corrupt => "the message is not valid deflate data",
        })
    }
}

impl std::error::Error for InflateError {}

/// Inflates one compressed message, fragment by fragment, never holding more than a limit
/// (plus at most one [`CHUNK`]) of its output: a message of a few KiB can inflate to
/// megabytes, and one of many fragments to gigabytes. One per message (the client too uses no
/// context takeover).
pub(crate) struct Inflater {
    /// A raw inflater with a 15-bit window, which reads any smaller window's output.
    inner: Decompress,
    /// Whether the deflate stream ended (a block with BFINAL set): what follows is ignored.
    ended: bool,
}

impl Inflater {
    /// A fresh inflater for one message.
    pub(crate) fn new() -> Inflater {
        Inflater {
            inner: Decompress::new(false),
            ended: false,
        }
    }

    /// Inflates one fragment's payload onto `out`; [`InflateError::TooBig`] as soon as `out`
    /// would hold more than `limit` bytes.
    pub(crate) fn push(
        &mut self,
        compressed: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        self.inflate(compressed, out, limit)
    }

    /// Ends the message: inflates the `00 00 ff ff` its sender removed and what is left.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        self.inflate(&TAIL, out, limit)
    }

    /// Inflates `input` onto `out` in steps of at most [`CHUNK`] bytes of output, each at
    /// most one byte past `limit`, so that going over it shows.
    fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let bound = limit.saturating_add(1);
        while !self.ended {
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            let room = (bound - out.len()).min(CHUNK);
            make_room(out, room, bound);
            let start = out.len();
            out.resize(start + room, 0);
            let (read, written) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .decompress(input, &mut out[start..], FlushDecompress::None);
            let produced = usize::try_from(self.inner.total_out() - written).unwrap_or(room);
            let consumed = usize::try_from(self.inner.total_in() - read).unwrap_or(input.len());
            out.truncate(start + produced.min(room));
            input = input.get(consumed..).unwrap_or_default();
            match status {
                Err(_) => return Err(InflateError::Corrupt),
                Ok(Status::StreamEnd) => self.ended = true,
                Ok(_) if produced < room => {
                    if input.is_empty() {
                        break;
                    }
                    if consumed == 0 && produced == 0 {
                        // Input and room, yet no progress: nothing valid reads that way.
                        return Err(InflateError::Corrupt);
                    }
                }
                Ok(_) => {}
            }
        }
        if out.len() > limit {
            return Err(InflateError::TooBig);
        }
        Ok(())
    }
}

/// Makes room in `out` for `room` more bytes, doubling its capacity as `Vec` does but never
/// past `bound` (when `out` was not already larger).
fn make_room(out: &mut Vec<u8>, room: usize, bound: usize) {
    let needed = out.len() + room;
    if out.capacity() < needed {
        let target = out.capacity().saturating_mul(2).min(bound).max(needed);
        out.reserve_exact(target - out.len());
    }
}

#[cfg(test)]
mod tests;
