//! The WebSocket clients: nonblocking sockets (plain or TLS), handshakes in batches, and
//! worker threads that multiplex many connections with epoll.
use rustix::event::epoll::{self, EventFlags as Ev};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustls::ClientConnection;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::client::{client_with_config, IntoClientRequest};
use tungstenite::handshake::client::{ClientHandshake, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::http::HeaderValue;
use tungstenite::{protocol::WebSocketConfig, Message, WebSocket};

use crate::args::Opts;
use crate::deflate::{self, Deflate};
use crate::report::Errors;
use crate::tls::TlsStream;

pub type Handshake = MidHandshake<ClientHandshake<Stream>>;
type HandshakeResult =
    Result<(WebSocket<Stream>, Response), HandshakeError<ClientHandshake<Stream>>>;
type Pending = Option<(Handshake, Instant)>; // a handshake in progress and its start

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);
const TICK_TS: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 20_000_000,
};
pub const READ_BUFFER: usize = 4096;

pub fn sleep_until(t: Instant) {
    thread::sleep(t.saturating_duration_since(Instant::now()));
}

pub fn timespec(d: Duration) -> Timespec {
    Timespec::try_from(d).unwrap_or(TICK_TS)
}

/// Wait up to one `TICK` for epoll events.
pub fn wait_events(ep: &OwnedFd, events: &mut Vec<epoll::Event>) {
    events.clear();
    let _ = epoll::wait(ep, rustix::buffer::spare_capacity(events), Some(&TICK_TS));
}

/// A nonblocking pipe that worker threads write a byte to, to wake the main thread.
pub struct Wake {
    pub rd: OwnedFd,
    wr: OwnedFd,
}

impl Wake {
    pub fn new() -> std::io::Result<Self> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (rd, wr) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        Ok(Wake { rd, wr })
    }
    pub fn wake(&self) {
        let _ = rustix::io::write(&self.wr, &[1]); // a full pipe already wakes the reader
    }
    pub fn drain(&self) {
        while matches!(rustix::io::read(&self.rd, &mut [0; 256]), Ok(n) if n > 0) {}
    }
    pub fn wait(&self, limit: Duration) {
        let mut fds = [PollFd::new(&self.rd, PollFlags::IN)];
        let _ = poll(&mut fds, Some(&timespec(limit)));
        self.drain();
    }
}

// --------------------------------------------------------------------------------- streams

