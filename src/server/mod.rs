//! The WebSocket signal server: configuration, start, and the running server's handle.
//!
//! Threads, and who owns what:
//! - one door thread per port ([`door`]): accepts, completes WebSocket handshakes, and owns
//!   every HTTP connection (reads requests whole, writes replies without blocking);
//! - one thread per WebSocket connection ([`connection`]): blocking reads, runs signal
//!   routes;
//! - the fan-out thread ([`fanout`]): owns the registry of clients and routes every signal;
//! - writer threads ([`writer`]): share the writes of big batches with the fan-out thread;
//! - the drain thread ([`drain`]): flushes what sockets could not take at once;
//! - HTTP worker threads (`crate::http`): answer complete requests handed over by the doors.

pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod door;
pub(crate) mod drain;
pub(crate) mod fanout;
mod handle;
pub(crate) mod handshake;
pub(crate) mod lifecycle;
pub(crate) mod limits;
pub(crate) mod memory;
pub(crate) mod outbox;
pub(crate) mod registry;
pub(crate) mod routes;
pub(crate) mod writer;

#[cfg(test)]
mod properties;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crossbeam_channel::Sender;
use tungstenite::protocol::WebSocketConfig;

use crate::event::{ClientInfo, EndpointInfo, Protocol, SignalEvent};
use crate::http::{Assets, HttpApp, WebEvent, WebResponse};
use crate::metrics::{Metrics, ServerMetrics};
use crate::schedule::Scheduler;
use crate::signals::Signals;
use crate::{Error, Result};
use config::Endpoint;
pub use config::ServerConfig;
use drain::DrainHandle;
pub use handle::ServerHandle;
use limits::Connections;
use routes::Routes;

/// What the rest of the crate sends the fan-out thread: [`Signals`] and the backplane.
pub(crate) use fanout::{Command, Outgoing};

/// What every server thread shares.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) routes: Routes,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) signals: Signals,
    pub(crate) commands: Sender<Command>,
    pub(crate) drain: DrainHandle,
    pub(crate) connections: Arc<Connections>,
    pub(crate) ws_config: WebSocketConfig,
}

/// A signal server being set up: endpoints, signal routes and hooks. [`Server::start`] runs it.
///
/// ```
/// use signalhub::{Endpoint, Server};
///
/// # fn main() -> signalhub::Result<()> {
/// let mut server = Server::new();
/// server.endpoint(Endpoint::ws("127.0.0.1:0"))?;
/// // Pode's [date] route: reply with the time, everything else goes where the client asked.
/// server.route("/messages", |event| {
///     let mut message = event.data.message.clone();
///     if message.as_str().is_some_and(|m| m.eq_ignore_ascii_case("[date]")) {
///         message = format!("{:?}", std::time::SystemTime::now()).into();
///     }
///     event.send(message)
/// })?;
/// let handle = server.start()?;
/// println!("listening on {}", handle.endpoints()[0].url());
/// handle.shutdown();
/// # Ok(()) }
/// ```
pub struct Server {
    config: ServerConfig,
    endpoints: Vec<Endpoint>,
    routes: Routes,
    http: HttpApp,
    signals: Signals,
    metrics: Arc<Metrics>,
    /// Timers and schedules (`Server::timer`, `Server::schedule`: see `crate::schedule`).
    pub(crate) scheduler: Scheduler,
}

impl Default for Server {
    fn default() -> Self {
        Server::with_config(ServerConfig::default())
    }
}

impl Server {
    /// A server with the default [`ServerConfig`].
    pub fn new() -> Server {
        Server::default()
    }

    /// A server with the given limits and timings.
    pub fn with_config(config: ServerConfig) -> Server {
        let signals = Signals::default();
        Server {
            config,
            endpoints: Vec::new(),
            routes: Routes::default(),
            http: HttpApp::new(signals.clone()),
            scheduler: Scheduler::pending(signals.clone()),
            signals,
            metrics: Arc::default(),
        }
    }

    /// The configuration, to change before start.
    pub fn config_mut(&mut self) -> &mut ServerConfig {
        &mut self.config
    }

    /// Adds an endpoint. Names must be unique; unnamed endpoints are called `ws-N`, `wss-N`,
    /// `http-N` or `https-N` by position. A `Ws` and an `Http` endpoint on the same address
    /// share its port, as do a `Wss` and an `Https` one.
    pub fn endpoint(&mut self, endpoint: Endpoint) -> Result<&mut Server> {
        endpoint.socket_addr()?;
        if let Some(names) = &endpoint.subprotocols {
            config::check_subprotocols(names)?;
        }
        let mut endpoint = endpoint;
        let name = endpoint
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{}", endpoint.protocol.as_str(), self.endpoints.len()));
        if self
            .endpoints
            .iter()
            .any(|e| e.name.as_deref() == Some(name.as_str()))
        {
            return Err(Error::DuplicateEndpoint(name));
        }
        endpoint.name = Some(name);
        self.endpoints.push(endpoint);
        Ok(self)
    }

