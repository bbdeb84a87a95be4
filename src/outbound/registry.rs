//! [`Connections`]: the registry of named outbound connections.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

use super::connection::{Conn, ConnectionState};
use super::event::WsEvent;
use super::options::{ConnectOptions, Setup};
use crate::protocol::frame::masked as frame;
use crate::{Error, Result};

/// Named outbound WebSocket connections: Pode's `Connect-PodeWebSocket`,
/// `Send-PodeWebSocket`, `Disconnect-PodeWebSocket` and `Reset-PodeWebSocket`.
///
/// Each connection runs its blocking read loop on its own thread, `sh-out-<name>`, and
/// calls its handler there with a [`WsEvent`] per message. Sending, from any thread, never
/// waits for that read.
///
/// ## About threads and cloning
///
/// `Connections` is `Send + Sync` and cheap to clone (an `Arc` inside): clones share the same
/// connections, so one can be captured by HTTP routes, signal routes, timers and handlers of
/// other connections, with or without a running [`Server`](crate::Server). Calls from a
/// connection's own handler never wait for that connection (a reset or disconnect from
/// there takes effect when the handler returns). [`shutdown`](Connections::shutdown) closes
/// every connection and waits for their threads (bounded); dropping the last clone does the
/// same (a handler that holds a clone keeps the registry alive until `shutdown`).
///
/// ```no_run
/// use signalhub::outbound::{ConnectOptions, Connections, WsData};
///
/// # fn main() -> signalhub::Result<()> {
/// let clients = Connections::new();
/// clients.connect("feed", "ws://127.0.0.1:8091/messages", ConnectOptions::new(), |event| {
///     if let WsData::Json(value) = &event.data {
///         println!("{}: {value}", event.name);
///         event.reply(serde_json::json!({ "message": "thanks" }))?;
///     }
///     Ok(())
/// })?;
/// clients.send("feed", serde_json::json!({ "message": "hello" }))?;
/// clients.reset("feed", Some("ws://127.0.0.1:8092/messages"))?;
/// clients.disconnect("feed")?;
/// clients.remove("feed")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct Connections {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    conns: Mutex<BTreeMap<String, Arc<Conn>>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let conns = std::mem::take(&mut *self.lock());
        stop_all(conns.into_values().collect());
    }
}

impl Connections {
    /// An empty registry.
    pub fn new() -> Connections {
        Connections::default()
    }

    /// Connects to `url` (`ws://` or `wss://`) under `name`, and returns once connected.
    /// `handler` then runs on the connection's thread for every message received.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateConnection`] if `name` is taken; [`Error::InvalidUrl`];
    /// [`Error::InvalidConfig`] for bad options; [`Error::Tls`] for an unusable CA file;
    /// [`Error::Connect`] when the server cannot be reached in time (TCP, TLS, upgrade);
    /// [`Error::Refused`] when it answers the upgrade with another HTTP status. On error no
    /// entry is left behind.
    pub fn connect<F>(
        &self,
        name: &str,
        url: &str,
        options: ConnectOptions,
        handler: F,
    ) -> Result<()>
    where
        F: Fn(&WsEvent) -> Result<()> + Send + Sync + 'static,
    {
        super::dial::check_url(url)?;
        let setup = Setup::new(options)?;
        let conn = Arc::new(Conn::new(name, url, setup, Arc::new(handler)));
        {
            let mut conns = self.inner.lock();
            if conns.contains_key(name) {
                return Err(Error::DuplicateConnection(name.to_owned()));
            }
            conns.insert(name.to_owned(), conn.clone());
        }
        conn.start().inspect_err(|_| {
            let mut conns = self.inner.lock();
            if conns.get(name).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                conns.remove(name);
            }
        })
    }

    fn get(&self, name: &str) -> Result<Arc<Conn>> {
        let conns = self.inner.lock();
        let conn = conns.get(name).cloned();
        conn.ok_or_else(|| Error::UnknownConnection(name.to_owned()))
    }

    /// Sends `value` on connection `name` in a text frame: a string as it is, anything else
    /// written per the connection's content type (compact JSON by default).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConnection`]; [`Error::NotConnected`] while it is connecting or after
    /// it closed; [`Error::Encode`] for a value the content type cannot hold;
    /// [`Error::Io`] when the write fails (the connection is then dropped).
    pub fn send(&self, name: &str, value: impl Serialize) -> Result<()> {
        let conn = self.get(name)?;
        let frame = conn.encode(value)?;
        conn.send(&frame)
    }

    /// Sends `bytes` on connection `name` in a binary frame.
    ///
    /// # Errors
    ///
    /// As [`send`](Connections::send).
    pub fn send_binary(&self, name: &str, bytes: impl AsRef<[u8]>) -> Result<()> {
        self.get(name)?.send(&frame::binary(bytes.as_ref()))
    }

    /// Closes connection `name` (close code 1000) and waits for the server's reply, at most
    /// the close timeout, then for its thread. The entry stays, `Disconnected`;
    /// [`reset`](Connections::reset) connects it again. Closing an already closed connection
    /// does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConnection`].
    pub fn disconnect(&self, name: &str) -> Result<()> {
        self.get(name)?.disconnect()
    }

    /// Closes connection `name`, as [`disconnect`](Connections::disconnect), and forgets it:
    /// the name is free at once.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConnection`].
    pub fn remove(&self, name: &str) -> Result<()> {
        let conn = self.inner.lock().remove(name);
        let conn = conn.ok_or_else(|| Error::UnknownConnection(name.to_owned()))?;
        conn.disconnect()
    }

    /// Closes connection `name` and connects again, to `url` when given (it becomes the
    /// connection's URL), else to the same one; returns once connected. Works on a
    /// `Disconnected` connection too. From the connection's own handler it returns at once
    /// and takes effect when the handler returns.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConnection`]; [`Error::InvalidUrl`] (nothing is changed); the
    /// connect's error when connecting again fails (the connection is then
    /// `Disconnected`, or `Connecting` if its reconnect policy keeps trying).
    pub fn reset(&self, name: &str, url: Option<&str>) -> Result<()> {
        self.get(name)?.reset(url.map(str::to_owned))
    }

    /// The state of connection `name`, if there is one.
    pub fn state(&self, name: &str) -> Option<ConnectionState> {
        self.get(name).ok().map(|conn| conn.state())
    }

    /// The URL of connection `name` (the last one it was reset to), if there is one.
    pub fn url(&self, name: &str) -> Option<String> {
        self.get(name).ok().map(|conn| conn.url())
    }

    /// The names of every connection (one still making its first connect included),
    /// sorted.
    pub fn names(&self) -> Vec<String> {
        self.inner.lock().keys().cloned().collect()
    }

    /// Closes and forgets every connection; waits for their close replies (all at once,
    /// bounded by the close timeout) and their threads.
    pub fn shutdown(&self) {
        let conns = std::mem::take(&mut *self.inner.lock());
        stop_all(conns.into_values().collect());
    }
}

/// Closes every connection at once, then waits for each.
fn stop_all(conns: Vec<Arc<Conn>>) {
    let start = Instant::now();
    let waiting: Vec<_> = conns.into_iter().filter(|c| c.ask_to_stop()).collect();
    for conn in waiting {
        conn.wait_stopped(start + conn.setup.close_timeout);
    }
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("names", &self.names())
            .finish()
    }
}
