//! Who is connected: clients by id, path, user and group. Owned by the fan-out thread alone.
//!
//! Generic over what is kept per client, so routing is tested here without sockets.
//!
//! Clients live in a slab (cheap to walk for broadcasts). Each path, user and group keeps
//! the list of its members' slot numbers ([`Members`]), and each client knows its place in
//! every list it is on, so that joining, leaving and departing are O(1) per list and a send
//! to a group of 1,000 walks exactly what a send to a path of 1,000 walks.

use std::collections::HashMap;

use crate::protocol::Target;
use crate::server::memory::{is_sparse, shrink_if_sparse, SHRINK_FLOOR};
use crate::ClientId;

/// One key's members (a path's, a user's or a group's) for every key: slot numbers in any
/// order.
#[derive(Default)]
struct Members {
    lists: HashMap<String, Vec<usize>>,
}

impl Members {
    /// Adds `slot` under `key`; returns its place in the key's list.
    fn add(&mut self, key: &str, slot: usize) -> usize {
        let list = match self.lists.get_mut(key) {
            Some(list) => list,
            None => self.lists.entry(key.to_owned()).or_default(),
        };
        list.push(slot);
        list.len() - 1
    }

    /// Removes the member at `place` under `key`. The last member moves into that place: its
    /// slot is returned, so that its owner can note its new place.
    fn remove(&mut self, key: &str, place: usize) -> Option<usize> {
        let list = self.lists.get_mut(key)?;
        if place >= list.len() {
            return None;
        }
        list.swap_remove(place);
        let moved = list.get(place).copied();
        if list.is_empty() {
            self.lists.remove(key);
        }
        moved
    }

    fn get(&self, key: &str) -> &[usize] {
        self.lists.get(key).map_or(&[], Vec::as_slice)
    }

    /// After the slab moved: renumbers every list and gives room back.
    fn renumber(&mut self, moved_to: &[usize]) {
        if is_sparse(self.lists.len(), self.lists.capacity()) {
            self.lists.shrink_to(self.lists.len() * 2);
        }
        for list in self.lists.values_mut() {
            for slot in list.iter_mut() {
                *slot = moved_to[*slot];
            }
            shrink_if_sparse(list);
        }
    }
}

/// A client as the registry files it.
struct Slot<T> {
    id: ClientId,
    path: String,
    /// Its place in its path's list.
    path_place: usize,
    /// Its user id and place in that user's list.
    user: Option<(String, usize)>,
    /// Its groups, each with its place in that group's list (a few per client: a list
    /// beats a map).
    groups: Vec<(String, usize)>,
    value: T,
}

/// Clients indexed by id, lowercased path, user id and group.
pub(crate) struct Registry<T> {
    slots: Vec<Option<Slot<T>>>,
    free: Vec<usize>,
    by_id: HashMap<ClientId, usize>,
    by_path: Members,
    by_user: Members,
    by_group: Members,
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_path: Members::default(),
            by_user: Members::default(),
            by_group: Members::default(),
        }
    }
}

/// Which list a member was moved within, to fix its noted place.
#[derive(Clone, Copy)]
enum List<'a> {
    Path,
    User,
    Group(&'a str),
}

impl<T> Registry<T> {
    /// Adds a client on `path` (already lowercased), of `user` if any, in `groups`. An id
    /// already present is replaced.
    pub(crate) fn insert(
        &mut self,
        id: ClientId,
        path: String,
        user: Option<String>,
        groups: &[String],
        value: T,
    ) {
        self.remove(id);
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let path_place = self.by_path.add(&path, slot);
        let user = user.map(|user| {
            let place = self.by_user.add(&user, slot);
            (user, place)
        });
        let entry = Slot {
            id,
            path,
            path_place,
            user,
            groups: Vec::new(),
            value,
        };
        if slot == self.slots.len() {
            self.slots.push(Some(entry));
        } else {
            self.slots[slot] = Some(entry);
        }
        self.by_id.insert(id, slot);
        for group in groups {
            self.join(id, group);
        }
    }

    /// Removes a client, giving back its path and value.
    pub(crate) fn remove(&mut self, id: ClientId) -> Option<(String, T)> {
        let slot = self.by_id.remove(&id)?;
        let entry = self.slots[slot].take()?;
        self.free.push(slot);
        let moved = self.by_path.remove(&entry.path, entry.path_place);
        self.moved(moved, List::Path, entry.path_place);
        if let Some((user, place)) = &entry.user {
            let moved = self.by_user.remove(user, *place);
            self.moved(moved, List::User, *place);
        }
        for (group, place) in &entry.groups {
            let moved = self.by_group.remove(group, *place);
            self.moved(moved, List::Group(group), *place);
        }
        Some((entry.path, entry.value))
    }

    /// Notes the new place of the member `moved` into `place` within `list`.
    fn moved(&mut self, moved: Option<usize>, list: List<'_>, place: usize) {
        let Some(entry) = moved.and_then(|slot| self.slots[slot].as_mut()) else {
            return;
        };
        match list {
            List::Path => entry.path_place = place,
            List::User => {
                if let Some((_, noted)) = entry.user.as_mut() {
                    *noted = place;
                }
            }
            List::Group(group) => {
                if let Some((_, noted)) = entry.groups.iter_mut().find(|(g, _)| g == group) {
                    *noted = place;
                }
            }
        }
    }

