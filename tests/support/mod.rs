//! Helpers for the integration tests: a server on 127.0.0.1 port 0, real WebSocket clients
//! with bounded waits, and a bounded wait for conditions.
#![allow(dead_code)]

pub mod certs;
pub mod http;
pub mod threads;

use std::io;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use signalhub::{ClientId, Endpoint, Server, ServerConfig, ServerHandle};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// The longest any test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to be sure something does NOT arrive.
pub const QUIET: Duration = Duration::from_millis(300);

/// A test config: defaults, without keepalive noise.
pub fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.ping_interval = None;
    config.idle_timeout = None;
    config.close_timeout = Duration::from_millis(500);
    config
}

/// Starts a server with one Ws endpoint on 127.0.0.1:0 after `setup` has added routes/hooks.
pub fn start_with(config: ServerConfig, setup: impl FnOnce(&mut Server)) -> ServerHandle {
    let mut server = Server::with_config(config);
    server
        .endpoint(Endpoint::ws("127.0.0.1:0"))
        .expect("endpoint");
    setup(&mut server);
    server.start().expect("server starts")
}

/// Starts a plain server (no routes) with the test config.
pub fn start() -> ServerHandle {
    start_with(config(), |_| {})
}

/// The `ws://` URL of a server's first endpoint with `path` appended.
pub fn url(handle: &ServerHandle, path: &str) -> String {
    format!("{}{path}", handle.endpoints()[0].url())
}

/// A connected test client.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    pub id: ClientId,
}

/// Connects to `path` on the server; panics with the reason if it cannot.
pub fn connect(handle: &ServerHandle, path: &str) -> Client {
    try_connect(&url(handle, path), &[]).expect("client connects")
}

/// Connects to a URL with extra request headers; the error of a refused handshake is returned.
pub fn try_connect(url: &str, headers: &[(&str, &str)]) -> Result<Client, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    let host = request
        .uri()
        .authority()
        .expect("authority")
        .as_str()
        .to_owned();
    let stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_nodelay(true)?;
    let (ws, response) = tungstenite::client(request, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => {
            tungstenite::Error::Io(io::ErrorKind::TimedOut.into())
        }
    })?;
    let id = response
        .headers()
        .get("X-Signal-ClientId")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("101 response carries X-Signal-ClientId");
    Ok(Client { ws, id })
}

impl Client {
    /// Sends a JSON value as a text frame.
    pub fn send_json(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    /// Sends raw text.
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// The next text (or binary) message, skipping pings; panics after [`WAIT`].
    pub fn recv(&mut self) -> String {
        self.try_recv(WAIT)
            .unwrap_or_else(|e| panic!("expected a message: {e}"))
    }

    /// The next text message within `timeout`.
    pub fn try_recv(&mut self, timeout: Duration) -> Result<String, String> {
        self.ws
            .get_mut()
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + timeout;
        let result = loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => break Ok(t.to_string()),
                Ok(Message::Binary(b)) => break Ok(String::from_utf8_lossy(&b).into_owned()),
                Ok(Message::Close(frame)) => break Err(format!("closed: {frame:?}")),
                Ok(_) if Instant::now() < deadline => continue,
                Ok(_) => break Err("timed out".into()),
                Err(e) => break Err(e.to_string()),
            }
        };
        let _ = self.ws.get_mut().set_read_timeout(Some(WAIT));
        result
    }

    /// Asserts that nothing arrives for [`QUIET`].
    pub fn expect_nothing(&mut self) {
        if let Ok(text) = self.try_recv(QUIET) {
            panic!("expected nothing, got {text:?}");
        }
    }

    /// Reads until the server closes; returns the close code (None: the socket just ended).
    pub fn recv_close(&mut self) -> Option<CloseCode> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| f.code),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    panic!("server did not close within {WAIT:?}")
                }
                Err(_) => return None,
            }
        }
        panic!("server did not close within {WAIT:?}");
    }
}

