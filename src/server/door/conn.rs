//! One connection at the door, from accept until it goes live as a WebSocket or closes.
//!
//! It reads request heads and HTTP request bodies without blocking, hands complete requests
//! to the door (for the workers), sends replies as the peer takes them, and keeps the
//! connection for the next request (HTTP/1.1 keep-alive, one request at a time). Every phase
//! has a deadline, so a peer that stalls, resets or never reads costs nothing once it is gone.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::transport::{Input, Transport};
use crate::http::{HttpRequest, Reply, ReplyBody};
use crate::server::handshake::{
    parse_head, upgrade_required, Head, PlainRequest, Refusal, Request, Upgrade,
};
use crate::server::limits::Slot;

/// How long a refused or finished connection may still send before it is closed (so the
/// last answer is read rather than lost to a reset).
const LINGER: Duration = Duration::from_secs(1);
/// A reply's body is moved to the transport in pieces this big, when less than this waits.
const BODY_CHUNK: usize = 64 << 10;
/// The most a reply writes in one turn of the door's loop, so one fast reader cannot keep
/// the door from everyone else.
const TURN_BUDGET: usize = 1 << 20;

/// What the door's settings say to a connection.
pub(crate) struct Rules {
    pub(crate) max_request_head: usize,
    pub(crate) max_http_body: usize,
    /// For a request (head and body) to arrive whole, and for a reply to make progress.
    pub(crate) stall_timeout: Duration,
    /// How long a connection may wait for its next request; `None`: no keep-alive.
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    /// Whether the port takes WebSocket upgrades and serves HTTP.
    pub(crate) websocket: bool,
    pub(crate) http: bool,
}

/// What the door should do next with a connection.
pub(crate) enum Step {
    Keep,
    /// Close it now.
    Drop,
    /// A WebSocket upgrade whose head is the first `usize` bytes read.
    Upgrade(usize, Upgrade),
    /// A plain HTTP request's head is complete; it needs a counted place ([`Slot`]) before
    /// [`Conn::begin_request`] reads its body.
    Request(usize, PlainRequest),
    /// A complete request for the workers.
    Dispatch(HttpRequest),
}

enum Phase {
    /// Waiting for a request head: the first, or the next on a kept-alive connection.
    Head,
    /// Reading a body: the request is whole once the buffer holds `total` bytes.
    Body {
        head: PlainRequest,
        head_len: usize,
        total: usize,
        keep_alive: bool,
    },
    /// Complete, waiting for room with the workers.
    Queued(Box<HttpRequest>),
    /// A worker is answering it.
    Dispatched,
    /// Sending a reply; the transport holds what is ready, `body` the rest.
    Writing { body: BodyLeft, keep_alive: bool },
    /// Our side is done (a refusal, or the last reply): dropping what the peer still sends.
    Linger,
}

/// What remains of a reply's body.
enum BodyLeft {
    Bytes(Vec<u8>, usize),
    Static(&'static [u8]),
    File(File),
    Done,
}

impl BodyLeft {
    fn new(body: ReplyBody) -> BodyLeft {
        match body {
            ReplyBody::None => BodyLeft::Done,
            ReplyBody::Bytes(bytes) => BodyLeft::Bytes(bytes, 0),
            ReplyBody::Static(bytes) => BodyLeft::Static(bytes),
            ReplyBody::File(file) => BodyLeft::File(file),
        }
    }

    /// Moves up to `max` bytes to the transport. `Err` when the file cannot be read.
    fn fill(&mut self, transport: &mut Transport, max: usize) -> std::io::Result<()> {
        match self {
            BodyLeft::Bytes(bytes, taken) => {
                let end = bytes.len().min(*taken + max);
                transport.queue(&bytes[*taken..end]);
                *taken = end;
                if end == bytes.len() {
                    *self = BodyLeft::Done;
                }
            }
            BodyLeft::Static(bytes) => {
                let (now, rest) = bytes.split_at(bytes.len().min(max));
                transport.queue(now);
                *self = if rest.is_empty() {
                    BodyLeft::Done
                } else {
                    BodyLeft::Static(rest)
                };
            }
            BodyLeft::File(file) => {
                let mut chunk = vec![0u8; max];
                let n = file.read(&mut chunk)?;
                transport.queue(&chunk[..n]);
                if n == 0 {
                    // The file ended (or shrank since its length was sent): the reply is as
                    // long as it is; a shorter one ends the connection below.
                    *self = BodyLeft::Done;
                }
            }
            BodyLeft::Done => {}
        }
        Ok(())
    }

