//! Timers and cron schedules (SPEC 12): Pode's `Add-PodeTimer` and `Add-PodeSchedule`.
//!
//! Threads: one `sh-scheduler` thread keeps the entries in a min-heap by next time and sleeps
//! on its command channel until the earliest is due; each entry has its own worker thread
//! (`sh-timer-NAME`, `sh-cron-NAME`, cut to 15 bytes) that runs its handler, so a slow
//! handler delays nobody else, and a handler still running when its next time comes makes
//! that run be skipped and logged, never queued. Next times come from the schedule, not from
//! when the last run ended.

mod clock;
#[cfg(feature = "schedules")]
mod cron;
mod runner;
mod worker;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::{Error, Result, Signals};
use clock::When;
#[cfg(feature = "schedules")]
use cron::CronSpec;
#[cfg(feature = "schedules")]
#[cfg_attr(docsrs, doc(cfg(feature = "schedules")))]
pub use cron::CronZone;
use runner::{Added, Command, Runner};
use worker::Worker;

/// A timer's or schedule's handler.
pub(crate) type Handler = Arc<dyn Fn(&ScheduleEvent) -> Result<()> + Send + Sync>;

/// A timer or a cron schedule, for names and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Timer,
    #[cfg(feature = "schedules")]
    Schedule,
}

impl Kind {
    fn thread_prefix(self) -> &'static str {
        match self {
            Kind::Timer => "sh-timer-",
            #[cfg(feature = "schedules")]
            Kind::Schedule => "sh-cron-",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Timer => "timer",
            #[cfg(feature = "schedules")]
            Kind::Schedule => "schedule",
        })
    }
}

/// What a timer's or schedule's handler gets on each run.
///
/// More context may be added in later versions (it cannot be built outside the crate, so that
/// is not a breaking change).
#[derive(Debug, Clone)]
pub struct ScheduleEvent {
    /// The timer's or schedule's name.
    pub name: String,
    /// The time this run was due: on the timer's grid or at the cron expression's time, even
    /// when the run starts a little later.
    pub scheduled_for: SystemTime,
    /// 1 for the first run, counting only runs that happened (not those skipped).
    pub run: u64,
    signals: Signals,
}

impl ScheduleEvent {
    /// The handle that sends signals to the server's clients.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }
}

/// Runs handlers every interval (timers) or at the times a cron expression names (schedules,
/// with the default `schedules` feature), on their own threads, until shut down.
///
/// A [`Server`](crate::Server) has one: entries registered with
/// [`Server::timer`](crate::Server::timer) or [`Server::schedule`](crate::Server::schedule)
/// start with the server, [`ServerHandle::scheduler`](crate::ServerHandle::scheduler) adds and
/// removes them while it runs, and [`ServerHandle::shutdown`](crate::ServerHandle::shutdown)
/// stops them first. [`Scheduler::start`] makes one without a server. It is a cheap `Clone`
/// handle, `Send + Sync`; dropping the last handle shuts it down (a handle captured by a
/// handler keeps it alive: call [`Scheduler::shutdown`]).
///
/// - No drift: a timer registered at `T0` every `I` runs at `T0 + I`, `T0 + 2I`, ...; woken
///   late past several times, it runs once and goes on at the next time to come.
/// - A handler still running when its next time comes: that run is skipped and logged.
/// - An error returned by a handler is logged; a panic is logged and the next run happens.
/// - Names are unique across timers and schedules; they can be reused once removed.
///
/// ```
/// use std::time::Duration;
/// use signalhub::schedule::Scheduler;
/// use signalhub::{SendOptions, Signals};
///
/// # fn main() -> signalhub::Result<()> {
/// let scheduler = Scheduler::start(Signals::default())?;
/// scheduler.timer("heartbeat", Duration::from_secs(30), |event| {
///     // Sending needs a running server (`Server::signals`): else `Error::NotRunning`.
///     let _ = event.signals().send(serde_json::json!({ "beat": event.run }));
///     Ok(())
/// })?;
/// # #[cfg(feature = "schedules")]
/// scheduler.schedule("clock", "*/10 * * * * *", |event| {
///     let time = httpdate::fmt_http_date(event.scheduled_for);
///     event.signals().send_with(time, &SendOptions::new().path("/time"))
/// })?;
/// assert!(scheduler.remove("heartbeat")?);
/// scheduler.shutdown();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Scheduler {
    inner: Arc<Inner>,
}

struct Inner {
    signals: Signals,
    commands: Sender<Command>,
    state: Mutex<State>,
}

struct State {
    names: BTreeSet<String>,
    phase: Phase,
}

enum Phase {
    /// Not started: commands wait in the channel.
    Pending(Receiver<Command>),
    Running(JoinHandle<()>),
    Stopped,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        let phase = match state.phase {
            Phase::Pending(_) => "pending",
            Phase::Running(_) => "running",
            Phase::Stopped => "stopped",
        };
        f.debug_struct("Scheduler")
            .field("phase", &phase)
            .field("names", &state.names)
            .finish()
    }
}

impl Scheduler {
    /// Starts a scheduler without a server; its handlers get `signals` (for example a
    /// server's [`Server::signals`](crate::Server::signals)).
    pub fn start(signals: Signals) -> Result<Scheduler> {
        let scheduler = Scheduler::pending(signals);
        scheduler.run()?;
        Ok(scheduler)
    }

    /// A scheduler that keeps what it is given until [`Scheduler::run`].
    pub(crate) fn pending(signals: Signals) -> Scheduler {
        let (commands, receiver) = crossbeam_channel::unbounded();
        Scheduler {
            inner: Arc::new(Inner {
                signals,
                commands,
                state: Mutex::new(State {
                    names: BTreeSet::new(),
                    phase: Phase::Pending(receiver),
                }),
            }),
        }
    }

