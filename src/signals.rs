//! Sending signals from code: Pode's `Send-PodeSignal`.

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use crate::event::SignalEvent;
use crate::protocol::{resolve_target, EventTargets, Frame, Target};
use crate::server::{Command, Outgoing, COMMAND_QUEUE};
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
        let sender = event.map(|event| event.client.id);
        self.send_frame(Outgoing::new(frame, target, sender))
    }

    /// Sends an encoded frame as it is: a reply to the sender of an event, so a client
    /// target is that sender (it never leaves the node).
    pub(crate) fn send_encoded(&self, frame: Frame, target: Target) -> Result<()> {
        let sender = match target {
            Target::Client(id) => Some(id),
            _ => None,
        };
        self.send_frame(Outgoing::new(frame, target, sender))
    }

    /// Queues a signal for the fan-out thread; [`Error::NotRunning`] once the server is gone.
    fn send_frame(&self, outgoing: Outgoing) -> Result<()> {
        (self.commands.send(Command::Signal(outgoing))).map_err(|_| Error::NotRunning)
    }
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