    fn is_done(&self) -> bool {
        matches!(self, BodyLeft::Done)
    }
}

/// A connection at the door.
pub(crate) struct Conn {
    pub(crate) transport: Transport,
    pub(crate) peer: SocketAddr,
    /// Bytes read and not yet used: the request so far (and any pipelined after it).
    buf: Vec<u8>,
    phase: Phase,
    deadline: Option<Instant>,
    pub(crate) accepted: Instant,
    /// Its place under the connection caps, once it is an HTTP connection.
    slot: Option<Slot>,
    /// Whether the current request's first byte has come (on a kept-alive connection its
    /// deadline starts then).
    started: bool,
    /// The peer finished sending: answer what is in, then close.
    finished: bool,
    /// When it was last between requests (for evicting idle kept-alive connections).
    idle_since: Instant,
    /// How long a reply may go without progress.
    stall_timeout: Duration,
}

impl Conn {
    pub(crate) fn new(transport: Transport, peer: SocketAddr, handshake_timeout: Duration) -> Conn {
        let now = Instant::now();
        Conn {
            transport,
            peer,
            buf: Vec::new(),
            phase: Phase::Head,
            deadline: Some(now + handshake_timeout),
            accepted: now,
            slot: None,
            started: true, // a new connection's deadline runs from the accept
            finished: false,
            idle_since: now,
            stall_timeout: handshake_timeout,
        }
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether it counts as a handshake in progress (not yet a counted connection).
    pub(crate) fn is_pending(&self) -> bool {
        self.slot.is_none()
    }

    pub(crate) fn has_slot(&self) -> bool {
        self.slot.is_some()
    }

    pub(crate) fn give_slot(&mut self, slot: Slot) {
        self.slot = Some(slot);
    }

    /// A kept-alive connection between requests: it may be closed to make room.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let idle = self.slot.is_some() && matches!(self.phase, Phase::Head) && self.buf.is_empty();
        idle.then_some(self.idle_since)
    }

    /// What to poll for.
    pub(crate) fn interest(&self) -> rustix::event::PollFlags {
        use rustix::event::PollFlags;
        // Never once the peer has finished: its end of stream would make every poll return.
        let reading = match self.phase {
            Phase::Head | Phase::Body { .. } | Phase::Linger => !self.finished,
            Phase::Queued(_) | Phase::Dispatched | Phase::Writing { .. } => false,
        };
        let writing = self.transport.backlog() > 0 || matches!(self.phase, Phase::Writing { .. });
        let mut flags = PollFlags::empty();
        if reading {
            flags |= PollFlags::IN;
        }
        if writing {
            flags |= PollFlags::OUT;
        }
        flags
    }

    /// The socket is readable (or writable with output waiting): reads and acts on it.
    pub(crate) fn on_ready(&mut self, rules: &Rules) -> Step {
        if let Phase::Writing { .. } = self.phase {
            return match self.write() {
                Step::Drop => Step::Drop,
                _ if self.transport.backlog() == 0 && self.is_writing_done() => {
                    self.after_write(rules)
                }
                _ => Step::Keep,
            };
        }
        // Whatever else waits: TLS handshake messages, a `100 Continue`, a refusal.
        if self.transport.backlog() > 0 && self.write_some().is_err() {
            return Step::Drop;
        }
        let limit = match &self.phase {
            Phase::Head => rules.max_request_head + 1,
            Phase::Body { total, .. } => *total,
            // Dropping what comes: read it in small amounts.
            Phase::Linger => self.buf.len() + 4096,
            Phase::Queued(_) | Phase::Dispatched | Phase::Writing { .. } => return Step::Keep,
        };
        match self.transport.receive(&mut self.buf, limit) {
            Input::Broken => return Step::Drop,
            Input::Finished => self.finished = true,
            Input::Open => {}
        }
        if let Phase::Linger = self.phase {
            self.buf.clear();
            return if self.finished {
                Step::Drop
            } else {
                Step::Keep
            };
        }
        self.advance(rules)
    }

    fn is_writing_done(&self) -> bool {
        matches!(&self.phase, Phase::Writing { body, .. } if body.is_done())
    }