/// A client's socket: plain TCP (`ws://`) or a TLS session over it (`wss://`). Nonblocking
/// either way: reads and writes return `WouldBlock` when the socket does. It counts the bytes
/// read (plaintext for `wss://`).
pub struct Stream {
    io: Io,
    /// Bytes read; once the handshake is done, those after its response (frames and their
    /// headers).
    read_bytes: u64,
    /// During a handshake: everything read, to find what came after the response.
    tap: Option<Vec<u8>>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// `sock` as is, or with a TLS session over it.
    pub fn new(sock: TcpStream, tls: Option<ClientConnection>) -> Self {
        let io = match tls {
            None => Io::Plain(sock),
            Some(tls) => Io::Tls(Box::new(TlsStream { tls, sock })),
        };
        let (read_bytes, tap) = (0, None);
        Stream {
            io,
            read_bytes,
            tap,
        }
    }
    /// TLS bytes waiting for the socket (a write that would block, or what the handshake or
    /// a read produced): flush once the socket is writable.
    fn wants_write(&self) -> bool {
        matches!(&self.io, Io::Tls(t) if t.tls.wants_write())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.io {
            Io::Plain(s) => s.as_fd(),
            Io::Tls(t) => t.sock.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match &mut self.io {
            Io::Plain(s) => s.read(buf)?,
            Io::Tls(t) => t.read(buf)?,
        };
        self.read_bytes += n as u64;
        if let Some(tap) = &mut self.tap {
            tap.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.io {
            Io::Plain(s) => s.write(buf),
            Io::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush(),
            Io::Tls(t) => t.flush(),
        }
    }
}

// ------------------------------------------------------------------------------ connections

/// What a connection read: bytes after the handshake's response; whether the server accepted
/// permessage-deflate, and then how many compressed messages it inflated and how many it
/// found inflated already by another connection of its thread (the same bytes, see
/// `deflate::Reuse`).
#[derive(Clone, Copy, Default)]
pub struct Wire {
    pub bytes: u64,
    pub deflate: bool,
    pub inflated: u64,
    pub reused: u64,
}

/// An open connection: tungstenite's WebSocket, which reads (unless the server accepted
/// permessage-deflate: then [`Deflate`] reads the frames, tungstenite refusing RSV1) and
/// writes (compressed frames too, with `--compress-sent true`).
pub struct Ws {
    ws: WebSocket<Stream>,
    deflate: Option<Box<Deflate>>,
}

impl Ws {
    /// The connection once its handshake is done: what was read after the response is the
    /// start of the byte count, and of the frame reader if the server accepted
    /// permessage-deflate (`offered`: the client offered it).
    fn upgraded(
        mut ws: WebSocket<Stream>,
        response: &Response,
        offered: bool,
        compress_sent: bool,
    ) -> Result<Ws, String> {
        let stream = ws.get_mut();
        let tap = stream.tap.take().unwrap_or_default();
        let head_end = tap.windows(4).position(|w| w == b"\r\n\r\n");
        let tail = head_end.map_or(Vec::new(), |i| tap[i + 4..].to_vec());
        stream.read_bytes = tail.len() as u64;
        if !offered {
            return Ok(Ws { ws, deflate: None });
        }
        let answer: Vec<&str> = (response.headers())
            .get_all("Sec-WebSocket-Extensions")
            .iter()
            .map(|v| {
                v.to_str()
                    .map_err(|_| "a non-ASCII Sec-WebSocket-Extensions")
            })
            .collect::<Result<_, _>>()?;
        let answer = (!answer.is_empty()).then(|| answer.join(","));
        let params = deflate::accepted(answer.as_deref())?;
        let deflate = params.map(|p| Box::new(Deflate::new(&p, tail, compress_sent)));
        Ok(Ws { ws, deflate })
    }

    /// The next message; `WouldBlock` (an `Io` error) when there is none yet.
    pub fn read(&mut self) -> tungstenite::Result<Message> {
        let Some(d) = &mut self.deflate else {
            return self.ws.read();
        };
        let m = d.inbound.read(self.ws.get_mut())?;
        // What tungstenite does for its own reads: a pong for a ping, a close for a close
        // (both flushed now if the socket takes them, else with the next write or flush).
        match &m {
            Message::Ping(data) => drop(self.ws.write(Message::Pong(data.clone()))),
            Message::Close(_) => drop(self.ws.close(None)),
            _ => return Ok(m),
        }
        let _ = self.ws.flush();
        Ok(m)
    }
    /// Send `text` as a text frame, compressed with `--compress-sent true` where the server
    /// accepted permessage-deflate.
    pub fn send_text(&mut self, text: String) -> tungstenite::Result<()> {
        match self.deflate.as_mut().and_then(|d| d.outbound.as_mut()) {
            None => self.ws.send(Message::text(text)),
            Some(deflater) => {
                let frame = deflater.text_frame(&text)?;
                self.ws.send(Message::Frame(frame))
            }
        }
    }
    pub fn flush(&mut self) -> tungstenite::Result<()> {
        self.ws.flush()
    }
    /// Queue a close frame (and write it if the socket takes it); never blocks.
    pub fn close(&mut self) -> tungstenite::Result<()> {
        self.ws.close(None)
    }
    pub fn get_ref(&self) -> &Stream {
        self.ws.get_ref()
    }
    pub fn wire(&self) -> Wire {
        let bytes = self.ws.get_ref().read_bytes;
        match &self.deflate {
            None => Wire {
                bytes,
                ..Wire::default()
            },
            Some(d) => Wire {
                bytes,
                deflate: true,
                inflated: d.inbound.inflated,
                reused: d.inbound.reused,
            },
        }
    }
}

// ------------------------------------------------------------------------------ connecting

pub fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

/// TCP connect (blocking, bounded), then a nonblocking handshake registered under `slot`.
fn start_handshake(
    o: &Opts,
    to: &(String, SocketAddr),
    rcvbuf: Option<usize>,
    ep: &OwnedFd,
    slot: usize,
) -> Result<HandshakeResult, String> {
    let sock = tcp_connect(to.1, rcvbuf).map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    sock.set_nonblocking(true)
        .map_err(|e| format!("connect: {e}"))?;
    let tls = match &o.tls {
        None => None,
        Some(t) => {
            let tls = ClientConnection::new(t.config.clone(), t.name.clone());
            Some(tls.map_err(|e| format!("tls: {e}"))?)
        }
    };
    let mut stream = Stream::new(sock, tls);
    stream.tap = Some(Vec::with_capacity(256));
    let data = epoll::EventData::new_u64(slot as u64);
    epoll::add(ep, &stream, data, Ev::IN | Ev::OUT | Ev::ET).map_err(|e| format!("epoll: {e}"))?;
    let cfg = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    if !o.compression {
        return Ok(client_with_config(to.0.as_str(), stream, Some(cfg)));
    }
    let mut request = (to.0.as_str().into_client_request()).map_err(|e| format!("url: {e}"))?;
    let offer = HeaderValue::from_static(deflate::OFFER);
    (request.headers_mut()).insert("Sec-WebSocket-Extensions", offer);
    Ok(client_with_config(request, stream, Some(cfg)))
}

/// A TCP connection to `addr` within `CONNECT_TIMEOUT`. With `rcvbuf`, SO_RCVBUF is set to it
/// before connecting, so the window the server sees stays that small (loopback receive
/// buffers here grow to 32 MiB otherwise).
fn tcp_connect(addr: SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let Some(size) = rcvbuf else {
        return TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, flags, None)?;
    sockopt::set_socket_recv_buffer_size(&fd, size)?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
    if poll(&mut fds, Some(&timespec(CONNECT_TIMEOUT)))? == 0 {
        return Err(io::ErrorKind::TimedOut.into());
    }
    sockopt::socket_error(&fd)??;
    Ok(TcpStream::from(fd))
}

/// Collect a finished handshake in `open`, or return the one still in progress.
fn settle(
    o: &Opts,
    r: HandshakeResult,
    born: Instant,
    open: &mut Vec<Ws>,
    errs: &mut Errors,
) -> Pending {
    match r {
        Ok((ws, response)) => match Ws::upgraded(ws, &response, o.compression, o.compress_sent) {
            Ok(ws) => open.push(ws),
            Err(e) => errs.add(format!("handshake: {e}")),
        },
        Err(HandshakeError::Interrupted(hs)) => return Some((hs, born)),
        Err(HandshakeError::Failure(e)) => errs.add(format!("handshake: {e}")),
    }
    None
}

/// Open `n` connections, at most `batch` handshakes in flight; failures go to `errs`. The
/// sockets stay registered in a private epoll set until it is closed on return.
pub fn connect_all(
    o: &Opts,
    n: usize,
    batch: usize,
    deadline: Instant,
    errs: &mut Errors,
) -> Vec<Ws> {
    connect_to(o, &(o.url.clone(), o.addr), None, n, batch, deadline, errs)
}

/// [`connect_all`] to the server at `to` (URL and address), with SO_RCVBUF set to `rcvbuf`
/// when given ([`tcp_connect`]).
pub fn connect_to(
    o: &Opts,
    to: &(String, SocketAddr),
    rcvbuf: Option<usize>,
    n: usize,
    batch: usize,
    deadline: Instant,
    errs: &mut Errors,
) -> Vec<Ws> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC);
    let Ok(ep) = ep.inspect_err(|e| errs.add(format!("epoll: {e}"))) else {
        return Vec::new();
    };
    let mut slots: Vec<Pending> = (0..batch.min(n)).map(|_| None).collect();
    let expired = |(_, born): &(Handshake, Instant)| {
        born.elapsed() > CONNECT_TIMEOUT || Instant::now() >= deadline
    };
    let (mut open, mut started, mut events) = (Vec::with_capacity(n), 0, Vec::with_capacity(64));
    loop {
        for (slot, entry) in slots.iter_mut().enumerate() {
            while entry.is_none() && started < n && Instant::now() < deadline {
                started += 1;
                match start_handshake(o, to, rcvbuf, &ep, slot) {
                    Ok(r) => *entry = settle(o, r, Instant::now(), &mut open, errs),
                    Err(e) => errs.add(e),
                }
            }
        }
        if slots.iter().all(Option::is_none) && (started == n || Instant::now() >= deadline) {
            return open;
        }
        wait_events(&ep, &mut events);
        for slot in events.iter().map(|ev| ev.data.u64() as usize) {
            if let Some((hs, born)) = slots[slot].take() {
                slots[slot] = settle(o, hs.handshake(), born, &mut open, errs);
            }
        }
        for entry in &mut slots {
            if entry.as_ref().is_some_and(expired) {
                *entry = None; // closing the socket also drops it from the epoll set
                errs.add("connect: handshake timeout");
            }
        }
    }
}

