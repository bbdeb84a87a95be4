//! Automatic reconnection: exponential backoff with jitter, bounded, giving up after a number
//! of tries.

use std::time::Duration;

use crate::{Error, Result};

/// When and how often a dropped connection is reconnected (opt-in, see
/// [`ConnectOptions::reconnect`](super::ConnectOptions::reconnect)).
///
/// After a connection drops (the server closed it, it failed, or the peer stopped answering
/// pings), try `n` (from 1) waits `initial × factor^(n-1)`, at most `max`, less a random part
/// of up to `jitter` of it, then connects to the connection's current URL. A success starts
/// the count again; after `max_tries` failed tries in a row the connection gives up and is
/// left `Disconnected`. [`Connections::reset`](super::Connections::reset) and
/// [`Connections::disconnect`](super::Connections::disconnect) interrupt the wait at once.
///
/// ```
/// use std::time::Duration;
/// use signalhub::outbound::ReconnectPolicy;
///
/// // 1 s, 2 s, 4 s ... capped at 60 s, each up to 25 % shorter; give up after 10 tries.
/// let default = ReconnectPolicy::default();
/// assert_eq!(default.max_tries, Some(10));
/// // Quicker, and never giving up:
/// let eager = ReconnectPolicy::new()
///     .initial(Duration::from_millis(100))
///     .max(Duration::from_secs(5))
///     .max_tries(None);
/// # let _ = eager;
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// The wait before the first try (default 1 s).
    pub initial: Duration,
    /// The longest wait between tries (default 60 s).
    pub max: Duration,
    /// How much each wait grows over the previous one (default 2.0; at least 1.0).
    pub factor: f64,
    /// The largest share of each wait taken off at random, from 0.0 (none) to 1.0 (default
    /// 0.25), so that many clients dropped together do not come back together.
    pub jitter: f64,
    /// Failed tries in a row before giving up; `None` tries forever (default `Some(10)`).
    pub max_tries: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            factor: 2.0,
            jitter: 0.25,
            max_tries: Some(10),
        }
    }
}

impl ReconnectPolicy {
    /// The defaults.
    pub fn new() -> ReconnectPolicy {
        ReconnectPolicy::default()
    }

    /// Sets the first wait.
    pub fn initial(mut self, initial: Duration) -> ReconnectPolicy {
        self.initial = initial;
        self
    }

    /// Sets the longest wait.
    pub fn max(mut self, max: Duration) -> ReconnectPolicy {
        self.max = max;
        self
    }

    /// Sets the growth factor.
    pub fn factor(mut self, factor: f64) -> ReconnectPolicy {
        self.factor = factor;
        self
    }

    /// Sets the jitter (0.0 to 1.0).
    pub fn jitter(mut self, jitter: f64) -> ReconnectPolicy {
        self.jitter = jitter;
        self
    }

    /// Sets how many failed tries in a row are made before giving up (`None`: forever).
    pub fn max_tries(mut self, max_tries: Option<u32>) -> ReconnectPolicy {
        self.max_tries = max_tries;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidConfig(format!("reconnect policy: {what}")));
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return bad("factor must be a number of at least 1.0");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return bad("jitter must be between 0.0 and 1.0");
        }
        if self.initial > self.max {
            return bad("initial must not be longer than max");
        }
        Ok(())
    }

    /// Whether `tries` failed tries are all that is allowed.
    pub(crate) fn exhausted(&self, tries: u32) -> bool {
        self.max_tries.is_some_and(|max| tries >= max)
    }

    /// The wait before try `n` (from 1), with `random` in `[0, 1)` taking the jitter off.
    pub(crate) fn delay(&self, n: u32, random: f64) -> Duration {
        let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * self.factor.powi(exponent);
        let base = grown.min(self.max.as_secs_f64());
        let jittered = base * (1.0 - self.jitter * random.clamp(0.0, 1.0));
        Duration::try_from_secs_f64(jittered).unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waits_grow_then_stop_at_the_max() {
        let policy = ReconnectPolicy::new()
            .initial(ms(100))
            .max(ms(1000))
            .jitter(0.0);
        let waits: Vec<_> = (1..=6).map(|n| policy.delay(n, 0.5)).collect();
        assert_eq!(
            waits,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        assert_eq!(policy.delay(u32::MAX, 0.5), ms(1000));
    }

    #[test]
    fn jitter_takes_off_at_most_its_share() {
        let policy = ReconnectPolicy::new().initial(ms(1000)).jitter(0.25);
        assert_eq!(policy.delay(1, 0.0), ms(1000));
        assert_eq!(policy.delay(1, 0.5), ms(875));
        for _ in 0..100 {
            let wait = policy.delay(1, crate::random::unit());
            assert!(wait > ms(750) && wait <= ms(1000), "{wait:?}");
        }
    }

    #[test]
    fn tries_are_bounded_unless_told_otherwise() {
        let policy = ReconnectPolicy::new().max_tries(Some(2));
        assert!(!policy.exhausted(1));
        assert!(policy.exhausted(2));
        assert!(!ReconnectPolicy::new().max_tries(None).exhausted(u32::MAX));
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(ReconnectPolicy::new().check().is_ok());
        assert!(ReconnectPolicy::new().factor(0.5).check().is_err());
        assert!(ReconnectPolicy::new().factor(f64::NAN).check().is_err());
        assert!(ReconnectPolicy::new().jitter(1.5).check().is_err());
        let backwards = ReconnectPolicy::new().initial(ms(10)).max(ms(1));
        assert!(backwards.check().is_err());
    }
}
