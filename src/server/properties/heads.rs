//! Generated request heads: built from parts (most of them what a WebSocket client sends,
//! some of them wrong), then mutated byte by byte; and random bytes. Shared by the in-crate
//! properties (`super`) and the end-to-end ones in `tests/properties.rs` (which includes this
//! file with `#[path]`).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::{Just, Union};

/// Bytes that show as a byte string when a case fails.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// The origin the generated heads' servers allow.
pub const ORIGIN: &str = "http://o";

/// A valid key (RFC 6455's example).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A request head as parts.
#[derive(Debug, Clone)]
pub struct Parts {
    /// Empty lines before the request line (servers skip them, RFC 9112 2.2).
    pub leading_blank: bool,
    pub method: &'static str,
    pub target: &'static str,
    pub version: &'static str,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Lines end in a bare `\n` rather than `\r\n`.
    pub bare_lf: bool,
}

impl Parts {
    pub fn render(&self) -> Vec<u8> {
        let eol: &[u8] = if self.bare_lf { b"\n" } else { b"\r\n" };
        let mut out = Vec::new();
        if self.leading_blank {
            out.extend_from_slice(eol);
        }
        let line = format!("{} {} {}", self.method, self.target, self.version);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(eol);
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(eol);
        }
        out.extend_from_slice(eol);
        out
    }
}

/// A header name in random ASCII case.
fn any_case(name: &str, bits: u64) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| match bits >> (i % 64) & 1 {
            1 => c.to_ascii_uppercase(),
            _ => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A choice that leaves a header out.
const ABSENT: &str = "(absent)";

/// Lines of one header: a value picked by weight, `ABSENT` for none, and a `|` to split
/// one value over several lines of the same header.
fn header(
    name: &'static str,
    choices: &[(u32, &'static str)],
) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    (weighted(choices), any::<u64>()).prop_map(move |(value, bits)| {
        (value.split('|'))
            .filter(|v| *v != ABSENT)
            .map(|v| (any_case(name, bits), v.as_bytes().to_vec()))
            .collect()
    })
}

/// One of `choices`, by weight.
fn weighted<T: Clone + std::fmt::Debug + 'static>(choices: &[(u32, T)]) -> Union<Just<T>> {
    Union::new_weighted(choices.iter().map(|(w, v)| (*w, Just(v.clone()))).collect())
}

/// Headers of an upgrade request, each likely right and sometimes wrong, missing, doubled
/// or split over several lines; and a few a plain request has.
fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let upgrade = (
        header("Host", &[(12, "127.0.0.1"), (1, ABSENT), (1, "x|y")]),
        header(
            "Upgrade",
            &[
                (8, "websocket"),
                (2, "WebSocket"),
                (1, "h2c, websocket"),
                (1, "h2c"),
                (1, "h2c|websocket"),
                (4, ABSENT),
            ],
        ),
        header(
            "Connection",
            &[
                (8, "Upgrade"),
                (2, "keep-alive, Upgrade"),
                (1, "upgrade"),
                (1, "keep-alive"),
                (1, "close"),
                (1, "keep-alive|Upgrade"),
                (1, ABSENT),
            ],
        ),
        header(
            "Sec-WebSocket-Version",
            &[
                (12, "13"),
                (1, " 13 "),
                (1, "8"),
                (1, "13, 8"),
                (1, "13|8"),
                (1, ABSENT),
            ],
        ),
        header(
            "Sec-WebSocket-Key",
            &[
                (12, KEY),
                (1, "dGhlIHNhbXBsZSBub25jZQ"),
                (1, "dGhlIHNhbXBsZSBub25jZ?=="),
                (1, "dGhlIHNhbXBsZSBub25jZQ==|x"),
                (1, ABSENT),
            ],
        ),
        header(
            "Origin",
            &[
                (8, ORIGIN),
                (1, "HTTP://O"),
                (1, "http://evil"),
                (2, ABSENT),
            ],
        ),
    );
    let plain = (
        header(
            "Content-Length",
            &[
                (16, ABSENT),
                (2, "0"),
                (2, "5"),
                (3, "2000000"),
                (1, "+5"),
                (1, "-1"),
                (1, "5, 5"),
                (1, "99999999999999999999999"),
                (1, "5|5"),
                (1, "5|6"),
            ],
        ),
        header(
            "Transfer-Encoding",
            &[(30, ABSENT), (2, "chunked"), (1, "identity")],
        ),
        header(
            "Sec-WebSocket-Protocol",
            &[(6, ABSENT), (1, "chat, superchat"), (1, "chat|v2")],
        ),
        header("Expect", &[(10, ABSENT), (1, "100-continue")]),
    );
    // Values a header may hold: UTF-8, obs-text, tabs, nothing; and one big enough to pass
    // the default 8 KiB head limit.
    let other_value = prop_oneof![
        20 => "[ -~]{0,12}".prop_map(String::into_bytes),
        2 => Just("café".as_bytes().to_vec()),
        2 => Just(b"\xff\xfe".to_vec()),
        2 => Just(b"\t a \t".to_vec()),
        1 => (8100..8300usize).prop_map(|n| vec![b'a'; n]),
    ];
    let other = prop::collection::vec(
        (
            prop::sample::select(vec!["X-Custom", "Accept", "Cookie"]),
            other_value,
        )
            .prop_map(|(name, value)| (name.to_owned(), value)),
        0..3,
    );
    (upgrade, plain, other)
        .prop_map(|((a, b, c, d, e, f), (g, h, i, j), k)| {
            [a, b, c, d, e, f, g, h, i, j, k].concat()
        })
        .prop_shuffle()
}