// -------------------------------------------------------------------------- worker threads

/// Per-connection behaviour. Returned strings are sent as text frames.
pub trait Client: Send {
    fn start(&mut self) -> Option<String> {
        None
    }
    fn on_text(&mut self, text: &str, errs: &mut Errors) -> Option<String>;
    /// Called every `TICK` while the connection is open, e.g. to detect stalls.
    fn tick(&mut self, _errs: &mut Errors) {}
    /// The connection failed or the server closed it.
    fn closed(&mut self) {}
    /// Once the worker stops: what the connection read.
    fn wire(&mut self, _wire: Wire) {}
}

/// A client that reads and drops everything (the fanout sender's own copies).
pub struct Discard;

impl Client for Discard {
    fn on_text(&mut self, _: &str, _: &mut Errors) -> Option<String> {
        None
    }
}

pub struct Conn<C> {
    pub ws: Ws,
    pub client: C,
    pub open: bool,
    pub want_out: bool,   // part of a frame is still unwritten
    interest: Option<Ev>, // what the socket is registered for in the worker's epoll
}

impl<C: Client> Conn<C> {
    pub fn new(ws: Ws, client: C) -> Self {
        Conn {
            ws,
            client,
            open: true,
            want_out: false,
            interest: None,
        }
    }
    /// Finish a pending write if `writable`, then read until the socket would block.
    pub fn service(&mut self, readable: bool, writable: bool, errs: &mut Errors) {
        if writable && self.open {
            let r = self.ws.flush();
            self.after_write(r, errs);
        }
        while readable && self.open {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    if let Some(reply) = self.client.on_text(&t, errs) {
                        self.send(reply, errs);
                    }
                }
                Ok(Message::Close(_)) => self.fail("closed by server".into(), errs),
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => self.fail(format!("read: {e}"), errs),
            }
        }
        // TLS bytes a read produced (or a blocked write left) go out when writable.
        self.want_out |= self.open && self.ws.get_ref().wants_write();
    }
    pub fn send(&mut self, text: String, errs: &mut Errors) {
        let r = self.ws.send_text(text);
        self.after_write(r, errs);
    }
    /// WouldBlock leaves the rest of the frame buffered in tungstenite until writable.
    fn after_write(&mut self, r: tungstenite::Result<()>, errs: &mut Errors) {
        match r {
            Ok(()) => self.want_out = false,
            Err(e) if would_block(&e) => self.want_out = true,
            Err(e) => self.fail(format!("write: {e}"), errs),
        }
    }
    fn fail(&mut self, why: String, errs: &mut Errors) {
        if std::mem::replace(&mut self.open, false) {
            errs.add(why);
            self.client.closed();
        }
    }
    /// Register for IN, IN|OUT while a write is pending, or nothing once closed.
    fn sync_interest(&mut self, ep: &OwnedFd, token: usize) {
        let mut flags = Ev::IN;
        flags.set(Ev::OUT, self.want_out);
        let want = self.open.then_some(flags);
        let (fd, data) = (self.ws.get_ref(), epoll::EventData::new_u64(token as u64));
        let _ = match (self.interest, want) {
            (old, new) if old == new => return,
            (None, Some(f)) => epoll::add(ep, fd, data, f),
            (Some(_), Some(f)) => epoll::modify(ep, fd, data, f),
            (_, None) => epoll::delete(ep, fd),
        };
        self.interest = want;
    }
}