    /// Adds a signal route for connections on `path` (exact, or with `*` wildcards;
    /// case-insensitive). Its handler runs on the sending connection's thread for every
    /// message, instead of the automatic re-send; it decides what to send. The same path
    /// twice is [`Error::DuplicateRoute`].
    pub fn route<F>(&mut self, path: &str, handler: F) -> Result<&mut Server>
    where
        F: Fn(&SignalEvent) -> Result<()> + Send + Sync + 'static,
    {
        self.routes.add(path, None, Arc::new(handler))?;
        Ok(self)
    }

    /// Like [`Server::route`], for connections on the named endpoint only.
    pub fn route_on<F>(&mut self, endpoint: &str, path: &str, handler: F) -> Result<&mut Server>
    where
        F: Fn(&SignalEvent) -> Result<()> + Send + Sync + 'static,
    {
        self.routes.add(path, Some(endpoint), Arc::new(handler))?;
        Ok(self)
    }

    /// Runs `hook` on the new connection's thread when a client connects on a path matching
    /// `pattern` (`*` wildcards), once it can receive signals.
    pub fn on_connect<F>(&mut self, pattern: &str, hook: F) -> &mut Server
    where
        F: Fn(&ClientInfo) + Send + Sync + 'static,
    {
        self.routes.add_connect_hook(pattern, Arc::new(hook));
        self
    }

