//! Who is connected: clients by id and by path. Owned by the fan-out thread alone.
//!
//! Generic over what is kept per client, so routing is tested here without sockets.

use std::collections::HashMap;

use crate::protocol::Target;
use crate::server::memory::{is_sparse, shrink_if_sparse, SHRINK_FLOOR};
use crate::ClientId;

struct Slot<T> {
    path: String,
    /// Where this slot sits in its path's list, for O(1) removal.
    path_index: usize,
    value: T,
}

/// Clients in a slab (cheap to walk for broadcasts), indexed by id and by lowercased path.
pub(crate) struct Registry<T> {
    slots: Vec<Option<Slot<T>>>,
    free: Vec<usize>,
    by_id: HashMap<ClientId, usize>,
    by_path: HashMap<String, Vec<usize>>,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_path: HashMap::new(),
        }
    }
}

impl<T> Registry<T> {
    /// Adds a client on `path` (already lowercased). An id already present is replaced.
    pub(crate) fn insert(&mut self, id: ClientId, path: String, value: T) {
        self.remove(id);
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let on_path = self.by_path.entry(path.clone()).or_default();
        on_path.push(slot);
        let entry = Slot {
            path,
            path_index: on_path.len() - 1,
            value,
        };
        if slot == self.slots.len() {
            self.slots.push(Some(entry));
        } else {
            self.slots[slot] = Some(entry);
        }
        self.by_id.insert(id, slot);
    }

    /// Removes a client, giving back its path and value.
    pub(crate) fn remove(&mut self, id: ClientId) -> Option<(String, T)> {
        let slot = self.by_id.remove(&id)?;
        let entry = self.slots[slot].take()?;
        self.free.push(slot);
        if let Some(on_path) = self.by_path.get_mut(&entry.path) {
            on_path.swap_remove(entry.path_index);
            if let Some(&moved) = on_path.get(entry.path_index) {
                if let Some(moved) = self.slots[moved].as_mut() {
                    moved.path_index = entry.path_index;
                }
            }
            if on_path.is_empty() {
                self.by_path.remove(&entry.path);
            }
        }
        Some((entry.path, entry.value))
    }

    /// Calls `visit` with the slot number and value of every client `target` names.
    pub(crate) fn for_each_target(
        &mut self,
        target: &Target,
        mut visit: impl FnMut(usize, &mut T),
    ) {
        match target {
            Target::All => {
                for (slot, entry) in self.slots.iter_mut().enumerate() {
                    if let Some(entry) = entry {
                        visit(slot, &mut entry.value);
                    }
                }
            }
            Target::Path(path) => {
                let Some(on_path) = self.by_path.get(path) else {
                    return;
                };
                for &slot in on_path {
                    if let Some(entry) = self.slots[slot].as_mut() {
                        visit(slot, &mut entry.value);
                    }
                }
            }
            Target::Client(id) => {
                if let Some(&slot) = self.by_id.get(id) {
                    if let Some(entry) = self.slots[slot].as_mut() {
                        visit(slot, &mut entry.value);
                    }
                }
            }
        }
    }

    /// The value in a slot, if a client holds it.
    pub(crate) fn get_mut(&mut self, slot: usize) -> Option<&mut T> {
        self.slots.get_mut(slot)?.as_mut().map(|e| &mut e.value)
    }

