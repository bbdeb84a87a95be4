//! One named outbound connection's shared state, and what other threads may ask of it:
//! send, disconnect, reset. The connection's own thread is in [`super::worker`].
//!
//! Orders (disconnect, reset) are recorded here and the close frame goes out at once; the
//! connection's thread sees the close answered, or is cut after the close timeout, and then
//! acts on the order. A caller on another thread waits for the outcome (bounded); a call
//! from the connection's own handler returns at once, and the order is carried out when the
//! handler returns.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

use super::dial::{self, Dialed};
use super::event::WsHandler;
use super::options::Setup;
use super::stream::Link;
use crate::protocol::frame::masked as frame;
use crate::{Error, Result};

/// Where an outbound connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Connecting: the first time, after a reset, or waiting to reconnect.
    Connecting,
    /// Connected: messages can be sent.
    Connected,
    /// Closed (by a disconnect, by the server, or after reconnecting was given up); still
    /// listed, and [`Connections::reset`](super::Connections::reset) connects it again.
    Disconnected,
}

/// What the connection's thread is asked to do once the current link is closed.
pub(crate) enum Order {
    Disconnect,
    Reset { url: Option<String>, ticket: u64 },
}

struct Status {
    url: String,
    state: ConnectionState,
    /// The live link, while connected.
    link: Option<Arc<Link>>,
    order: Option<Order>,
    /// A thread (or a caller connecting) owns the connection.
    busy: bool,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
    /// Resets asked for, and the last one carried out (with its error, if it failed).
    tickets: u64,
    served: u64,
    last_error: Option<Error>,
}

/// One named connection.
pub(crate) struct Conn {
    pub(crate) name: String,
    pub(crate) setup: Setup,
    pub(crate) handler: Arc<WsHandler>,
    status: Mutex<Status>,
    changed: Condvar,
    /// Interrupts the wait between reconnect tries.
    wake_tx: Sender<()>,
    wake_rx: Receiver<()>,
}