/// One worker thread: serve `clients` until `stop` or `deadline`, then close them.
fn drive<C: Client>(
    clients: Vec<(Ws, C)>,
    stop: &AtomicBool,
    deadline: Instant,
) -> (Vec<C>, Errors) {
    let mut errs = Errors::default();
    let mut conns: Vec<Conn<C>> = clients
        .into_iter()
        .map(|(ws, c)| Conn::new(ws, c))
        .collect();
    match epoll::create(epoll::CreateFlags::CLOEXEC) {
        Ok(ep) => event_loop(&ep, &mut conns, stop, deadline, &mut errs),
        Err(e) => errs.add(format!("epoll: {e}")),
    }
    for c in &mut conns {
        c.client.wire(c.ws.wire());
        let _ = c.ws.close(); // best effort: queue a close frame, never block
    }
    (conns.into_iter().map(|c| c.client).collect(), errs)
}

fn event_loop<C: Client>(
    ep: &OwnedFd,
    conns: &mut [Conn<C>],
    stop: &AtomicBool,
    deadline: Instant,
    errs: &mut Errors,
) {
    for (i, c) in conns.iter_mut().enumerate() {
        if let Some(first) = c.client.start() {
            c.send(first, errs);
        }
        c.sync_interest(ep, i);
    }
    let (mut events, mut last_tick) = (Vec::with_capacity(256), Instant::now());
    while !stop.load(Relaxed) && Instant::now() < deadline {
        wait_events(ep, &mut events);
        for ev in &events {
            let (i, flags) = (ev.data.u64() as usize, ev.flags);
            conns[i].service(
                flags.intersects(Ev::IN | Ev::ERR | Ev::HUP),
                flags.contains(Ev::OUT),
                errs,
            );
            conns[i].sync_interest(ep, i);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            conns
                .iter_mut()
                .filter(|c| c.open)
                .for_each(|c| c.client.tick(errs));
        }
    }
}

