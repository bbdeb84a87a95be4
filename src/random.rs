//! Random bytes from the kernel, for client ids, masking keys and backoff jitter.

/// Fills `bytes` from the kernel's random source (`getrandom(2)`). On kernels without it
/// (before 3.17) it falls back to a randomly keyed hash of the time and a counter: ids must
/// still be unique and masks unpredictable enough for their purpose.
pub(crate) fn fill(bytes: &mut [u8]) {
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return fallback(&mut bytes[filled..]),
        }
    }
}

/// A random number in `[0, 1)` (53 random bits).
pub(crate) fn unit() -> f64 {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

fn fallback(bytes: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in bytes.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos()));
        chunk.copy_from_slice(&h.finish().to_be_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_fills_differ_and_odd_lengths_are_filled() {
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        super::fill(&mut a);
        super::fill(&mut b);
        assert_ne!(a, b);
        let mut odd = [0u8; 13];
        super::fallback(&mut odd);
        assert_ne!(odd, [0u8; 13]);
        let units: Vec<f64> = (0..100).map(|_| super::unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        assert!(units.iter().any(|u| *u != units[0]));
    }
}