    /// Acts on what the buffer holds (also right after a reply: a pipelined request may be
    /// in already).
    pub(crate) fn advance(&mut self, rules: &Rules) -> Step {
        match &self.phase {
            Phase::Head => self.on_head(rules),
            Phase::Body { total, .. } => {
                if self.buf.len() >= *total {
                    self.complete_request()
                } else if self.finished {
                    Step::Drop // the peer gave up halfway
                } else {
                    Step::Keep
                }
            }
            _ => Step::Keep,
        }
    }

    fn on_head(&mut self, rules: &Rules) -> Step {
        if self.buf.is_empty() {
            return if self.finished {
                Step::Drop
            } else {
                Step::Keep
            };
        }
        if !self.started {
            self.started = true;
            self.deadline = Some(Instant::now() + rules.stall_timeout);
        }
        let outcome = match parse_head(&self.buf, rules.allowed_origins.as_deref()) {
            Head::Complete { len, .. } if len > rules.max_request_head => {
                Err(Refusal::new(431, "request head too large"))
            }
            Head::Complete { len, outcome } => classify(len, outcome, rules),
            Head::Partial if self.buf.len() > rules.max_request_head => {
                Err(Refusal::new(431, "request head too large"))
            }
            Head::Partial if self.finished => return Step::Drop,
            Head::Partial => return Step::Keep,
        };
        match outcome {
            Ok(step) => step,
            Err(refusal) => self.refuse(&refusal),
        }
    }

