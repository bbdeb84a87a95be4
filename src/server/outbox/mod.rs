//! A connection's write side: its socket and the frames it could not take yet.
//!
//! Every writer goes through here: the fan-out thread and the writer threads (signals), the
//! drain thread (what waited), and the connection's own thread (pongs that tungstenite
//! writes while reading). Writes are nonblocking per call (`MSG_DONTWAIT`), so the lock is
//! held only for nonblocking work and never across the reader's blocking `read`, which uses
//! the same socket without the lock.
//!
//! What a socket cannot take waits as the frames themselves, shared with every other
//! receiver of the same signal (a broadcast to a thousand slow clients is one copy, not a
//! thousand), with how much of the first one went out. On Wss, frames are encrypted only as
//! the socket takes them, one TLS record at a time, so the ciphertext waiting is one record
//! at most. The drain thread flushes what waits; a client with more than the limit waiting
//! is closed with 1008.
//!
//! Closing keeps each client's order: a close the client asked for (or earned by breaking
//! the protocol) is requested here by its reader ([`Outbox::request_close`]) and carried out
//! by the fan-out thread after every signal routed to it before ([`Outbox::close`]).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use rustix::net::{SendAncillaryBuffer, SendFlags};
use rustls::ServerConnection;

use crate::protocol::Frame;
use crate::server::drain::DrainHandle;

/// What became of frames handed to [`Outbox::send_frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// All written to the socket.
    Written,
    /// Some or all wait for the drain thread.
    Queued,
    /// Too much was waiting: the client is being closed with 1008.
    Overflowed,
    /// The connection is closing or closed; nothing was taken.
    Closed,
}

/// What the drain thread should do with an outbox it watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DrainInterest {
    /// Wait until the socket is writable (and, when closing, no later than the deadline).
    Writable(Option<Instant>),
    /// Nothing to write; the close handshake may finish until this deadline.
    Deadline(Instant),
    /// Nothing left to do: stop watching.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Handshake response queued, the connection is not live yet: everything waits.
    Paused,
    Open,
    /// Its reader asked for a close: what was routed to it before still goes out, then the
    /// fan-out thread closes it. Cut at the deadline if that never happens.
    CloseRequested {
        deadline: Instant,
        reader_done: bool,
    },
    /// A close frame is queued or sent; the socket is cut at the deadline, or as soon as
    /// nothing waits once the reader is done.
    Closing {
        deadline: Instant,
        reader_done: bool,
    },
    Closed,
}

/// The most slices one `sendmsg` takes (`IOV_MAX` is 1024).
const MAX_SLICES: usize = 256;
/// Plaintext encrypted at a time on Wss: one full TLS record.
const TLS_RECORD: usize = 16 << 10;
/// What a drained Wss buffer keeps: one full TLS record and its overhead.
const TLS_RECORD_ROOM: usize = TLS_RECORD + 512;

/// What waits in an outbox: a frame shared with its other receivers, or bytes of this
/// connection's own (its handshake response, tungstenite's pongs).
enum Chunk {
    Shared(Frame),
    Own(Vec<u8>),
}

impl Chunk {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Chunk::Shared(frame) => frame.as_bytes(),
            Chunk::Own(bytes) => bytes,
        }
    }

    fn len(&self) -> usize {
        self.as_bytes().len()
    }
}

struct Inner {
    /// What waits, oldest first.
    queue: VecDeque<Chunk>,
    /// Bytes of the first frame already sent (plain) or encrypted (Wss).
    front_done: usize,
    /// Bytes in `queue` not yet sent or encrypted.
    waiting: usize,
    /// Wss: TLS records not yet sent, and how much of them went out.
    records: Vec<u8>,
    records_sent: usize,
    state: State,
    /// Whether the drain thread holds this outbox.
    watched: bool,
    /// A Wss connection's TLS session.
    tls: Option<Box<ServerConnection>>,
}

