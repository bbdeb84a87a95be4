//! The upgrade request: parse its head, decide upgrade or refusal, and write the response.
//!
//! Pure functions over bytes, so every refusal is unit-tested without sockets.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::auth::Refused;
use crate::protocol::url::split_target;
use crate::{ClientId, Pairs};

/// Most headers an upgrade request may carry.
const MAX_HEADERS: usize = 64;

/// A valid WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upgrade {
    /// Request path without the query, percent-decoded.
    pub(crate) path: String,
    pub(crate) query: Pairs,
    pub(crate) headers: Pairs,
    /// `Sec-WebSocket-Accept` for the response.
    pub(crate) accept: String,
    /// The subprotocols the client offers (`Sec-WebSocket-Protocol`), in its order.
    pub(crate) protocols: Vec<String>,
}

impl Upgrade {
    /// The first of `ours` (the server's, in its order of preference) that the client
    /// offers; `None` when they have none in common (RFC 6455 4.2.2: then no
    /// `Sec-WebSocket-Protocol` header, and the connection is still accepted).
    pub(crate) fn choose_protocol(&self, ours: &[String]) -> Option<String> {
        ours.iter()
            .find(|mine| self.protocols.iter().any(|offered| offered == *mine))
            .cloned()
    }
}

impl Upgrade {
    /// A header's value (case-insensitive name).
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_ignore_case(name)
    }
}

/// A refusal: status line, extra headers and a short plain-text reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: Cow<'static, str>,
    pub(crate) extra_headers: &'static str,
}

impl Refusal {
    pub(crate) const fn new(status: u16, reason: &'static str) -> Refusal {
        Refusal {
            status,
            reason: Cow::Borrowed(reason),
            extra_headers: "",
        }
    }

    /// The full HTTP response, closing the connection.
    pub(crate) fn response(&self) -> Vec<u8> {
        let body = format!("{}\n", self.reason);
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, status_text(self.status));
        let _ = write!(
            out,
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n{body}",
            body.len(),
            self.extra_headers
        );
        out.into_bytes()
    }
}

/// An authorize hook's refusal; a `401` says how to authenticate (a bearer token).
impl From<Refused> for Refusal {
    fn from(refused: Refused) -> Refusal {
        Refusal {
            status: refused.status,
            reason: Cow::Owned(refused.reason),
            extra_headers: match refused.status {
                401 => "WWW-Authenticate: Bearer\r\n",
                _ => "",
            },
        }
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        504 => "Gateway Timeout",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// What the bytes read so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// More bytes needed.
    Partial,
    /// A complete request head of `len` bytes.
    Complete { len: usize, outcome: Request },
}

/// What a complete request head asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A valid WebSocket upgrade.
    Upgrade(Upgrade),
    /// A plain HTTP request (no `Upgrade: websocket`): for the HTTP side, if the port has one.
    Http(PlainRequest),
    /// A broken or refused upgrade.
    Refuse(Refusal),
}

/// A plain HTTP request's head, to be replayed to the HTTP side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlainRequest {
    pub(crate) method: String,
    pub(crate) target: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub(crate) minor_version: u8,
    pub(crate) headers: Vec<(String, String)>,
}

impl PlainRequest {
    /// The body's length: its `Content-Length`, or 0 without one. Chunked (or otherwise
    /// transfer-encoded) request bodies are refused with `411`, so that every request's end
    /// is known before it reaches the HTTP side.
    pub(crate) fn body_length(&self) -> Result<u64, Refusal> {
        let encoded = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Transfer-Encoding"));
        if encoded {
            return Err(Refusal::new(411, "request bodies need a Content-Length"));
        }
        Ok(self.content_length()?.unwrap_or(0))
    }

    /// Whether the client waits for `100 Continue` before sending its body.
    pub(crate) fn expects_continue(&self) -> bool {
        has_token(&self.headers, "Expect", "100-continue")
    }

    /// Whether the client wants the connection kept for another request: HTTP/1.1 unless
    /// it says `Connection: close`, HTTP/1.0 only if it says `Connection: keep-alive`.
    pub(crate) fn wants_keep_alive(&self) -> bool {
        match self.minor_version {
            0 => has_token(&self.headers, "Connection", "keep-alive"),
            _ => !has_token(&self.headers, "Connection", "close"),
        }
    }

