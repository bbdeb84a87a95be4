//! When an entry is next due: timers at a fixed rate on the monotonic clock, cron schedules on
//! the wall clock.
//!
//! A timer registered at `T0` with interval `I` is due at `T0 + I`, `T0 + 2I`, ... however long
//! its handler takes, so it never drifts. Waking late past several slots (a suspended process,
//! an overloaded machine) runs once and goes on at the next future slot; the slots in between
//! are logged as skipped. Cron schedules take their next time from the expression after the
//! time just due, or after now when that is already past.

use std::time::{Duration, Instant, SystemTime};

#[cfg(feature = "schedules")]
use super::cron::CronSpec;

/// The longest the scheduler sleeps towards a cron time before it looks at the wall clock
/// again: the monotonic clock it sleeps on stops while the machine is suspended, and the wall
/// clock can be stepped.
#[cfg(feature = "schedules")]
const WALL_CLOCK_RECHECK: Duration = Duration::from_secs(60);

/// When an entry runs, as registered.
pub(crate) enum When {
    /// Every interval, starting one interval after the scheduler takes it.
    Every(Duration),
    /// At the times a cron expression names.
    #[cfg(feature = "schedules")]
    Cron(Box<CronSpec>),
}

/// An entry's next time.
pub(super) enum Clock {
    Every {
        interval: Duration,
        next: Instant,
    },
    #[cfg(feature = "schedules")]
    Cron {
        spec: Box<CronSpec>,
        next: SystemTime,
    },
}

/// What a wake-up of an entry says.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Wake {
    /// Run now, for this time.
    pub(super) run_for: Option<SystemTime>,
    /// When to wake the entry next (none: it never runs again).
    pub(super) next: Option<Instant>,
}

impl Clock {
    /// The clock of an entry taken at `now`, and its first wake-up.
    #[cfg_attr(not(feature = "schedules"), allow(unused_variables))]
    pub(super) fn start(when: When, label: &str, now: Instant) -> (Clock, Option<Instant>) {
        match when {
            When::Every(interval) => {
                // Registration refuses intervals this far out.
                let next = now.checked_add(interval).unwrap_or(now);
                (Clock::Every { interval, next }, Some(next))
            }
            #[cfg(feature = "schedules")]
            When::Cron(spec) => {
                let wall = SystemTime::now();
                let Some(next) = spec.next_after(wall) else {
                    log::warn!("{label}: {:?} names no future time", spec.expression());
                    return (Clock::Cron { spec, next: wall }, None);
                };
                let at = arm(next, wall, now);
                (Clock::Cron { spec, next }, Some(at))
            }
        }
    }

    /// Called once the entry's wake-up time has come (`now` is at or after it).
    pub(super) fn wake(&mut self, label: &str, now: Instant) -> Wake {
        match self {
            Clock::Every { interval, next } => {
                let due = *next;
                let late = now.saturating_duration_since(due);
                let (following, skipped) = next_slot(due, *interval, now);
                if skipped > 0 {
                    log::warn!("{label}: {skipped} run(s) skipped, woken {late:?} late");
                }
                *next = following.unwrap_or(due);
                let now_wall = SystemTime::now();
                Wake {
                    run_for: Some(now_wall.checked_sub(late).unwrap_or(now_wall)),
                    next: following,
                }
            }
            #[cfg(feature = "schedules")]
            Clock::Cron { spec, next } => cron_wake(spec, next, label, now),
        }
    }
}

/// The first slot after `now` on the grid `due + k * interval` (none past what `Instant` can
/// hold), and how many slots strictly between `due` and it were missed.
pub(super) fn next_slot(due: Instant, interval: Duration, now: Instant) -> (Option<Instant>, u128) {
    let late = now.saturating_duration_since(due);
    let skipped = late.as_nanos() / interval.as_nanos().max(1);
    let following = u32::try_from(skipped + 1)
        .ok()
        .and_then(|steps| interval.checked_mul(steps))
        .and_then(|ahead| due.checked_add(ahead))
        .or_else(|| now.checked_add(interval));
    (following, skipped)
}

