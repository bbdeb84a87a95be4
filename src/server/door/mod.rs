//! The front door of a port: every connection, from accept until it goes live as a
//! WebSocket connection or closes, HTTP connections for their whole life.
//!
//! One thread per port sleeps in `poll(2)` over the listening socket, every connection at
//! the door, a stop pipe, and (on a port serving HTTP) a pipe the HTTP workers wake it with.
//! Nothing blocks here: a connection reads its request head (and, for HTTP, its whole
//! body), under a deadline, without holding up anyone else; complete HTTP requests go to
//! the workers, a bounded number at a time; their replies are written back as the client
//! takes them, files a piece at a time. TLS (Wss, Https) ends here too, so one address can
//! serve both. An upgrade goes live on a thread of its own ([`upgrade`]).
//!
//! Caps: a connection still sending its first request head is a handshake in progress,
//! bounded by `max_pending_handshakes`; an HTTP connection (from its first complete request
//! on) and a WebSocket connection count against `max_connections` and
//! `max_connections_per_ip`. At a cap, a kept-alive HTTP connection that is idle between
//! requests is closed to make room before anyone is refused.

mod conn;
mod transport;
mod upgrade;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustls::ServerConnection;

use crate::event::EndpointInfo;
use crate::http::{HttpRequest, Job, Reply, ReplyTo};
use crate::metrics::Counters;
use crate::server::handshake::Refusal;
use crate::server::limits::{Full, Slot};
use crate::server::Shared;
use crate::waker::Waker;
use conn::{Conn, Rules, Step};
use transport::Transport;

/// How long a handshake in progress may take before a newer one can take its place when
/// `max_pending_handshakes` is reached.
const EVICT_AFTER: Duration = Duration::from_secs(1);
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Requests one door has with the workers at once; more wait at the door, already read.
const MAX_IN_FLIGHT: usize = 64;

/// Wakes every door thread at shutdown: a flag and a waker they all poll.
pub(crate) struct StopSignal {
    stopped: AtomicBool,
    waker: Waker,
}

impl StopSignal {
    pub(crate) fn new() -> io::Result<StopSignal> {
        Ok(StopSignal {
            stopped: AtomicBool::new(false),
            waker: Waker::new()?,
        })
    }