    /// Every client's value.
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten().map(|e| &mut e.value)
    }

    /// After many clients left, gives the room back: the indexes shrink, and the slab's
    /// clients move to the front so that it and the per-path lists shrink too, each to about
    /// twice what it holds. Slot numbers change, so this is only called between batches.
    pub(crate) fn compact_if_sparse(&mut self) {
        let live = self.by_id.len();
        if is_sparse(live, self.by_id.capacity()) {
            self.by_id.shrink_to(live * 2);
        }
        if is_sparse(self.by_path.len(), self.by_path.capacity()) {
            self.by_path.shrink_to(self.by_path.len() * 2);
        }
        if !is_sparse(live, self.slots.capacity()) {
            return;
        }
        let mut moved_to = vec![usize::MAX; self.slots.len()];
        let mut slots = Vec::with_capacity((live * 2).max(SHRINK_FLOOR / 4));
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if slot.is_some() {
                moved_to[old] = slots.len();
                slots.push(slot);
            }
        }
        self.slots = slots;
        self.free = Vec::new();
        for slot in self.by_id.values_mut() {
            *slot = moved_to[*slot];
        }
        for on_path in self.by_path.values_mut() {
            for slot in on_path.iter_mut() {
                *slot = moved_to[*slot];
            }
            shrink_if_sparse(on_path);
        }
    }

    /// How many clients are connected on `path`.
    pub(crate) fn path_len(&self, path: &str) -> usize {
        self.by_path.get(path).map_or(0, Vec::len)
    }

    /// How many clients are connected.
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nobody is connected.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receivers(registry: &mut Registry<&'static str>, target: &Target) -> Vec<&'static str> {
        let mut got = Vec::new();
        registry.for_each_target(target, |_, name| got.push(*name));
        got.sort_unstable();
        got
    }

    #[test]
    fn targets_pick_everyone_a_path_or_one_client() {
        let mut registry = Registry::default();
        let (a, b, c) = (ClientId::random(), ClientId::random(), ClientId::random());
        registry.insert(a, "/chat".into(), "a");
        registry.insert(b, "/chat".into(), "b");
        registry.insert(c, "/news".into(), "c");
        assert_eq!(receivers(&mut registry, &Target::All), ["a", "b", "c"]);
        assert_eq!(
            receivers(&mut registry, &Target::Path("/chat".into())),
            ["a", "b"]
        );
        assert_eq!(
            receivers(&mut registry, &Target::Path("/none".into())),
            Vec::<&str>::new()
        );
        assert_eq!(receivers(&mut registry, &Target::Client(c)), ["c"]);
        assert_eq!(
            receivers(&mut registry, &Target::Client(ClientId::random())),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn removal_keeps_the_path_index_right_and_reuses_slots() {
        let mut registry = Registry::default();
        let ids: Vec<ClientId> = (0..5).map(|_| ClientId::random()).collect();
        let names = ["0", "1", "2", "3", "4"];
        for (id, name) in ids.iter().zip(names) {
            registry.insert(*id, "/p".into(), name);
        }
        assert_eq!(registry.remove(ids[1]), Some(("/p".to_owned(), "1")));
        assert_eq!(registry.remove(ids[1]), None);
        registry.remove(ids[4]);
        assert_eq!(
            receivers(&mut registry, &Target::Path("/p".into())),
            ["0", "2", "3"]
        );
        let late = ClientId::random();
        registry.insert(late, "/q".into(), "late");
        assert_eq!(registry.len(), 4);
        assert_eq!(registry.path_len("/p"), 3);
        for id in &ids {
            registry.remove(*id);
        }
        assert_eq!(registry.path_len("/p"), 0);
        assert_eq!(receivers(&mut registry, &Target::All), ["late"]);
    }

    #[test]
    fn compaction_after_a_burst_keeps_every_route_and_gives_room_back() {
        let mut registry = Registry::default();
        let ids: Vec<ClientId> = (0..1000).map(|_| ClientId::random()).collect();
        for (i, id) in ids.iter().enumerate() {
            let path = if i % 2 == 0 { "/even" } else { "/odd" };
            registry.insert(*id, path.into(), i);
        }
        // Most leave; the survivors are spread all over the slab.
        let stay: Vec<usize> = (0..1000).filter(|i| i % 10 == 3 || i % 10 == 4).collect();
        for (i, id) in ids.iter().enumerate() {
            if !stay.contains(&i) {
                registry.remove(*id);
            }
        }
        let before = registry.slots.capacity();
        registry.compact_if_sparse();
        assert!(
            registry.slots.capacity() <= before / 2,
            "{}",
            registry.slots.capacity()
        );
        assert!(registry.free.is_empty());
        let mut all: Vec<usize> = Vec::new();
        registry.for_each_target(&Target::All, |_, v| all.push(*v));
        all.sort_unstable();
        assert_eq!(all, stay);
        for &i in &stay {
            let mut got = Vec::new();
            registry.for_each_target(&Target::Client(ids[i]), |_, v| got.push(*v));
            assert_eq!(got, [i]);
        }
        let mut odd = Vec::new();
        registry.for_each_target(&Target::Path("/odd".into()), |_, v| odd.push(*v));
        odd.sort_unstable();
        assert_eq!(
            odd,
            stay.iter()
                .copied()
                .filter(|i| i % 2 == 1)
                .collect::<Vec<_>>()
        );
        // Removal after compaction still keeps the per-path index right.
        registry.remove(ids[3]);
        registry.remove(ids[14]);
        let mut even = Vec::new();
        registry.for_each_target(&Target::Path("/even".into()), |_, v| even.push(*v));
        even.sort_unstable();
        assert_eq!(
            even,
            stay.iter()
                .copied()
                .filter(|i| i % 2 == 0 && *i != 14)
                .collect::<Vec<_>>()
        );
        // A half-full registry is left alone.
        let slots = registry.slots.len();
        registry.compact_if_sparse();
        assert_eq!(registry.slots.len(), slots);
    }
}
