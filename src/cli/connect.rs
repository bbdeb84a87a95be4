//! `signalhub connect`: a small WebSocket client for debugging any server. Each line of
//! standard input goes out as one text message; each message received is printed on its own
//! line.
//!
//! The socket is split without polling: one tungstenite `WebSocket` reads (on its own thread,
//! blocking, answering pings and the server's close by itself) and a second one, built over
//! the same TCP connection with `from_raw_socket`, only writes what standard input gives. Both
//! write through one [`Duplex`] writer whose lock is held for whole buffers, so their frames
//! never interleave, and never across a blocking read.
//!
//! This file is meant to be swapped for the library's outbound clients later.

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role};
use tungstenite::{Error as WsError, HandshakeError, Message, WebSocket};

use super::args::ConnectArgs;
use super::{describe, Exit};

/// How long connecting (TCP and the upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the server's close once standard input has ended.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What the client threads tell the main thread.
enum Event {
    /// The connection ended: `Ok` for a normal close, else the reason.
    Ended(Result<(), String>),
    /// Standard input ended; a close (1000) has been sent.
    InputDone,
    /// Sending failed (the reader usually has the real reason).
    SendFailed(String),
}

/// Connects, then runs until the connection ends or standard input ends and the close is
/// answered.
pub fn run(args: ConnectArgs) -> Result<(), Exit> {
    let request = request(&args.url, &args.header)?;
    let (reader, writer) = open(request)?;
    eprintln!("connected to {}", args.url);
    let closing = Arc::new(AtomicBool::new(false));
    let (events, received) = mpsc::channel();
    spawn("sh-read", {
        let (events, closing) = (events.clone(), closing.clone());
        move || {
            let _ = events.send(Event::Ended(read_loop(reader, &closing)));
        }
    })?;
    spawn("sh-stdin", move || {
        let _ = events.send(pump_stdin(writer, &closing));
    })?;
    wait(&received).map_err(Exit::failure)
}

/// The upgrade request: the URL (ws:// only) with the extra headers.
fn request(url: &str, headers: &[String]) -> Result<Request, Exit> {
    let mut request = url
        .into_client_request()
        .map_err(|e| Exit::usage(format!("invalid URL {url:?}: {e}")))?;
    match request.uri().scheme_str().map(str::to_ascii_lowercase) {
        Some(scheme) if scheme == "ws" => {}
        Some(scheme) if scheme == "wss" => return Err(Exit::failure("wss is not supported yet")),
        _ => return Err(Exit::usage(format!("invalid URL {url:?}: expected ws://"))),
    }
    for header in headers {
        let (name, value) = parse_header(header).map_err(Exit::usage)?;
        request.headers_mut().append(name, value);
    }
    Ok(request)
}

/// `Name: value` as a header.
fn parse_header(header: &str) -> Result<(HeaderName, HeaderValue), String> {
    let invalid = |why: &str| format!("invalid header {header:?}: {why}");
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| invalid("expected 'Name: value'"))?;
    let name =
        HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| invalid(&e.to_string()))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| invalid(&e.to_string()))?;
    Ok((name, value))
}

/// Connects over TCP and upgrades; gives the reading and the writing WebSocket.
fn open(request: Request) -> Result<(WebSocket<Duplex>, WebSocket<Duplex>), Exit> {
    let uri = request.uri();
    let host = uri.host().unwrap_or_default();
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tcp_connect(&host, port).map_err(Exit::failure)?;
    let socket_error = |e: io::Error| Exit::failure(format!("socket error: {e}"));
    stream.set_nodelay(true).map_err(socket_error)?;
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .map_err(socket_error)?;
    let writer = Arc::new(Mutex::new(stream.try_clone().map_err(socket_error)?));
    let duplex = Duplex {
        reader: Some(stream),
        writer: writer.clone(),
    };
    let (reader, _response) = tungstenite::client(request, duplex).map_err(handshake_error)?;
    reader
        .get_ref()
        .set_read_timeout(None)
        .map_err(socket_error)?;
    let write_only = Duplex {
        reader: None,
        writer,
    };
    Ok((
        reader,
        WebSocket::from_raw_socket(write_only, Role::Client, None),
    ))
}

/// The first address of `host` that accepts a connection.
fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("cannot resolve {host}: no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("cannot connect to {address}: {e}"),
        }
    }
    Err(last)
}

