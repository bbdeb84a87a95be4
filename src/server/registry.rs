//! Who is connected: clients by id and by path. Owned by the fan-out thread alone.
//!
//! Generic over what is kept per client, so routing is tested here without sockets.

use std::collections::HashMap;

use crate::server::fanout::Target;
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

    /// How many clients are connected on `path`.
    pub(crate) fn path_len(&self, path: &str) -> usize {
        self.by_path.get(path).map_or(0, Vec::len)
    }

    /// How many clients are connected.
    #[cfg(test)]
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
}
