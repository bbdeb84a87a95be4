//! Giving memory back after a burst.
//!
//! A server that held 10,000 connections for a minute should not keep the tables it needed
//! for them once they are gone: growable collections keep their capacity, and a big table
//! left at the top of the heap also keeps the allocator from returning the free memory
//! below it. The structures that grow with the number of connections (the registry, the
//! listener's handshakes in progress) shrink once they are mostly empty.
//!
//! Shrinking gives the memory back to the allocator, not to the system: glibc keeps freed
//! pages inside its heap. So once a burst of connections has ended, the fan-out thread asks
//! glibc to return its free pages ([`release_free_memory`], timed by [`BurstWatch`]).

use std::time::{Duration, Instant};

/// Below this capacity a collection is left alone: shrinking it would save too little.
pub(crate) const SHRINK_FLOOR: usize = 64;

/// Whether a collection holding `len` items in room for `capacity` is worth shrinking: at
/// most a quarter full, so a shrink (to half full) happens only after many removals and two
/// shrinks are always far apart (amortised O(1) per removal).
pub(crate) fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity >= SHRINK_FLOOR && len <= capacity / 4
}

/// Shrinks `v` to twice its length (at least [`SHRINK_FLOOR`] / 4) when it is sparse.
pub(crate) fn shrink_if_sparse<T>(v: &mut Vec<T>) {
    if is_sparse(v.len(), v.capacity()) {
        v.shrink_to((v.len() * 2).max(SHRINK_FLOOR / 4));
    }
}

/// Hands the allocator's free pages back to the system: glibc's `malloc_trim(0)`, which
/// walks every arena and releases each free run of whole pages. Elsewhere it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers and is thread-safe (it locks each arena in turn).
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Hands the allocator's free pages back to the system (nothing to do on this platform).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn release_free_memory() {}

/// Connections that must have ended since the last release before memory is returned.
const BURST_MIN_DEPARTURES: usize = 256;
/// Memory goes back once no connection has ended for this long...
const BURST_SETTLE: Duration = Duration::from_secs(1);
/// ...or, while connections keep ending, this long after the first of them.
const BURST_MAX_DELAY: Duration = Duration::from_secs(10);