    /// Stops every door; the waker is never drained, so it stays readable for all.
    pub(crate) fn stop(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            self.waker.wake();
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

/// A port's HTTP side at the door: where requests go and replies come back.
pub(crate) struct HttpPort {
    jobs: Sender<Job>,
    replies: Receiver<(u64, Reply)>,
    reply_sender: Sender<(u64, Reply)>,
    waker: Arc<Waker>,
    /// Requests with the workers now.
    in_flight: usize,
    /// Connections whose complete request waits for room with the workers, oldest first.
    queued: VecDeque<u64>,
}

impl HttpPort {
    /// The HTTP side of a port whose requests go to `jobs`.
    pub(crate) fn new(jobs: Sender<Job>) -> io::Result<HttpPort> {
        let (reply_sender, replies) = crossbeam_channel::unbounded();
        Ok(HttpPort {
            jobs,
            replies,
            reply_sender,
            waker: Arc::new(Waker::new()?),
            in_flight: 0,
            queued: VecDeque::new(),
        })
    }
}

/// A port's door and its thread's state.
pub(crate) struct Door {
    socket: TcpListener,
    /// The endpoint that names this port in logs (its WebSocket one, else its HTTP one).
    endpoint: Arc<EndpointInfo>,
    /// The `Ws`/`Wss` endpoint on this port, if it takes upgrades.
    websocket: Option<Arc<EndpointInfo>>,
    http: Option<HttpPort>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    stop: Arc<StopSignal>,
    rules: Rules,
    /// The WebSocket subprotocols spoken here, most preferred first.
    subprotocols: Vec<String>,
    conns: HashMap<u64, Conn>,
    next_key: u64,
    accept_paused_until: Option<Instant>,
}

impl Door {
    pub(crate) fn new(
        socket: TcpListener,
        endpoint: Arc<EndpointInfo>,
        shared: Arc<Shared>,
        stop: Arc<StopSignal>,
    ) -> Door {
        let config = &shared.config;
        let rules = Rules {
            max_request_head: config.max_request_head,
            max_http_body: config.max_http_body,
            stall_timeout: config.handshake_timeout,
            keep_alive: config.http_keep_alive,
            allowed_origins: config.allowed_origins.clone(),
            websocket: false,
            http: false,
        };
        Door {
            socket,
            endpoint,
            websocket: None,
            http: None,
            tls: None,
            rules,
            subprotocols: Vec::new(),
            shared,
            stop,
            conns: HashMap::new(),
            next_key: 0,
            accept_paused_until: None,
        }
    }

    /// Sets what the port serves: WebSocket upgrades for `websocket`, HTTP through `http`,
    /// over TLS with `tls`.
    pub(crate) fn serving(
        mut self,
        websocket: Option<Arc<EndpointInfo>>,
        http: Option<HttpPort>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Door {
        self.rules.websocket = websocket.is_some();
        self.rules.http = http.is_some();
        self.websocket = websocket;
        self.http = http;
        self.tls = tls;
        self
    }

    /// Sets the WebSocket subprotocols spoken here, most preferred first.
    pub(crate) fn speaking(mut self, subprotocols: Vec<String>) -> Door {
        self.subprotocols = subprotocols;
        self
    }

    /// Runs until the stop signal.
    pub(crate) fn run(mut self) {
        let mut ready = Vec::new();
        while !self.stop.is_stopped() {
            let now = Instant::now();
            self.expire(now);
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
            }
            let listener_ready = match self.wait(now, &mut ready) {
                Ok(listener_ready) => listener_ready,
                Err(e) => {
                    log::error!("door {}: poll failed: {e}", self.endpoint.name);
                    std::thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            };
            self.take_replies();
            for (key, gone) in ready.drain(..) {
                self.on_ready(key, gone);
            }
            if listener_ready {
                self.accept_all();
            }
            if crate::server::memory::is_sparse(self.conns.len(), self.conns.capacity()) {
                self.conns.shrink_to((self.conns.len() * 2).max(16));
            }
        }
    }

    /// Acts on every deadline that has passed.
    fn expire(&mut self, now: Instant) {
        let due: Vec<u64> = (self.conns.iter())
            .filter(|(_, c)| c.deadline().is_some_and(|d| d <= now))
            .map(|(key, _)| *key)
            .collect();
        for key in due {
            if let Some(conn) = self.conns.get_mut(&key) {
                let step = conn.expire();
                self.act(key, step);
            }
        }
    }

    /// Whether to take connections from the kernel's queue now.
    fn accepting(&self, now: Instant) -> bool {
        self.accept_paused_until.is_none() && !matches!(self.room(now), Room::Full(_))
    }

    /// Whether one more handshake fits. Handshakes in progress are bounded on their own
    /// (`max_pending_handshakes`), not counted against `max_connections`, which is for
    /// connections in use. At the bound, the oldest makes room once it has had
    /// [`EVICT_AFTER`] to finish, so connections that never finish cannot keep newer
    /// clients out; until then new ones wait in the kernel's queue (a burst of real clients
    /// is not thrown away).
    fn room(&self, now: Instant) -> Room {
        let mut pending = 0;
        let mut oldest: Option<(u64, Instant)> = None;
        for (key, conn) in &self.conns {
            if conn.is_pending() {
                pending += 1;
                if oldest.is_none_or(|(_, at)| conn.accepted < at) {
                    oldest = Some((*key, conn.accepted));
                }
            }
        }
        if pending < self.shared.config.max_pending_handshakes {
            return Room::Free;
        }
        match oldest {
            Some((key, at)) if now >= at + EVICT_AFTER => Room::Evict(key),
            Some((_, at)) => Room::Full(at + EVICT_AFTER),
            None => Room::Free,
        }
    }

    /// Sleeps until something is ready or a deadline passes. Fills `ready` with the keys of
    /// the connections that are (and whether each is gone: hung up or reset); returns
    /// whether the listening socket is ready.
    fn wait(&mut self, now: Instant, ready: &mut Vec<(u64, bool)>) -> io::Result<bool> {
        let accepting = self.accepting(now);
        let mut keys = Vec::with_capacity(self.conns.len());
        let mut fds = Vec::with_capacity(self.conns.len() + 3);
        fds.push(PollFd::new(&self.stop.waker, PollFlags::IN));
        let listen_flags = if accepting {
            PollFlags::IN
        } else {
            PollFlags::empty()
        };
        fds.push(PollFd::new(&self.socket, listen_flags));
        if let Some(http) = &self.http {
            fds.push(PollFd::new(&*http.waker, PollFlags::IN));
        }
        let first_conn = fds.len();
        let mut deadline = self.accept_paused_until;
        if let Room::Full(evictable_at) = self.room(now) {
            deadline = Some(deadline.map_or(evictable_at, |d| d.min(evictable_at)));
        }
        for (key, conn) in &self.conns {
            keys.push(*key);
            fds.push(PollFd::new(conn.transport.stream(), conn.interest()));
            if let Some(at) = conn.deadline() {
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
        }
        let timeout = deadline
            .map(|d| Timespec::try_from(d.saturating_duration_since(now)).unwrap_or_default());
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        let listener_ready = accepting && !fds[1].revents().is_empty();
        if let Some(http) = &self.http {
            if !fds[2].revents().is_empty() {
                http.waker.drain();
            }
        }
        let gone = PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
        ready.extend(
            (fds[first_conn..].iter().zip(keys))
                .filter(|(fd, _)| !fd.revents().is_empty())
                .map(|(fd, key)| (key, fd.revents().intersects(gone))),
        );
        Ok(listener_ready)
    }

    fn accept_all(&mut self) {
        loop {
            let evict = match self.room(Instant::now()) {
                Room::Free => None,
                Room::Evict(key) => Some(key),
                Room::Full(_) => return,
            };
            if self.accept_paused_until.is_some() {
                return;
            }
            match self.socket.accept() {
                Ok((stream, peer)) => {
                    // The oldest makes room only for a connection that is really there.
                    if let Some(oldest) = evict.and_then(|key| self.conns.remove(&key)) {
                        log::debug!("dropping {}: too many pending handshakes", oldest.peer);
                    }
                    self.admit(stream, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if is_out_of_files(&e) => {
                    log::warn!(
                        "door {}: out of file descriptors; accepting again shortly",
                        self.endpoint.name
                    );
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                Err(e) => log::debug!("door {}: accept failed: {e}", self.endpoint.name),
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(e) = stream
            .set_nonblocking(true)
            .and_then(|()| stream.set_nodelay(true))
        {
            log::debug!("dropping {peer}: {e}");
            return;
        }
        let tls = match self.new_tls_session() {
            Ok(tls) => tls,
            Err(e) => {
                log::warn!("dropping {peer}: cannot start a tls session: {e}");
                return;
            }
        };
        let conn = Conn::new(
            Transport::new(stream, tls),
            peer,
            self.shared.config.handshake_timeout,
        );
        let key = self.next_key;
        self.next_key += 1;
        self.conns.insert(key, conn);
    }

    fn new_tls_session(&self) -> Result<Option<Box<ServerConnection>>, rustls::Error> {
        let Some(config) = &self.tls else {
            return Ok(None);
        };
        let mut session = ServerConnection::new(config.clone())?;
        // What waits is bounded by the door (and, once live, by the outbox's queue limit).
        session.set_buffer_limit(None);
        Ok(Some(Box::new(session)))
    }

    fn on_ready(&mut self, key: u64, gone: bool) {
        if gone {
            // Reset or hung up: nothing more can be read or written. Dropping it here is what
            // keeps a dead socket out of the next poll (which would return at once, forever).
            self.conns.remove(&key);
            return;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        let step = conn.on_ready(&self.rules);
        self.act(key, step);
    }

    /// Carries out what a connection asked for.
    fn act(&mut self, key: u64, step: Step) {
        match step {
            Step::Keep => {}
            Step::Drop => {
                self.conns.remove(&key);
            }
            Step::Upgrade(head_len, upgrade) => self.upgrade(key, head_len, upgrade),
            Step::Request(head_len, head) => {
                let next = match self.place_for(key) {
                    Ok(()) => match self.conns.get_mut(&key) {
                        Some(conn) => conn.begin_request(head_len, head, &self.rules),
                        None => Step::Keep,
                    },
                    Err(refusal) => match self.conns.get_mut(&key) {
                        Some(conn) => conn.refuse(&refusal),
                        None => Step::Keep,
                    },
                };
                self.act(key, next);
            }
            Step::Dispatch(request) => self.dispatch(key, request),
        }
    }

    /// Makes sure the connection has its place under the caps, making room or refusing.
    fn place_for(&mut self, key: u64) -> Result<(), Refusal> {
        let Some(conn) = self.conns.get(&key) else {
            return Ok(());
        };
        if conn.has_slot() {
            return Ok(());
        }
        let slot = self.acquire(conn.peer.ip())?;
        if let Some(conn) = self.conns.get_mut(&key) {
            conn.give_slot(slot);
        }
        Ok(())
    }

    /// A place under the caps for a connection from `ip`. At a cap, the kept-alive HTTP
    /// connection idle the longest (from the same address, at the per-address cap) is closed
    /// to make room; with none to close, a `503` refusal.
    fn acquire(&mut self, ip: IpAddr) -> Result<Slot, Refusal> {
        let config = &self.shared.config;
        let (total, per_ip) = (config.max_connections, config.max_connections_per_ip);
        let connections = self.shared.connections.clone();
        let full = match connections.acquire(ip, total, per_ip) {
            Ok(slot) => return Ok(slot),
            Err(full) => full,
        };
        let idle = (self.conns.iter())
            .filter(|(_, c)| full == Full::Total || c.peer.ip() == ip)
            .filter_map(|(key, c)| c.idle_since().map(|since| (since, *key)))
            .min();
        if let Some((_, victim)) = idle {
            self.conns.remove(&victim);
            if let Ok(slot) = connections.acquire(ip, total, per_ip) {
                return Ok(slot);
            }
        }
        Counters::add(&self.shared.metrics.connections_refused, 1);
        Err(Refusal::new(
            503,
            match full {
                Full::Total => "server at connection capacity",
                Full::PerIp => "too many connections from your address",
            },
        ))
    }

    fn upgrade(&mut self, key: u64, head_len: usize, upgrade: crate::server::handshake::Upgrade) {
        let Some(websocket) = self.websocket.clone() else {
            return;
        };
        if let Err(refusal) = self.place_for(key) {
            if let Some(conn) = self.conns.get_mut(&key) {
                let step = conn.refuse(&refusal);
                self.act(key, step);
            }
            return;
        }
        let Some(conn) = self.conns.remove(&key) else {
            return;
        };
        let (transport, leftover, slot) = conn.into_upgrade(head_len);
        if let Some(slot) = slot {
            let protocol = upgrade.choose_protocol(&self.subprotocols);
            upgrade::go_live(
                &self.shared,
                &websocket,
                protocol,
                transport,
                leftover,
                upgrade,
                slot,
                std::time::Instant::now() + self.shared.config.handshake_timeout,
            );
        }
    }

    /// Hands a complete request to the workers, or queues it when enough are with them.
    fn dispatch(&mut self, key: u64, request: HttpRequest) {
        let timeout = self.shared.config.handshake_timeout;
        let Some(http) = self.http.as_mut() else {
            return;
        };
        if http.in_flight >= MAX_IN_FLIGHT {
            if let Some(conn) = self.conns.get_mut(&key) {
                conn.queue(request, timeout);
                http.queued.push_back(key);
            }
            return;
        }
        let job = Job {
            request,
            reply_to: ReplyTo {
                replies: http.reply_sender.clone(),
                key,
                waker: http.waker.clone(),
            },
        };
        if http.jobs.send(job).is_ok() {
            http.in_flight += 1;
        } else {
            // The workers are gone: the server is stopping.
            self.conns.remove(&key);
        }
    }

    /// Sends the replies the workers have finished, and passes queued requests on.
    fn take_replies(&mut self) {
        let Some(http) = self.http.as_mut() else {
            return;
        };
        let replies: Vec<(u64, Reply)> = http.replies.try_iter().collect();
        http.in_flight -= replies.len().min(http.in_flight);
        let mut steps = Vec::with_capacity(replies.len());
        for (key, reply) in replies {
            if let Some(conn) = self.conns.get_mut(&key) {
                steps.push((key, conn.begin_reply(reply, &self.rules)));
            }
        }
        for (key, step) in steps {
            self.act(key, step);
        }
        while let Some(http) = self.http.as_mut() {
            if http.in_flight >= MAX_IN_FLIGHT {
                break;
            }
            let Some(key) = http.queued.pop_front() else {
                break;
            };
            let request = self.conns.get_mut(&key).and_then(Conn::take_queued);
            if let Some(request) = request {
                self.dispatch(key, request);
            }
        }
    }
}

/// Room for one more pending handshake.
enum Room {
    Free,
    /// Full, but the pending handshake with this key has had its time: it goes.
    Evict(u64),
    /// Full until this moment, when the oldest may go.
    Full(Instant),
}

fn is_out_of_files(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error())
}