    /// The declared body length; `Err` for a malformed or conflicting `Content-Length`
    /// (digits only: `+16`, `-1`, ` 5` and `0x10` are all malformed).
    fn content_length(&self) -> Result<Option<u64>, Refusal> {
        let digits = |v: &str| -> Result<u64, ()> {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            v.parse::<u64>().map_err(drop)
        };
        let mut lengths = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| digits(v));
        let bad = || Refusal::new(400, "invalid Content-Length");
        let first = match lengths.next() {
            None => return Ok(None),
            Some(n) => n.map_err(|_| bad())?,
        };
        match lengths.all(|n| n.as_ref().ok() == Some(&first)) {
            true => Ok(Some(first)),
            false => Err(bad()),
        }
    }
}

/// The refusal for a plain HTTP request on a WebSocket-only port.
pub(crate) fn upgrade_required() -> Refusal {
    Refusal {
        extra_headers: "Upgrade: websocket\r\n",
        ..Refusal::new(426, "this endpoint only accepts websocket connections")
    }
}

/// Parses the request head at the start of `buf` and tells a WebSocket upgrade (RFC 6455
/// section 4.2.1, from an allowed origin) from plain HTTP and from a broken request.
pub(crate) fn parse_head(buf: &[u8], allowed_origins: Option<&[String]>) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let refuse = |status, reason| Head::Complete {
        len: buf.len(),
        outcome: Request::Refuse(Refusal::new(status, reason)),
    };
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(httparse::Error::TooManyHeaders) => return refuse(431, "too many headers"),
        Err(_) => return refuse(400, "malformed request"),
    };
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|h| {
            let value = String::from_utf8_lossy(h.value).trim().to_owned();
            (h.name.to_owned(), value)
        })
        .collect();
    let minor_version = request.version.unwrap_or(1);
    let hosts = lines(&headers, "Host").count();
    // RFC 9112 3.2: more than one Host is refused whatever the request; RFC 9110 7.8: an
    // HTTP/1.0 request's Upgrade is ignored.
    let outcome = if hosts > 1 {
        Request::Refuse(Refusal::new(400, "more than one Host header"))
    } else if minor_version == 0 || !has_token(&headers, "Upgrade", "websocket") {
        let ascii = request.headers.iter().all(|h| h.value.is_ascii());
        if !ascii {
            Request::Refuse(Refusal::new(400, "request headers must be ascii"))
        } else if minor_version == 1 && hosts == 0 {
            Request::Refuse(Refusal::new(400, "missing Host header"))
        } else {
            Request::Http(PlainRequest {
                method: request.method.unwrap_or("GET").to_owned(),
                target: request.path.unwrap_or("/").to_owned(),
                minor_version,
                headers,
            })
        }
    } else {
        match check_upgrade(&request, headers, allowed_origins) {
            Ok(upgrade) => Request::Upgrade(upgrade),
            Err(refusal) => Request::Refuse(refusal),
        }
    };
    Head::Complete { len, outcome }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    lines(headers, name).next()
}

/// The values of every line of header `name`.
fn lines<'a, 'n>(
    headers: &'a [(String, String)],
    name: &'n str,
) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
    (headers.iter())
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether list header `name` holds `token`, its lines joined (RFC 9110 5.3).
fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    (lines(headers, name).flat_map(|v| v.split(','))).any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn check_upgrade(
    request: &httparse::Request<'_, '_>,
    headers: Vec<(String, String)>,
    allowed_origins: Option<&[String]>,
) -> Result<Upgrade, Refusal> {
    let find = |name: &str| find(&headers, name);
    let has_token = |name: &str, token: &str| has_token(&headers, name, token);
    if request.method != Some("GET") || request.version != Some(1) {
        return Err(Refusal::new(
            400,
            "a websocket upgrade must be an HTTP/1.1 GET",
        ));
    }
    if find("Host").is_none() {
        return Err(Refusal::new(400, "missing Host header"));
    }
    if !has_token("Connection", "upgrade") {
        return Err(Refusal::new(400, "missing \"Connection: Upgrade\""));
    }
    if find("Sec-WebSocket-Version") != Some("13") {
        return Err(Refusal {
            extra_headers: "Sec-WebSocket-Version: 13\r\n",
            ..Refusal::new(426, "unsupported websocket version (13 is supported)")
        });
    }
    let Some(key) = find("Sec-WebSocket-Key").filter(|k| is_valid_key(k)) else {
        return Err(Refusal::new(400, "missing or invalid Sec-WebSocket-Key"));
    };
    if let Some(allowed) = allowed_origins {
        let origin = find("Origin").unwrap_or("");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            return Err(Refusal::new(403, "origin not allowed"));
        }
    }
    let target = request.path.unwrap_or("/");
    let (path, query) = split_target(target).ok_or(Refusal::new(400, "invalid request path"))?;
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    // Every Sec-WebSocket-Protocol header, each a comma-separated list of tokens.
    let protocols = (headers.iter())
        .filter(|(name, _)| name.eq_ignore_ascii_case("Sec-WebSocket-Protocol"))
        .flat_map(|(_, value)| value.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Upgrade {
        path,
        query: query.into_iter().collect(),
        headers: headers.into_iter().collect(),
        accept,
        protocols,
    })
}

