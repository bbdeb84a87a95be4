//! Who receives a signal, and how a send's options and the event it answers pick them
//! (SPEC 4, 8).

use std::sync::Arc;

use crate::signals::{Mode, SendOptions};
use crate::{ClientId, Error, Result};

/// Who receives a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every connected client.
    All,
    /// Every client connected on this path (lowercased).
    Path(String),
    /// One client.
    Client(ClientId),
    /// Several clients, each once (see [`Target::clients`]).
    Clients(Arc<[ClientId]>),
    /// Every connection of this user id.
    User(String),
    /// Every member of this group.
    Group(String),
    /// A group a client named in its own message: its members, but only when that client
    /// (the sender) is one of them; nobody otherwise.
    GroupOfSender { group: String, sender: ClientId },
}

impl Target {
    /// The clients with these ids, each once however often it is listed.
    pub(crate) fn clients(mut ids: Vec<ClientId>) -> Target {
        ids.sort_unstable();
        ids.dedup();
        Target::Clients(ids.into())
    }
}

/// The parts of an event that targeting looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventTargets<'a> {
    pub(crate) sender: ClientId,
    pub(crate) path: Option<&'a str>,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) group: Option<&'a str>,
    pub(crate) direct: bool,
}

/// Where a signal goes (SPEC 8), or `None` when it names nobody (an id that is not a GUID).
///
/// The send's own targets come first, then (in mode `Auto`, inside a signal route) the
/// event's; of those, client ids beat a user, a user beats a group, a group beats a path,
/// and with none of them it goes to everyone. A group taken from the event was named by the
/// client: it reaches the group only if the client is a member.
pub(crate) fn resolve_target(
    options: &SendOptions,
    event: Option<EventTargets<'_>>,
) -> Result<Option<Target>> {
    if options.mode == Mode::Direct {
        return match event {
            Some(event) => Ok(Some(Target::Client(event.sender))),
            None => Err(Error::DirectOutsideRoute),
        };
    }
    if let Some(target) = explicit_target(options) {
        return Ok(Some(target));
    }
    let event = event.filter(|_| options.mode == Mode::Auto && !options.ignore_event);
    let Some(event) = event else {
        return Ok(Some(match &options.path {
            Some(path) => Target::Path(path.to_lowercase()),
            None => Target::All,
        }));
    };
    if event.direct {
        return Ok(Some(Target::Client(event.sender)));
    }
    if let Some(text) = event.client_id {
        return Ok(match text.parse::<ClientId>() {
            Ok(id) => Some(Target::Client(id)),
            Err(_) => None,
        });
    }
    if let Some(group) = event.group {
        return Ok(Some(Target::GroupOfSender {
            group: group.to_owned(),
            sender: event.sender,
        }));
    }
    let path = options.path.as_deref().or(event.path);
    Ok(Some(match path {
        Some(path) => Target::Path(path.to_lowercase()),
        None => Target::All,
    }))
}

/// The targets a send names itself, beyond a path: client ids, a user or a group.
fn explicit_target(options: &SendOptions) -> Option<Target> {
    let mut ids = options.client_ids.clone();
    ids.extend(options.client_id);
    match ids.len() {
        0 => {}
        1 => return Some(Target::Client(ids[0])),
        _ => return Some(Target::clients(ids)),
    }
    if let Some(user) = &options.user {
        return Some(Target::User(user.clone()));
    }
    options.group.clone().map(Target::Group)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ClientId, ClientId) {
        (ClientId::random(), ClientId::random())
    }

    fn event(sender: ClientId) -> EventTargets<'static> {
        EventTargets {
            sender,
            path: None,
            client_id: None,
            group: None,
            direct: false,
        }
    }

    #[test]
    fn outside_a_route_client_id_beats_path_beats_everyone() {
        let (a, _) = ids();
        let both = SendOptions::new().path("/X").client_id(a);
        assert_eq!(
            resolve_target(&both, None).unwrap(),
            Some(Target::Client(a))
        );
        let path = SendOptions::new().path("/X");
        assert_eq!(
            resolve_target(&path, None).unwrap(),
            Some(Target::Path("/x".into()))
        );
        assert_eq!(
            resolve_target(&SendOptions::new(), None).unwrap(),
            Some(Target::All)
        );
    }

    #[test]
    fn direct_outside_a_route_is_an_error() {
        let direct = SendOptions::new().mode(Mode::Direct);
        assert!(matches!(
            resolve_target(&direct, None),
            Err(Error::DirectOutsideRoute)
        ));
    }

    #[test]
    fn direct_inside_a_route_is_the_sender_even_when_ignoring_the_event() {
        let (me, other) = ids();
        let direct = SendOptions::new()
            .mode(Mode::Direct)
            .client_id(other)
            .ignore_event();
        assert_eq!(
            resolve_target(&direct, Some(event(me))).unwrap(),
            Some(Target::Client(me))
        );
    }

    #[test]
    fn auto_defaults_path_and_client_id_from_the_event() {
        let (me, other) = ids();
        let other_text = other.to_string();
        let on_path = EventTargets {
            path: Some("/Chat"),
            ..event(me)
        };
        let auto = SendOptions::new();
        assert_eq!(
            resolve_target(&auto, Some(on_path)).unwrap(),
            Some(Target::Path("/chat".into()))
        );
        let to_other = EventTargets {
            client_id: Some(&other_text),
            ..on_path
        };
        assert_eq!(
            resolve_target(&auto, Some(to_other)).unwrap(),
            Some(Target::Client(other))
        );
        let explicit = SendOptions::new().path("/mine");
        assert_eq!(
            resolve_target(&explicit, Some(on_path)).unwrap(),
            Some(Target::Path("/mine".into()))
        );
    }

    #[test]
    fn auto_goes_to_the_sender_when_the_event_says_direct_or_names_the_sender() {
        let (me, _) = ids();
        let me_text = me.to_string();
        let direct = EventTargets {
            direct: true,
            path: Some("/a"),
            ..event(me)
        };
        assert_eq!(
            resolve_target(&SendOptions::new(), Some(direct)).unwrap(),
            Some(Target::Client(me))
        );
        let self_named = EventTargets {
            client_id: Some(&me_text),
            ..event(me)
        };
        assert_eq!(
            resolve_target(&SendOptions::new(), Some(self_named)).unwrap(),
            Some(Target::Client(me))
        );
    }

    #[test]
    fn broadcast_and_ignore_event_take_nothing_from_the_event() {
        let (me, _) = ids();
        let direct = EventTargets {
            direct: true,
            path: Some("/a"),
            ..event(me)
        };
        let broadcast = SendOptions::new().mode(Mode::Broadcast);
        assert_eq!(
            resolve_target(&broadcast, Some(direct)).unwrap(),
            Some(Target::All)
        );
        let ignoring = SendOptions::new().ignore_event();
        assert_eq!(
            resolve_target(&ignoring, Some(direct)).unwrap(),
            Some(Target::All)
        );
    }

    #[test]
    fn an_event_client_id_that_is_not_a_guid_names_nobody() {
        let (me, _) = ids();
        let junk = EventTargets {
            client_id: Some("nobody"),
            ..event(me)
        };
        assert_eq!(
            resolve_target(&SendOptions::new(), Some(junk)).unwrap(),
            None
        );
    }
}