impl Inner {
    /// Everything not yet on the wire.
    fn backlog(&self) -> usize {
        self.waiting + self.records.len() - self.records_sent
    }

    /// Queues bytes to send (nothing for none: the queue holds only bytes to go).
    fn push(&mut self, chunk: Chunk) {
        if chunk.len() > 0 {
            self.waiting += chunk.len();
            self.queue.push_back(chunk);
        }
    }

    /// Marks `n` bytes at the front of the queue as sent (or encrypted).
    fn consume(&mut self, mut n: usize) {
        self.waiting -= n;
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.len() - self.front_done;
            if n < left {
                self.front_done += n;
                return;
            }
            n -= left;
            self.queue.pop_front();
            self.front_done = 0;
        }
        if self.queue.is_empty() && self.queue.capacity() > 8 {
            self.queue = VecDeque::new(); // a burst's room goes back
        }
    }

    /// The waiting bytes as slices, at most `max_slices` of them and about `max_bytes`.
    fn slices(&self, max_slices: usize, max_bytes: usize) -> Vec<IoSlice<'_>> {
        let mut slices = Vec::with_capacity(self.queue.len().min(max_slices));
        let mut total = 0;
        for (i, frame) in self.queue.iter().take(max_slices).enumerate() {
            let start = if i == 0 { self.front_done } else { 0 };
            let bytes = &frame.as_bytes()[start..];
            let bytes = &bytes[..bytes.len().min(max_bytes - total)];
            total += bytes.len();
            slices.push(IoSlice::new(bytes));
            if total >= max_bytes {
                break;
            }
        }
        slices
    }

    /// Drops every waiting frame that has not started going out (a client being closed).
    fn drop_unstarted(&mut self) {
        let keep = usize::from(self.front_done > 0);
        while self.queue.len() > keep {
            if let Some(frame) = self.queue.pop_back() {
                self.waiting -= frame.len();
            }
        }
    }

    /// Paused, nothing sent: takes back the handshake response, and the signals routed to the
    /// client since (it may be registered before its thread could start). Those are shared
    /// frames; the response, and what the door could not send before it, are owned bytes.
    fn pop_greeting(&mut self) {
        if self.front_done == 0 && self.records.is_empty() {
            while matches!(self.queue.back(), Some(Chunk::Shared(_))) {
                if let Some(frame) = self.queue.pop_back() {
                    self.waiting -= frame.len();
                }
            }
            if let Some(chunk) = self.queue.pop_back() {
                self.waiting -= chunk.len();
            }
        }
    }

    fn clear(&mut self) {
        self.queue = VecDeque::new();
        self.front_done = 0;
        self.waiting = 0;
        self.records = Vec::new();
        self.records_sent = 0;
    }
}

/// The write side of one connection.
pub(crate) struct Outbox {
    /// Itself, to hand to the drain thread.
    me: Weak<Outbox>,
    socket: TcpStream,
    inner: Mutex<Inner>,
    /// When the peer was last heard from, in [`millis`].
    last_seen: AtomicU64,
    limit: usize,
    close_grace: Duration,
    drain: DrainHandle,
    /// permessage-deflate was agreed, with this window for what the server sends: signals go
    /// out compressed (each compressed once for every receiver with the same window).
    #[cfg_attr(not(feature = "compression"), allow(dead_code))]
    deflate: Option<u8>,
}

/// How an outbox works: the same for every connection of a server, but for `deflate`.
pub(crate) struct Terms {
    /// Bytes that may wait before the client counts as too slow.
    pub(crate) limit: usize,
    /// How long a close handshake may take.
    pub(crate) close_grace: Duration,
    /// Who flushes what waits.
    pub(crate) drain: DrainHandle,
    /// permessage-deflate's window for what the server sends, when it was agreed.
    pub(crate) deflate: Option<u8>,
}

