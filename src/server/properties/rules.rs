//! The model: what RFC 9112 (HTTP/1.1 messages), RFC 6455 4.2.1 (the opening handshake)
//! and SPEC 1 say a request head is, for heads written the way RFC 9112 writes them. Where
//! the RFCs let a server choose (which of several problems to name, a repeated
//! `Content-Length`), every allowed answer is listed.

use crate::protocol::url::split_target;

/// Most header lines a head may have (`MAX_HEADERS` in `handshake.rs`); more is `431`.
pub(super) const MAX_HEADERS: usize = 64;

/// A head written as RFC 9112 writes it: CRLF line ends (empty lines before the request
/// line allowed), single spaces in the request line, a token method, a visible-ASCII
/// target, HTTP/1.0 or 1.1, `name: value` lines with token names and field-vchar values
/// (obs-text included).
#[derive(Debug)]
pub(super) struct WellFormed {
    /// Bytes up to and including the empty line.
    pub(super) len: usize,
    pub(super) method: String,
    pub(super) target: String,
    pub(super) minor: u8,
    /// Names as written; values as a server reads them (surrounding whitespace dropped,
    /// invalid UTF-8 replaced).
    pub(super) headers: Vec<(String, String)>,
    /// Whether every header value is ASCII.
    pub(super) ascii: bool,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_field_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// The head at the start of `bytes` if it is complete and well formed.
pub(super) fn well_formed(bytes: &[u8]) -> Option<WellFormed> {
    let mut at = 0;
    while bytes[at..].starts_with(b"\r\n") {
        at += 2;
    }
    let mut lines = Vec::new();
    loop {
        let rest = &bytes[at..];
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let line = &rest[..end];
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return None;
        }
        at += end + 2;
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let (request_line, header_lines) = lines.split_first()?;
    let mut words = request_line.split(|&b| b == b' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    let method_ok = !method.is_empty() && method.iter().all(|&b| is_tchar(b));
    let target_ok = !target.is_empty() && target.iter().all(|&b| (b'!'..=b'~').contains(&b));
    let minor = match version {
        b"HTTP/1.1" => 1,
        b"HTTP/1.0" => 0,
        _ => return None,
    };
    if words.next().is_some() || !method_ok || !target_ok {
        return None;
    }
    let mut headers = Vec::new();
    let mut ascii = true;
    for line in header_lines {
        let colon = line.iter().position(|&b| b == b':')?;
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        if !value.iter().all(|&b| is_field_byte(b)) {
            return None;
        }
        ascii &= value.is_ascii();
        let value = String::from_utf8_lossy(value).trim().to_owned();
        headers.push((String::from_utf8(name.to_vec()).ok()?, value));
    }
    Some(WellFormed {
        len: at,
        method: String::from_utf8(method.to_vec()).ok()?,
        target: String::from_utf8(target.to_vec()).ok()?,
        minor,
        headers,
        ascii,
    })
}

/// What a head asks for, as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Upgrade,
    Http,
    Refuse(u16),
    /// A plain request that is not valid either: a WebSocket-only port may say `426` for it.
    NotUpgrade,
}

impl WellFormed {
    /// The values of every line of header `name`.
    pub(super) fn lines(&self, name: &str) -> Vec<&str> {
        (self.headers.iter())
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The elements of a list header, its lines joined (RFC 9110 5.3).
    pub(super) fn list(&self, name: &str) -> Vec<&str> {
        (self.lines(name).into_iter())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect()
    }

    /// What the head may be answered with, or `None` where the RFCs leave it open (a header
    /// that must appear once appears more often, and the server may take either). List
    /// headers are read with their lines joined (RFC 9110 5.3); Host must appear once in
    /// HTTP/1.1 and at most once in 1.0, upgrades included (RFC 9112 3.2, RFC 6455 4.1); an
    /// HTTP/1.0 request's `Upgrade` is ignored (RFC 9110 7.8).
    pub(super) fn kinds(&self, allowed_origins: Option<&[String]>) -> Option<Vec<Kind>> {
        if self.headers.len() > MAX_HEADERS {
            return Some(vec![Kind::Refuse(431)]);
        }
        let has_token = |name: &str, token: &str| {
            (self.lines(name).iter().flat_map(|v| v.split(',')))
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        let hosts = self.lines("Host").len();
        let host_ok = hosts == 1 || (hosts == 0 && self.minor == 0);
        if self.minor == 0 || !has_token("Upgrade", "websocket") {
            if !self.ascii || !host_ok {
                return Some(vec![Kind::Refuse(400), Kind::NotUpgrade]);
            }
            return Some(vec![Kind::Http]);
        }
        // RFC 6455 4.2.1, each check on its own; a server may name any failing one.
        let mut refusals = Vec::new();
        if self.method != "GET" || self.minor != 1 || hosts != 1 {
            refusals.push(400);
        }
        if !has_token("Connection", "upgrade") {
            refusals.push(400);
        }
        match self.lines("Sec-WebSocket-Version")[..] {
            ["13"] => {}
            [] | [_] => refusals.push(426),
            _ => return None,
        }
        match self.lines("Sec-WebSocket-Key")[..] {
            [key] if is_valid_key(key) => {}
            [] | [_] => refusals.push(400),
            _ => return None,
        }
        if let Some(allowed) = allowed_origins {
            match self.lines("Origin")[..] {
                [origin] if allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) => {}
                [] | [_] => refusals.push(403),
                _ => return None,
            }
        }
        if split_target(&self.target).is_none() {
            refusals.push(400);
        }
        Some(match refusals.is_empty() {
            true => vec![Kind::Upgrade],
            false => refusals.into_iter().map(Kind::Refuse).collect(),
        })
    }

    /// What a plain request's framing allows (RFC 9112 6): `Ok(length)` or a status. A
    /// `Transfer-Encoding` is refused with `411` (SPEC 9: bodies are read whole first).
    pub(super) fn body(&self) -> Vec<Result<u64, u16>> {
        if !self.lines("Transfer-Encoding").is_empty() {
            return vec![Err(411)];
        }
        let lines = self.lines("Content-Length");
        if lines.is_empty() {
            return vec![Ok(0)];
        }
        let values: Vec<&str> = lines
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let digits = |v: &&str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        if !values.iter().all(digits) {
            return vec![Err(400)];
        }
        let Ok(numbers) = values
            .iter()
            .map(|v| v.parse::<u64>())
            .collect::<Result<Vec<_>, _>>()
        else {
            return vec![Err(400), Err(413)]; // a valid number, too big for anything
        };
        match numbers[..] {
            [n] => vec![Ok(n)],
            // The same number repeated: a server may take it or refuse (RFC 9112 6.3).
            [n, ref rest @ ..] if rest.iter().all(|&m| m == n) => vec![Ok(n), Err(400)],
            _ => vec![Err(400)],
        }
    }
}

/// RFC 6455 4.1: the base64 of 16 bytes.
fn is_valid_key(key: &str) -> bool {
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    key.len() == 24 && key.ends_with("==") && key.bytes().take(22).all(alphabet)
}