/// Spread `clients` over `threads` workers and run `during` on this thread; then stop the
/// workers and collect their clients and errors.
pub fn with_workers<C: Client, R>(
    clients: Vec<(Ws, C)>,
    threads: usize,
    deadline: Instant,
    during: impl FnOnce() -> R,
) -> (Vec<C>, Errors, R) {
    let (stop, mut errs) = (AtomicBool::new(false), Errors::default());
    let mut groups: Vec<Vec<(Ws, C)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, client) in clients.into_iter().enumerate() {
        groups[i % threads].push(client);
    }
    let (all, result) = thread::scope(|s| {
        let stop = &stop;
        let workers: Vec<_> = groups
            .into_iter()
            .map(|g| s.spawn(move || drive(g, stop, deadline)))
            .collect();
        let result = during();
        stop.store(true, Relaxed);
        let mut all = Vec::new();
        for w in workers {
            match w.join() {
                Ok((clients, e)) => {
                    all.extend(clients);
                    errs.merge(e);
                }
                Err(_) => errs.add("worker thread panicked"),
            }
        }
        (all, result)
    });
    (all, errs, result)
}

#[cfg(test)]
mod tests {
    //! The connections against a few lines of server in a thread (127.0.0.1, one connection):
    //! its answer to the offer, its frames (some arriving with the 101 response), and what
    //! the client sends back.
    use super::*;
    use crate::args::parse_args;
    use crate::deflate::tests::frame;
    use crate::deflate::Deflater;
    use flate2::{Decompress, FlushDecompress};
    use std::net::TcpListener;