impl Outbox {
    /// An outbox holding `unsent` (plaintext the door could not send yet) and `greeting`
    /// (the handshake response), paused until [`Outbox::open`] (or [`Outbox::refuse`]).
    pub(crate) fn new(
        socket: TcpStream,
        tls: Option<Box<ServerConnection>>,
        unsent: Vec<u8>,
        greeting: Vec<u8>,
        terms: Terms,
    ) -> Arc<Outbox> {
        let Terms {
            limit,
            close_grace,
            drain,
            deflate,
        } = terms;
        let mut inner = Inner {
            queue: VecDeque::new(),
            front_done: 0,
            waiting: 0,
            records: Vec::new(),
            records_sent: 0,
            state: State::Paused,
            watched: false,
            tls,
        };
        inner.push(Chunk::Own(unsent));
        inner.push(Chunk::Own(greeting));
        Arc::new_cyclic(|me| Outbox {
            me: me.clone(),
            socket,
            inner: Mutex::new(inner),
            last_seen: AtomicU64::new(millis()),
            limit,
            close_grace,
            drain,
            deflate,
        })
    }

    /// Whether this is a Wss connection.
    pub(crate) fn is_tls(&self) -> bool {
        self.lock().tls.is_some()
    }

    /// The socket, for the reader's blocking reads and the drain thread's poll.
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.socket
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the peer sent something.
    pub(crate) fn touch(&self) {
        self.last_seen.store(millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the peer last sent anything.
    pub(crate) fn idle_millis(&self) -> u64 {
        millis().saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// Makes the connection live: the handshake response and anything queued behind it go out.
    pub(crate) fn open(&self) {
        let mut inner = self.lock();
        if inner.state == State::Paused {
            inner.state = State::Open;
            self.flush_locked(&mut inner);
            if inner.queue.is_empty() {
                // The handshake's room goes back: most connections then wait, and a queue is
                // needed again only when a write cannot go out at once.
                inner.queue = VecDeque::new();
            }
        }
    }

    /// Writes whole frames, in order, without blocking; what the socket cannot take waits
    /// (shared, not copied). More than the limit waiting afterwards (unless it is a single
    /// frame) closes the client with 1008 instead.
    pub(crate) fn send_frames(&self, frames: &[&Frame]) -> Delivery {
        let mut inner = self.lock();
        match inner.state {
            State::Closing { .. } | State::Closed => return Delivery::Closed,
            State::Open if inner.backlog() == 0 && inner.tls.is_none() => {
                return self.write_now(&mut inner, frames)
            }
            State::Open | State::Paused | State::CloseRequested { .. } => {}
        }
        for frame in frames {
            inner.push(Chunk::Shared(Frame::clone(frame)));
        }
        if inner.state != State::Paused {
            self.flush_locked(&mut inner);
        }
        self.settle(&mut inner)
    }

    /// After frames were taken: whether they fit, and the delivery to report.
    fn settle(&self, inner: &mut Inner) -> Delivery {
        if matches!(inner.state, State::Closed) {
            return Delivery::Closed;
        }
        if inner.backlog() > self.limit && inner.queue.len() > 1 {
            self.overflow(inner);
            return Delivery::Overflowed;
        }
        if inner.backlog() == 0 {
            Delivery::Written
        } else {
            Delivery::Queued
        }
    }

    /// Plain Ws with nothing waiting: one `sendmsg` of the frames as they are.
    fn write_now(&self, inner: &mut Inner, frames: &[&Frame]) -> Delivery {
        let slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f.as_bytes())).collect();
        let mut written = match send_nonblocking(&self.socket, &slices) {
            Ok(n) => n,
            Err(_) => {
                self.cut(inner);
                return Delivery::Closed;
            }
        };
        for frame in frames {
            if written >= frame.len() {
                written -= frame.len();
                continue;
            }
            if inner.queue.is_empty() {
                inner.front_done = written;
            }
            inner.waiting += frame.len() - written;
            inner.queue.push_back(Chunk::Shared(Frame::clone(frame)));
            written = 0;
        }
        if inner.waiting > 0 {
            self.watch(inner);
        }
        self.settle(inner)
    }

    /// Wss: decrypts `raw` (what the reader read from the socket, without this lock) and
    /// appends the plaintext to `plain`. Returns whether the peer closed the TLS session. On
    /// a TLS error the alert is queued for the peer and the error returned.
    pub(crate) fn decrypt(&self, raw: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
        let mut inner = self.lock();
        let Some(tls) = inner.tls.as_mut() else {
            plain.extend_from_slice(raw);
            return Ok(false);
        };
        let result = crate::tls::decrypt(&mut **tls, raw, plain);
        let wants_write = tls.wants_write();
        if wants_write && inner.state != State::Paused {
            // Alerts, key updates, session tickets: whatever rustls has to say.
            self.flush_locked(&mut inner);
        }
        result
    }

    /// For bytes tungstenite writes on the reader's thread (pongs): whole frames, queued
    /// behind anything waiting. While closing they are dropped: our close frame is on its way
    /// (or the fan-out's, in order), and tungstenite's reply to the peer's close must not jump
    /// ahead of what was routed before it.
    pub(crate) fn write_control(&self, bytes: &[u8]) -> io::Result<()> {
        let mut inner = self.lock();
        match inner.state {
            State::CloseRequested { .. } | State::Closing { .. } => return Ok(()),
            State::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
            State::Open | State::Paused => {}
        }
        inner.push(Chunk::Own(bytes.to_vec()));
        if inner.state != State::Paused {
            self.flush_locked(&mut inner);
        }
        match self.settle(&mut inner) {
            Delivery::Overflowed => Err(io::ErrorKind::WriteZero.into()),
            _ => Ok(()),
        }
    }

    /// The reader asks for the close handshake to be finished (its peer sent a close, or
    /// broke the protocol): the fan-out thread then calls [`Outbox::close`] after whatever
    /// it routed to this client before. Until then frames are still taken.
    pub(crate) fn request_close(&self) {
        let mut inner = self.lock();
        if matches!(inner.state, State::Open | State::Paused) {
            inner.state = State::CloseRequested {
                deadline: Instant::now() + self.close_grace,
                reader_done: false,
            };
        }
    }

    /// Starts the close handshake with `code` (`None`: a close frame without a code, as an
    /// echo of one) behind whatever waits; the socket is cut if the handshake does not finish
    /// in time.
    pub(crate) fn close(&self, code: Option<u16>, reason: &str) {
        let mut inner = self.lock();
        if matches!(
            inner.state,
            State::Open | State::Paused | State::CloseRequested { .. }
        ) {
            self.begin_close(&mut inner, code, reason);
        }
    }

    fn overflow(&self, inner: &mut Inner) {
        log::debug!(
            "client at {:?} does not read fast enough: closing it (1008)",
            self.socket.peer_addr().ok()
        );
        inner.drop_unstarted();
        self.begin_close(inner, Some(1008), "queue full");
    }

    fn begin_close(&self, inner: &mut Inner, code: Option<u16>, reason: &str) {
        let live = inner.state != State::Paused;
        let reader_done = match inner.state {
            State::CloseRequested { reader_done, .. } => reader_done,
            _ => false,
        };
        inner.state = State::Closing {
            deadline: Instant::now() + self.close_grace,
            reader_done,
        };
        inner.push(Chunk::Shared(match code {
            Some(code) => Frame::close(code, reason),
            None => Frame::close_without_code(),
        }));
        if live {
            self.flush_locked(inner);
        }
        if inner.watched {
            // The drain thread may be asleep with no deadline: it has one now.
            self.drain.wake();
        } else {
            self.watch(inner);
        }
    }

    /// Whether the connection is closing (or closed), or about to be.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(
            self.lock().state,
            State::CloseRequested { .. } | State::Closing { .. } | State::Closed
        )
    }

    /// The reader has finished: cut the socket now, or once what waits (and the close the
    /// reader asked for) is written.
    pub(crate) fn reader_done(&self) {
        let mut inner = self.lock();
        match inner.state {
            State::Closed => {}
            State::CloseRequested { deadline, .. } => {
                inner.state = State::CloseRequested {
                    deadline,
                    reader_done: true,
                };
                self.watch(&mut inner);
            }
            State::Paused => self.cut(&mut inner),
            _ if inner.backlog() == 0 => self.cut(&mut inner),
            State::Closing { deadline, .. } => {
                inner.state = State::Closing {
                    deadline,
                    reader_done: true,
                };
                self.watch(&mut inner);
            }
            State::Open => {
                inner.state = State::Closing {
                    deadline: Instant::now() + self.close_grace,
                    reader_done: true,
                };
                self.watch(&mut inner);
            }
        }
    }

    /// Answers a connection that never went live (paused) with `response` instead, and cuts it.
    pub(crate) fn refuse(&self, response: &[u8]) {
        let mut inner = self.lock();
        if inner.state == State::Paused {
            inner.pop_greeting();
            inner.push(Chunk::Own(response.to_vec()));
            let _ = self.send_waiting(&mut inner);
        }
        self.cut(&mut inner);
    }

    /// Cuts the connection at once: the reader's blocking read returns.
    pub(crate) fn shutdown(&self) {
        self.cut(&mut self.lock());
    }

    fn cut(&self, inner: &mut Inner) {
        inner.state = State::Closed;
        inner.clear();
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    fn watch(&self, inner: &mut Inner) {
        if let (false, Some(me)) = (inner.watched, self.me.upgrade()) {
            inner.watched = true;
            self.drain.watch(me);
        }
    }

    fn flush_locked(&self, inner: &mut Inner) {
        if self.send_waiting(inner).is_err() {
            return self.cut(inner);
        }
        if inner.backlog() > 0 {
            self.watch(inner);
        } else if let State::Closing {
            reader_done: true, ..
        } = inner.state
        {
            self.cut(inner); // the close is out and the reader is gone
        }
    }

    /// Sends what waits, as far as the socket takes it.
    fn send_waiting(&self, inner: &mut Inner) -> io::Result<()> {
        if inner.tls.is_some() {
            return self.send_waiting_tls(inner);
        }
        while inner.waiting > 0 {
            let n = send_nonblocking(&self.socket, &inner.slices(MAX_SLICES, usize::MAX))?;
            if n == 0 {
                break;
            }
            inner.consume(n);
        }
        Ok(())
    }

    /// Wss: sends the records made so far, then encrypts the next record's worth, and so on
    /// until the socket would block.
    fn send_waiting_tls(&self, inner: &mut Inner) -> io::Result<()> {
        let Some(mut tls) = inner.tls.take() else {
            return Ok(());
        };
        let sent = self.send_records(inner, &mut tls);
        inner.tls = Some(tls);
        sent
    }

    fn send_records(&self, inner: &mut Inner, tls: &mut ServerConnection) -> io::Result<()> {
        loop {
            if inner.records_sent < inner.records.len() {
                let unsent = IoSlice::new(&inner.records[inner.records_sent..]);
                inner.records_sent += send_nonblocking(&self.socket, &[unsent])?;
                if inner.records_sent < inner.records.len() {
                    return Ok(()); // would block
                }
                inner.records_sent = 0;
                inner.records.clear();
                if inner.records.capacity() > TLS_RECORD_ROOM * 2 {
                    inner.records = Vec::with_capacity(TLS_RECORD_ROOM);
                }
            }
            if tls.wants_write() {
                // The record just made, or rustls' own messages (alerts, key updates).
                while tls.wants_write() {
                    if tls.write_tls(&mut inner.records)? == 0 {
                        break;
                    }
                }
                continue;
            }
            if inner.waiting == 0 || tls.is_handshaking() {
                return Ok(());
            }
            let taken = {
                let mut slices = inner.slices(MAX_SLICES, TLS_RECORD);
                let mut rest = &mut slices[..];
                let mut taken = 0;
                let mut writer = tls.writer();
                while !rest.is_empty() {
                    match std::io::Write::write_vectored(&mut writer, rest) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            taken += n;
                            IoSlice::advance_slices(&mut rest, n);
                        }
                    }
                }
                taken
            };
            if taken == 0 {
                // The session takes no more plaintext (it is closing): nothing more goes.
                inner.queue.clear();
                inner.front_done = 0;
                inner.waiting = 0;
                return Ok(());
            }
            inner.consume(taken);
        }
    }

    /// Drain thread: writes what waits, as far as the socket takes it.
    pub(crate) fn flush(&self) {
        let mut inner = self.lock();
        if inner.state != State::Paused {
            self.flush_locked(&mut inner);
        }
    }

    /// Drain thread: what to wait for next. Stops watching (and cuts a finished or overdue
    /// close) when nothing is left to do.
    pub(crate) fn drain_interest(&self, now: Instant) -> DrainInterest {
        let mut inner = self.lock();
        let waiting = inner.backlog() > 0;
        let interest = match inner.state {
            State::Closed => DrainInterest::Done,
            State::Closing { deadline, .. } | State::CloseRequested { deadline, .. }
                if now >= deadline =>
            {
                self.cut(&mut inner);
                DrainInterest::Done
            }
            State::Closing {
                reader_done: true, ..
            } if !waiting => {
                self.cut(&mut inner);
                DrainInterest::Done
            }
            State::Closing { deadline, .. } | State::CloseRequested { deadline, .. }
                if !waiting =>
            {
                DrainInterest::Deadline(deadline)
            }
            State::Closing { deadline, .. } | State::CloseRequested { deadline, .. } => {
                DrainInterest::Writable(Some(deadline))
            }
            State::Open if waiting => DrainInterest::Writable(None),
            // A paused outbox is flushed by `open`, which watches it again if needed.
            State::Open | State::Paused => DrainInterest::Done,
        };
        if interest == DrainInterest::Done {
            inner.watched = false;
        }
        interest
    }
}