/// Why the upgrade failed, with the HTTP status when the server answered with one.
fn handshake_error(error: HandshakeError<tungstenite::ClientHandshake<Duplex>>) -> Exit {
    let error = match error {
        HandshakeError::Failure(error) => error,
        HandshakeError::Interrupted(_) => return Exit::failure("the upgrade timed out"),
    };
    match error {
        WsError::Http(response) => {
            let status = response.status();
            let reason = status.canonical_reason().unwrap_or("");
            let body = response.body().as_deref().unwrap_or_default();
            let body = String::from_utf8_lossy(body);
            let body = body.trim();
            let detail = if body.is_empty() {
                String::new()
            } else {
                format!(": {body}")
            };
            Exit::failure(format!(
                "the server refused the upgrade: HTTP {} {reason}{detail}",
                status.as_u16()
            ))
        }
        WsError::Io(e) if is_timeout(&e) => Exit::failure("the upgrade timed out"),
        other => Exit::failure(format!("the upgrade failed: {}", describe(&other))),
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Prints every message until the connection ends. `Ok` for a normal close (1000, 1001, or
/// no code), else the reason.
fn read_loop(mut ws: WebSocket<Duplex>, closing: &AtomicBool) -> Result<(), String> {
    loop {
        let text = match ws.read() {
            Ok(Message::Text(text)) => text.as_str().to_owned(),
            Ok(Message::Binary(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(Message::Close(frame)) => return closed(ws, frame, closing),
            Ok(_) => continue, // pings (answered by tungstenite) and pongs
            Err(WsError::ConnectionClosed) => return Ok(()),
            Err(WsError::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) => return Err("the server closed the connection without a close frame".into()),
            Err(e) => return Err(format!("connection lost: {}", describe(&e))),
        };
        print_line(&text)?;
    }
}

/// The server's close arrived: unless we started the close, send tungstenite's reply (then
/// the process ends, closing the TCP connection; waiting for the server to close it first
/// would add nothing for a command-line tool). Then judge the close code.
fn closed(
    mut ws: WebSocket<Duplex>,
    frame: Option<CloseFrame>,
    closing: &AtomicBool,
) -> Result<(), String> {
    if !closing.load(Ordering::SeqCst) {
        let _ = ws.flush();
    }
    match frame {
        None => Ok(()),
        Some(frame) if matches!(frame.code, CloseCode::Normal | CloseCode::Away) => Ok(()),
        Some(frame) => {
            let code = u16::from(frame.code);
            Err(match frame.reason.as_str() {
                "" => format!("the server closed the connection with code {code}"),
                reason => format!("the server closed the connection with code {code}: {reason}"),
            })
        }
    }
}

/// Prints one received message as a line and flushes, so pipes see it at once.
fn print_line(text: &str) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// Sends each line of standard input (without its line ending) as a text message; at its end,
/// sends a normal close.
fn pump_stdin(mut ws: WebSocket<Duplex>, closing: &AtomicBool) -> Event {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return Event::SendFailed(format!("cannot read stdin: {e}")),
        }
        let text = String::from_utf8_lossy(strip_line_ending(&line)).into_owned();
        if let Err(e) = ws.send(Message::text(text)) {
            return Event::SendFailed(format!("cannot send: {}", describe(&e)));
        }
    }
    closing.store(true, Ordering::SeqCst);
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    if let Err(e) = ws.close(Some(frame)).and_then(|()| ws.flush()) {
        return Event::SendFailed(format!("cannot send the close: {}", describe(&e)));
    }
    Event::InputDone
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Waits for the end: the reader's verdict, or, once standard input is done (or sending
/// failed), the reader's verdict within [`CLOSE_WAIT`].
fn wait(events: &Receiver<Event>) -> Result<(), String> {
    let first = events
        .recv()
        .map_err(|_| "the client threads stopped".to_owned())?;
    let fallback = match first {
        Event::Ended(outcome) => return outcome,
        Event::InputDone => Ok(()),
        Event::SendFailed(reason) => Err(reason),
    };
    match events.recv_timeout(CLOSE_WAIT) {
        Ok(Event::Ended(outcome)) => outcome,
        _ => {
            if fallback.is_ok() {
                eprintln!("signalhub: no close from the server within {CLOSE_WAIT:?}");
            }
            fallback
        }
    }
}

/// Starts a named thread.
fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<(), Exit> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map(drop)
        .map_err(|e| Exit::failure(format!("cannot start a thread: {e}")))
}

/// One side of the TCP connection for a tungstenite `WebSocket`: reads from its own handle
/// (none for the write-only socket), writes whole buffers through the shared, locked one.
struct Duplex {
    reader: Option<TcpStream>,
    writer: Arc<Mutex<TcpStream>>,
}

impl Duplex {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match &self.reader {
            Some(reader) => reader.set_read_timeout(timeout),
            None => Ok(()),
        }
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.reader {
            Some(reader) => reader.read(buf),
            None => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

impl Write for Duplex {
    /// Writes all of `buf` under the lock: a frame is never split by another writer's.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_bad_ones_say_why() {
        let (name, value) = parse_header("X-Token:  abc ").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-token", "abc"));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn only_ws_urls_are_accepted() {
        assert!(request("ws://127.0.0.1:1/x", &["A: b".into()]).is_ok());
        assert_eq!(
            request("wss://127.0.0.1:1/", &[]).unwrap_err(),
            Exit::failure("wss is not supported yet")
        );
        assert_eq!(request("http://127.0.0.1:1/", &[]).unwrap_err().code(), 2);
        assert_eq!(request("not a url", &[]).unwrap_err().code(), 2);
    }

    #[test]
    fn line_endings_are_stripped_once() {
        assert_eq!(strip_line_ending(b"a\r\n"), b"a");
        assert_eq!(strip_line_ending(b"a\n"), b"a");
        assert_eq!(strip_line_ending(b"a"), b"a");
        assert_eq!(strip_line_ending(b"a\n\n"), b"a\n");
    }
}
