//! The thread that runs one timer's or schedule's handler.
//!
//! Each entry has its own named thread blocked on a zero-capacity channel. The scheduler
//! thread offers it a tick with `try_send`, which only succeeds while the worker is waiting:
//! a handler still running from the last tick makes the offer fail, and that run is skipped,
//! never queued. Closing the channel ends the thread after its current run.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use super::{Handler, Kind, ScheduleEvent};
use crate::{Result, Signals};

thread_local! {
    /// Set on worker threads, so a handler that shuts its scheduler down does not wait for
    /// itself.
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is a timer's or schedule's worker.
pub(super) fn on_worker_thread() -> bool {
    ON_WORKER.with(Cell::get)
}

/// One run to do.
pub(super) struct Tick {
    pub(super) scheduled_for: SystemTime,
    pub(super) run: u64,
}

/// What offering a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offer {
    Taken,
    /// The handler is still running: this run is skipped.
    Busy,
}

/// A live worker: its tick channel and its thread.
pub(super) struct Worker {
    ticks: Sender<Tick>,
    retired: Retired,
}

/// A worker whose tick channel is closed: it ends after its current run, if any.
pub(super) struct Retired {
    label: String,
    /// Disconnects when the thread ends.
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

impl Worker {
    /// Starts the worker thread of `kind` entry `name`.
    pub(super) fn spawn(
        kind: Kind,
        name: &str,
        handler: Handler,
        signals: Signals,
    ) -> Result<Worker> {
        let (ticks, receiver) = crossbeam_channel::bounded::<Tick>(0);
        let (done_sender, done) = crossbeam_channel::bounded::<()>(0);
        let label = format!("{kind} {name:?}");
        let job = Job {
            label: label.clone(),
            name: name.to_owned(),
            handler,
            signals,
        };
        let thread = crate::threads::spawn(&thread_name(kind, name), move || {
            let _done = done_sender;
            ON_WORKER.with(|on| on.set(true));
            for tick in receiver {
                job.run(tick);
            }
        })?;
        Ok(Worker {
            ticks,
            retired: Retired {
                label,
                done,
                thread,
            },
        })
    }

    /// Hands the worker a run if it is waiting for one.
    pub(super) fn offer(&self, tick: Tick) -> Offer {
        match self.ticks.try_send(tick) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Full(_)) => Offer::Busy,
            // The thread is gone (it never is while the channel is open): nothing to do.
            Err(TrySendError::Disconnected(_)) => Offer::Busy,
        }
    }

    /// Closes the tick channel: no more runs.
    pub(super) fn retire(self) -> Retired {
        self.retired
    }
}

impl Retired {
    /// Whether the thread has ended (it can be joined without waiting).
    pub(super) fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Joins the thread if it ends by `deadline`; otherwise leaves it to finish on its own.
    pub(super) fn join_by(self, deadline: Instant) {
        match self.done.recv_deadline(deadline) {
            Err(RecvTimeoutError::Timeout) => log::warn!(
                "{} is still running at shutdown; not waiting for it",
                self.label
            ),
            _ => {
                crate::threads::join(self.thread);
            }
        }
    }
}

/// What a worker thread runs on every tick.
struct Job {
    label: String,
    name: String,
    handler: Handler,
    signals: Signals,
}

impl Job {
    /// Runs the handler once; an error or a panic is logged and the worker goes on.
    fn run(&self, tick: Tick) {
        let event = ScheduleEvent {
            name: self.name.clone(),
            scheduled_for: tick.scheduled_for,
            run: tick.run,
            signals: self.signals.clone(),
        };
        match catch_unwind(AssertUnwindSafe(|| (self.handler)(&event))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("{} (run {}): {e}", self.label, tick.run),
            Err(_) => log::error!(
                "{} panicked (run {}); it runs again when next due",
                self.label,
                tick.run
            ),
        }
    }
}

/// `sh-timer-NAME` or `sh-cron-NAME`, cut to what the OS keeps, on a character boundary.
fn thread_name(kind: Kind, name: &str) -> String {
    crate::threads::thread_name(kind.thread_prefix(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_fit_in_fifteen_bytes_on_a_char_boundary() {
        assert_eq!(thread_name(Kind::Timer, "beat"), "sh-timer-beat");
        assert_eq!(
            thread_name(Kind::Timer, "heartbeat-long"),
            "sh-timer-heartb"
        );
        #[cfg(feature = "schedules")]
        assert_eq!(thread_name(Kind::Schedule, "clock"), "sh-cron-clock");
        // "sh-timer-" is 9 bytes; each "é" is 2, so the 4th would end at byte 17.
        assert_eq!(thread_name(Kind::Timer, "éééé"), "sh-timer-ééé");
    }
}