/// Says when to return memory after connections have come and gone: once at least
/// [`BURST_MIN_DEPARTURES`] have ended since the last release, [`BURST_SETTLE`] after the
/// last of them, or [`BURST_MAX_DELAY`] after the first while churn goes on.
///
/// What a connection leaves behind is not its own memory (it is all freed) but the pages
/// it touched, which glibc keeps; so it is departures that count, not how many clients are
/// connected at the peak.
#[derive(Debug, Default)]
pub(crate) struct BurstWatch {
    departures: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl BurstWatch {
    /// Notes that a connection ended.
    pub(crate) fn departed(&mut self, now: Instant) {
        self.departures += 1;
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When memory is to be returned, if enough connections have ended.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if self.departures < BURST_MIN_DEPARTURES {
            return None;
        }
        let (first, last) = (self.first?, self.last?);
        Some((last + BURST_SETTLE).min(first + BURST_MAX_DELAY))
    }

    /// Whether memory is due back by `now`; if so, counting starts again.
    pub(crate) fn take_due(&mut self, now: Instant) -> bool {
        let due = self.deadline().is_some_and(|at| at <= now);
        if due {
            *self = BurstWatch::default();
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depart(watch: &mut BurstWatch, count: usize, at: Instant) {
        for _ in 0..count {
            watch.departed(at);
        }
    }

    #[test]
    fn memory_goes_back_a_second_after_the_last_of_many_departures() {
        let t0 = Instant::now();
        let mut watch = BurstWatch::default();
        depart(&mut watch, BURST_MIN_DEPARTURES - 1, t0);
        assert_eq!(watch.deadline(), None, "too few connections ended");
        assert!(!watch.take_due(t0 + BURST_MAX_DELAY));
        depart(&mut watch, 1, t0);
        assert_eq!(watch.deadline(), Some(t0 + BURST_SETTLE));
        let later = t0 + BURST_SETTLE / 2;
        depart(&mut watch, 10, later);
        assert_eq!(watch.deadline(), Some(later + BURST_SETTLE), "pushed back");
        assert!(!watch.take_due(later));
        assert!(watch.take_due(later + BURST_SETTLE));
        assert_eq!(watch.deadline(), None, "counting starts again");
    }

    #[test]
    fn churn_that_never_pauses_still_gets_memory_back() {
        let t0 = Instant::now();
        let mut watch = BurstWatch::default();
        let mut now = t0;
        while now < t0 + BURST_MAX_DELAY {
            depart(&mut watch, 100, now);
            now += BURST_SETTLE / 4;
        }
        assert_eq!(watch.deadline(), Some(t0 + BURST_MAX_DELAY));
        assert!(watch.take_due(now));
    }

    /// The process's anonymous resident memory in KiB (`RssAnon` in `/proc/self/status`).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn resident_anon_kib() -> usize {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let line = (status.lines())
            .find(|line| line.starts_with("RssAnon:"))
            .expect("RssAnon");
        let kib = line["RssAnon:".len()..]
            .trim()
            .trim_end_matches("kB")
            .trim();
        kib.parse().expect("a number of KiB")
    }

    /// Memory freed in the middle of the heap (between blocks still in use, so glibc cannot
    /// just shrink its heap from the top, and does not on its own) stays resident until the
    /// release; after it, the process's resident memory is lower by most of it. A release that
    /// did nothing would fail here.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn releasing_free_memory_returns_it_to_the_system() {
        // 64 KiB blocks: under glibc's mmap threshold (128 KiB), so they come from the heap.
        const BLOCK: usize = 64 << 10;
        const FREED: usize = 32 << 20;
        // Written to (not zero, which calloc might leave untouched), so resident.
        let mut blocks: Vec<Option<Vec<u8>>> = (0..2 * FREED / BLOCK)
            .map(|i| Some(vec![i as u8 | 1; BLOCK]))
            .collect();
        // Every other one freed: each sits between two in use.
        for block in blocks.iter_mut().step_by(2) {
            *block = None;
        }
        let before = resident_anon_kib();
        release_free_memory();
        let after = resident_anon_kib();
        let freed_kib = FREED >> 10;
        assert!(
            after + freed_kib / 2 <= before,
            "{freed_kib} KiB freed; resident {before} KiB before the release, {after} KiB after"
        );
        // What is still in use is intact, and the allocator works on.
        for (i, block) in blocks.iter().enumerate().skip(1).step_by(2) {
            let block = block.as_ref().expect("kept");
            assert!(block.iter().all(|&b| b == i as u8 | 1), "block {i}");
        }
        let again = vec![7u8; 1 << 20];
        assert!(again.iter().all(|&b| b == 7));
    }

    /// Elsewhere releasing does nothing, harmlessly.
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    #[test]
    fn releasing_free_memory_is_harmless() {
        let big: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 << 10]).collect();
        drop(big);
        release_free_memory();
        let again = vec![7u8; 1 << 20];
        assert!(again.iter().all(|&b| b == 7));
    }

    #[test]
    fn only_large_and_mostly_empty_collections_shrink() {
        let mut v: Vec<u64> = Vec::with_capacity(1000);
        v.extend(0..300);
        shrink_if_sparse(&mut v);
        assert!(v.capacity() >= 1000, "a third full stays");
        v.truncate(200);
        shrink_if_sparse(&mut v);
        assert!(
            v.capacity() < 1000 && v.capacity() >= 400,
            "{}",
            v.capacity()
        );
        assert_eq!(v, (0..200).collect::<Vec<_>>());
        let mut small: Vec<u64> = Vec::with_capacity(SHRINK_FLOOR - 1);
        shrink_if_sparse(&mut small);
        assert_eq!(small.capacity(), SHRINK_FLOOR - 1);
    }
}