/// A key is the base64 of 16 bytes: 24 characters ending in `==`.
fn is_valid_key(key: &str) -> bool {
    key.len() == 24
        && key.ends_with("==")
        && key[..22]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The `101 Switching Protocols` response, with the client's id, the chosen subprotocol and
/// the agreed extensions.
pub(crate) fn switching_protocols(
    accept: &str,
    id: ClientId,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> Vec<u8> {
    let protocol = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    let extensions = extensions
        .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{protocol}{extensions}X-Signal-ClientId: {id}\r\n\r\n"
    )
    .into_bytes()
}

/// Whether `name` can be a subprotocol: an HTTP token (RFC 6455 4.1, RFC 9110 5.6.2).
pub(crate) fn is_valid_protocol(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request(target: &str, extra: &str) -> String {
        format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
        )
    }

    fn outcome(text: &str) -> Result<Upgrade, Refusal> {
        match parse_head(text.as_bytes(), None) {
            Head::Complete {
                outcome: Request::Upgrade(up),
                ..
            } => Ok(up),
            Head::Complete {
                outcome: Request::Refuse(refusal),
                ..
            } => Err(refusal),
            Head::Complete {
                outcome: Request::Http(_),
                ..
            } => Err(upgrade_required()),
            Head::Partial => panic!("partial"),
        }
    }

    #[test]
    fn a_valid_upgrade_gives_path_query_and_the_rfc_accept_key() {
        let up = outcome(&request(
            "/Chat%20Room?x=1&name=a%2Bb+c",
            "Origin: http://o\r\n",
        ))
        .unwrap();
        assert_eq!(up.path, "/Chat Room");
        assert_eq!(
            up.query.iter().collect::<Vec<_>>(),
            [("x", "1"), ("name", "a+b c")]
        );
        assert_eq!(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(up.header("origin"), Some("http://o"));
    }

    #[test]
    fn head_length_excludes_bytes_after_it() {
        let text = request("/", "") + "\u{81}";
        match parse_head(text.as_bytes(), None) {
            Head::Complete { len, outcome } => {
                assert_eq!(len, text.len() - 2); // the 2-byte char after the head
                assert!(matches!(outcome, Request::Upgrade(_)));
            }
            Head::Partial => panic!("partial"),
        }
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost:", None), Head::Partial);
    }

    #[test]
    fn plain_http_is_told_apart_and_gets_426_with_an_upgrade_header() {
        let plain = parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", None);
        assert!(matches!(
            plain,
            Head::Complete {
                outcome: Request::Http(_),
                ..
            }
        ));
        let refusal = outcome("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap_err();
        assert_eq!(refusal.status, 426);
        let text = String::from_utf8(refusal.response()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{text}"
        );
        assert!(text.contains("Upgrade: websocket\r\n") && text.contains("Connection: close\r\n"));
    }

    #[test]
    fn broken_upgrades_are_refused_with_a_reason() {
        let no_key = request("/", "").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "");
        assert_eq!(outcome(&no_key).unwrap_err().status, 400);
        let bad_key = request("/", "").replace(KEY, "short");
        assert_eq!(outcome(&bad_key).unwrap_err().status, 400);
        let post = request("/", "").replacen("GET", "POST", 1);
        assert_eq!(outcome(&post).unwrap_err().status, 400);
        // HTTP/1.0 knows no upgrade: a plain request, 426 where only WebSockets are served.
        let old = request("/", "").replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(outcome(&old).unwrap_err().status, 426);
        let no_host = request("/", "").replace("Host: x\r\n", "");
        assert_eq!(outcome(&no_host).unwrap_err().status, 400);
        let v8 = request("/", "").replace("Version: 13", "Version: 8");
        assert_eq!(outcome(&v8).unwrap_err().status, 426);
        let no_conn = request("/", "").replace("keep-alive, Upgrade", "keep-alive");
        assert_eq!(outcome(&no_conn).unwrap_err().status, 400);
        assert_eq!(outcome(&request("/bad%zz", "")).unwrap_err().status, 400);
        assert_eq!(outcome(&request("/%ff", "")).unwrap_err().status, 400);
        assert_eq!(outcome("garbage\r\n\r\n").unwrap_err().status, 400);
    }

    #[test]
    fn origins_are_checked_when_a_list_is_set() {
        let allowed = vec!["https://good.example".to_owned()];
        let check = |extra: &str| match parse_head(request("/", extra).as_bytes(), Some(&allowed)) {
            Head::Complete {
                outcome: Request::Upgrade(_),
                ..
            } => Ok(()),
            Head::Complete {
                outcome: Request::Refuse(r),
                ..
            } => Err(r.status),
            other => panic!("{other:?}"),
        };
        assert_eq!(check("Origin: https://GOOD.example\r\n"), Ok(()));
        assert_eq!(check("Origin: https://evil.example\r\n"), Err(403));
        assert_eq!(check(""), Err(403));
    }

    #[test]
    fn content_length_must_be_one_number() {
        let plain = |headers: &[(&str, &str)]| PlainRequest {
            method: "POST".into(),
            target: "/".into(),
            minor_version: 1,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert_eq!(plain(&[]).content_length(), Ok(None));
        assert_eq!(
            plain(&[("content-length", "12")]).content_length(),
            Ok(Some(12))
        );
        let same_twice = plain(&[("Content-Length", "5"), ("content-length", "5")]);
        assert_eq!(same_twice.content_length(), Ok(Some(5)));
        assert!(plain(&[("Content-Length", "5"), ("Content-Length", "6")])
            .content_length()
            .is_err());
        for bad in ["-1", "+16", " 5", "0x10", "", "1_000", "٣"] {
            let request = plain(&[("Content-Length", bad)]);
            assert!(request.content_length().is_err(), "{bad:?}");
        }
        assert!(plain(&[("Content-Length", "99999999999999999999999")])
            .content_length()
            .is_err());
        let chunked = plain(&[("Transfer-Encoding", "chunked")]);
        assert_eq!(chunked.body_length().unwrap_err().status, 411);
        assert_eq!(plain(&[]).body_length(), Ok(0));
    }

    #[test]
    fn plain_requests_need_ascii_headers_and_a_host_on_1_1() {
        let status = |text: &[u8]| match parse_head(text, None) {
            Head::Complete {
                outcome: Request::Refuse(r),
                ..
            } => r.status,
            Head::Complete {
                outcome: Request::Http(_),
                ..
            } => 200,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nX-Name: caf\xc3\xa9\r\n\r\n"),
            400
        );
        assert_eq!(status(b"GET / HTTP/1.1\r\nX: y\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.0\r\n\r\n"), 200);
        assert_eq!(status(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    }

    #[test]
    fn keep_alive_and_continue_follow_version_and_headers() {
        let plain = |minor_version, headers: &[(&str, &str)]| PlainRequest {
            method: "POST".into(),
            target: "/".into(),
            minor_version,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        assert!(plain(1, &[]).wants_keep_alive());
        assert!(!plain(1, &[("Connection", "Close")]).wants_keep_alive());
        assert!(!plain(0, &[]).wants_keep_alive());
        assert!(plain(0, &[("connection", "Keep-Alive")]).wants_keep_alive());
        assert!(plain(1, &[("Expect", "100-continue")]).expects_continue());
        assert!(!plain(1, &[]).expects_continue());
    }

    #[test]
    fn the_101_response_carries_the_client_id_the_chosen_protocol_and_extensions() {
        let id = ClientId::random();
        let text = String::from_utf8(switching_protocols("abc=", id, None, None)).unwrap();
        assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(text.contains(&format!("X-Signal-ClientId: {id}\r\n")));
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(!text.contains("Sec-WebSocket-Extensions"));
        assert!(text.ends_with("\r\n\r\n"));
        let text = switching_protocols("abc=", id, Some("mqtt"), Some("permessage-deflate"));
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("\r\nSec-WebSocket-Protocol: mqtt\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"),
            "{text}"
        );
    }

    #[test]
    fn the_server_picks_the_first_of_its_own_protocols_that_the_client_offers() {
        let offered = |extra: &str| outcome(&request("/", extra)).unwrap();
        let ours = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let up = offered(
            "Sec-WebSocket-Protocol: graphql-ws, mqtt\r\nSec-WebSocket-Protocol: v2.stomp\r\n",
        );
        assert_eq!(up.protocols, ["graphql-ws", "mqtt", "v2.stomp"]);
        assert_eq!(
            up.choose_protocol(&ours(&["v2.stomp", "mqtt"])),
            Some("v2.stomp".into())
        );
        assert_eq!(up.choose_protocol(&ours(&["wamp"])), None);
        assert_eq!(up.choose_protocol(&[]), None);
        assert!(offered("").protocols.is_empty());
        assert!(is_valid_protocol("graphql-transport-ws") && is_valid_protocol("v12.stomp"));
        assert!(!is_valid_protocol("") && !is_valid_protocol("a b") && !is_valid_protocol("a,b"));
    }
}
