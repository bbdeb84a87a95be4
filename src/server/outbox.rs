//! A connection's write side: its socket and the bytes it could not take yet.
//!
//! Every writer goes through here: the fan-out thread (signals), the drain thread (what
//! waited), and the connection's own thread (pongs and close replies that tungstenite writes
//! while reading). Writes are nonblocking per call (`MSG_DONTWAIT`), so the lock is held only
//! for nonblocking work and never across the reader's blocking `read`, which uses the same
//! socket without the lock. Whatever a socket cannot take waits in a bounded buffer that the
//! drain thread flushes; a client whose buffer is full is closed with 1008.

use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rustix::net::{SendAncillaryBuffer, SendFlags};
use rustls::ServerConnection;

use crate::server::clock;
use crate::server::drain::DrainHandle;
use crate::signal::Frame;

/// What became of frames handed to [`Outbox::send_frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// All written to the socket.
    Written,
    /// Some or all wait in the buffer for the drain thread.
    Queued,
    /// The buffer was full: the client is being closed with 1008.
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
    /// A close frame is queued or sent; the socket is cut at the deadline, or as soon as the
    /// buffer is empty once the reader is done.
    Closing {
        deadline: Instant,
        reader_done: bool,
    },
    Closed,
}

struct Inner {
    pending: Vec<u8>,
    /// Bytes at the front of `pending` already written.
    sent: usize,
    state: State,
    /// Whether the drain thread holds this outbox.
    watched: bool,
    /// A Wss connection's TLS session: frames are encrypted into `pending`.
    tls: Option<Box<ServerConnection>>,
}

impl Inner {
    fn waiting(&self) -> usize {
        self.pending.len() - self.sent
    }

    fn push(&mut self, bytes: &[u8]) {
        self.compact();
        self.pending.extend_from_slice(bytes);
    }

