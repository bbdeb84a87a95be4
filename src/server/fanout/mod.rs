//! The fan-out thread: owns the registry and routes every signal.
//!
//! Everyone else talks to it through one channel of [`Command`]s. It takes what has queued
//! up (up to [`MAX_BATCH`] commands), notes which frames each receiver gets, then writes each
//! receiver's frames with one nonblocking `sendmsg`. Frames are encoded once, by whoever sent
//! the signal, and shared by all receivers. Batches reaching many receivers are written by
//! this thread and the [`Writer`] threads together, each receiver always by the same thread.
//! When nothing happens it sleeps in `recv`, waking only for keepalive pings and, once a
//! burst of connections has ended, to return free memory to the system.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::borrow::Cow;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::event::ClientInfo;
use crate::metrics::{Counters, Disconnect};
use crate::presence::{Presence, PresenceFilter};
use crate::protocol::{Frame, Target};
use crate::server::lifecycle::Lifecycle;
use crate::server::memory::{self, BurstWatch};
use crate::server::outbox::FrameSink;
use crate::server::registry::Registry;
use crate::server::reply::{Pending, Settle};
use crate::server::writer::{self, Job, Tally, Writer};
use crate::ClientId;

/// The most commands handled (and frames written per receiver) in one batch; stays under
/// `IOV_MAX` (1024) slices per `sendmsg`.
pub(crate) const MAX_BATCH: usize = 256;

/// Commands that may wait for the fan-out thread before senders block: four full batches.
/// A bounded channel allocates and initialises every slot at once, so this is resident from
/// the start; kept small for that (docs/PERFORMANCE.md).
pub(crate) const COMMAND_QUEUE: usize = 4 * MAX_BATCH;

/// A signal on its way: the encoded frame and its receivers.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) frame: Frame,
    pub(crate) target: Target,
    /// Counts it in flight for the connection that sent it, until written (see
    /// [`crate::server::reply`]).
    pub(crate) pending: Option<Pending>,
    /// Whether the backplane publishes it.
    #[cfg(feature = "redis")]
    pub(crate) scope: Scope,
}

impl Outgoing {
    /// A signal sent on this node. `sender` is the client whose event it answers, if any: a
    /// signal to that client alone (direct, or its own id) is never published to other nodes.
    pub(crate) fn new(frame: Frame, target: Target, sender: Option<ClientId>) -> Outgoing {
        #[cfg(feature = "redis")]
        let scope = match (&target, sender) {
            (Target::Client(id), Some(sender)) if *id == sender => Scope::Local,
            _ => Scope::Cluster,
        };
        #[cfg(not(feature = "redis"))]
        let _ = sender;
        Outgoing {
            frame,
            target,
            pending: None,
            #[cfg(feature = "redis")]
            scope,
        }
    }

    /// Counted in flight for its sender's connection until written.
    pub(crate) fn pending(mut self, pending: Pending) -> Outgoing {
        self.pending = Some(pending);
        self
    }

    /// A signal another node published (never published again).
    #[cfg(feature = "redis")]
    pub(crate) fn remote(frame: Frame, target: Target) -> Outgoing {
        Outgoing {
            frame,
            target,
            pending: None,
            scope: Scope::Remote,
        }
    }
}

/// Backplane: where a signal may go.
#[cfg(feature = "redis")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Published to every node of the cluster (unless it targets a client of this node).
    Cluster,
    /// This node only: the sender alone.
    Local,
    /// Came from another node through the backplane.
    Remote,
}

/// A writer thread is gone (it panicked): its receivers can no longer be written to.
#[derive(Debug)]
struct WriterDied;

/// A client going live: who it is (its path, user and first groups) and where its frames go.
pub(crate) struct Registration {
    pub(crate) info: Arc<ClientInfo>,
    pub(crate) sink: Arc<dyn FrameSink>,
}

/// A server-initiated close of one client ([`Signals::disconnect`](crate::Signals::disconnect)).
pub(crate) struct Disconnection {
    pub(crate) id: ClientId,
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// Told whether the client was connected here.
    pub(crate) found: Sender<bool>,
}

