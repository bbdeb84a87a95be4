//! Requests as the door hands them over, and replies as it sends them back.
//!
//! The door has read the whole request (head and body) before a worker sees it, and it sends
//! the reply itself, without blocking: a [`Reply`] is the response head, written by tiny_http
//! (`Response::raw_print`: status line, `Date`, `Content-Length`), and a body the door
//! streams: bytes in memory, or an open file read a piece at a time as the client takes it.

use std::fs::File;
use std::io;
use std::net::SocketAddr;

use tiny_http::{HTTPVersion, Header, Response, StatusCode};

/// A complete HTTP request, read by the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpRequest {
    pub(crate) method: String,
    /// The request target as sent (`/path?query`).
    pub(crate) target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) peer: SocketAddr,
    /// Whether it came over TLS (Https).
    pub(crate) secure: bool,
    /// Whether the connection stays open after the reply.
    pub(crate) keep_alive: bool,
}

impl HttpRequest {
    /// The first header with this name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let mut headers = self.headers.iter();
        let found = headers.find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }
}

/// What follows a reply's head.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    None,
    Bytes(Vec<u8>),
    Static(&'static [u8]),
    /// A regular file, streamed as the client reads; `Content-Length` says how much.
    File(File),
}

/// A response ready for the door: its head (with the framing headers) and its body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) head: Vec<u8>,
    pub(crate) body: ReplyBody,
    /// Whether the connection stays open afterwards.
    pub(crate) keep_alive: bool,
}

/// The pieces of a response, checked: status, content type, extra headers, body and its
/// length.
pub(crate) struct Parts {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: ReplyBody,
    pub(crate) length: u64,
}

/// Headers a handler may not set: the door frames the body and manages the connection.
const FRAMING: [&str; 5] = [
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Upgrade",
];

/// Writes the head for `parts` as tiny_http would send it, plus the `Connection` header the
/// door's decision calls for. `Err` with a reason for a status or header that cannot be
/// sent. A `HEAD` request (`head_only`) gets the head alone, with the length of the body it
/// would have had.
pub(crate) fn render(
    parts: Parts,
    request: &HttpRequest,
    head_only: bool,
) -> Result<Reply, String> {
    let Parts {
        status,
        content_type,
        headers,
        body,
        length,
    } = parts;
    if !(200..=599).contains(&status) {
        return Err(format!("status {status} is not a final status"));
    }
    // These statuses have no body (RFC 9110 15.3.5, 15.4.5).
    let (body, length) = match status {
        204 | 304 => (ReplyBody::None, 0),
        _ => (body, length),
    };
    let mut list = vec![make_header("Content-Type", &content_type)?];
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("Server"))
    {
        list.push(make_header("Server", "signalhub")?);
    }
    for (name, value) in &headers {
        if !FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            list.push(make_header(name, value)?);
        }
    }
    let length = usize::try_from(length).map_err(|_| "body too long".to_owned())?;
    let response = Response::new(StatusCode(status), list, io::empty(), Some(length), None)
        .with_chunked_threshold(usize::MAX);
    let mut head = Vec::with_capacity(256);
    let version = HTTPVersion(1, request.minor_version);
    response
        .raw_print(&mut head, version, &[], true, None)
        .map_err(|e| e.to_string())?;
    add_connection_header(&mut head, request);
    let body = if head_only { ReplyBody::None } else { body };
    Ok(Reply {
        status,
        head,
        body,
        keep_alive: request.keep_alive,
    })
}

/// Adds `Connection: close` when the connection ends after this reply, or
/// `Connection: keep-alive` when an HTTP/1.0 client asked to keep it (1.1 keeps it by
/// default). tiny_http leaves `Connection` to its own connection handling, which is ours
/// here, so the line goes in before the blank line that ends the head.
fn add_connection_header(head: &mut Vec<u8>, request: &HttpRequest) {
    let line: &[u8] = match (request.keep_alive, request.minor_version) {
        (false, _) => b"Connection: close\r\n",
        (true, 0) => b"Connection: keep-alive\r\n",
        (true, _) => return,
    };
    debug_assert!(head.ends_with(b"\r\n\r\n"));
    let end = head.len() - 2;
    head.splice(end..end, line.iter().copied());
}

