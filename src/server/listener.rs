//! The listener thread of an endpoint: accepts connections and completes their handshakes.
//!
//! One thread per endpoint sleeps in `poll(2)` over the listening socket, every connection
//! still sending its request head, and a stop pipe. Reads during the handshake are
//! nonblocking, so a client that sends nothing (or one byte at a time) holds up nobody, and
//! each gets `handshake_timeout` in all. A complete upgrade gets its client id, its outbox
//! (holding the `101`), its registration with the fan-out thread, and its own thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustls::ServerConnection;

use crate::event::{ClientInfo, EndpointInfo};
use crate::metrics::Metrics;
use crate::server::connection::Connection;
use crate::server::fanout::{Command, Registration};
use crate::server::handshake::{
    parse_head, switching_protocols, upgrade_required, Head, PlainRequest, Refusal, Request,
    Upgrade,
};
use crate::server::http_door::HttpDoor;
use crate::server::limits::Full;
use crate::server::memory::shrink_if_sparse;
use crate::server::outbox::Outbox;
use crate::server::Shared;
use crate::ClientId;

/// How long a refused connection may still send before it is closed (so the refusal is read
/// rather than lost to a reset).
const LINGER: Duration = Duration::from_secs(1);
/// How long a handshake in progress may take before a newer one can take its place when
/// `max_pending_handshakes` is reached.
const EVICT_AFTER: Duration = Duration::from_secs(1);
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Wakes every listener thread at shutdown: a flag and a pipe they all poll.
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    read: OwnedFd,
    write: OwnedFd,
}

impl StopSignal {
    pub(crate) fn new() -> io::Result<StopSignal> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok(StopSignal {
            stopped: AtomicBool::new(false),
            read,
            write,
        })
    }

    /// Stops every listener; the byte is never read, so the pipe stays readable for all.
    pub(crate) fn stop(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            let _ = rustix::io::write(&self.write, &[1]);
        }
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

/// Binds a listening socket with a deep backlog (bursts of thousands of connects).
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 4096)?;
    let listener = TcpListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

enum Phase {
    /// Reading the request head.
    Head,
    /// Refused: reading and dropping until the peer closes or the deadline.
    Linger,
}

struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    /// On a Wss port: the TLS session, its handshake driven here, nonblocking.
    tls: Option<Box<ServerConnection>>,
    /// The request head so far (plaintext).
    buf: Vec<u8>,
    deadline: Instant,
    phase: Phase,
    accepted: Instant,
}

/// What a readable pending connection gave.
enum Received {
    /// This many bytes of plaintext, in the chunk.
    Data(usize),
    /// Nothing yet (a TLS handshake step, or a spurious wake-up).
    Nothing,
    /// The peer closed or broke the connection.
    Gone,
}

impl Pending {
    /// Reads what the peer sent; on TLS, drives the handshake and yields plaintext.
    fn receive(&mut self, chunk: &mut [u8]) -> Received {
        let Some(tls) = self.tls.as_mut() else {
            return match self.stream.read(chunk) {
                Ok(0) => Received::Gone,
                Ok(n) => Received::Data(n),
                Err(e) if is_transient(&e) => Received::Nothing,
                Err(_) => Received::Gone,
            };
        };
        match tls.read_tls(&mut self.stream) {
            Ok(0) => return Received::Gone,
            Ok(_) => {}
            Err(e) if is_transient(&e) => {}
            Err(_) => return Received::Gone,
        }
        let state = tls.process_new_packets();
        flush_tls(tls, &mut self.stream);
        match state {
            Err(e) => {
                log::debug!("tls handshake with {} failed: {e}", self.peer);
                Received::Gone
            }
            Ok(_) => match tls.reader().read(chunk) {
                Ok(0) => Received::Gone,
                Ok(n) => Received::Data(n),
                Err(_) => Received::Nothing,
            },
        }
    }

    /// Writes a short response (a refusal) as well as the socket takes it, encrypted on TLS.
    fn send(&mut self, bytes: &[u8]) {
        match self.tls.as_mut() {
            Some(tls) => {
                let _ = tls.writer().write_all(bytes);
                flush_tls(tls, &mut self.stream);
            }
            None => {
                let _ = self.stream.write(bytes);
            }
        }
    }

    /// What to wait for: readable, and writable while TLS has handshake bytes to send.
    fn interest(&self) -> PollFlags {
        match &self.tls {
            Some(tls) if tls.wants_write() => PollFlags::IN | PollFlags::OUT,
            _ => PollFlags::IN,
        }
    }
}

