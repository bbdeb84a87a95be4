//! Giving memory back after a burst.
//!
//! A server that held 10,000 connections for a minute should not keep the tables it needed
//! for them once they are gone: growable collections keep their capacity, and a big table
//! left at the top of the heap also keeps the allocator from returning the free memory
//! below it. The structures that grow with the number of connections (the registry, the
//! listener's handshakes in progress) shrink once they are mostly empty.

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

#[cfg(test)]
mod tests {
    use super::*;

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