/// What the fan-out thread is asked to do.
pub(crate) enum Command {
    /// Start delivering to a client.
    Register(Registration),
    /// Forget a client (its connection ended).
    Unregister(ClientId),
    /// Put a client in a group.
    Join(ClientId, String),
    /// Take a client out of a group.
    Leave(ClientId, String),
    /// Close a client with this code and reason, after what was routed to it before.
    Disconnect(Disconnection),
    /// List who is connected.
    Presence(PresenceFilter, Sender<Vec<Presence>>),
    /// Deliver a signal.
    Signal(Outgoing),
    /// Close a client (with this code, or none: an echo of a close without one) once what
    /// was routed to it before this command is written; its reader asked, after its peer's
    /// close or a protocol failure. Signals routed after it no longer reach it.
    Close(ClientId, Option<u16>, &'static str),
    /// Close every client with 1001 and stop once they are gone (or time is up).
    Shutdown,
}

/// Keepalive settings: how often to ping, and when a silent client is dropped.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keepalive {
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
}

impl Keepalive {
    fn tick(&self) -> Option<Duration> {
        self.ping_interval.or(self.idle_timeout.map(|d| d / 2))
    }
}

/// Frames a receiver's list keeps room for between batches (a few signals in one batch is
/// the common case; a burst's longer list is given back).
const QUEUED_KEEP: usize = 8;

/// Batches reaching fewer receivers are written by this thread alone (handing work over
/// costs a wake-up, more than a short pass; docs/PERFORMANCE.md), unless a writer still has
/// work queued for some of them.
const SHARE_MIN_RECEIVERS: usize = 256;

/// The longest [`FanOut::gather`] waits for more signals before a big pass...
const GATHER_FOR: Duration = Duration::from_micros(20);
/// ...of at least this many receivers.
const GATHER_MIN_RECEIVERS: usize = 64;

/// How long shutdown waits for the writers to finish what they were given.
const WRITER_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

struct Subscriber {
    info: Arc<ClientInfo>,
    sink: Arc<dyn FrameSink>,
    /// Indexes into the batch's frames, in order.
    queued: Vec<u32>,
    /// Who writes to it: 0 the fan-out thread, n the writer `n - 1`.
    writer: usize,
    /// The close to send after its frames of this batch (see [`Command::Close`]).
    closing: Option<Closing>,
    /// Its close was handed over, or it has left: it gets nothing more.
    closed: bool,
}