/// A cron entry's wake-up: early (the wall clock is behind), on time, or late past other times.
#[cfg(feature = "schedules")]
fn cron_wake(spec: &CronSpec, next: &mut SystemTime, label: &str, now: Instant) -> Wake {
    let wall = SystemTime::now();
    if wall < *next {
        return Wake {
            run_for: None,
            next: Some(arm(*next, wall, now)),
        };
    }
    let due = *next;
    let following = match spec.next_after(due) {
        Some(time) if time > wall => Some(time),
        Some(_) => {
            let late = wall.duration_since(due).unwrap_or_default();
            log::warn!("{label}: woken {late:?} late; the runs missed meanwhile are skipped");
            spec.next_after(wall)
        }
        None => None,
    };
    if following.is_none() {
        log::warn!("{label}: {:?} names no later time", spec.expression());
    }
    *next = following.unwrap_or(due);
    Wake {
        run_for: Some(due),
        next: following.map(|time| arm(time, wall, now)),
    }
}

/// The instant to sleep until for wall-clock `target`, at most [`WALL_CLOCK_RECHECK`] away.
#[cfg(feature = "schedules")]
fn arm(target: SystemTime, wall: SystemTime, now: Instant) -> Instant {
    let wait = target.duration_since(wall).unwrap_or_default();
    now + wait.min(WALL_CLOCK_RECHECK)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_timer_on_time_goes_to_the_next_slot_of_its_grid() {
        let t0 = Instant::now();
        let due = t0 + 100 * MS;
        // Woken 3 ms late: the next slot stays on the grid, not "now + interval".
        let (next, skipped) = next_slot(due, 100 * MS, due + 3 * MS);
        assert_eq!(next, Some(t0 + 200 * MS));
        assert_eq!(skipped, 0);
    }

    #[test]
    fn a_timer_woken_late_past_slots_skips_them() {
        let t0 = Instant::now();
        let due = t0 + 100 * MS;
        let (next, skipped) = next_slot(due, 100 * MS, due + 350 * MS);
        assert_eq!(next, Some(t0 + 500 * MS));
        assert_eq!(skipped, 3);
        // Exactly on a later slot: that slot is the one running now.
        let (next, skipped) = next_slot(due, 100 * MS, due + 200 * MS);
        assert_eq!(next, Some(t0 + 400 * MS));
        assert_eq!(skipped, 2);
    }

    #[test]
    fn a_timer_never_drifts_over_many_runs() {
        let t0 = Instant::now();
        let mut due = t0 + 7 * MS;
        for _ in 0..1000 {
            // Always woken 2 ms late, as a busy machine might.
            due = next_slot(due, 7 * MS, due + 2 * MS).0.expect("in range");
        }
        assert_eq!(due, t0 + 7 * MS * 1001);
    }

    #[test]
    fn a_timer_clock_runs_for_its_slot_and_rearms_on_the_grid() {
        let now = Instant::now();
        let (mut clock, first) = Clock::start(When::Every(50 * MS), "timer \"t\"", now);
        assert_eq!(first, Some(now + 50 * MS));
        // Woken 10 ms after its slot: it runs for the slot, 10 ms before the wall clock as it
        // read it during the wake (bracketed by readings on either side).
        let before = SystemTime::now();
        let wake = clock.wake("timer \"t\"", now + 60 * MS);
        let after = SystemTime::now();
        assert_eq!(wake.next, Some(now + 100 * MS));
        let run_for = wake.run_for.expect("runs");
        assert!(
            before - 10 * MS <= run_for && run_for <= after - 10 * MS,
            "{run_for:?} is not 10 ms before a time between {before:?} and {after:?}"
        );
    }
}