    /// Starts reading the body of the request whose head is the first `head_len` bytes
    /// (the door has given the connection its place).
    pub(crate) fn begin_request(
        &mut self,
        head_len: usize,
        head: PlainRequest,
        rules: &Rules,
    ) -> Step {
        let length = match head.body_length() {
            Ok(length) => length,
            Err(refusal) => return self.refuse(&refusal),
        };
        let Some(length) = usize::try_from(length)
            .ok()
            .filter(|n| *n <= rules.max_http_body)
        else {
            return self.refuse(&Refusal::new(413, "request body too large"));
        };
        let total = head_len + length;
        if head.expects_continue() && self.buf.len() < total && head.minor_version == 1 {
            // curl and others wait for this before sending a body.
            self.transport.queue(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let keep_alive = rules.keep_alive.is_some() && head.wants_keep_alive() && !self.finished;
        self.phase = Phase::Body {
            head,
            head_len,
            total,
            keep_alive,
        };
        if self.transport.backlog() > 0 && self.write_some().is_err() {
            return Step::Drop;
        }
        self.advance(rules)
    }

    fn complete_request(&mut self) -> Step {
        let Phase::Body {
            head,
            head_len,
            total,
            keep_alive,
        } = std::mem::replace(&mut self.phase, Phase::Dispatched)
        else {
            return Step::Keep;
        };
        let body = self.buf[head_len..total].to_vec();
        self.buf.drain(..total);
        self.deadline = None;
        Step::Dispatch(HttpRequest {
            method: head.method,
            target: head.target,
            minor_version: head.minor_version,
            headers: head.headers,
            body,
            peer: self.peer,
            secure: self.transport.is_tls(),
            keep_alive: keep_alive && !self.finished,
        })
    }

    /// No worker can take the request now: it waits, for at most `timeout`.
    pub(crate) fn queue(&mut self, request: HttpRequest, timeout: Duration) {
        self.phase = Phase::Queued(Box::new(request));
        self.deadline = Some(Instant::now() + timeout);
    }

    /// A worker can take the request it queued.
    pub(crate) fn take_queued(&mut self) -> Option<HttpRequest> {
        match std::mem::replace(&mut self.phase, Phase::Dispatched) {
            Phase::Queued(request) => {
                self.deadline = None;
                Some(*request)
            }
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// A worker's reply: sends it, then keeps the connection for the next request or ends it.
    pub(crate) fn begin_reply(&mut self, reply: Reply, rules: &Rules) -> Step {
        if !matches!(self.phase, Phase::Dispatched) {
            return Step::Keep;
        }
        let Reply {
            head,
            body,
            keep_alive,
            ..
        } = reply;
        self.transport.queue(&head);
        self.phase = Phase::Writing {
            body: BodyLeft::new(body),
            keep_alive,
        };
        self.deadline = Some(Instant::now() + rules.stall_timeout);
        match self.write() {
            Step::Drop => Step::Drop,
            _ if self.transport.backlog() == 0 && self.is_writing_done() => self.after_write(rules),
            _ => Step::Keep,
        }
    }

    /// Writes as much of the reply as the socket takes now, within one turn's budget.
    fn write(&mut self) -> Step {
        let mut budget = TURN_BUDGET;
        loop {
            if let Phase::Writing { body, .. } = &mut self.phase {
                if !body.is_done() && self.transport.backlog() < BODY_CHUNK {
                    if let Err(e) = body.fill(&mut self.transport, BODY_CHUNK) {
                        log::warn!("cannot read a file being sent to {}: {e}", self.peer);
                        return Step::Drop;
                    }
                }
            }
            let before = self.transport.backlog();
            match self.write_some() {
                Err(()) => return Step::Drop,
                Ok(false) => return Step::Keep,
                Ok(true) => {}
            }
            budget = budget.saturating_sub(before.saturating_sub(self.transport.backlog()).max(1));
            let body_done = !matches!(&self.phase, Phase::Writing { body, .. } if !body.is_done());
            if self.transport.backlog() > 0 || body_done || budget == 0 {
                return Step::Keep;
            }
        }
    }

    /// Flushes the transport; `Ok(progress)`, `Err` when the connection broke.
    fn write_some(&mut self) -> Result<bool, ()> {
        match self.transport.flush() {
            Ok(true) => {
                if matches!(self.phase, Phase::Writing { .. }) {
                    self.deadline = Some(Instant::now() + self.stall_timeout);
                }
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(_) => Err(()),
        }
    }

    /// After a reply was written whole: the next request, or the end.
    fn after_write(&mut self, rules: &Rules) -> Step {
        let Phase::Writing { keep_alive, .. } = self.phase else {
            return Step::Keep;
        };
        match (keep_alive && !self.finished, rules.keep_alive) {
            (true, Some(idle)) => {
                let now = Instant::now();
                self.phase = Phase::Head;
                self.started = false;
                self.idle_since = now;
                self.deadline = Some(now + idle);
                self.advance(rules)
            }
            _ => self.linger(),
        }
    }

    /// Answers with a refusal (the connection closes after it).
    pub(crate) fn refuse(&mut self, refusal: &Refusal) -> Step {
        log::debug!(
            "refusing {}: {} {}",
            self.peer,
            refusal.status,
            refusal.reason
        );
        self.transport.queue(&refusal.response());
        self.linger()
    }

    fn linger(&mut self) -> Step {
        self.transport.finish();
        self.phase = Phase::Linger;
        self.buf = Vec::new();
        self.deadline = Some(Instant::now() + LINGER);
        if self.finished {
            Step::Drop
        } else {
            Step::Keep
        }
    }

    /// Its deadline has passed.
    pub(crate) fn expire(&mut self) -> Step {
        match &self.phase {
            // Nothing of a request yet, or the TLS handshake never finished: just close.
            Phase::Head if self.buf.is_empty() || self.transport.is_handshaking() => Step::Drop,
            Phase::Head | Phase::Body { .. } => {
                self.refuse(&Refusal::new(408, "request timed out"))
            }
            Phase::Queued(_) => self.refuse(&Refusal::new(503, "server busy, try again")),
            Phase::Dispatched => Step::Keep,
            // A reader that stopped reading, or the end of a linger.
            Phase::Writing { .. } | Phase::Linger => Step::Drop,
        }
    }

    /// The parts a WebSocket connection goes live with: socket, TLS session, and whatever
    /// was read after the head (frames the client sent at once).
    pub(crate) fn into_upgrade(mut self, head_len: usize) -> (Transport, Vec<u8>, Option<Slot>) {
        let leftover = self.buf.split_off(head_len.min(self.buf.len()));
        (self.transport, leftover, self.slot)
    }
}

/// What a complete head on this port leads to.
fn classify(head_len: usize, request: Request, rules: &Rules) -> Result<Step, Refusal> {
    match request {
        Request::Upgrade(upgrade) if rules.websocket => Ok(Step::Upgrade(head_len, upgrade)),
        Request::Upgrade(_) => Err(Refusal::new(
            400,
            "this endpoint does not accept websocket connections",
        )),
        Request::Http(plain) if rules.http => Ok(Step::Request(head_len, plain)),
        Request::Http(_) => Err(upgrade_required()),
        Request::Refuse(refusal) => Err(refusal),
    }
}
