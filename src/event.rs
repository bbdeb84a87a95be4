//! What user code is handed: connected clients and the signals they send.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use crate::server::reply::ReplyPath;
use crate::signals::{SendOptions, Signals};
use crate::Pairs;
use crate::{ClientId, Result};

/// The kind of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// WebSocket connections.
    Ws,
    /// WebSocket connections over TLS.
    Wss,
    /// Pages and HTTP routes.
    Http,
    /// Pages and HTTP routes over TLS.
    Https,
}

impl Protocol {
    /// The lowercase scheme: `"ws"`, `"wss"`, `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ws => "ws",
            Protocol::Wss => "wss",
            Protocol::Http => "http",
            Protocol::Https => "https",
        }
    }

    /// Whether it is spoken over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Wss | Protocol::Https)
    }
}

/// An endpoint as it is listening: its name, the address it is bound to and its protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// The endpoint's name (the one given, or `"ws-N"` by position).
    pub name: String,
    /// The bound address (with the real port when port 0 was asked for).
    pub address: SocketAddr,
    /// The protocol it speaks.
    pub protocol: Protocol,
}

impl EndpointInfo {
    /// The URL clients connect to, e.g. `ws://127.0.0.1:8091`. An unspecified bind address
    /// (`*`) is shown as the loopback address of the same family.
    pub fn url(&self) -> String {
        let mut addr = self.address;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("{}://{addr}", self.protocol.as_str())
    }
}

/// A connected WebSocket client: who it is, where it connected, and the upgrade request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The id the server gave it.
    pub id: ClientId,
    /// The connection's path: the request path without its query string, percent-decoded
    /// (case as sent; routing compares case-insensitively).
    pub path: String,
    /// The endpoint it connected to.
    pub endpoint: Arc<EndpointInfo>,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The upgrade request's headers, in order, names as sent.
    pub headers: Pairs,
    /// The upgrade request's query string, decoded, in order.
    pub query: Pairs,
    /// The subprotocol agreed on in the handshake (the first of the server's that the client
    /// offered), if any.
    pub subprotocol: Option<String>,
    /// The user id the [`authorize`](crate::Server::authorize) hook gave it, if any: sends
    /// to this user reach all of that user's connections.
    pub user: Option<String>,
    /// When its upgrade was accepted.
    pub connected_at: SystemTime,
    /// What the authorize hook attached to it.
    pub(crate) data: Option<ClientData>,
    /// Its groups now, kept by the fan-out thread as it applies joins and leaves.
    pub(crate) groups: Arc<GroupList>,
}

#[cfg(test)]
impl ClientInfo {
    /// A client on `path` of `user`, in `groups`, from 127.0.0.1, for tests without sockets.
    pub(crate) fn for_tests(
        id: ClientId,
        path: &str,
        user: Option<&str>,
        groups: &[&str],
    ) -> Arc<ClientInfo> {
        let address: SocketAddr = ([127, 0, 0, 1], 1).into();
        Arc::new(ClientInfo {
            id,
            path: path.to_owned(),
            endpoint: Arc::new(EndpointInfo {
                name: "ws".into(),
                address,
                protocol: Protocol::Ws,
            }),
            remote_addr: address,
            headers: Pairs::default(),
            query: Pairs::default(),
            subprotocol: None,
            user: user.map(str::to_owned),
            connected_at: SystemTime::now(),
            data: None,
            groups: Arc::new(GroupList::new(
                groups.iter().map(|g| g.to_string()).collect(),
            )),
        })
    }
}

/// What an authorize hook attached to a connection, of the hook's own type.
#[derive(Clone)]
pub(crate) struct ClientData(pub(crate) Arc<dyn Any + Send + Sync>);

impl std::fmt::Debug for ClientData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientData(..)")
    }
}

/// A client's groups as handlers see them. Only the fan-out thread writes it, in step with
/// the registry (which routes by it), so a handler sees every join and leave routed before
/// the message it is handling.
#[derive(Debug, Default)]
pub(crate) struct GroupList(Mutex<Vec<String>>);

impl GroupList {
    pub(crate) fn new(groups: Vec<String>) -> GroupList {
        GroupList(Mutex::new(groups))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a join (once).
    pub(crate) fn join(&self, group: &str) {
        let mut groups = self.lock();
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
    }

    /// Notes a leave.
    pub(crate) fn leave(&self, group: &str) {
        self.lock().retain(|g| g != group);
    }
}

impl ClientInfo {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_ignore_case(name)
    }

