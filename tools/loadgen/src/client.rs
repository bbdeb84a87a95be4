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
use tungstenite::client::client_with_config;
use tungstenite::handshake::client::{ClientHandshake, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::{protocol::WebSocketConfig, Message, WebSocket};

use crate::args::Opts;
use crate::report::Errors;
use crate::tls::TlsStream;

pub type Ws = WebSocket<Stream>;
pub type Handshake = MidHandshake<ClientHandshake<Stream>>;
type HandshakeResult = Result<(Ws, Response), HandshakeError<ClientHandshake<Stream>>>;
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
/// either way: reads and writes return `WouldBlock` when the socket does.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// TLS bytes waiting for the socket (a write that would block, or what the handshake or
    /// a read produced): flush once the socket is writable.
    fn wants_write(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.tls.wants_write())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Plain(s) => s.as_fd(),
            Stream::Tls(t) => t.sock.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
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
    let stream = match &o.tls {
        None => Stream::Plain(sock),
        Some(t) => {
            let tls = ClientConnection::new(t.config.clone(), t.name.clone());
            let tls = tls.map_err(|e| format!("tls: {e}"))?;
            Stream::Tls(Box::new(TlsStream { tls, sock }))
        }
    };
    let data = epoll::EventData::new_u64(slot as u64);
    epoll::add(ep, &stream, data, Ev::IN | Ev::OUT | Ev::ET).map_err(|e| format!("epoll: {e}"))?;
    let cfg = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    Ok(client_with_config(to.0.as_str(), stream, Some(cfg)))
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
fn settle(r: HandshakeResult, born: Instant, open: &mut Vec<Ws>, errs: &mut Errors) -> Pending {
    match r {
        Ok((ws, _)) => open.push(ws),
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
                    Ok(r) => *entry = settle(r, Instant::now(), &mut open, errs),
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
                slots[slot] = settle(hs.handshake(), born, &mut open, errs);
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
        let r = self.ws.send(Message::text(text));
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
        let _ = c.ws.close(None); // best effort: queue a close frame, never block
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
