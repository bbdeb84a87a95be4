//! The `sh-scheduler` thread: owns every entry and a min-heap of their next wake-ups, and
//! sleeps on its command channel until the earliest one (no polling, no CPU while idle).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::clock::{Clock, When};
use super::worker::{Offer, Retired, Tick, Worker};
use super::Kind;

/// How long shutdown waits for handlers that are running to finish.
const HANDLER_GRACE: Duration = Duration::from_secs(5);

/// What the scheduler's handles ask of its thread.
pub(super) enum Command {
    Add(Added),
    /// Removes an entry, then answers on `done`.
    Remove {
        name: String,
        done: Sender<()>,
    },
    Shutdown,
}

/// A registered entry, with its worker thread already started.
pub(super) struct Added {
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) when: When,
    pub(super) worker: Worker,
}

/// One entry as the scheduler thread keeps it.
struct Entry {
    /// Tells this entry's heap items from those of a removed entry of the same name.
    id: u64,
    label: String,
    clock: Clock,
    worker: Worker,
    runs: u64,
}

/// A wake-up in the heap (earliest first through `Reverse`).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    id: u64,
    name: String,
}

/// What woke the thread.
enum Step {
    Command(Command),
    Timeout,
    Closed,
}

/// The scheduler thread's state.
pub(super) struct Runner {
    commands: Receiver<Command>,
    entries: BTreeMap<String, Entry>,
    due: BinaryHeap<Reverse<Due>>,
    /// Removed entries' workers, possibly still finishing a run.
    retired: Vec<Retired>,
    next_id: u64,
}

impl Runner {
    pub(super) fn new(commands: Receiver<Command>) -> Runner {
        Runner {
            commands,
            entries: BTreeMap::new(),
            due: BinaryHeap::new(),
            retired: Vec::new(),
            next_id: 0,
        }
    }

    /// Runs until shutdown, then closes every worker and waits (bounded) for them.
    pub(super) fn run(mut self) {
        loop {
            match self.wait() {
                Step::Command(Command::Add(added)) => self.add(added),
                Step::Command(Command::Remove { name, done }) => {
                    self.remove(&name);
                    let _ = done.send(());
                }
                Step::Command(Command::Shutdown) | Step::Closed => break,
                Step::Timeout => {}
            }
            self.fire_due();
            self.reap();
        }
        self.stop();
    }

    /// Sleeps until a command comes or the earliest entry is due.
    fn wait(&self) -> Step {
        let result = match self.due.peek() {
            Some(Reverse(due)) => self.commands.recv_deadline(due.at),
            None => self
                .commands
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        match result {
            Ok(command) => Step::Command(command),
            Err(RecvTimeoutError::Timeout) => Step::Timeout,
            Err(RecvTimeoutError::Disconnected) => Step::Closed,
        }
    }

    fn add(&mut self, added: Added) {
        let Added {
            name,
            kind,
            when,
            worker,
        } = added;
        self.next_id += 1;
        let id = self.next_id;
        let label = format!("{kind} {name:?}");
        let (clock, first) = Clock::start(when, &label, Instant::now());
        if let Some(at) = first {
            self.due.push(Reverse(Due {
                at,
                id,
                name: name.clone(),
            }));
        }
        log::debug!("{label} added");
        let entry = Entry {
            id,
            label,
            clock,
            worker,
            runs: 0,
        };
        if let Some(old) = self.entries.insert(name, entry) {
            self.retired.push(old.worker.retire());
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(entry) = self.entries.remove(name) {
            log::debug!("{} removed", entry.label);
            self.retired.push(entry.worker.retire());
        }
    }

    /// Wakes every entry whose time has come; each tells when it wants waking next.
    fn fire_due(&mut self) {
        let now = Instant::now();
        while self.due.peek().is_some_and(|Reverse(due)| due.at <= now) {
            let Some(Reverse(due)) = self.due.pop() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&due.name).filter(|e| e.id == due.id) else {
                continue; // removed meanwhile
            };
            let wake = entry.clock.wake(&entry.label, now);
            if let Some(scheduled_for) = wake.run_for {
                entry.dispatch(Tick {
                    scheduled_for,
                    run: entry.runs + 1,
                });
            }
            if let Some(at) = wake.next {
                self.due.push(Reverse(Due { at, ..due }));
            }
        }
    }

    /// Joins the removed entries' workers that have finished.
    fn reap(&mut self) {
        if self.retired.iter().any(Retired::is_finished) {
            let (finished, running) = std::mem::take(&mut self.retired)
                .into_iter()
                .partition(Retired::is_finished);
            self.retired = running;
            let now = Instant::now();
            for worker in finished {
                worker.join_by(now);
            }
        }
    }

    /// Closes every worker, then joins those that finish within [`HANDLER_GRACE`].
    fn stop(self) {
        let deadline = Instant::now() + HANDLER_GRACE;
        let workers: Vec<Retired> = self
            .entries
            .into_values()
            .map(|entry| entry.worker.retire())
            .chain(self.retired)
            .collect();
        for worker in workers {
            worker.join_by(deadline);
        }
    }
}

impl Entry {
    /// Offers a run to the worker; a worker still busy with the last one skips it.
    fn dispatch(&mut self, tick: Tick) {
        let run = tick.run;
        match self.worker.offer(tick) {
            Offer::Taken => self.runs = run,
            Offer::Busy => log::warn!(
                "{}: the last run is still going; this one is skipped (overrun)",
                self.label
            ),
        }
    }
}

/// Drops the entries a scheduler that never started was given, ending their workers.
pub(super) fn discard(commands: Receiver<Command>) {
    let workers: Vec<Retired> = commands
        .try_iter()
        .filter_map(|command| match command {
            Command::Add(added) => Some(added.worker.retire()),
            _ => None,
        })
        .collect();
    drop(commands);
    let deadline = Instant::now() + HANDLER_GRACE;
    for worker in workers {
        worker.join_by(deadline);
    }
}
