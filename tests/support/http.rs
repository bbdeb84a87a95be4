//! HTTP by hand for the tests: requests written byte for byte (so paths and headers reach the
//! server exactly as sent) and responses read by their `Content-Length`, on connections that
//! may stay open for the next request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use super::WAIT;

/// One response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut headers = self.headers.iter();
        let found = headers.find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }

    /// Whether the server said it closes the connection after this response.
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A connection to an HTTP endpoint, for one request or several in a row.
pub struct Conn {
    pub stream: TcpStream,
    /// Bytes read past the last response.
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes `raw` as is.
    pub fn send(&mut self, raw: &[u8]) {
        self.stream.write_all(raw).expect("write");
    }

    /// Sends `raw` and reads one response (`HEAD` requests: the head alone).
    pub fn exchange(&mut self, raw: &[u8]) -> Reply {
        self.send(raw);
        self.read_reply(raw.starts_with(b"HEAD "))
    }

    /// Reads one response: its head, then `Content-Length` bytes (none when `head_only`).
    pub fn read_reply(&mut self, head_only: bool) -> Reply {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.read_more();
        };
        let head = String::from_utf8(self.buf[..head_end - 4].to_vec()).expect("ascii head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line.split(' ').nth(1).expect("status");
        let headers: Vec<(String, String)> = lines
            .map(|line| line.split_once(':').expect("header line"))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut reply = Reply {
            status: status.parse().expect("numeric status"),
            headers,
            body: Vec::new(),
        };
        let length: usize = match reply.header("Content-Length") {
            Some(length) => length.parse().expect("numeric length"),
            None if reply.status < 200 => 0, // an interim response has no body
            None => panic!("no Content-Length in {head}"),
        };
        let wanted = if head_only { 0 } else { length };
        while self.buf.len() < head_end + wanted {
            self.read_more();
        }
        reply.body = self.buf[head_end..head_end + wanted].to_vec();
        self.buf.drain(..head_end + wanted);
        reply
    }

    fn read_more(&mut self) {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk).expect("read within the wait");
        assert!(
            n > 0,
            "connection closed early after {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Whether the server has closed the connection by now (without waiting).
    pub fn closed_now(&self) -> bool {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let closed = match self.stream.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        self.stream.set_nonblocking(false).expect("blocking");
        closed
    }

    /// Whether the server has closed the connection (reads to the end; anything more is a
    /// failure).
    pub fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        let closed = match self.stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        assert!(
            rest.is_empty() && self.buf.is_empty(),
            "unexpected bytes: {:?}",
            String::from_utf8_lossy(&rest)
        );
        closed
    }
}

/// A request, byte for byte: the request line, `Host: test`, the headers, `Content-Length`
/// and the body.
pub fn raw_request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// One request on a fresh connection, and its response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    Conn::open(addr).exchange(&raw_request(method, target, headers, body))
}

pub fn get(addr: SocketAddr, target: &str) -> Reply {
    request(addr, "GET", target, &[], b"")
}

pub fn post(addr: SocketAddr, target: &str, content_type: &str, body: &str) -> Reply {
    request(
        addr,
        "POST",
        target,
        &[("Content-Type", content_type)],
        body.as_bytes(),
    )
}

/// Sends `raw` on a fresh connection and reads one response.
pub fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
    Conn::open(addr).exchange(raw)
}
