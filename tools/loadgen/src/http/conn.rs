//! One HTTP/1.1 keep-alive connection of `http`: a request, and its whole response read.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use crate::client::CONNECT_TIMEOUT;

/// The longest response head (or chunk-size line) accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why a request failed: its kind (an index in [`KINDS`](super::KINDS)) and a sample message.
pub struct Fail(pub usize, pub String);

impl Fail {
    pub fn io(what: &str, e: io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::timeout(),
            _ => Fail(2, format!("{what}: {e}")),
        }
    }
    fn timeout() -> Fail {
        Fail(1, "timeout".into())
    }
    fn eof() -> Fail {
        Fail(2, "closed by server before the response ended".into())
    }
    fn protocol(why: impl std::fmt::Display) -> Fail {
        Fail(4, format!("protocol: {why}"))
    }
}

/// How a response's body ends.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// One keep-alive connection: blocking, every read bounded by the request's limit.
pub struct HttpConn {
    pub sock: TcpStream,
    buf: Vec<u8>, // read, not yet consumed
    served: u64,  // whole responses read on it
    got: bool,    // some of the current response arrived
}

impl HttpConn {
    pub fn connect(addr: SocketAddr, deadline: Instant) -> Result<HttpConn, Fail> {
        let limit = CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        if limit.is_zero() {
            return Err(Fail(3, "connect: deadline".into()));
        }
        let sock = TcpStream::connect_timeout(&addr, limit);
        let sock = sock.map_err(|e| Fail(3, format!("connect: {e}")))?;
        let _ = sock.set_nodelay(true);
        sock.set_write_timeout(Some(limit))
            .map_err(|e| Fail(3, format!("connect: {e}")))?;
        Ok(HttpConn {
            sock,
            buf: Vec::with_capacity(8192),
            served: 0,
            got: false,
        })
    }

    /// Read once more into `buf`; an end of stream is `Ok(false)`.
    fn fill(&mut self, until: Instant) -> Result<bool, Fail> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail::timeout());
        }
        (self.sock.set_read_timeout(Some(left))).map_err(|e| Fail::io("read", e))?;
        let len = self.buf.len();
        self.buf.resize(len + 16 * 1024, 0);
        let r = loop {
            match self.sock.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        self.buf.truncate(len + *r.as_ref().unwrap_or(&0));
        self.got |= matches!(r, Ok(n) if n > 0);
        r.map(|n| n > 0).map_err(|e| Fail::io("read", e))
    }

    /// Read until `buf` holds `n` bytes; the end of the stream first is an error.
    fn need(&mut self, n: usize, until: Instant) -> Result<(), Fail> {
        while self.buf.len() < n {
            if !self.fill(until)? {
                return Err(Fail::eof());
            }
        }
        Ok(())
    }

    /// Read until `buf` holds a whole line; returns its length without the CRLF.
    fn line(&mut self, until: Instant) -> Result<usize, Fail> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(at);
            }
            if self.buf.len() > MAX_RESPONSE_HEAD {
                return Err(Fail::protocol("line too long"));
            }
            if !self.fill(until)? {
                return Err(Fail::eof());
            }
        }
    }

    /// Send one request and read its whole response by `until`: the status, and whether
    /// the server ends the connection after it.
    pub fn exchange(&mut self, request: &[u8], until: Instant) -> Result<(u16, bool), Fail> {
        self.got = !self.buf.is_empty();
        self.sock
            .write_all(request)
            .map_err(|e| Fail::io("write", e))?;
        let (status, framing, mut close, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let (status, framing, close) = response_framing(&response);
                    break (status, framing, close, n);
                }
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(Fail::protocol("response head too long"))
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill(until)? {
                        return Err(Fail::eof());
                    }
                }
                Err(e) => return Err(Fail::protocol(e)),
            }
        };
        self.buf.drain(..head_len);
        match framing {
            Framing::Length(n) => {
                self.need(n, until)?;
                self.buf.drain(..n);
            }
            Framing::Chunked => self.chunked_body(until)?,
            Framing::UntilClose => {
                while self.fill(until)? {}
                (self.buf.clear(), close = true).1
            }
        }
        self.served += 1;
        Ok((status, close))
    }

    /// After a failed exchange: the server had closed this kept-alive connection without
    /// saying so (no `Connection: close`) and sent nothing of the response, so the request
    /// may go again on a new connection, as HTTP clients do.
    pub fn closed_unannounced(&self, fail: &Fail) -> bool {
        fail.0 == 2 && self.served > 0 && !self.got
    }

    /// Consume a chunked body and its trailers.
    fn chunked_body(&mut self, until: Instant) -> Result<(), Fail> {
        loop {
            let end = self.line(until)?;
            let size = String::from_utf8_lossy(&self.buf[..end]);
            let size = size.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(Fail::protocol)?;
            self.buf.drain(..end + 2);
            if size == 0 {
                break;
            }
            self.need(size + 2, until)?;
            self.buf.drain(..size + 2);
        }
        loop {
            let end = self.line(until)?; // trailers, up to an empty line
            self.buf.drain(..end + 2);
            if end == 0 {
                return Ok(());
            }
        }
    }
}

/// A parsed response head's status, how its body ends, and whether the connection ends
/// after it (`Connection: close`, or HTTP/1.0 without `Connection: keep-alive`).
fn response_framing(r: &httparse::Response) -> (u16, Framing, bool) {
    let status = r.code.unwrap_or(0);
    let header = |name: &'static str| {
        r.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let has_token = |name, token| header(name).any(|v| v.split(',').any(|t| t.trim() == token));
    let close = has_token("connection", "close")
        || (r.version == Some(0) && !has_token("connection", "keep-alive"));
    let length = header("content-length")
        .next()
        .and_then(|v| v.trim().parse().ok());
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if has_token("transfer-encoding", "chunked") {
        Framing::Chunked
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    (status, framing, close)
}
