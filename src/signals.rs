//! Sending signals from code: Pode's `Send-PodeSignal`.

use std::sync::{Arc, OnceLock};

use crossbeam_channel::Sender;
use serde::Serialize;

use crate::event::SignalEvent;
use crate::server::fanout::{Command, Outgoing, Target};
use crate::signal::Frame;
use crate::{ClientId, Error, Result};

/// How a signal picks its receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `client_id` if given, else `path`, else everyone. Inside a signal route, unset targets
    /// default to the event's data and the signal goes to the sender alone when the event says
    /// `direct` or names the sender's own id.
    #[default]
    Auto,
    /// Like `Auto` but never takes anything from the event.
    Broadcast,
    /// The sender of the current event only (an error outside a signal route).
    Direct,
}

/// Targeting for [`Signals::send_with`] and [`SignalEvent::send_with`].
///
/// ```
/// use signalhub::{Mode, SendOptions};
/// let to_path = SendOptions::new().path("/response-times");
/// let everyone = SendOptions::new().mode(Mode::Broadcast);
/// # let _ = (to_path, everyone);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// Send to the clients connected on this path (case-insensitive).
    pub path: Option<String>,
    /// Send to this client only; `path` is then ignored.
    pub client_id: Option<ClientId>,
    /// How receivers are picked.
    pub mode: Mode,
    /// Inside a signal route: do not default targets from the event.
    pub ignore_event: bool,
}

impl SendOptions {
    /// Everyone, mode `Auto`.
    pub fn new() -> SendOptions {
        SendOptions::default()
    }

    /// Targets the clients on `path`.
    pub fn path(mut self, path: impl Into<String>) -> SendOptions {
        self.path = Some(path.into());
        self
    }

    /// Targets one client.
    pub fn client_id(mut self, id: ClientId) -> SendOptions {
        self.client_id = Some(id);
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> SendOptions {
        self.mode = mode;
        self
    }

    /// Turns off defaulting from the current event.
    pub fn ignore_event(mut self) -> SendOptions {
        self.ignore_event = true;
        self
    }
}

/// A cheap, cloneable handle that sends signals to connected clients from anywhere: HTTP
/// routes, signal routes, timers, other threads. It is `Send + Sync`.
///
/// Get it from [`Server::signals`](crate::Server::signals) before or after start; sending
/// before the server has started (or after it stopped) is [`Error::NotRunning`].
///
/// ```no_run
/// # fn main() -> signalhub::Result<()> {
/// use signalhub::{Endpoint, SendOptions, Server};
/// let mut server = Server::new();
/// server.endpoint(Endpoint::ws("127.0.0.1:0"))?;
/// let signals = server.signals();
/// let handle = server.start()?;
/// signals.send(serde_json::json!({ "ResponseTimes": [123, 101, 104] }))?;
/// signals.send_with("hello /chat", &SendOptions::new().path("/chat"))?;
/// handle.shutdown();
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Signals {
    commands: Arc<OnceLock<Sender<Command>>>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("started", &self.commands.get().is_some())
            .finish()
    }
}

impl Signals {
    /// Sends `value` to every connected client. A string goes out raw, any other value as
    /// compact JSON, and `null` or `""` sends nothing.
    pub fn send(&self, value: impl Serialize) -> Result<()> {
        self.send_with(value, &SendOptions::default())
    }

    /// Sends `value` to the receivers `options` pick.
    pub fn send_with(&self, value: impl Serialize, options: &SendOptions) -> Result<()> {
        self.send_in_context(value, options, None)
    }

    pub(crate) fn send_in_context(
        &self,
        value: impl Serialize,
        options: &SendOptions,
        event: Option<&SignalEvent>,
    ) -> Result<()> {
        let commands = self.commands.get().ok_or(Error::NotRunning)?;
        let Some(target) = resolve_target(options, event.map(EventTargets::from))? else {
            return Ok(());
        };
        let value = serde_json::to_value(value)?;
        let Some(frame) = Frame::text_from_value(&value) else {
            return Ok(());
        };
        let sender = event.map(|event| event.client.id);
        self.send_frame(commands, Outgoing::new(frame, target, sender))
    }

    /// Sends an encoded frame as it is: a reply to the sender of an event, so a client
    /// target is that sender (it never leaves the node).
    pub(crate) fn send_encoded(&self, frame: Frame, target: Target) -> Result<()> {
        let commands = self.commands.get().ok_or(Error::NotRunning)?;
        let sender = match target {
            Target::Client(id) => Some(id),
            _ => None,
        };
        self.send_frame(commands, Outgoing::new(frame, target, sender))
    }

    pub(crate) fn send_frame(&self, commands: &Sender<Command>, outgoing: Outgoing) -> Result<()> {
        commands
            .send(Command::Signal(outgoing))
            .map_err(|_| Error::NotRunning)
    }

    /// Connects the handle to a started server's fan-out thread.
    pub(crate) fn attach(&self, commands: Sender<Command>) -> Result<()> {
        self.commands
            .set(commands)
            .map_err(|_| Error::InvalidConfig("server already started".into()))
    }
}

/// The parts of an event that targeting looks at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventTargets<'a> {
    pub(crate) sender: ClientId,
    pub(crate) path: Option<&'a str>,
    pub(crate) client_id: Option<&'a str>,
    pub(crate) direct: bool,
}

impl<'a> From<&'a SignalEvent> for EventTargets<'a> {
    fn from(event: &'a SignalEvent) -> Self {
        EventTargets {
            sender: event.client.id,
            path: event.data.path.as_deref(),
            client_id: event.data.client_id.as_deref(),
            direct: event.data.direct,
        }
    }
}

/// Where a signal goes (SPEC 8), or `None` when it names nobody (an id that is not a GUID).
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
    let event = event.filter(|_| options.mode == Mode::Auto && !options.ignore_event);
    let Some(event) = event else {
        return Ok(Some(explicit_target(
            options.client_id,
            options.path.as_deref(),
        )));
    };
    if event.direct {
        return Ok(Some(Target::Client(event.sender)));
    }
    let client_id = match (options.client_id, event.client_id) {
        (Some(id), _) => Some(id),
        (None, Some(text)) => match text.parse::<ClientId>() {
            Ok(id) => Some(id),
            Err(_) => return Ok(None),
        },
        (None, None) => None,
    };
    if client_id == Some(event.sender) {
        return Ok(Some(Target::Client(event.sender)));
    }
    let path = options.path.as_deref().or(event.path);
    Ok(Some(explicit_target(client_id, path)))
}

fn explicit_target(client_id: Option<ClientId>, path: Option<&str>) -> Target {
    match (client_id, path) {
        (Some(id), _) => Target::Client(id),
        (None, Some(path)) => Target::Path(path.to_lowercase()),
        (None, None) => Target::All,
    }
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

    #[test]
    fn sending_before_start_is_an_error() {
        assert!(matches!(
            Signals::default().send("hi"),
            Err(Error::NotRunning)
        ));
    }
}