/// A client as the fan-out thread sees it: where its frames go. The outbox is the real one;
/// the fan-out's tests use one in memory.
pub(crate) trait FrameSink: Send + Sync {
    /// Takes whole frames, in order (see [`Outbox::send_frames`]).
    fn send_frames(&self, frames: &[&Frame]) -> Delivery;
    /// Closes with `code` (none: an echo of a close without one) after what it took before.
    fn close(&self, code: Option<u16>, reason: &str);
    /// Cuts the connection at once.
    fn cut(&self);
    /// Milliseconds since the peer last sent anything.
    fn idle_millis(&self) -> u64;
}

impl FrameSink for Outbox {
    fn send_frames(&self, frames: &[&Frame]) -> Delivery {
        #[cfg(feature = "compression")]
        if let Some(window_bits) = self
            .deflate
            .filter(|_| frames.iter().any(|f| f.is_worth_deflating()))
        {
            // Compressed before the lock is taken, and once for every receiver alike.
            let deflated: Vec<Frame> = frames.iter().map(|f| f.deflated(window_bits)).collect();
            let deflated: Vec<&Frame> = deflated.iter().collect();
            return Outbox::send_frames(self, &deflated);
        }
        Outbox::send_frames(self, frames)
    }

    fn close(&self, code: Option<u16>, reason: &str) {
        Outbox::close(self, code, reason);
    }

    fn cut(&self) {
        self.shutdown();
    }

    fn idle_millis(&self) -> u64 {
        Outbox::idle_millis(self)
    }
}

/// A coarse monotonic clock, cheap to keep in an atomic: milliseconds since its first use in
/// this process.
fn millis() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// One nonblocking `sendmsg`; `WouldBlock` counts as zero bytes written.
fn send_nonblocking(socket: &TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    loop {
        match rustix::net::sendmsg(socket, slices, &mut SendAncillaryBuffer::default(), flags) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::AGAIN) => return Ok(0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