/// A close code (none for an echo of a close without one) and reason.
pub(crate) type Closing = (Option<u16>, Cow<'static, str>);

impl Subscriber {
    fn clear_queue(&mut self) {
        self.queued.clear();
        if self.queued.capacity() > QUEUED_KEEP {
            self.queued = Vec::new(); // a burst's room goes back
        }
    }

    /// Whether it has anything for this batch: frames, or a close.
    fn has_work(&self) -> bool {
        !self.queued.is_empty() || self.closing.is_some()
    }
}

/// The fan-out thread's state.
pub(crate) struct FanOut {
    commands: Receiver<Command>,
    registry: Registry<Subscriber>,
    metrics: Arc<Counters>,
    keepalive: Keepalive,
    shutdown_timeout: Duration,
    /// Set once shutdown began: when to cut whoever is still connected.
    closing_since: Option<Instant>,
    lifecycle: Arc<Lifecycle>,
    /// When to return free memory after a burst of connections; `None`: never.
    burst: Option<BurstWatch>,
    /// Threads sharing the writes of big batches.
    writers: Vec<Writer>,
    /// Who writes to the next client registered (round robin).
    next_writer: usize,
    /// Publishes signals to the other nodes.
    #[cfg(feature = "redis")]
    backplane: Option<crate::backplane::Outlet>,
}

impl FanOut {
    pub(crate) fn new(
        commands: Receiver<Command>,
        metrics: Arc<Counters>,
        keepalive: Keepalive,
        shutdown_timeout: Duration,
        lifecycle: Arc<Lifecycle>,
    ) -> FanOut {
        FanOut {
            commands,
            registry: Registry::default(),
            metrics,
            keepalive,
            shutdown_timeout,
            closing_since: None,
            lifecycle,
            burst: Some(BurstWatch::default()),
            writers: Vec::new(),
            next_writer: 0,
            #[cfg(feature = "redis")]
            backplane: None,
        }
    }

    /// Shares the writes of big batches with these writer threads.
    pub(crate) fn with_writers(mut self, writers: Vec<Writer>) -> FanOut {
        self.writers = writers;
        self
    }

    /// Whether free memory goes back to the system once a burst of connections has ended
    /// (`ServerConfig::release_memory_after_bursts`; on by default).
    pub(crate) fn release_memory_after_bursts(mut self, enabled: bool) -> FanOut {
        self.burst = enabled.then(BurstWatch::default);
        self
    }

    /// Backplane: publishes what this node routes to the other nodes.
    #[cfg(feature = "redis")]
    pub(crate) fn with_backplane(mut self, outlet: crate::backplane::Outlet) -> FanOut {
        self.backplane = Some(outlet);
        self
    }

    /// Backplane: offers a signal for publication unless it stays on this node (sender-only,
    /// from another node, or for a client connected here).
    #[cfg(feature = "redis")]
    fn publish(&mut self, outgoing: &Outgoing) {
        let Some(outlet) = self.backplane.as_mut() else {
            return;
        };
        if outgoing.scope != Scope::Cluster {
            return;
        }
        // Client ids are unique across nodes: only those not connected here are published.
        match &outgoing.target {
            Target::Client(_) if self.registry.holds_all(&outgoing.target) => {}
            Target::Clients(ids) => {
                let elsewhere: Vec<ClientId> = (ids.iter().copied())
                    .filter(|id| !self.registry.holds_all(&Target::Client(*id)))
                    .collect();
                for chunk in elsewhere.chunks(crate::backplane::MAX_LISTED) {
                    outlet.offer(&Target::Clients(chunk.into()), &outgoing.frame);
                }
            }
            target => outlet.offer(target, &outgoing.frame),
        }
    }

    /// Runs until shutdown has closed every client.
    pub(crate) fn run(mut self) {
        let mut batch: Vec<Command> = Vec::with_capacity(MAX_BATCH);
        let mut next_tick = self.keepalive.tick().map(|t| Instant::now() + t);
        loop {
            let deadline = self.next_deadline(next_tick);
            let first = match deadline {
                Some(at) => self.commands.recv_deadline(at),
                None => self
                    .commands
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match first {
                Ok(command) => batch.push(command),
                Err(RecvTimeoutError::Timeout) => {
                    if self.closing_since.is_some() {
                        if self.finish_shutdown() {
                            return;
                        }
                        continue;
                    }
                    let now = Instant::now();
                    self.release_memory_if_due(now);
                    if next_tick.is_some_and(|at| at <= now) {
                        self.keepalive_tick();
                        next_tick = self.keepalive.tick().map(|t| Instant::now() + t);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return self.close_all(),
            }
            batch.extend(self.commands.try_iter().take(MAX_BATCH - 1));
            self.gather(&mut batch);
            match catch_unwind(AssertUnwindSafe(|| self.handle_batch(&mut batch))) {
                Ok(Ok(())) => {}
                Ok(Err(WriterDied)) => return self.fail("a writer thread"),
                // A bug in routing: this thread cannot be trusted to go on.
                Err(_) => return self.fail("the fan-out thread"),
            }
            if self.closing_since.is_some() && self.registry.is_empty() {
                return;
            }
        }
    }

    /// Before a pass over many receivers, lets a burst of signals finish arriving (their
    /// sender's thread is still reading them), so that the pass writes them all: one
    /// `sendmsg` per receiver for the lot instead of one for the first and another for the
    /// rest. Yields the core meanwhile, for at most [`GATHER_FOR`]; only for a signal to
    /// many receivers (never for one to a single client, such as a direct reply).
    fn gather(&mut self, batch: &mut Vec<Command>) {
        let reaches_many = |target: &Target| self.registry.reach(target) >= GATHER_MIN_RECEIVERS;
        let big = batch
            .iter()
            .any(|c| matches!(c, Command::Signal(o) if reaches_many(&o.target)));
        if !big {
            return;
        }
        let until = Instant::now() + GATHER_FOR;
        let mut quiet = 0;
        while batch.len() < MAX_BATCH && quiet < 2 && Instant::now() < until {
            std::thread::yield_now();
            let before = batch.len();
            batch.extend(self.commands.try_iter().take(MAX_BATCH - before));
            quiet = if batch.len() == before { quiet + 1 } else { 0 };
        }
    }

    /// Returns free memory to the system if a burst of connections ended long enough ago.
    fn release_memory_if_due(&mut self, now: Instant) {
        if self.burst.as_mut().is_some_and(|b| b.take_due(now)) {
            memory::release_free_memory();
            log::debug!(
                "returned free memory after connections ended ({} clients now, in {:?})",
                self.registry.len(),
                now.elapsed()
            );
        }
    }

    /// Routing cannot go on (`part` failed: a bug). Nobody may be left waiting on a server
    /// that no longer routes: every client is cut (so their threads end) and the server is
    /// marked failed, which wakes `ServerHandle::join`.
    fn fail(&mut self, part: &str) {
        log::error!("{part} failed; cutting every client and stopping the server");
        self.writers.clear();
        for receiver in self.registry.values_mut() {
            receiver.sink.cut();
        }
        self.lifecycle.fail(part);
    }

    fn next_deadline(&self, next_tick: Option<Instant>) -> Option<Instant> {
        if let Some(since) = self.closing_since {
            return Some(since + self.shutdown_timeout);
        }
        let release = self.burst.as_ref().and_then(BurstWatch::deadline);
        match (next_tick, release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_batch(&mut self, batch: &mut Vec<Command>) -> Result<(), WriterDied> {
        let mut frames: Vec<Frame> = Vec::new();
        let mut touched: Vec<usize> = Vec::new();
        // The batch's signals from connections, settled once written (by every thread).
        let mut settle = Settle::default();
        // Departures wait for the batch's writes: a client's close (sent just before its
        // departure) must still go out.
        let mut departed: Vec<ClientId> = Vec::new();
        let mut shutdown = false;
        for command in batch.drain(..) {
            match command {
                Command::Signal(outgoing) => {
                    Counters::add(&self.metrics.signals_sent, 1);
                    if self.closing_since.is_some() || !self.admits(&outgoing.target) {
                        continue;
                    }
                    #[cfg(feature = "redis")]
                    self.publish(&outgoing);
                    let Outgoing {
                        frame,
                        target,
                        pending,
                        ..
                    } = outgoing;
                    settle.push(pending);
                    let index = frames.len() as u32;
                    frames.push(frame);
                    self.registry.for_each_target(&target, |slot, receiver| {
                        if receiver.closed || receiver.closing.is_some() {
                            return;
                        }
                        if receiver.queued.is_empty() {
                            touched.push(slot);
                        }
                        receiver.queued.push(index);
                    });
                }
                Command::Close(id, code, reason) => {
                    let mut found = false;
                    let target = Target::Client(id);
                    self.registry.for_each_target(&target, |slot, receiver| {
                        found = true;
                        if receiver.closed || receiver.closing.is_some() {
                            return;
                        }
                        if receiver.queued.is_empty() {
                            touched.push(slot);
                        }
                        receiver.closing = Some((code, Cow::Borrowed(reason)));
                    });
                    if !found {
                        log::debug!("close for client {id}, which is gone");
                    }
                }
                Command::Disconnect(disconnection) => {
                    self.disconnect(disconnection, &mut touched);
                }
                Command::Join(id, group) => self.join(id, &group),
                Command::Leave(id, group) => self.leave(id, &group),
                Command::Presence(filter, reply) => {
                    let _ = reply.send(self.presence(&filter));
                }
                Command::Register(registration) => self.register(registration),
                Command::Unregister(id) => {
                    // Signals after this command no longer reach it; its close (and what was
                    // routed to it before) still goes out with this batch.
                    self.registry
                        .for_each_target(&Target::Client(id), |_, receiver| receiver.closed = true);
                    departed.push(id);
                }
                // Signals queued before the shutdown still go out, ahead of the close frames.
                Command::Shutdown => shutdown = true,
            }
        }
        self.write_frames(frames, &touched, Arc::new(settle))?;
        for id in departed {
            self.unregister(id);
        }
        self.registry.compact_if_sparse();
        if shutdown {
            self.begin_shutdown();
        }
        Ok(())
    }

    /// Writes each touched receiver's frames in one call: the writers' shares first (handed
    /// over, so they write while this thread does its own), then this thread's.
    /// `settle` is let go once this thread and every writer given a share are done.
    fn write_frames(
        &mut self,
        frames: Vec<Frame>,
        touched: &[usize],
        settle: Arc<Settle>,
    ) -> Result<(), WriterDied> {
        let frames: Arc<[Frame]> = frames.into();
        let share = touched.len() >= SHARE_MIN_RECEIVERS;
        let mut jobs: Vec<Option<Job>> = (self.writers.iter())
            .map(|w| (share || w.is_busy()).then(|| Job::new(frames.clone(), settle.clone())))
            .collect();
        if jobs.iter().any(Option::is_some) {
            for &slot in touched {
                let Some(receiver) = self.registry.get_mut(slot) else {
                    continue;
                };
                let job = receiver
                    .writer
                    .checked_sub(1)
                    .and_then(|w| jobs[w].as_mut());
                if let (Some(job), true) = (job, receiver.has_work()) {
                    let closing = receiver.closing.take();
                    receiver.closed |= closing.is_some();
                    job.add(&receiver.sink, &receiver.queued, closing);
                    receiver.clear_queue();
                }
            }
            for (writer, job) in self.writers.iter().zip(jobs) {
                let Some(job) = job.filter(|j| !j.is_empty()) else {
                    continue;
                };
                writer.send(job).map_err(|()| WriterDied)?;
            }
        }
        let mut tally = Tally::default();
        let mut slices = Vec::new();
        for &slot in touched {
            let Some(receiver) = self.registry.get_mut(slot) else {
                continue;
            };
            if !receiver.has_work() {
                continue; // handed over, or a slot freed and reused within the batch
            }
            let sink = &*receiver.sink;
            if !receiver.queued.is_empty() {
                tally.add(writer::write_frames(
                    sink,
                    &frames,
                    &receiver.queued,
                    &mut slices,
                ));
            }
            if let Some((code, reason)) = receiver.closing.take() {
                receiver.closed = true;
                sink.close(code, &reason);
            }
            receiver.clear_queue();
        }
        tally.record(&self.metrics);
        Ok(())
    }

    /// Waits until the writers have written what they were given (shutdown: signals queued
    /// before it go out ahead of the close frames).
    fn flush_writers(&self) {
        for writer in &self.writers {
            writer.flush(WRITER_FLUSH_TIMEOUT);
        }
    }

    fn register(&mut self, registration: Registration) {
        let Registration { info, sink } = registration;
        if self.closing_since.is_some() {
            sink.close(Some(1001), "server shutting down");
        }
        let writer = self.next_writer;
        self.next_writer = (writer + 1) % (self.writers.len() + 1);
        let path = info.path.to_lowercase();
        self.registry.insert(
            info.id,
            path.clone(),
            info.user.clone(),
            &info.groups(),
            Subscriber {
                info,
                sink,
                queued: Vec::new(),
                writer,
                closing: None,
                closed: false,
            },
        );
        self.metrics
            .set_path_count(&path, self.registry.path_len(&path));
    }

    fn unregister(&mut self, id: ClientId) {
        if let Some((path, _)) = self.registry.remove(id) {
            if let Some(burst) = self.burst.as_mut() {
                burst.departed(Instant::now());
            }
            self.metrics
                .set_path_count(&path, self.registry.path_len(&path));
        }
    }

    /// Whether a signal may be routed: a group a client named in its own message is reached
    /// only when that client is a member (else it is counted and dropped).
    fn admits(&self, target: &Target) -> bool {
        let Target::GroupOfSender { group, sender } = target else {
            return true;
        };
        if self.registry.is_member(*sender, group) {
            return true;
        }
        Counters::add(&self.metrics.group_messages_refused, 1);
        log::debug!("client {sender} sent to group {group:?}, which it is not in: dropped");
        false
    }

    fn join(&mut self, id: ClientId, group: &str) {
        if self.registry.join(id, group) {
            let mut info = None;
            self.registry
                .for_each_target(&Target::Client(id), |_, r| info = Some(r.info.clone()));
            if let Some(info) = info {
                info.groups.join(group);
            }
        } else {
            log::debug!("join {group:?} for client {id}, which is not connected here");
        }
    }

    fn leave(&mut self, id: ClientId, group: &str) {
        if self.registry.leave(id, group) {
            self.registry
                .for_each_target(&Target::Client(id), |_, r| r.info.groups.leave(group));
        }
    }

    /// Closes one client after what was routed to it before; tells the caller whether it was
    /// connected here.
    fn disconnect(&mut self, disconnection: Disconnection, touched: &mut Vec<usize>) {
        let Disconnection {
            id,
            code,
            reason,
            found,
        } = disconnection;
        let mut here = false;
        let mut reason = Some(reason);
        let metrics = &self.metrics;
        self.registry
            .for_each_target(&Target::Client(id), |slot, receiver| {
                here = true;
                if receiver.closed || receiver.closing.is_some() {
                    return;
                }
                if receiver.queued.is_empty() {
                    touched.push(slot);
                }
                let reason = reason.take().unwrap_or_default();
                receiver.closing = Some((Some(code), Cow::Owned(reason)));
                metrics.disconnected(Disconnect::Server);
            });
        let _ = found.send(here);
    }

    /// Who is connected, as `filter` picks.
    fn presence(&self, filter: &PresenceFilter) -> Vec<Presence> {
        (self.registry.clients())
            .filter(|c| !c.value.closed && filter.admits(c.path, c.user, c.groups()))
            .map(|c| Presence {
                client_id: c.id,
                path: c.value.info.path.clone(),
                user: c.user.map(str::to_owned),
                groups: c.groups().map(str::to_owned).collect(),
                remote_addr: c.value.info.remote_addr,
                endpoint: c.value.info.endpoint.name.clone(),
                connected_at: c.value.info.connected_at,
            })
            .collect()
    }

    /// Pings everyone (one frame, encoded once) and closes clients silent for too long.
    fn keepalive_tick(&mut self) {
        let ping = Frame::ping(b"");
        let idle_limit = self.keepalive.idle_timeout.map(|d| d.as_millis() as u64);
        let send_ping = self.keepalive.ping_interval.is_some();
        for receiver in self.registry.values_mut() {
            if receiver.closed {
                continue; // closing already (idle, or its close is out): counted once
            }
            if idle_limit.is_some_and(|limit| receiver.sink.idle_millis() > limit) {
                log::debug!(
                    "closing a client idle for {} ms",
                    receiver.sink.idle_millis()
                );
                receiver.sink.close(Some(1001), "idle timeout");
                receiver.closed = true;
                self.metrics.disconnected(Disconnect::Idle);
            } else if send_ping {
                receiver.sink.send_frames(&[&ping]);
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if self.closing_since.is_none() {
            self.closing_since = Some(Instant::now());
            self.close_all();
        }
    }

    fn close_all(&mut self) {
        self.flush_writers();
        for receiver in self.registry.values_mut() {
            receiver.sink.close(Some(1001), "server shutting down");
        }
    }

    /// Time is up: cut whoever is left. Returns whether the thread may stop.
    fn finish_shutdown(&mut self) -> bool {
        for receiver in self.registry.values_mut() {
            receiver.sink.cut();
        }
        // Readers exit once their socket is cut; their Unregister commands follow shortly.
        let until = Instant::now() + Duration::from_secs(1);
        while !self.registry.is_empty() {
            match self.commands.recv_deadline(until) {
                Ok(Command::Unregister(id)) => self.unregister(id),
                Ok(Command::Register(r)) => r.sink.cut(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