/// Sends what the TLS session has ready, without blocking (the rest waits for writability).
fn flush_tls(tls: &mut ServerConnection, stream: &mut TcpStream) {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Room for one more pending handshake.
enum Room {
    Free,
    /// Full, but the pending handshake at this index has had its time: it goes.
    Evict(usize),
    /// Full until this moment, when the oldest may go.
    Full(Instant),
}

/// What to do with a pending connection after it was readable.
enum Next {
    Keep,
    Drop,
    Upgrade(usize, Upgrade),
    /// Plain HTTP, for the HTTP side: the request and where its head ends.
    Http(usize, PlainRequest),
}

/// An endpoint's listener thread.
pub(crate) struct Listener {
    pub(crate) socket: TcpListener,
    pub(crate) endpoint: Arc<EndpointInfo>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stop: Arc<StopSignal>,
    /// Whether this port takes WebSocket upgrades (it has a `Ws` endpoint).
    websocket: bool,
    /// Where plain HTTP requests go, when this port has an `Http` endpoint.
    http: Option<Arc<HttpDoor>>,
    /// On a Wss port: the TLS configuration every connection starts with.
    tls: Option<Arc<rustls::ServerConfig>>,
    pending: Vec<Pending>,
    accept_paused_until: Option<Instant>,
}

impl Listener {
    pub(crate) fn new(
        socket: TcpListener,
        endpoint: Arc<EndpointInfo>,
        shared: Arc<Shared>,
        stop: Arc<StopSignal>,
    ) -> Listener {
        Listener {
            socket,
            endpoint,
            shared,
            stop,
            websocket: true,
            http: None,
            tls: None,
            pending: Vec::new(),
            accept_paused_until: None,
        }
    }

    /// Makes this a Wss port: every connection speaks TLS first.
    pub(crate) fn with_tls(mut self, config: Option<Arc<rustls::ServerConfig>>) -> Listener {
        self.tls = config;
        self
    }

    fn new_tls_session(&self) -> Result<Option<Box<ServerConnection>>, rustls::Error> {
        let Some(config) = &self.tls else {
            return Ok(None);
        };
        let mut session = ServerConnection::new(config.clone())?;
        // Our own queue limit applies to what waits for a slow client, not rustls' buffer.
        session.set_buffer_limit(None);
        Ok(Some(Box::new(session)))
    }

    /// Sets what the port serves: WebSocket upgrades, and plain HTTP through `http`.
    pub(crate) fn serving(mut self, websocket: bool, http: Option<Arc<HttpDoor>>) -> Listener {
        self.websocket = websocket;
        self.http = http;
        self
    }

    /// Runs until the stop signal.
    pub(crate) fn run(mut self) {
        while !self.stop.is_stopped() {
            let now = Instant::now();
            self.pending.retain(|p| p.deadline > now);
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
            }
            let (listener_ready, ready) = match self.wait(now) {
                Ok(ready) => ready,
                Err(e) => {
                    log::error!("listener {}: poll failed: {e}", self.endpoint.name);
                    std::thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            };
            // Highest index first, so swap_remove leaves the lower ones in place.
            for i in ready.into_iter().rev() {
                self.advance(i);
            }
            if listener_ready {
                self.accept_all();
            }
            shrink_if_sparse(&mut self.pending);
        }
    }

    /// Whether to take connections from the kernel's queue now.
    fn accepting(&self, now: Instant) -> bool {
        self.accept_paused_until.is_none() && !matches!(self.room(now), Room::Full(_))
    }

    /// Whether one more handshake fits. Handshakes in progress are bounded on their own
    /// (`max_pending_handshakes`), not counted against `max_connections`, which is for live
    /// connections. At the bound, the oldest makes room once it has had [`EVICT_AFTER`] to
    /// finish, so connections that never finish cannot keep newer clients out; until then
    /// new ones wait in the kernel's queue (a burst of real clients is not thrown away).
    fn room(&self, now: Instant) -> Room {
        if self.pending.len() < self.shared.config.max_pending_handshakes {
            return Room::Free;
        }
        let oldest = self
            .pending
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.accepted);
        match oldest {
            Some((i, p)) if now >= p.accepted + EVICT_AFTER => Room::Evict(i),
            Some((_, p)) => Room::Full(p.accepted + EVICT_AFTER),
            None => Room::Free,
        }
    }

    /// Sleeps until something is readable or a deadline passes. Returns whether the listening
    /// socket is ready and which pending connections are.
    fn wait(&self, now: Instant) -> io::Result<(bool, Vec<usize>)> {
        let accepting = self.accepting(now);
        let mut fds = Vec::with_capacity(self.pending.len() + 2);
        fds.push(PollFd::new(&self.stop.read, PollFlags::IN));
        fds.push(PollFd::new(
            &self.socket,
            if accepting {
                PollFlags::IN
            } else {
                PollFlags::empty()
            },
        ));
        fds.extend(
            self.pending
                .iter()
                .map(|p| PollFd::new(&p.stream, p.interest())),
        );
        let deadline = self
            .pending
            .iter()
            .map(|p| p.deadline)
            .chain(self.accept_paused_until)
            .chain(match self.room(now) {
                Room::Full(evictable_at) => Some(evictable_at),
                _ => None,
            })
            .min();
        let timeout = deadline
            .map(|d| Timespec::try_from(d.saturating_duration_since(now)).unwrap_or_default());
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok((false, Vec::new())),
            Err(e) => return Err(e.into()),
        }
        let listener_ready = accepting && !fds[1].revents().is_empty();
        let ready = fds[2..]
            .iter()
            .enumerate()
            .filter(|(_, fd)| !fd.revents().is_empty())
            .map(|(i, _)| i)
            .collect();
        Ok((listener_ready, ready))
    }

    fn accept_all(&mut self) {
        loop {
            match self.room(Instant::now()) {
                Room::Free => {}
                Room::Evict(i) => {
                    let oldest = self.pending.swap_remove(i);
                    log::debug!("dropping {}: too many pending handshakes", oldest.peer);
                }
                Room::Full(_) => return,
            }
            if self.accept_paused_until.is_some() {
                return;
            }
            match self.socket.accept() {
                Ok((stream, peer)) => {
                    if let Err(e) = stream
                        .set_nonblocking(true)
                        .and_then(|()| stream.set_nodelay(true))
                    {
                        log::debug!("dropping {peer}: {e}");
                        continue;
                    }
                    let deadline = Instant::now() + self.shared.config.handshake_timeout;
                    let tls = match self.new_tls_session() {
                        Ok(tls) => tls,
                        Err(e) => {
                            log::warn!("dropping {peer}: cannot start a tls session: {e}");
                            continue;
                        }
                    };
                    self.pending.push(Pending {
                        stream,
                        peer,
                        tls,
                        buf: Vec::new(),
                        deadline,
                        phase: Phase::Head,
                        accepted: Instant::now(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_out_of_files(&e) => {
                    log::warn!(
                        "listener {}: out of file descriptors; accepting again shortly",
                        self.endpoint.name
                    );
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => log::debug!("listener {}: accept failed: {e}", self.endpoint.name),
            }
        }
    }

    /// Reads what a pending connection sent and acts on it.
    fn advance(&mut self, i: usize) {
        let next = self.read_pending(i);
        match next {
            Next::Keep => {}
            Next::Drop => {
                self.pending.swap_remove(i);
            }
            Next::Http(head_len, request) => {
                let pending = self.pending.swap_remove(i);
                if let Some(door) = &self.http {
                    let body_start = &pending.buf[head_len..];
                    if let Err(e) = door.forward(pending.stream, pending.peer, &request, body_start)
                    {
                        log::warn!("cannot pass {} to the http side: {e}", pending.peer);
                    }
                }
            }
            Next::Upgrade(head_len, upgrade) => {
                let pending = self.pending.swap_remove(i);
                if let Err(refusal) = self.upgrade(pending, head_len, upgrade) {
                    self.pending.push(refusal);
                }
            }
        }
    }

    fn read_pending(&mut self, i: usize) -> Next {
        let max_head = self.shared.config.max_request_head;
        let origins = self.shared.config.allowed_origins.as_deref();
        let pending = &mut self.pending[i];
        let mut chunk = [0u8; 2048];
        let n = match pending.receive(&mut chunk) {
            Received::Data(n) => n,
            Received::Nothing => return Next::Keep,
            Received::Gone => return Next::Drop,
        };
        if let Phase::Linger = pending.phase {
            return Next::Keep;
        }
        pending.buf.extend_from_slice(&chunk[..n]);
        let received = pending.buf.len();
        let outcome = match parse_head(&pending.buf, origins) {
            Head::Complete { len, .. } if len > max_head => {
                Err(Refusal::new(431, "request head too large"))
            }
            Head::Complete { len, outcome } => self.classify(len, outcome),
            Head::Partial if received >= max_head => {
                Err(Refusal::new(431, "request head too large"))
            }
            Head::Partial => return Next::Keep,
        };
        match outcome {
            Ok(next) => next,
            Err(refusal) => {
                refuse(&mut self.pending[i], &refusal);
                Next::Keep
            }
        }
    }

    /// What to do with a complete request head on this port.
    fn classify(&self, head_len: usize, request: Request) -> Result<Next, Refusal> {
        match request {
            Request::Upgrade(upgrade) if self.websocket => Ok(Next::Upgrade(head_len, upgrade)),
            Request::Upgrade(_) => Err(Refusal::new(
                400,
                "this endpoint does not accept websocket connections",
            )),
            Request::Http(plain) if self.http.is_some() => {
                if plain.body_length()? > self.shared.config.max_http_body as u64 {
                    return Err(Refusal::new(413, "request body too large"));
                }
                Ok(Next::Http(head_len, plain))
            }
            Request::Http(_) => Err(upgrade_required()),
            Request::Refuse(refusal) => Err(refusal),
        }
    }

    /// Makes an upgraded connection live. Gives the connection back (as a refusal to linger
    /// on) when a cap is reached or its thread cannot start.
    fn upgrade(
        &self,
        mut pending: Pending,
        head_len: usize,
        upgrade: Upgrade,
    ) -> Result<(), Pending> {
        let shared = &self.shared;
        let config = &shared.config;
        let slot = match shared.connections.acquire(
            pending.peer.ip(),
            config.max_connections,
            config.max_connections_per_ip,
        ) {
            Ok(slot) => slot,
            Err(full) => {
                Metrics::add(&shared.metrics.connections_refused, 1);
                let reason = match full {
                    Full::Total => "server at connection capacity",
                    Full::PerIp => "too many connections from your address",
                };
                log::debug!("refusing {}: {reason}", pending.peer);
                refuse(&mut pending, &Refusal::new(503, reason));
                return Err(pending);
            }
        };
        let leftover = pending.buf.split_off(head_len);
        let Pending {
            stream, peer, tls, ..
        } = pending;
        if let Err(e) = stream.set_nonblocking(false) {
            log::debug!("dropping {peer}: {e}");
            return Ok(());
        }
        let id = ClientId::random();
        let path_key = upgrade.path.to_lowercase();
        let greeting = switching_protocols(&upgrade.accept, id);
        let outbox = Outbox::new(
            stream,
            tls,
            &greeting,
            config.max_queue_bytes,
            config.close_timeout,
            shared.drain.clone(),
        );
        let route = shared.routes.find(&path_key, &self.endpoint.name);
        let info = Arc::new(ClientInfo {
            id,
            path: upgrade.path,
            endpoint: self.endpoint.clone(),
            remote_addr: peer,
            headers: upgrade.headers,
            query: upgrade.query,
        });
        let registration = Registration {
            id,
            path: path_key,
            outbox: outbox.clone(),
        };
        if shared
            .commands
            .send(Command::Register(registration))
            .is_err()
        {
            return Ok(()); // shutting down
        }
        let thread = shared.connections.thread_started();
        let connection = Connection {
            info,
            outbox: outbox.clone(),
            leftover,
            route,
            shared: shared.clone(),
            slot,
            thread,
        };
        let spawned = std::thread::Builder::new()
            .name("sh-conn".into())
            .stack_size(config.connection_stack_size)
            .spawn(move || connection.run());
        match spawned {
            Ok(_) => {
                Metrics::add(&shared.metrics.connections_total, 1);
                outbox.open();
            }
            Err(e) => {
                // The closure (and with it the slot and thread guard) is dropped: places freed.
                log::warn!("refusing {peer}: cannot start a connection thread: {e}");
                Metrics::add(&shared.metrics.connections_refused, 1);
                let _ = shared.commands.send(Command::Unregister(id));
                outbox.refuse(&Refusal::new(503, "server cannot take more connections").response());
            }
        }
        Ok(())
    }
}

/// Sends a refusal and lingers until the peer closes (or a short deadline).
fn refuse(pending: &mut Pending, refusal: &Refusal) {
    pending.send(&refusal.response());
    let _ = pending.stream.shutdown(std::net::Shutdown::Write);
    pending.phase = Phase::Linger;
    pending.deadline = pending.deadline.min(Instant::now() + LINGER);
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error())
}
