//! Sending signals from code: Pode's `Send-PodeSignal`.

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::event::SignalEvent;
use crate::presence::{Presence, PresenceFilter};
use crate::protocol::{resolve_target, EventTargets, Frame};
use crate::server::reply::pending_here;
use crate::server::{Command, Disconnection, Outgoing, COMMAND_QUEUE};
use crate::{ClientId, Error, Result};

/// How a signal picks its receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Client ids if given, else a user, else a group, else a path, else everyone (see
    /// [`SendOptions`]). Inside a signal route, unset targets default to the event's data
    /// (a `group` the client named reaches it only if the client is a member) and the signal
    /// goes to the sender alone when the event says `direct` or names the sender's own id.
    #[default]
    Auto,
    /// Like `Auto` but never takes anything from the event.
    Broadcast,
    /// The sender of the current event only (an error outside a signal route).
    Direct,
}

/// Targeting for [`Signals::send_with`] and [`SignalEvent::send_with`].
///
/// A send goes to the clients it names: client ids if any are given, else a user's
/// connections, else a group's members, else a path's clients, else everyone. Paths compare
/// case-insensitively; user ids and group names are compared exactly.
///
/// ```
/// use signalhub::{ClientId, Mode, SendOptions};
/// let to_path = SendOptions::new().path("/response-times");
/// let to_ops = SendOptions::new().group("ops");
/// let to_alice = SendOptions::new().user("alice"); // every connection of hers
/// let everyone = SendOptions::new().mode(Mode::Broadcast);
/// let two = SendOptions::new().client_ids([ClientId::random(), ClientId::random()]);
/// # let _ = (to_path, to_ops, to_alice, everyone, two);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendOptions {
    /// Send to the clients connected on this path (case-insensitive).
    pub path: Option<String>,
    /// Send to this client only (with [`client_ids`](SendOptions::client_ids): to all of
    /// them); every other target is then ignored.
    pub client_id: Option<ClientId>,
    /// Send to these clients (each once); every other target is then ignored.
    pub client_ids: Vec<ClientId>,
    /// Send to every connection of this user id (see [`Accepted::user`](crate::auth::Accepted::user));
    /// `group` and `path` are then ignored.
    pub user: Option<String>,
    /// Send to the members of this group; `path` is then ignored.
    pub group: Option<String>,
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

    /// Targets these clients, each once (with [`client_id`](SendOptions::client_id) too).
    pub fn client_ids(mut self, ids: impl IntoIterator<Item = ClientId>) -> SendOptions {
        self.client_ids.extend(ids);
        self
    }

    /// Targets every connection of a user.
    pub fn user(mut self, user: impl Into<String>) -> SendOptions {
        self.user = Some(user.into());
        self
    }

    /// Targets the members of a group.
    pub fn group(mut self, group: impl Into<String>) -> SendOptions {
        self.group = Some(group.into());
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
/// Get it from [`Server::signals`](crate::Server::signals) from the start: signals sent
/// before the server starts wait for it (up to 1,024; more block until it starts) and go to
/// the clients connected then; once the server has shut down, sending is
/// [`Error::NotRunning`].
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
#[derive(Clone)]
pub struct Signals {
    /// The fan-out thread's queue (it takes them once the server has started).
    commands: Sender<Command>,
}

impl Default for Signals {
    /// A handle to no server: every send is [`Error::NotRunning`].
    fn default() -> Self {
        let (commands, _) = crossbeam_channel::bounded(0);
        Signals { commands }
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl Signals {
    /// A handle and the queue it feeds, for a new server's fan-out thread.
    pub(crate) fn channel() -> (Signals, Receiver<Command>) {
        let (commands, queue) = crossbeam_channel::bounded(COMMAND_QUEUE);
        (Signals { commands }, queue)
    }

    /// The fan-out thread's queue, for the server's own threads.
    pub(crate) fn commands(&self) -> &Sender<Command> {
        &self.commands
    }

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
        let Some(target) = resolve_target(options, event.map(EventTargets::from))? else {
            return Ok(());
        };
        let value = serde_json::to_value(value)?;
        let Some(frame) = Frame::text_from_value(&value) else {
            return Ok(());
        };
        match event {
            // From a signal route: the sender's own thread, with its shortcut back to it.
            Some(event) => event.reply.send(frame, target),
            None => self.send_frame(Outgoing::new(frame, target, None)),
        }
    }

    /// Queues a signal for the fan-out thread; [`Error::NotRunning`] once the server is gone.
    /// Sent from a connection's thread (a handler), it counts in flight for that connection.
    fn send_frame(&self, outgoing: Outgoing) -> Result<()> {
        let outgoing = match pending_here() {
            Some(pending) => outgoing.pending(pending),
            None => outgoing,
        };
        self.command(Command::Signal(outgoing))
    }

    fn command(&self, command: Command) -> Result<()> {
        self.commands.send(command).map_err(|_| Error::NotRunning)
    }

    /// Puts client `id` in `group` (names compare exactly). Signals to the group sent after
    /// this (from any thread, once this returns) reach it; joining twice changes nothing, and
    /// an id not connected to this server is ignored.
    ///
    /// ```no_run
    /// # fn main() -> signalhub::Result<()> {
    /// use signalhub::{SendOptions, Server};
    /// let mut server = Server::new();
    /// let signals = server.signals();
    /// server.route("/rooms", move |event| {
    ///     if let Some(room) = event.data.message["join"].as_str() {
    ///         event.signals().join(event.client_id(), room)?;
    ///         return event.signals().send_with("someone joined", &SendOptions::new().group(room));
    ///     }
    ///     Ok(())
    /// })?;
    /// # let _ = signals;
    /// # Ok(()) }
    /// ```
    pub fn join(&self, id: ClientId, group: impl Into<String>) -> Result<()> {
        self.command(Command::Join(id, group.into()))
    }

    /// Takes client `id` out of `group`; a client not in it (or not connected) is ignored.
    pub fn leave(&self, id: ClientId, group: impl Into<String>) -> Result<()> {
        self.command(Command::Leave(id, group.into()))
    }

    /// Closes client `id` with close `code` and `reason`, after the signals routed to it
    /// before; returns whether it was connected to this server (on any node's server with
    /// the backplane, only its own clients are found). The code must be one a server may
    /// send (1000-1003, 1007-1014 or 3000-4999; else [`Error::InvalidCloseCode`]); the reason
    /// is cut to the 123 bytes a close frame holds. Waits for the fan-out thread's answer.
    pub fn disconnect(&self, id: ClientId, code: u16, reason: &str) -> Result<bool> {
        if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
            return Err(Error::InvalidCloseCode(code));
        }
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let (found, answer) = crossbeam_channel::bounded(1);
        self.command(Command::Disconnect(Disconnection {
            id,
            code,
            reason: reason[..end].to_owned(),
            found,
        }))?;
        answer.recv().map_err(|_| Error::NotRunning)
    }

    /// Who is connected to this server now, as `filter` picks (with the backplane: this
    /// node's clients only). Waits for the fan-out thread's answer.
    ///
    /// ```no_run
    /// # fn main() -> signalhub::Result<()> {
    /// use signalhub::PresenceFilter;
    /// # let signals = signalhub::Server::new().signals();
    /// for client in signals.presence(&PresenceFilter::new().group("ops"))? {
    ///     println!("{} ({:?}) since {:?}", client.client_id, client.user, client.connected_at);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn presence(&self, filter: &PresenceFilter) -> Result<Vec<Presence>> {
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.command(Command::Presence(filter.clone(), reply))?;
        answer.recv().map_err(|_| Error::NotRunning)
    }
}

impl<'a> From<&'a SignalEvent> for EventTargets<'a> {
    fn from(event: &'a SignalEvent) -> Self {
        EventTargets {
            sender: event.client.id,
            path: event.data.path.as_deref(),
            client_id: event.data.client_id.as_deref(),
            group: event.data.group.as_deref(),
            direct: event.data.direct,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_to_no_server_says_so_and_one_to_a_server_queues_before_start() {
        assert!(matches!(
            Signals::default().send("hi"),
            Err(Error::NotRunning)
        ));
        let (signals, queue) = Signals::channel();
        signals.send("early").unwrap();
        assert!(matches!(queue.try_recv(), Ok(Command::Signal(_))));
        drop(queue); // the server is gone
        assert!(matches!(signals.send("late"), Err(Error::NotRunning)));
    }
}
