//! Who is connected: [`Signals::presence`](crate::Signals::presence) and
//! [`ServerHandle::presence`](crate::ServerHandle::presence).

use std::net::SocketAddr;
use std::time::SystemTime;

use crate::ClientId;

/// One connected client, as a presence snapshot lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presence {
    /// Its id.
    pub client_id: ClientId,
    /// Its connection path (case as sent).
    pub path: String,
    /// Its user id, if the authorize hook gave one.
    pub user: Option<String>,
    /// Its groups, in the order joined.
    pub groups: Vec<String>,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The name of the endpoint it connected to.
    pub endpoint: String,
    /// When its upgrade was accepted.
    pub connected_at: SystemTime,
}

/// Which clients a presence snapshot lists: every condition set must hold (none set: all).
///
/// ```
/// use signalhub::PresenceFilter;
/// let everyone = PresenceFilter::new();
/// let ops_on_chat = PresenceFilter::new().group("ops").path("/chat");
/// let alice = PresenceFilter::new().user("alice");
/// # let _ = (everyone, ops_on_chat, alice);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceFilter {
    /// Connected on this path (case-insensitive).
    pub path: Option<String>,
    /// In this group.
    pub group: Option<String>,
    /// Of this user.
    pub user: Option<String>,
}

impl PresenceFilter {
    /// Everyone.
    pub fn new() -> PresenceFilter {
        PresenceFilter::default()
    }

    /// Only clients connected on `path` (case-insensitive).
    pub fn path(mut self, path: impl Into<String>) -> PresenceFilter {
        self.path = Some(path.into());
        self
    }

    /// Only members of `group`.
    pub fn group(mut self, group: impl Into<String>) -> PresenceFilter {
        self.group = Some(group.into());
        self
    }

    /// Only connections of `user`.
    pub fn user(mut self, user: impl Into<String>) -> PresenceFilter {
        self.user = Some(user.into());
        self
    }

    /// Whether a client filed under `path` (lowercased), `user` and `groups` is listed.
    pub(crate) fn admits<'a>(
        &self,
        path: &str,
        user: Option<&str>,
        mut groups: impl Iterator<Item = &'a str>,
    ) -> bool {
        let path_ok = self
            .path
            .as_deref()
            .is_none_or(|p| p.to_lowercase() == path);
        let user_ok = self.user.is_none() || self.user.as_deref() == user;
        let group_ok = self.group.as_deref().is_none_or(|g| groups.any(|x| x == g));
        path_ok && user_ok && group_ok
    }
}