fn make_header(name: &str, value: &str) -> Result<Header, String> {
    let valid_name = !name.is_empty() && name.bytes().all(is_token_byte);
    let valid_value = value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    if !valid_name || !valid_value {
        return Err(format!("invalid header {name:?}: {value:?}"));
    }
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .map_err(|()| format!("invalid header {name:?}"))
}

/// `tchar` from RFC 9110.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(minor_version: u8, keep_alive: bool) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            target: "/".into(),
            minor_version,
            headers: Vec::new(),
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            secure: false,
            keep_alive,
        }
    }

    fn parts(status: u16, body: &'static [u8], headers: &[(&str, &str)]) -> Parts {
        Parts {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: ReplyBody::Static(body),
            length: body.len() as u64,
        }
    }

    fn head_text(reply: &Reply) -> String {
        String::from_utf8(reply.head.clone()).unwrap()
    }

    #[test]
    fn a_kept_alive_reply_has_its_length_and_no_connection_header() {
        let reply = render(parts(200, b"hello", &[]), &request(1, true), false).unwrap();
        let head = head_text(&reply);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Length: 5\r\n"), "{head}");
        assert!(head.contains("\r\nServer: signalhub\r\n"), "{head}");
        assert!(head.contains("\r\nDate: "), "{head}");
        assert!(!head.contains("Connection"), "{head}");
        assert!(head.ends_with("\r\n\r\n"));
        assert!(matches!(reply.body, ReplyBody::Static(b"hello")));
    }

    #[test]
    fn the_connection_header_follows_the_doors_decision() {
        let closing = render(parts(200, b"x", &[]), &request(1, false), false).unwrap();
        assert!(head_text(&closing).ends_with("\r\nConnection: close\r\n\r\n"));
        let old_kept = render(parts(200, b"x", &[]), &request(0, true), false).unwrap();
        let head = head_text(&old_kept);
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        assert!(
            head.ends_with("\r\nConnection: keep-alive\r\n\r\n"),
            "{head}"
        );
    }

    #[test]
    fn handlers_cannot_set_framing_headers() {
        let headers = [
            ("Content-Length", "9999"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "upgrade"),
            ("X-Extra", "yes"),
        ];
        let reply = render(parts(418, b"tea", &headers), &request(1, true), false).unwrap();
        let head = head_text(&reply);
        assert!(head.starts_with("HTTP/1.1 418 "), "{head}");
        assert!(head.contains("Content-Length: 3\r\n"), "{head}");
        assert!(head.contains("X-Extra: yes\r\n"), "{head}");
        assert!(!head.contains("9999") && !head.contains("chunked") && !head.contains("upgrade"));
    }

    #[test]
    fn head_requests_get_the_length_without_the_body() {
        let reply = render(parts(200, b"hello", &[]), &request(1, true), true).unwrap();
        assert!(head_text(&reply).contains("Content-Length: 5\r\n"));
        assert!(matches!(reply.body, ReplyBody::None));
    }

    #[test]
    fn no_content_has_no_body_and_bad_statuses_or_headers_are_refused() {
        let reply = render(parts(204, b"ignored", &[]), &request(1, true), false).unwrap();
        assert!(matches!(reply.body, ReplyBody::None));
        assert!(render(parts(42, b"", &[]), &request(1, true), false).is_err());
        let bad = [("X-Bad", "line\r\nbreak")];
        assert!(render(parts(200, b"", &bad), &request(1, true), false).is_err());
        let bad_name = [("Bad Name", "x")];
        assert!(render(parts(200, b"", &bad_name), &request(1, true), false).is_err());
    }
}