/// Waits until `condition` holds, checking every few milliseconds, at most [`WAIT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `call` on a thread of its own and returns what it returns; panics if it has not
/// returned within [`WAIT`]. For calls that must not block (a shutdown, a disconnect): a hang
/// fails the test instead of stalling it. The bound only limits the wait; it says nothing of
/// how fast the call is.
pub fn within_wait<T: Send + 'static>(what: &str, call: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, returned) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(call());
    });
    match returned.recv_timeout(WAIT) {
        Ok(value) => value,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {WAIT:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Sends a raw HTTP request on a fresh TCP connection and returns the whole response text.
pub fn raw_request(handle: &ServerHandle, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(handle.endpoints()[0].address).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// One masked client frame (RFC 6455 section 5.2), with any opcode and FIN bit, as raw bytes.
/// Reads one frame the server sent (never masked): its first byte (FIN and opcode) and its
/// payload. Reads wait as the stream's own timeout says.
pub fn read_frame(stream: &mut impl std::io::Read) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).expect("frame head");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n).expect("len16");
            u16::from_be_bytes(n) as usize
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n).expect("len64");
            u64::from_be_bytes(n) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).expect("payload");
    (head[0], payload)
}

pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![if fin { 0x80 } else { 0x00 } | (opcode & 0x0f)];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

impl Client {
    /// Writes one final frame with `opcode` (0x1 text, 0x2 binary, ...) straight to the socket,
    /// bypassing tungstenite's checks (to send what a well-behaved client never would).
    pub fn send_raw_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.send_raw_fragment(true, opcode, payload);
    }

    /// Writes one frame, final or not, straight to the socket (`opcode` 0x0 continues a message).
    pub fn send_raw_fragment(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        use std::io::Write;
        let stream = self.ws.get_mut();
        stream
            .write_all(&masked_frame(fin, opcode, payload))
            .expect("write raw frame");
        stream.flush().expect("flush raw frame");
    }
}

/// The HTTP status of a refused handshake (`try_connect`'s error), if it was one.
pub fn refused_status(error: &tungstenite::Error) -> Option<u16> {
    match error {
        tungstenite::Error::Http(response) => Some(response.status().as_u16()),
        _ => None,
    }
}

/// A valid upgrade request for `path` (`extra` holds more header lines, each ending in CRLF).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Upgrades a plain TCP connection by hand and returns it right after the `101` head, for
/// clients that must not answer pings or read on their own.
pub fn raw_upgrade(handle: &ServerHandle, path: &str) -> TcpStream {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect(handle.endpoints()[0].address).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream
        .write_all(upgrade_request(path, "").as_bytes())
        .expect("write upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read 101");
        assert_eq!(n, 1, "connection ended during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    stream
}

/// Reads and discards until the peer ends the connection (EOF or reset); panics if it is still
/// open after [`WAIT`]. Returns the bytes read.
pub fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    use std::io::Read;
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = [0u8; 16 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "the server did not close within {WAIT:?}");
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                panic!("the server did not close within {WAIT:?}")
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return seen,
        }
    }
}

/// A TCP connection to the server from `local_ip` (any 127.x.y.z works on Linux), with the
/// receive buffer shrunk to `receive_buffer` bytes when given (set before connecting, so the
/// window stays small).
pub fn tcp_from(
    server: &ServerHandle,
    local_ip: std::net::IpAddr,
    receive_buffer: Option<usize>,
) -> io::Result<TcpStream> {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
    if let Some(size) = receive_buffer {
        sockopt::set_socket_recv_buffer_size(&fd, size)?;
    }
    rustix::net::bind(&fd, &std::net::SocketAddr::new(local_ip, 0))?;
    rustix::net::connect(&fd, &server.endpoints()[0].address)?;
    Ok(TcpStream::from(fd))
}

/// A WebSocket client over a TCP connection made by hand.
pub fn client_over(stream: TcpStream, url: &str) -> Result<Client, tungstenite::Error> {
    stream.set_read_timeout(Some(WAIT))?;
    let (ws, response) = tungstenite::client(url, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => {
            tungstenite::Error::Io(io::ErrorKind::TimedOut.into())
        }
    })?;
    let id = response.headers()["X-Signal-ClientId"]
        .to_str()
        .expect("id header")
        .parse()
        .expect("a client id");
    Ok(Client { ws, id })
}