/// A head from parts: most parts what a WebSocket client sends, some not.
pub fn parts() -> impl Strategy<Value = Parts> {
    let method = weighted(&[
        (12, "GET"),
        (1, "POST"),
        (1, "HEAD"),
        (1, "get"),
        (1, "PUT"),
    ]);
    let target = weighted(&[
        (8, "/x"),
        (1, "/x?y=1&z=%20"),
        (1, "/"),
        (1, "/caf%C3%A9"),
        (1, "/%zz"),
        (1, "/%ff"),
        (1, "*"),
        (1, "http://h/x"),
        (1, "/a#f"),
    ]);
    let version = weighted(&[
        (12, "HTTP/1.1"),
        (2, "HTTP/1.0"),
        (1, "HTTP/2.0"),
        (1, "http/1.1"),
    ]);
    (
        prop::bool::weighted(0.05),
        method,
        target,
        version,
        headers(),
        prop::bool::weighted(0.05),
    )
        .prop_map(
            |(leading_blank, method, target, version, headers, bare_lf)| Parts {
                leading_blank,
                method,
                target,
                version,
                headers,
                bare_lf,
            },
        )
}

/// A mutation of a request's bytes.
#[derive(Debug, Clone)]
pub enum Mutation {
    Delete(Index, usize),
    Insert(Index, Vec<u8>),
    Replace(Index, u8),
    Truncate(Index),
    SwapCase(Index, usize),
    DuplicateLine(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<Index>();
    prop_oneof![
        (at.clone(), 1..8usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            at.clone(),
            prop::collection::vec(
                prop_oneof![any::<u8>(), prop::sample::select(b"\r\n: \t\0".to_vec())],
                1..8
            )
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (at.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        at.clone().prop_map(Mutation::Truncate),
        (at.clone(), 1..20usize).prop_map(|(i, n)| Mutation::SwapCase(i, n)),
        at.prop_map(Mutation::DuplicateLine),
    ]
}

pub fn apply(request: &mut Vec<u8>, mutation: &Mutation) {
    let len = request.len();
    if len == 0 {
        return;
    }
    match mutation {
        Mutation::Delete(at, n) => {
            let start = at.index(len);
            request.drain(start..(start + n).min(len));
        }
        Mutation::Insert(at, bytes) => {
            let at = at.index(len + 1);
            request.splice(at..at, bytes.iter().copied());
        }
        Mutation::Replace(at, byte) => request[at.index(len)] = *byte,
        Mutation::Truncate(at) => request.truncate(at.index(len)),
        Mutation::SwapCase(at, n) => {
            let start = at.index(len);
            for b in &mut request[start..(start + n).min(len)] {
                *b = if b.is_ascii_lowercase() {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
            }
        }
        Mutation::DuplicateLine(at) => {
            let text = request.clone();
            let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
            let line = lines[at.index(lines.len())].to_vec();
            let pos = at.index(len + 1);
            request.splice(pos..pos, line);
        }
    }
}

/// Heads from parts, half of them mutated a little.
pub fn mutated_parts() -> impl Strategy<Value = Bytes> {
    let mutations = prop_oneof![
        1 => Just(Vec::new()),
        1 => prop::collection::vec(mutation(), 1..4),
    ];
    (parts(), mutations).prop_map(|(parts, mutations)| {
        let mut request = parts.render();
        for mutation in &mutations {
            apply(&mut request, mutation);
        }
        Bytes(request)
    })
}

/// Any head: from parts and mutated, random bytes, random printable text.
pub fn head_input() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => mutated_parts(),
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(Bytes),
        1 => "[ -~\r\n]{0,200}".prop_map(|text| Bytes(text.into_bytes())),
    ]
}