    fn compact(&mut self) {
        if self.sent > 0 && self.sent * 2 >= self.pending.len() {
            self.pending.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Queues whole frames behind what waits: as they are, or encrypted on a TLS connection.
    fn queue(&mut self, frames: &[IoSlice<'_>]) {
        match self.tls.take() {
            None => frames.iter().for_each(|f| self.push(f)),
            Some(mut tls) => {
                self.compact();
                encrypt(&mut tls, frames, &mut self.pending);
                self.tls = Some(tls);
            }
        }
    }

    fn consumed(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.pending.len() {
            self.sent = 0;
            // Give back what a backlog took: plain Ws only buffers what a socket could not
            // take, so an idle connection holds no buffer; Wss encrypts every write here, so
            // it keeps room for one TLS record.
            let keep = if self.tls.is_some() {
                TLS_RECORD_ROOM
            } else {
                0
            };
            if self.pending.capacity() > keep {
                self.pending = Vec::new();
            } else {
                self.pending.clear();
            }
        }
    }
}

/// What a drained Wss buffer keeps: one full TLS record (16 KiB of plaintext) and its overhead.
const TLS_RECORD_ROOM: usize = (16 << 10) + 512;

/// The write side of one connection.
pub(crate) struct Outbox {
    socket: TcpStream,
    inner: Mutex<Inner>,
    /// When the peer was last heard from, in [`clock::millis`].
    last_seen: AtomicU64,
    limit: usize,
    close_grace: std::time::Duration,
    drain: DrainHandle,
}

impl Outbox {
    /// An outbox holding `greeting` (the handshake response), paused until [`Outbox::open`].
    pub(crate) fn new(
        socket: TcpStream,
        tls: Option<Box<ServerConnection>>,
        greeting: &[u8],
        limit: usize,
        close_grace: std::time::Duration,
        drain: DrainHandle,
    ) -> Arc<Outbox> {
        let mut inner = Inner {
            pending: Vec::new(),
            sent: 0,
            state: State::Paused,
            watched: false,
            tls,
        };
        inner.queue(&[IoSlice::new(greeting)]);
        Arc::new(Outbox {
            socket,
            inner: Mutex::new(inner),
            last_seen: AtomicU64::new(clock::millis()),
            limit,
            close_grace,
            drain,
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
        self.last_seen.store(clock::millis(), Ordering::Relaxed);
    }

    /// Milliseconds since the peer last sent anything.
    pub(crate) fn idle_millis(&self) -> u64 {
        clock::millis().saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// Makes the connection live: the handshake response and anything queued behind it go out.
    pub(crate) fn open(self: &Arc<Self>) {
        let mut inner = self.lock();
        if inner.state == State::Paused {
            inner.state = State::Open;
            self.flush_locked(&mut inner);
        }
    }

    /// Writes whole frames, in order, without blocking.
    pub(crate) fn send_frames(self: &Arc<Self>, frames: &[IoSlice<'_>]) -> Delivery {
        let mut inner = self.lock();
        match inner.state {
            State::Closing { .. } | State::Closed => return Delivery::Closed,
            State::Open if inner.waiting() == 0 && inner.tls.is_none() => {
                return self.write_now(&mut inner, frames)
            }
            State::Open | State::Paused => {}
        }
        if inner.waiting() >= self.limit {
            self.overflow(&mut inner);
            return Delivery::Overflowed;
        }
        inner.queue(frames);
        if inner.state == State::Open {
            self.flush_locked(&mut inner);
            if inner.waiting() == 0 {
                return Delivery::Written;
            }
        }
        Delivery::Queued
    }

    /// Wss: decrypts `raw` (what the reader read from the socket, without this lock) and
    /// appends the plaintext to `plain`. Returns whether the peer closed the TLS session. On
    /// a TLS error the alert is queued for the peer and the error returned.
    pub(crate) fn decrypt(self: &Arc<Self>, raw: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
        let mut inner = self.lock();
        let Some(mut tls) = inner.tls.take() else {
            plain.extend_from_slice(raw);
            return Ok(false);
        };
        let result = crate::tls::decrypt(&mut *tls, raw, plain);
        if tls.wants_write() {
            // Alerts, key updates, session tickets: whatever rustls has to say.
            inner.compact();
            let _ = tls.write_tls(&mut inner.pending);
        }
        inner.tls = Some(tls);
        if inner.state != State::Paused {
            self.flush_locked(&mut inner);
        }
        result
    }

    fn write_now(self: &Arc<Self>, inner: &mut Inner, frames: &[IoSlice<'_>]) -> Delivery {
        let total: usize = frames.iter().map(|f| f.len()).sum();
        let written = match send_nonblocking(&self.socket, frames) {
            Ok(n) => n,
            Err(_) => {
                self.cut(inner);
                return Delivery::Closed;
            }
        };
        if written == total {
            return Delivery::Written;
        }
        let mut skip = written;
        for frame in frames {
            let start = skip.min(frame.len());
            skip -= start;
            inner.push(&frame[start..]);
        }
        self.watch(inner);
        Delivery::Queued
    }

    /// For bytes tungstenite writes on the reader's thread (pongs, close replies): whole
    /// buffers, queued behind anything waiting. While closing they are dropped, since our own
    /// close frame is already on its way.
    pub(crate) fn write_control(self: &Arc<Self>, bytes: &[u8]) -> io::Result<()> {
        match self.send_frames(&[IoSlice::new(bytes)]) {
            Delivery::Written | Delivery::Queued => Ok(()),
            Delivery::Overflowed => Err(io::ErrorKind::WriteZero.into()),
            Delivery::Closed if matches!(self.lock().state, State::Closing { .. }) => Ok(()),
            Delivery::Closed => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Starts the close handshake with `code` (`None`: a close frame without a code, as an
    /// echo of one); the socket is cut if the handshake does not finish in time.
    pub(crate) fn close(self: &Arc<Self>, code: Option<u16>, reason: &str) {
        let mut inner = self.lock();
        if matches!(inner.state, State::Open | State::Paused) {
            self.begin_close(&mut inner, code, reason);
        }
    }

    fn overflow(self: &Arc<Self>, inner: &mut Inner) {
        log::warn!(
            "client at {:?} does not read fast enough: closing it (1008)",
            self.socket.peer_addr().ok()
        );
        self.begin_close(inner, Some(1008), "queue full");
    }

    fn begin_close(self: &Arc<Self>, inner: &mut Inner, code: Option<u16>, reason: &str) {
        let was_open = inner.state == State::Open;
        inner.state = State::Closing {
            deadline: Instant::now() + self.close_grace,
            reader_done: false,
        };
        match code {
            Some(code) => inner.queue(&[IoSlice::new(Frame::close(code, reason).as_bytes())]),
            None => inner.queue(&[IoSlice::new(&[0x88, 0x00])]),
        }
        if was_open {
            self.flush_locked(inner);
        }
        if inner.watched {
            // The drain thread may be asleep with no deadline: it has one now.
            self.drain.wake();
        } else {
            self.watch(inner);
        }
    }

    /// Whether we are closing (or have closed) this connection ourselves.
    pub(crate) fn is_closing(&self) -> bool {
        matches!(self.lock().state, State::Closing { .. } | State::Closed)
    }

    /// The reader has finished: cut the socket now, or once what waits is written.
    pub(crate) fn reader_done(self: &Arc<Self>) {
        let mut inner = self.lock();
        let deadline = match inner.state {
            State::Closed => return,
            State::Closing { deadline, .. } => deadline,
            State::Open | State::Paused => Instant::now() + self.close_grace,
        };
        if inner.waiting() == 0 || inner.state == State::Paused {
            self.cut(&mut inner);
        } else {
            inner.state = State::Closing {
                deadline,
                reader_done: true,
            };
            self.watch(&mut inner);
        }
    }

    /// Answers a connection that never went live (paused) with `response` instead, and cuts it.
    pub(crate) fn refuse(&self, response: &[u8]) {
        let mut inner = self.lock();
        if inner.state == State::Paused {
            inner.pending.clear();
            inner.sent = 0;
            inner.queue(&[IoSlice::new(response)]);
            let _ = send_nonblocking(&self.socket, &[IoSlice::new(&inner.pending)]);
        }
        self.cut(&mut inner);
    }

    /// Cuts the connection at once: the reader's blocking read returns.
    pub(crate) fn shutdown(&self) {
        self.cut(&mut self.lock());
    }

    fn cut(&self, inner: &mut Inner) {
        inner.state = State::Closed;
        inner.pending = Vec::new();
        inner.sent = 0;
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    fn watch(self: &Arc<Self>, inner: &mut Inner) {
        if !inner.watched {
            inner.watched = true;
            self.drain.watch(self.clone());
        }
    }

    fn flush_locked(self: &Arc<Self>, inner: &mut Inner) {
        if inner.waiting() == 0 {
            return;
        }
        match send_nonblocking(&self.socket, &[IoSlice::new(&inner.pending[inner.sent..])]) {
            Ok(n) => inner.consumed(n),
            Err(_) => return self.cut(inner),
        }
        if inner.waiting() > 0 {
            self.watch(inner);
        }
    }

    /// Drain thread: writes what waits, as far as the socket takes it.
    pub(crate) fn flush(self: &Arc<Self>) {
        let mut inner = self.lock();
        if inner.state != State::Paused {
            self.flush_locked(&mut inner);
        }
    }

    /// Drain thread: what to wait for next. Stops watching (and cuts a finished or overdue
    /// close) when nothing is left to do.
    pub(crate) fn drain_interest(&self, now: Instant) -> DrainInterest {
        let mut inner = self.lock();
        let interest = match inner.state {
            State::Closed => DrainInterest::Done,
            State::Closing { deadline, .. } if now >= deadline => {
                self.cut(&mut inner);
                DrainInterest::Done
            }
            State::Closing {
                reader_done: true, ..
            } if inner.waiting() == 0 => {
                self.cut(&mut inner);
                DrainInterest::Done
            }
            State::Closing { deadline, .. } if inner.waiting() == 0 => {
                DrainInterest::Deadline(deadline)
            }
            State::Closing { deadline, .. } => DrainInterest::Writable(Some(deadline)),
            State::Open if inner.waiting() > 0 => DrainInterest::Writable(None),
            // A paused outbox is flushed by `open`, which watches it again if needed.
            State::Open | State::Paused => DrainInterest::Done,
        };
        if interest == DrainInterest::Done {
            inner.watched = false;
        }
        interest
    }
}

/// Encrypts whole frames into TLS records appended to `out`.
fn encrypt(tls: &mut ServerConnection, frames: &[IoSlice<'_>], out: &mut Vec<u8>) {
    use std::io::Write as _;
    // All frames in one go, so rustls makes as few records as it can (one per 16 KiB) instead
    // of one per frame. The plaintext buffer is unlimited (our own queue limit applies), so
    // this only stops early once the session is closed, when nothing more should be sent.
    let mut slices = frames.to_vec();
    let mut rest = &mut slices[..];
    let mut writer = tls.writer();
    while !rest.is_empty() {
        match writer.write_vectored(rest) {
            Ok(0) | Err(_) => break,
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
        }
    }
    while tls.wants_write() {
        match tls.write_tls(out) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
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
