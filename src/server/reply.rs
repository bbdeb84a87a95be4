//! A connection's way back to its own client that skips the fan-out thread.
//!
//! A reply to the sender alone (`direct`, its own id, a route's answer to it) is written by
//! the connection's own thread straight into its outbox, without waking the fan-out thread:
//! one hop fewer per round trip. Per-sender order still holds, because the shortcut is taken
//! only when none of this connection's earlier signals is still on its way through the
//! fan-out (their count is [`ReplyPath`]'s in-flight count, settled once the fan-out, and any
//! writer thread it handed them to, has written them); otherwise the reply queues behind them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::metrics::Counters;
use crate::protocol::{Frame, Target};
use crate::server::fanout::{Command, Outgoing};
use crate::server::outbox::{Delivery, FrameSink, Outbox};
use crate::{ClientId, Error, Result};

thread_local! {
    /// On a connection's thread (which serves that connection alone): its reply path, whose
    /// in-flight count signals sent through [`Signals`](crate::Signals) from its handlers
    /// join, so that a later shortcut reply cannot overtake them.
    static IN_FLIGHT: std::cell::RefCell<Option<Arc<ReplyPath>>> =
        const { std::cell::RefCell::new(None) };
}

/// Counts a signal sent from this thread in flight, if this is a connection's thread.
pub(crate) fn pending_here() -> Option<Pending> {
    IN_FLIGHT.with(|current| current.borrow().as_ref().map(Pending::new))
}

/// One signal of a connection on its way through the fan-out: counted in flight from its
/// making until it is dropped (written, or dropped unrouted).
#[derive(Debug)]
pub(crate) struct Pending(Arc<ReplyPath>);

impl Pending {
    fn new(path: &Arc<ReplyPath>) -> Pending {
        path.in_flight.fetch_add(1, Ordering::AcqRel);
        Pending(path.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The signals of one batch, settled once every thread writing the batch is done with it:
/// the fan-out thread and each writer hold it, and the last to let go settles them.
#[derive(Debug, Default)]
pub(crate) struct Settle(Vec<Pending>);

impl Settle {
    pub(crate) fn push(&mut self, pending: Option<Pending>) {
        self.0.extend(pending);
    }
}

/// A connection's shortcut to its own client, shared with the events its handlers get. The
/// in-flight count lives here rather than in an allocation of its own: one record fewer per
/// connection.
pub(crate) struct ReplyPath {
    id: ClientId,
    outbox: Arc<Outbox>,
    in_flight: AtomicUsize,
    metrics: Arc<Counters>,
    commands: Sender<Command>,
}

impl std::fmt::Debug for ReplyPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyPath")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ReplyPath {
    pub(crate) fn new(
        id: ClientId,
        outbox: Arc<Outbox>,
        metrics: Arc<Counters>,
        commands: Sender<Command>,
    ) -> Arc<ReplyPath> {
        Arc::new(ReplyPath {
            id,
            outbox,
            in_flight: AtomicUsize::new(0),
            metrics,
            commands,
        })
    }

    /// Makes this thread the connection's: signals sent from it through `Signals` count in
    /// flight (see [`pending_here`]).
    pub(crate) fn enter(self: &Arc<Self>) {
        IN_FLIGHT.with(|current| *current.borrow_mut() = Some(self.clone()));
    }

    /// The connection has ended: this thread lets go of its reply path (and with it of the
    /// outbox and the command queue) before it ends.
    pub(crate) fn leave() {
        IN_FLIGHT.with(|current| current.borrow_mut().take());
    }

    /// Sends a signal of this connection's: to its own client directly when nothing of its
    /// is still in the fan-out, else (and to anyone else) through the fan-out, counted in
    /// flight.
    pub(crate) fn send(self: &Arc<Self>, frame: Frame, target: Target) -> Result<()> {
        if target == Target::Client(self.id) && self.in_flight.load(Ordering::Acquire) == 0 {
            Counters::add(&self.metrics.signals_sent, 1);
            match FrameSink::send_frames(&*self.outbox, &[&frame]) {
                Delivery::Written | Delivery::Queued => {
                    Counters::add(&self.metrics.frames_delivered, 1);
                }
                Delivery::Overflowed => Counters::add(&self.metrics.clients_dropped_slow, 1),
                Delivery::Closed => {}
            }
            return Ok(());
        }
        let outgoing = Outgoing::new(frame, target, Some(self.id)).pending(Pending::new(self));
        (self.commands.send(Command::Signal(outgoing))).map_err(|_| Error::NotRunning)
    }
}