    /// The first query parameter with this name (case-sensitive, as in URLs).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name)
    }

    /// The groups it is in now, in the order joined.
    pub fn groups(&self) -> Vec<String> {
        self.groups.lock().clone()
    }

    /// Whether it is in `group` now.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.lock().iter().any(|g| g == group)
    }

    /// What the [`authorize`](crate::Server::authorize) hook attached with
    /// [`Accepted::data`](crate::auth::Accepted::data), if it is a `T`.
    ///
    /// ```
    /// use signalhub::auth::{Accepted, UpgradeRequest};
    ///
    /// struct Account { plan: &'static str }
    ///
    /// let mut server = signalhub::Server::new();
    /// server.authorize(|_request: &UpgradeRequest| {
    ///     Ok(Accepted::user("alice").data(Account { plan: "pro" }))
    /// });
    /// server.on_connect("*", |client| {
    ///     if let Some(account) = client.data::<Account>() {
    ///         log::info!("{} is on the {} plan", client.id, account.plan);
    ///     }
    /// });
    /// ```
    pub fn data<T: Any>(&self) -> Option<&T> {
        self.data.as_ref()?.0.downcast_ref()
    }
}

/// A message exactly as a client sent it, for [`Server::on_message`](crate::Server::on_message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMessage<'a> {
    /// A text frame (always valid UTF-8).
    Text(&'a str),
    /// A binary frame, any bytes.
    Binary(&'a [u8]),
}

/// Handed to an [`on_message`](crate::Server::on_message) handler for every message on a
/// matching connection, before (and instead of) any JSON parsing: for protocols of your own.
#[derive(Debug)]
#[non_exhaustive]
pub struct MessageEvent<'a> {
    /// The sending client.
    pub client: &'a Arc<ClientInfo>,
    /// The message as sent.
    pub message: RawMessage<'a>,
    pub(crate) signals: &'a Signals,
    /// The way back to the sender that skips the fan-out when it can.
    pub(crate) reply: &'a Arc<ReplyPath>,
}

impl MessageEvent<'_> {
    /// Sends a text frame back to the sender only.
    pub fn reply_text(&self, text: &str) -> Result<()> {
        self.reply(crate::protocol::Frame::text(text.as_bytes()))
    }

    /// Sends a binary frame back to the sender only.
    pub fn reply_binary(&self, bytes: &[u8]) -> Result<()> {
        self.reply(crate::protocol::Frame::binary(bytes))
    }

    /// The server's [`Signals`] handle, to send to others.
    pub fn signals(&self) -> &Signals {
        self.signals
    }

    fn reply(&self, frame: crate::protocol::Frame) -> Result<()> {
        let target = crate::protocol::Target::Client(self.client.id);
        self.reply.send(frame, target)
    }
}

/// What a client's message said: `{"message": ..., "path": ..., "clientId": ..., "group": ...,
/// "direct": ...}`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SignalData {
    /// The message, any JSON value. Numbers are held as `serde_json` holds them (`1.50` is
    /// `1.5`); a message whose number no `Value` can hold (such as `1e400`) is logged and
    /// dropped before the route runs. (The automatic re-send, with no route, keeps the
    /// client's number text exactly.)
    pub message: Value,
    /// The path the client asked to send to, if any.
    pub path: Option<String>,
    /// The client id the client asked to send to, if any (as sent: it may name nobody).
    pub client_id: Option<String>,
    /// The group the client asked to send to, if any (reached only when the client is a
    /// member).
    pub group: Option<String>,
    /// Whether the client asked for the message to come back to itself only.
    pub direct: bool,
}

/// Handed to a signal route's handler for each message a client sends on a matching path:
/// Pode's `$SignalEvent`.
///
/// Send replies with [`SignalEvent::send`] (Pode's `Send-PodeSignal` inside a route): unset
/// targets default to the event's data.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignalEvent {
    /// The parsed message.
    pub data: SignalData,
    /// The sending client: id, connection path, endpoint, upgrade headers and query.
    pub client: Arc<ClientInfo>,
    /// The route pattern that matched, as registered.
    pub route: String,
    /// When the message was received.
    pub timestamp: SystemTime,
    pub(crate) signals: Signals,
    /// The way back to the sender that skips the fan-out when it can.
    pub(crate) reply: Arc<ReplyPath>,
}

impl SignalEvent {
    /// The connection's path (not the `path` inside the message).
    pub fn path(&self) -> &str {
        &self.client.path
    }

    /// The sender's client id.
    pub fn client_id(&self) -> ClientId {
        self.client.id
    }

    /// The endpoint the sender is connected to.
    pub fn endpoint(&self) -> &EndpointInfo {
        &self.client.endpoint
    }

    /// The server's [`Signals`] handle.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Sends `value` with [`Mode::Auto`](crate::Mode::Auto): to the event's `clientId` if it
    /// gave one, else to its `group` (if the sender is a member), else to its `path`, else to
    /// everyone; to the sender alone when the event said
    /// `direct` or named the sender's own id. A string goes out raw, `null` or `""` sends nothing.
    pub fn send(&self, value: impl Serialize) -> Result<()> {
        self.send_with(value, &SendOptions::default())
    }

    /// Sends `value` with explicit options; unset targets still default to the event's data
    /// unless `options.ignore_event` is set. [`Mode::Direct`](crate::Mode::Direct) sends to the
    /// sender only.
    pub fn send_with(&self, value: impl Serialize, options: &SendOptions) -> Result<()> {
        self.signals.send_in_context(value, options, Some(self))
    }
}
