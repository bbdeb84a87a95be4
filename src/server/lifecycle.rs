//! Whether a server has failed or been shut down, for `join` and repeated `shutdown`s to wait on.

use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Flags {
    /// The part the server cannot do without that failed first (the fan-out thread, a
    /// door, a writer...), if one did.
    failed: Option<String>,
    /// Shut down, every thread joined.
    shut_down: bool,
}

/// The flags, and a condvar to wait for them.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    flags: Mutex<Flags>,
    changed: Condvar,
}

impl Lifecycle {
    fn lock(&self) -> MutexGuard<'_, Flags> {
        self.flags.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_until(&self, done: impl Fn(&Flags) -> bool) -> Option<String> {
        let mut flags = self.lock();
        while !done(&flags) {
            flags = self.changed.wait(flags).unwrap_or_else(|p| p.into_inner());
        }
        flags.failed.clone()
    }

    /// Marks the server failed because `part` stopped (the first failure is kept), and wakes
    /// every waiter.
    pub(crate) fn fail(&self, part: impl Into<String>) {
        self.lock().failed.get_or_insert_with(|| part.into());
        self.changed.notify_all();
    }

    /// Marks the server shut down and wakes every waiter.
    pub(crate) fn shut_down(&self) {
        self.lock().shut_down = true;
        self.changed.notify_all();
    }

    /// Waits until the server fails or is shut down; returns what failed, if anything.
    pub(crate) fn wait_failed_or_shut_down(&self) -> Option<String> {
        self.wait_until(|f| f.failed.is_some() || f.shut_down)
    }

    /// Waits until the server is shut down; returns what had failed, if anything.
    pub(crate) fn wait_shut_down(&self) -> Option<String> {
        self.wait_until(|f| f.shut_down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_failure_wakes_a_waiter_and_stays_visible_after_shutdown() {
        let lifecycle = Arc::new(Lifecycle::default());
        let waiter = std::thread::spawn({
            let lifecycle = lifecycle.clone();
            move || lifecycle.wait_failed_or_shut_down()
        });
        lifecycle.fail("the fan-out thread");
        lifecycle.fail("a door");
        assert_eq!(
            waiter.join().unwrap().as_deref(),
            Some("the fan-out thread")
        );
        lifecycle.shut_down();
        assert_eq!(
            lifecycle.wait_shut_down().as_deref(),
            Some("the fan-out thread")
        );
    }
}