impl Conn {
    /// A connection about to connect for the first time (owned by the caller until then).
    pub(crate) fn new(name: &str, url: &str, setup: Setup, handler: Arc<WsHandler>) -> Conn {
        let (wake_tx, wake_rx) = crossbeam_channel::bounded(1);
        Conn {
            name: name.to_owned(),
            setup,
            handler,
            status: Mutex::new(Status {
                url: url.to_owned(),
                state: ConnectionState::Connecting,
                link: None,
                order: None,
                busy: true,
                thread: None,
                thread_id: None,
                tickets: 0,
                served: 0,
                last_error: None,
            }),
            changed: Condvar::new(),
            wake_tx,
            wake_rx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `done` holds or `deadline` passes; gives the status either way.
    fn wait_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&Status) -> bool,
    ) -> MutexGuard<'_, Status> {
        let mut status = self.lock();
        while !done(&status) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            status = match self.changed.wait_timeout(status, left) {
                Ok((status, _)) => status,
                Err(e) => e.into_inner().0,
            };
        }
        status
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.lock().state
    }

    pub(crate) fn url(&self) -> String {
        self.lock().url.clone()
    }

    /// Connects (on the caller's thread) and starts the connection's thread. The caller
    /// owns the connection (`busy`); on failure it is left `Disconnected`.
    pub(crate) fn start(self: &Arc<Self>) -> Result<()> {
        let url = self.url();
        let dialed = match dial::dial(&url, &self.setup) {
            Ok(dialed) => dialed,
            Err(e) => {
                self.stopped();
                return Err(e);
            }
        };
        let link = dialed.link.clone();
        self.connected(&link);
        let conn = self.clone();
        let spawned = crate::threads::spawn(&thread_name(&self.name), move || {
            super::worker::run(conn, dialed)
        });
        match spawned {
            Ok(handle) => {
                self.lock().thread = Some(handle);
                Ok(())
            }
            Err(e) => {
                link.cut();
                self.stopped();
                Err(e)
            }
        }
    }

    /// The value as a text frame, per the content type.
    pub(crate) fn encode(&self, value: impl Serialize) -> Result<Vec<u8>> {
        let value = serde_json::to_value(value)?;
        Ok(frame::text(&self.setup.content.encode(&value)?))
    }

    /// Sends a frame on the live link.
    pub(crate) fn send(&self, frame: &[u8]) -> Result<()> {
        let link = {
            let status = self.lock();
            match (&status.link, status.state) {
                (Some(link), ConnectionState::Connected) => link.clone(),
                _ => return Err(Error::NotConnected(self.name.clone())),
            }
        };
        self.send_on(&link, frame)
    }

    /// Sends a frame on `link` (a handler's reply goes on the link its message came on).
    pub(crate) fn send_on(&self, link: &Link, frame: &[u8]) -> Result<()> {
        link.send(frame).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotConnected => Error::NotConnected(self.name.clone()),
            _ => Error::Io(e),
        })
    }

    /// Closes the connection and waits (bounded) for its thread to end; at once from the
    /// connection's own thread.
    pub(crate) fn disconnect(&self) -> Result<()> {
        if self.ask_to_stop() {
            self.wait_stopped(Instant::now() + self.setup.close_timeout);
        }
        Ok(())
    }

    /// Orders a disconnect and sends the close frame; whether the caller may wait for the
    /// thread (not from the connection's own thread). With no thread running there is
    /// nothing to order, and waiting only joins the one that ended.
    pub(crate) fn ask_to_stop(&self) -> bool {
        let (link, own) = {
            let mut status = self.lock();
            if !status.busy {
                return !is_current(status.thread.as_ref().map(|t| t.thread().id()));
            }
            status.order = Some(Order::Disconnect);
            (status.link.clone(), is_current(status.thread_id))
        };
        let _ = self.wake_tx.try_send(());
        if let Some(link) = link {
            link.begin_close(1000, "");
        }
        !own
    }

    /// Waits for the connection's thread to end: until `close_deadline` for the close
    /// handshake, then the link is cut and the thread has a connect timeout more (it may be
    /// connecting). Joins it when it ended.
    pub(crate) fn wait_stopped(&self, close_deadline: Instant) {
        let mut status = self.wait_until(close_deadline, |s| !s.busy);
        if status.busy {
            let link = status.link.clone();
            drop(status);
            if let Some(link) = link {
                link.cut();
            }
            let more = self.setup.connect_timeout + self.setup.close_timeout;
            status = self.wait_until(Instant::now() + more, |s| !s.busy);
        }
        if status.busy {
            log::warn!(
                "connection {:?}: its thread has not stopped (a handler still running?)",
                self.name
            );
            return;
        }
        let thread = status.thread.take();
        drop(status);
        join(thread);
    }

    /// Reconnects, to `url` if given; see [`Connections::reset`](super::Connections::reset).
    pub(crate) fn reset(self: &Arc<Self>, url: Option<String>) -> Result<()> {
        if let Some(url) = &url {
            dial::check_url(url)?;
        }
        let mut status = self.lock();
        if !status.busy {
            // Not running: connect again here, as `connect` does.
            if let Some(url) = url {
                status.url = url;
            }
            status.busy = true;
            status.state = ConnectionState::Connecting;
            status.order = None;
            let finished = status.thread.take();
            drop(status);
            join(finished);
            return self.start();
        }
        status.tickets += 1;
        let ticket = status.tickets;
        status.order = Some(Order::Reset { url, ticket });
        let (link, own) = (status.link.clone(), is_current(status.thread_id));
        drop(status);
        let _ = self.wake_tx.try_send(());
        if let Some(link) = &link {
            link.begin_close(1000, "");
        }
        if own {
            return Ok(());
        }
        self.wait_reset(ticket)
    }

    /// Waits (bounded) for reset `ticket` to be carried out; its outcome.
    fn wait_reset(&self, ticket: u64) -> Result<()> {
        let done = |s: &Status| s.served >= ticket || !s.busy;
        let mut status = self.wait_until(Instant::now() + self.setup.close_timeout, done);
        if !done(&status) {
            // The server did not answer the close in time: cut, then give the thread time
            // to connect again.
            let link = status.link.clone();
            drop(status);
            if let Some(link) = link {
                link.cut();
            }
            let more = self.setup.connect_timeout + self.setup.close_timeout;
            status = self.wait_until(Instant::now() + more, done);
        }
        if status.served >= ticket {
            if status.state == ConnectionState::Connected {
                return Ok(());
            }
            if let Some(error) = status.last_error.take() {
                return Err(error);
            }
        }
        Err(Error::NotConnected(self.name.clone()))
    }

    // --- For the connection's thread ---

    /// The thread has started: calls from it are its handler's.
    pub(crate) fn thread_started(&self) {
        self.lock().thread_id = Some(thread::current().id());
    }

    /// Whether an order waits.
    pub(crate) fn has_order(&self) -> bool {
        self.lock().order.is_some()
    }

    pub(crate) fn take_order(&self) -> Option<Order> {
        self.lock().order.take()
    }

    /// What comes after the link ends: `Some(true)` a reset, `Some(false)` a disconnect,
    /// `None` nothing ordered.
    pub(crate) fn ordered_reset(&self) -> Option<bool> {
        match self.lock().order {
            Some(Order::Reset { .. }) => Some(true),
            Some(Order::Disconnect) => Some(false),
            None => None,
        }
    }

    /// The link ended; the state becomes `Connecting` if the thread will connect again,
    /// else `Disconnected`.
    pub(crate) fn link_ended(&self, link: &Arc<Link>, reconnecting: bool) {
        let mut status = self.lock();
        if status.link.as_ref().is_some_and(|l| Arc::ptr_eq(l, link)) {
            status.link = None;
        }
        status.state = match reconnecting {
            true => ConnectionState::Connecting,
            false => ConnectionState::Disconnected,
        };
        self.changed.notify_all();
    }

    pub(crate) fn set_connecting(&self) {
        self.lock().state = ConnectionState::Connecting;
    }

    /// Connects to the current URL (after setting it to `url`), for reset `ticket` if any.
    /// The error's text on failure.
    pub(crate) fn attempt(
        &self,
        url: Option<String>,
        ticket: Option<u64>,
    ) -> Result<Dialed, String> {
        let url = {
            let mut status = self.lock();
            if let Some(url) = url {
                status.url = url;
            }
            status.state = ConnectionState::Connecting;
            status.url.clone()
        };
        let result = dial::dial(&url, &self.setup);
        let mut status = self.lock();
        let outcome = match result {
            Ok(dialed) => {
                status.link = Some(dialed.link.clone());
                status.state = ConnectionState::Connected;
                status.last_error = None;
                Ok(dialed)
            }
            Err(e) => {
                let text = e.to_string();
                log::debug!("connection {:?}: {text}", self.name);
                status.last_error = Some(e);
                Err(text)
            }
        };
        if let Some(ticket) = ticket {
            status.served = status.served.max(ticket);
        }
        self.changed.notify_all();
        outcome
    }

    /// Waits `delay` unless an order comes first; whether one did.
    pub(crate) fn sleep(&self, delay: Duration) -> bool {
        while self.wake_rx.try_recv().is_ok() {} // stale wake-ups, from orders already seen
        if self.has_order() {
            return true;
        }
        self.wake_rx.recv_timeout(delay).is_ok()
    }

    fn connected(&self, link: &Arc<Link>) {
        let mut status = self.lock();
        status.link = Some(link.clone());
        status.state = ConnectionState::Connected;
        self.changed.notify_all();
    }

    /// Nobody owns the connection any more: it is `Disconnected`.
    pub(crate) fn stopped(&self) {
        let mut status = self.lock();
        status.busy = false;
        status.state = ConnectionState::Disconnected;
        status.link = None;
        status.thread_id = None;
        status.order = None;
        self.changed.notify_all();
    }
}

fn is_current(thread: Option<ThreadId>) -> bool {
    thread == Some(thread::current().id())
}

fn join(thread: Option<JoinHandle<()>>) {
    if let Some(thread) = thread {
        if thread.thread().id() != thread::current().id() {
            crate::threads::join(thread);
        }
    }
}

/// `sh-out-<name>`, cut to the 15 bytes Linux keeps (on a character boundary).
fn thread_name(name: &str) -> String {
    crate::threads::thread_name("sh-out-", name)
}

#[cfg(test)]
mod tests {
    use super::thread_name;

    #[test]
    fn thread_names_fit_linux() {
        assert_eq!(thread_name("feed"), "sh-out-feed");
        assert_eq!(thread_name("a-very-long-name"), "sh-out-a-very-l");
        assert_eq!(thread_name("ééééé"), "sh-out-éééé");
        assert_eq!(thread_name("a\0b"), "sh-out-a?b");
    }
}
