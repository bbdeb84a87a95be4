//! The drain thread: flushes what sockets could not take at once, and enforces close deadlines.
//!
//! It sleeps in `poll(2)` on the sockets that have bytes waiting, plus a pipe that wakes it
//! when another outbox needs watching. Nothing waits: nothing wakes it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rustix::event::{PollFd, PollFlags, Timespec};

use crate::server::outbox::{DrainInterest, Outbox};
use crate::waker::Waker;
use crate::{Error, Result};

/// Hands outboxes to the drain thread. Cheap to clone: every outbox keeps one.
#[derive(Clone)]
pub(crate) struct DrainHandle {
    outboxes: Sender<Arc<Outbox>>,
    wake: Arc<Wake>,
}

/// The drain thread's waker, and whether it should stop.
struct Wake {
    waker: Waker,
    stop: AtomicBool,
}

impl DrainHandle {
    /// Asks the drain thread to look after `outbox` until it has nothing left to do.
    pub(crate) fn watch(&self, outbox: Arc<Outbox>) {
        if self.outboxes.send(outbox).is_ok() {
            self.wake.waker.wake();
        }
    }

    /// Makes the drain thread look at its outboxes again (a deadline changed).
    pub(crate) fn wake(&self) {
        self.wake.waker.wake();
    }

    /// Tells the drain thread to cut whatever it still holds and stop.
    pub(crate) fn stop(&self) {
        self.wake.stop.store(true, Ordering::SeqCst);
        self.wake.waker.wake();
    }
}

/// Starts the drain thread.
pub(crate) fn spawn() -> Result<(DrainHandle, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let handle = DrainHandle {
        outboxes: tx,
        wake: Arc::new(Wake {
            waker: Waker::new().map_err(Error::Io)?,
            stop: AtomicBool::new(false),
        }),
    };
    let drain = Drain {
        incoming: rx,
        watched: Vec::new(),
        handle: handle.clone(),
    };
    let thread = crate::threads::spawn("sh-drain", move || drain.run())?;
    Ok((handle, thread))
}

struct Drain {
    incoming: Receiver<Arc<Outbox>>,
    watched: Vec<Arc<Outbox>>,
    handle: DrainHandle,
}

impl Drain {
    fn run(mut self) {
        loop {
            self.watched.extend(self.incoming.try_iter());
            if self.handle.wake.stop.load(Ordering::SeqCst) {
                self.watched.iter().for_each(|o| o.shutdown());
                return;
            }
            let now = Instant::now();
            let mut interests = Vec::with_capacity(self.watched.len());
            self.watched
                .retain(|outbox| match outbox.drain_interest(now) {
                    DrainInterest::Done => false,
                    interest => {
                        interests.push(interest);
                        true
                    }
                });
            self.wait(&interests, now);
        }
    }

    /// Sleeps until a watched socket is writable, the pipe wakes us, or a deadline passes;
    /// then flushes the writable sockets.
    fn wait(&mut self, interests: &[DrainInterest], now: Instant) {
        let mut writable: Vec<usize> = Vec::new();
        let mut fds = vec![PollFd::new(&self.handle.wake.waker, PollFlags::IN)];
        let mut deadline: Option<Instant> = None;
        for (i, interest) in interests.iter().enumerate() {
            let (wants_write, until) = match *interest {
                DrainInterest::Writable(until) => (true, until),
                DrainInterest::Deadline(until) => (false, Some(until)),
                DrainInterest::Done => (false, None),
            };
            if wants_write {
                writable.push(i);
                fds.push(PollFd::new(self.watched[i].socket(), PollFlags::OUT));
            }
            deadline = match (deadline, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let timeout = deadline
            .map(|d| Timespec::try_from(d.saturating_duration_since(now)).unwrap_or_default());
        if let Err(e) = rustix::event::poll(&mut fds, timeout.as_ref()) {
            if e != rustix::io::Errno::INTR {
                log::error!("drain thread: poll failed: {e}");
            }
            return;
        }
        let ready: Vec<usize> = fds[1..]
            .iter()
            .zip(&writable)
            .filter(|(fd, _)| !fd.revents().is_empty())
            .map(|(_, &i)| i)
            .collect();
        if !fds[0].revents().is_empty() {
            self.handle.wake.waker.drain();
        }
        drop(fds);
        for i in ready {
            self.watched[i].flush();
        }
    }
}