    /// Starts the `sh-scheduler` thread of a pending scheduler.
    pub(crate) fn run(&self) -> Result<()> {
        let mut state = self.inner.lock();
        let receiver = match std::mem::replace(&mut state.phase, Phase::Stopped) {
            Phase::Pending(receiver) => receiver,
            Phase::Running(thread) => {
                state.phase = Phase::Running(thread);
                return Err(Error::InvalidConfig(
                    "the scheduler is already running".into(),
                ));
            }
            Phase::Stopped => return Err(Error::NotRunning),
        };
        let spawned = crate::threads::spawn("sh-scheduler", move || Runner::new(receiver).run());
        match spawned {
            Ok(thread) => {
                state.phase = Phase::Running(thread);
                Ok(())
            }
            Err(e) => {
                state.names.clear();
                Err(e)
            }
        }
    }

    /// Runs `handler` every `every`, first one interval from now (from the server's start when
    /// registered before it). A zero (or absurdly long) interval is [`Error::InvalidConfig`], a
    /// name in use
    /// [`Error::DuplicateSchedule`], a stopped scheduler [`Error::NotRunning`].
    pub fn timer<F>(&self, name: &str, every: Duration, handler: F) -> Result<()>
    where
        F: Fn(&ScheduleEvent) -> Result<()> + Send + Sync + 'static,
    {
        if every.is_zero() {
            return Err(Error::InvalidConfig(format!(
                "timer {name:?}: the interval must be above 0"
            )));
        }
        if Instant::now().checked_add(every).is_none() {
            return Err(Error::InvalidConfig(format!(
                "timer {name:?}: the interval is too long"
            )));
        }
        self.register(Kind::Timer, name, When::Every(every), Arc::new(handler))
    }

    /// Runs `handler` at the times the cron expression names, in local time: 5 fields
    /// (`minute hour day-of-month month day-of-week`) or 6 (seconds first), with ranges
    /// (`1-5`), steps (`*/10`), lists, names (`MON-FRI`, `JAN`), `L`, `W`, `#` and nicknames
    /// (`@hourly`, `@daily`...). An expression that cannot be parsed or never matches a date
    /// is [`Error::InvalidSchedule`], naming it.
    #[cfg(feature = "schedules")]
    #[cfg_attr(docsrs, doc(cfg(feature = "schedules")))]
    pub fn schedule<F>(&self, name: &str, cron: &str, handler: F) -> Result<()>
    where
        F: Fn(&ScheduleEvent) -> Result<()> + Send + Sync + 'static,
    {
        self.schedule_in(name, cron, CronZone::Local, handler)
    }

    /// Like [`Scheduler::schedule`], with the expression read in `zone`.
    #[cfg(feature = "schedules")]
    #[cfg_attr(docsrs, doc(cfg(feature = "schedules")))]
    pub fn schedule_in<F>(&self, name: &str, cron: &str, zone: CronZone, handler: F) -> Result<()>
    where
        F: Fn(&ScheduleEvent) -> Result<()> + Send + Sync + 'static,
    {
        let spec = CronSpec::parse(name, cron, zone)?;
        let when = When::Cron(Box::new(spec));
        self.register(Kind::Schedule, name, when, Arc::new(handler))
    }

    /// Removes a timer or schedule: no run starts after this returns (one in progress
    /// finishes). `false` if there was none by that name.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let acknowledged = {
            let mut state = self.inner.lock();
            if matches!(state.phase, Phase::Stopped) {
                return Err(Error::NotRunning);
            }
            if !state.names.remove(name) {
                return Ok(false);
            }
            let (done, acknowledged) = crossbeam_channel::bounded(1);
            let name = name.to_owned();
            let _ = self.inner.commands.send(Command::Remove { name, done });
            matches!(state.phase, Phase::Running(_)).then_some(acknowledged)
        };
        if let Some(acknowledged) = acknowledged {
            // An error means the scheduler thread has ended: nothing runs any more either.
            let _ = acknowledged.recv();
        }
        Ok(true)
    }

    /// The names of the timers and schedules, sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.lock().names.iter().cloned().collect()
    }

    /// Stops every timer and schedule: no run starts after this, and runs in progress get up
    /// to 5 s to finish before it returns. Later calls return at once. Called from a handler,
    /// it does not wait for that handler.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    /// Starts the entry's worker thread and hands the entry to the scheduler thread.
    fn register(&self, kind: Kind, name: &str, when: When, handler: Handler) -> Result<()> {
        if name.is_empty() {
            return Err(Error::InvalidConfig(format!("a {kind} needs a name")));
        }
        let mut state = self.inner.lock();
        if matches!(state.phase, Phase::Stopped) {
            return Err(Error::NotRunning);
        }
        if state.names.contains(name) {
            return Err(Error::DuplicateSchedule(name.to_owned()));
        }
        let worker = Worker::spawn(kind, name, handler, self.inner.signals.clone())?;
        let added = Added {
            name: name.to_owned(),
            kind,
            when,
            worker,
        };
        // Fails only if the scheduler thread is gone; the worker then ends with the command.
        self.inner
            .commands
            .send(Command::Add(added))
            .map_err(|_| Error::NotRunning)?;
        state.names.insert(name.to_owned());
        Ok(())
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn shutdown(&self) {
        let phase = {
            let mut state = self.lock();
            state.names.clear();
            std::mem::replace(&mut state.phase, Phase::Stopped)
        };
        match phase {
            Phase::Pending(receiver) => runner::discard(receiver),
            Phase::Running(thread) => {
                let _ = self.commands.send(Command::Shutdown);
                if !worker::on_worker_thread() {
                    crate::threads::join(thread);
                }
            }
            Phase::Stopped => {}
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}