    /// Takes every message on connections whose path matches `pattern` (`*` wildcards)
    /// exactly as sent, text or binary, before and instead of the JSON protocol (no signal
    /// route or automatic re-send runs for them): for a protocol of your own. The handler runs
    /// on the connection's thread; [`MessageEvent::reply_text`](crate::MessageEvent) answers
    /// the sender.
    ///
    /// ```
    /// use signalhub::{RawMessage, Server};
    /// let mut server = Server::new();
    /// server.on_message("/echo", |event| match event.message {
    ///     RawMessage::Text(text) => event.reply_text(text),
    ///     RawMessage::Binary(bytes) => event.reply_binary(bytes),
    /// });
    /// ```
    pub fn on_message<F>(&mut self, pattern: &str, handler: F) -> &mut Server
    where
        F: Fn(&crate::MessageEvent<'_>) -> Result<()> + Send + Sync + 'static,
    {
        self.routes.add_message_handler(pattern, Arc::new(handler));
        self
    }

    /// Runs `hook` when a client on a matching path has gone: signals sent from then on no
    /// longer reach it. (Metrics catch up a moment later: the fan-out thread counts the
    /// departure when it gets to it.)
    pub fn on_disconnect<F>(&mut self, pattern: &str, hook: F) -> &mut Server
    where
        F: Fn(&ClientInfo) + Send + Sync + 'static,
    {
        self.routes.add_disconnect_hook(pattern, Arc::new(hook));
        self
    }

    /// Adds an HTTP route (Pode's `Add-PodeRoute`): `method` (`"GET"`, `"POST"`, ...) and an
    /// exact path (case-insensitive), served on every `Http` endpoint. The same method and
    /// path twice is [`Error::DuplicateRoute`].
    ///
    /// ```
    /// use signalhub::{Server, WebResponse};
    /// # fn main() -> signalhub::Result<()> {
    /// let mut server = Server::new();
    /// server.http_route("POST", "/broadcast", |event| {
    ///     let message = event.data.get("message").unwrap_or_default();
    ///     event.signals().send(serde_json::json!({ "Message": message }))?;
    ///     Ok(WebResponse::json(serde_json::json!({ "sent": true })))
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn http_route<F>(&mut self, method: &str, path: &str, handler: F) -> Result<&mut Server>
    where
        F: Fn(&WebEvent) -> Result<WebResponse> + Send + Sync + 'static,
    {
        self.http.add_route(method, path, Arc::new(handler))?;
        Ok(self)
    }

    /// Where views come from ([`WebResponse::view`]`("index")` is `index.html` there).
    pub fn views(&mut self, views: Assets) -> &mut Server {
        self.http.set_views(views);
        self
    }

    /// Where public files come from: served at `/` with their content types.
    pub fn public(&mut self, public: Assets) -> &mut Server {
        self.http.set_public(public);
        self
    }

    /// Reads the server's counters; usable before start (they stay at zero until then).
    pub fn metrics(&self) -> ServerMetrics {
        ServerMetrics(self.metrics.clone())
    }

    /// The handle that sends signals; it works once the server has started.
    pub fn signals(&self) -> Signals {
        self.signals.clone()
    }

    /// Binds every endpoint and starts the server's threads. Returns once every endpoint is
    /// listening.
    pub fn start(self) -> Result<ServerHandle> {
        self.config.validate()?;
        if self.endpoints.is_empty() {
            return Err(Error::InvalidConfig("no endpoints to listen on".into()));
        }
        let names: Vec<&str> = self
            .endpoints
            .iter()
            .filter_map(|e| e.name.as_deref())
            .collect();
        if let Some(unknown) = self.routes.endpoint_names().find(|n| !names.contains(n)) {
            return Err(Error::UnknownEndpoint(unknown.to_owned()));
        }
        let ports = bind_ports(&self.endpoints)?;
        handle::start(self, ports)
    }
}

/// One listening socket and what it serves: WebSocket upgrades, HTTP, or both.
pub(crate) struct Port {
    pub(crate) socket: TcpListener,
    /// The `Ws` or `Wss` endpoint on this port, if any.
    pub(crate) websocket: Option<Arc<EndpointInfo>>,
    /// The `Http` or `Https` endpoint on this port, if any.
    pub(crate) http: Option<Arc<EndpointInfo>>,
    /// On a TLS port (Wss, Https): its TLS configuration.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// The certificate `tls` was made from, to compare with a second endpoint's.
    certificate: Option<crate::tls::Certificate>,
    /// The WebSocket endpoint's own subprotocols, if it names any.
    pub(crate) subprotocols: Option<Vec<String>>,
}

/// Binds one socket per distinct address; a WebSocket and an HTTP endpoint on the same
/// address (with a non-zero port), or joined by [`Endpoint::share_port_with`], share it: `Ws`
/// with `Http`, `Wss` with `Https` (one certificate for both). Two endpoints of the same kind
/// on one port, or a TLS endpoint with a plain one, are an error.
fn bind_ports(endpoints: &[Endpoint]) -> Result<Vec<Port>> {
    let mut ports: Vec<(SocketAddr, Port)> = Vec::new();
    let mut port_of: Vec<(String, usize)> = Vec::new();
    for endpoint in sharing_last(endpoints) {
        let wanted = endpoint.socket_addr()?;
        let shared = match &endpoint.share_with {
            Some(name) => Some(
                port_of
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, index)| *index)
                    .ok_or_else(|| Error::UnknownEndpoint(name.clone()))?,
            ),
            None if wanted.port() == 0 => None,
            None => ports.iter().position(|(addr, _)| *addr == wanted),
        };
        let index = match shared {
            Some(index) => index,
            None => {
                let socket = door::bind(wanted).map_err(|source| Error::Bind {
                    address: endpoint.address.clone(),
                    source,
                })?;
                let port = Port {
                    socket,
                    websocket: None,
                    http: None,
                    tls: None,
                    certificate: None,
                    subprotocols: None,
                };
                ports.push((wanted, port));
                ports.len() - 1
            }
        };
        port_of.push((endpoint.name.clone().unwrap_or_default(), index));
        let port = &mut ports[index].1;
        let info = Arc::new(EndpointInfo {
            name: endpoint.name.clone().unwrap_or_default(),
            address: port.socket.local_addr()?,
            protocol: endpoint.protocol,
        });
        let sharing = port.websocket.is_some() || port.http.is_some();
        if sharing && port.certificate != endpoint.certificate {
            return Err(Error::InvalidConfig(format!(
                "endpoints sharing {} must both use TLS with the same certificate, or neither",
                endpoint.address
            )));
        }
        if let (Some(certificate), None) = (&endpoint.certificate, &port.tls) {
            port.tls = Some(crate::tls::server_config(certificate)?);
            port.certificate = Some(certificate.clone());
        }
        let slot = match endpoint.protocol {
            Protocol::Http | Protocol::Https => &mut port.http,
            Protocol::Ws | Protocol::Wss => {
                port.subprotocols = endpoint.subprotocols.clone();
                &mut port.websocket
            }
        };
        if slot.replace(info).is_some() {
            return Err(Error::InvalidConfig(format!(
                "two {} endpoints on {}",
                endpoint.protocol.as_str(),
                endpoint.address
            )));
        }
    }
    Ok(ports.into_iter().map(|(_, port)| port).collect())
}

/// The endpoints with those that share another's port last, so that one is bound first.
fn sharing_last(endpoints: &[Endpoint]) -> impl Iterator<Item = &Endpoint> {
    let (sharing, own): (Vec<&Endpoint>, Vec<&Endpoint>) =
        endpoints.iter().partition(|e| e.share_with.is_some());
    own.into_iter().chain(sharing)
}