    fn squeeze(data: &[u8]) -> Vec<u8> {
        Deflater::new(15).compress(data).unwrap()
    }

    /// What the test server saw: the request (in lower case), and the client's frames.
    type Served = (String, Vec<(u8, Vec<u8>)>);

    /// One client frame: its first byte (FIN, RSV, opcode) and its payload, unmasked. Only
    /// masked frames of up to 125 bytes are expected.
    fn client_frame(sock: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 6];
        sock.read_exact(&mut head).ok()?;
        assert_eq!(head[1] & 0x80, 0x80, "client frames are masked");
        let len = (head[1] & 0x7f) as usize;
        assert!(len < 126);
        let mut payload = vec![0; len];
        sock.read_exact(&mut payload).ok()?;
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= head[2 + i % 4]);
        Some((head[0], payload))
    }

    /// A server on 127.0.0.1 for one connection: answers the upgrade with `extensions` (the
    /// `Sec-WebSocket-Extensions` value, if any), writes `first` with the response and `later`
    /// once the request was answered, then collects the client's frames until a text frame
    /// arrives, answers a close and returns the request (in lower case) and the frames.
    fn serve(
        extensions: Option<&'static str>,
        first: Vec<u8>,
        later: Vec<u8>,
    ) -> (String, thread::JoinHandle<Served>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        let server = thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8];
                sock.read_exact(&mut byte).unwrap();
                request.push(byte[0]);
            }
            let request = String::from_utf8(request).unwrap();
            let key = (request.lines())
                .find_map(|l| {
                    l.split_once(": ")
                        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-key"))
                })
                .unwrap()
                .1;
            let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
            let mut response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
            );
            if let Some(e) = extensions {
                response += &format!("Sec-WebSocket-Extensions: {e}\r\n");
            }
            let mut bytes = (response + "\r\n").into_bytes();
            bytes.extend(first);
            sock.write_all(&bytes).unwrap();
            thread::sleep(Duration::from_millis(50));
            sock.write_all(&later).unwrap();
            let mut got = Vec::new();
            while let Some((b0, payload)) = client_frame(&mut sock) {
                let text = b0 & 0x0f == 1;
                got.push((b0, payload));
                if text {
                    let _ = sock.write_all(&frame(true, false, 8, &[3, 232]));
                    break;
                }
            }
            (request.to_lowercase(), got)
        });
        (url, server)
    }

    fn opts(url: &str, flags: &[&str]) -> Opts {
        let mut args = vec!["fanout", "--url", url];
        args.extend(flags);
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn connect(o: &Opts) -> (Option<Ws>, Errors) {
        let mut errs = Errors::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        (connect_all(o, 1, 1, deadline, &mut errs).pop(), errs)
    }

    /// The next message, waiting for it up to 5 s.
    fn next(ws: &mut Ws) -> Message {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match ws.read() {
                Err(e) if would_block(&e) && Instant::now() < end => {
                    let mut fds = [PollFd::new(ws.get_ref(), PollFlags::IN)];
                    let _ = poll(&mut fds, Some(&timespec(Duration::from_millis(100))));
                }
                r => return r.unwrap(),
            }
        }
    }

    fn text(m: Message) -> String {
        match m {
            Message::Text(t) => t.to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn negotiated_inflates_answers_pings_and_compresses_what_it_sends() {
        let json = format!("[{}]", vec![r#"{"id":1,"name":"alpha"}"#; 40].join(","));
        let packed = squeeze(json.as_bytes());
        let (a, b) = packed.split_at(packed.len() / 2);
        // "first" and a ping come with the response, in the same write.
        let first = [
            frame(true, true, 1, &squeeze(b"first")),
            frame(true, false, 9, b"p"),
        ];
        let later = [
            frame(false, true, 1, a),
            frame(true, false, 0, b),
            frame(true, false, 1, b"plain"),
        ];
        let (first, later) = (first.concat(), later.concat());
        let sent = (first.len() + later.len()) as u64;
        let answer = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
        let (url, server) = serve(Some(answer), first, later);
        let o = opts(&url, &["--compression", "true", "--compress-sent", "true"]);
        let (ws, errs) = connect(&o);
        let mut ws = ws.unwrap_or_else(|| panic!("{:?}", errs.samples));
        assert!(ws.wire().deflate);
        assert_eq!(text(next(&mut ws)), "first");
        assert_eq!(next(&mut ws), Message::Ping(b"p"[..].into()));
        assert_eq!(text(next(&mut ws)), json);
        assert_eq!(text(next(&mut ws)), "plain");
        assert_eq!(ws.wire().bytes, sent); // every frame byte, nothing of the response
        let reply = r#"{"message":"from the client, from the client, from the client"}"#;
        ws.send_text(reply.to_owned()).unwrap();
        assert!(matches!(next(&mut ws), Message::Close(_)));
        let (request, got) = server.join().unwrap();
        let offer = format!("\r\nsec-websocket-extensions: {}\r\n", deflate::OFFER);
        assert!(request.contains(&offer), "{request}");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], (0x8a, b"p".to_vec())); // the pong: FIN, opcode 10
        assert_eq!(got[1].0, 0xc1); // FIN, RSV1, text
        let mut inflated = Vec::with_capacity(1024);
        let mut d = Decompress::new_with_window_bits(false, 15);
        let input = [&got[1].1[..], &[0, 0, 0xff, 0xff]].concat();
        d.decompress_vec(&input, &mut inflated, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(inflated, reply.as_bytes());
    }

    #[test]
    fn declined_or_not_offered_reads_through_tungstenite() {
        // A server without the extension answers the offer with nothing.
        for flags in [
            &["--compression", "true", "--compress-sent", "true"][..],
            &[],
        ] {
            let first = frame(true, false, 1, b"hello");
            let sent = first.len() as u64;
            let (url, server) = serve(None, first, Vec::new());
            let o = opts(&url, flags);
            let (ws, errs) = connect(&o);
            let mut ws = ws.unwrap_or_else(|| panic!("{:?}", errs.samples));
            assert!(!ws.wire().deflate);
            assert_eq!(text(next(&mut ws)), "hello");
            assert_eq!(ws.wire().bytes, sent);
            ws.send_text("plain text".into()).unwrap();
            assert!(matches!(next(&mut ws), Message::Close(_)));
            let (request, got) = server.join().unwrap();
            let offered = request.contains("sec-websocket-extensions");
            assert_eq!(offered, o.compression);
            assert_eq!(got, [(0x81, b"plain text".to_vec())]); // FIN, text, RSV1 clear
        }
    }

    #[test]
    fn an_answer_not_offered_fails_the_handshake() {
        let (url, server) = serve(Some("x-webkit-deflate-frame"), Vec::new(), Vec::new());
        let (ws, errs) = connect(&opts(&url, &["--compression", "true"]));
        assert!(ws.is_none());
        assert!(
            errs.samples[0].contains("not offered"),
            "{:?}",
            errs.samples
        );
        drop(server); // it sees the socket close
    }
}