    /// Puts a client in `group`. Returns false when there is no such client; joining a group
    /// it is in already changes nothing.
    pub(crate) fn join(&mut self, id: ClientId, group: &str) -> bool {
        let Some(&slot) = self.by_id.get(&id) else {
            return false;
        };
        let Some(entry) = self.slots[slot].as_mut() else {
            return false;
        };
        if !entry.groups.iter().any(|(g, _)| g == group) {
            let place = self.by_group.add(group, slot);
            entry.groups.push((group.to_owned(), place));
        }
        true
    }

    /// Takes a client out of `group`. Returns false when there is no such client; leaving a
    /// group it is not in changes nothing.
    pub(crate) fn leave(&mut self, id: ClientId, group: &str) -> bool {
        let Some(&slot) = self.by_id.get(&id) else {
            return false;
        };
        let Some(entry) = self.slots[slot].as_mut() else {
            return false;
        };
        let Some(at) = entry.groups.iter().position(|(g, _)| g == group) else {
            return true;
        };
        let (group, place) = entry.groups.swap_remove(at);
        let moved = self.by_group.remove(&group, place);
        self.moved(moved, List::Group(&group), place);
        true
    }

    /// Whether the client is in `group`.
    pub(crate) fn is_member(&self, id: ClientId, group: &str) -> bool {
        self.entry(id)
            .is_some_and(|entry| entry.groups.iter().any(|(g, _)| g == group))
    }

    /// A client's groups, in the order joined (the last joined may swap places with one
    /// left).
    #[cfg(test)]
    pub(crate) fn groups(&self, id: ClientId) -> impl Iterator<Item = &str> {
        (self.entry(id).into_iter()).flat_map(|entry| entry.groups.iter().map(|(g, _)| g.as_str()))
    }

    fn entry(&self, id: ClientId) -> Option<&Slot<T>> {
        self.slots.get(*self.by_id.get(&id)?)?.as_ref()
    }

    /// Calls `visit` with the slot number and value of every client `target` names, once
    /// each.
    pub(crate) fn for_each_target(
        &mut self,
        target: &Target,
        mut visit: impl FnMut(usize, &mut T),
    ) {
        let members = match target {
            Target::All => {
                for (slot, entry) in self.slots.iter_mut().enumerate() {
                    if let Some(entry) = entry {
                        visit(slot, &mut entry.value);
                    }
                }
                return;
            }
            Target::Path(path) => self.by_path.get(path),
            Target::User(user) => self.by_user.get(user),
            // A client's own group message was checked (it is a member) before routing.
            Target::Group(group) | Target::GroupOfSender { group, .. } => self.by_group.get(group),
            Target::Client(id) => match self.by_id.get(id) {
                Some(slot) => std::slice::from_ref(slot),
                None => return,
            },
            Target::Clients(ids) => {
                // Unique by construction (see `Target::clients`).
                for id in ids.iter() {
                    if let Some(&slot) = self.by_id.get(id) {
                        if let Some(entry) = self.slots[slot].as_mut() {
                            visit(slot, &mut entry.value);
                        }
                    }
                }
                return;
            }
        };
        for &slot in members {
            if let Some(entry) = self.slots[slot].as_mut() {
                visit(slot, &mut entry.value);
            }
        }
    }

    /// How many clients `target` names (at most; ids of clients elsewhere count too).
    pub(crate) fn reach(&self, target: &Target) -> usize {
        match target {
            Target::All => self.len(),
            Target::Path(path) => self.by_path.get(path).len(),
            Target::User(user) => self.by_user.get(user).len(),
            Target::Group(group) | Target::GroupOfSender { group, .. } => {
                self.by_group.get(group).len()
            }
            Target::Client(_) => 1,
            Target::Clients(ids) => ids.len(),
        }
    }

    /// Whether every client `target` names is connected here (a list of ids, or one id).
    #[cfg(any(test, feature = "redis"))]
    pub(crate) fn holds_all(&self, target: &Target) -> bool {
        match target {
            Target::Client(id) => self.by_id.contains_key(id),
            Target::Clients(ids) => ids.iter().all(|id| self.by_id.contains_key(id)),
            _ => false,
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

    /// Every client: id, lowercased path, user, groups and value.
    pub(crate) fn clients(&self) -> impl Iterator<Item = Filed<'_, T>> {
        self.slots.iter().flatten().map(|entry| Filed {
            id: entry.id,
            path: &entry.path,
            user: entry.user.as_ref().map(|(u, _)| u.as_str()),
            groups: &entry.groups,
            value: &entry.value,
        })
    }

    /// After many clients left, gives the room back: the indexes shrink, and the slab's
    /// clients move to the front so that it and the member lists shrink too, each to about
    /// twice what it holds. Slot numbers change, so this is only called between batches.
    pub(crate) fn compact_if_sparse(&mut self) {
        let live = self.by_id.len();
        if is_sparse(live, self.by_id.capacity()) {
            self.by_id.shrink_to(live * 2);
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
        self.by_path.renumber(&moved_to);
        self.by_user.renumber(&moved_to);
        self.by_group.renumber(&moved_to);
    }

    /// How many clients are connected on `path`.
    pub(crate) fn path_len(&self, path: &str) -> usize {
        self.by_path.get(path).len()
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

/// A client as filed: what presence reports.
pub(crate) struct Filed<'a, T> {
    pub(crate) id: ClientId,
    pub(crate) path: &'a str,
    pub(crate) user: Option<&'a str>,
    groups: &'a [(String, usize)],
    pub(crate) value: &'a T,
}

impl<'a, T> Filed<'a, T> {
    /// Its groups.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &'a str> {
        self.groups.iter().map(|(g, _)| g.as_str())
    }
}

#[cfg(test)]
mod tests;
