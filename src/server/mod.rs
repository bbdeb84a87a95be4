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

pub(crate) mod admission;
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
mod ports;
pub(crate) mod registry;
pub(crate) mod reply;
pub(crate) mod routes;
pub(crate) mod writer;

#[cfg(test)]
mod properties;

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::auth::{Accepted, Refused, UpgradeRequest};
use crate::event::{ClientInfo, SignalEvent};
use crate::http::{Assets, HttpApp, WebEvent, WebResponse};
use crate::metrics::{Counters, Metrics};
#[cfg(feature = "schedules")]
use crate::schedule::CronZone;
use crate::schedule::{ScheduleEvent, Scheduler};
use crate::signals::Signals;
use crate::{Error, Result};
use config::Endpoint;
pub use config::ServerConfig;
use drain::DrainHandle;
pub use handle::ServerHandle;
use limits::Connections;
use ports::{bind_ports, Port};
use routes::Routes;

/// What the rest of the crate sends the fan-out thread: [`Signals`] and the backplane.
pub(crate) use fanout::{Command, Disconnection, Outgoing, COMMAND_QUEUE};

/// What every server thread shares.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) routes: Routes,
    pub(crate) metrics: Arc<Counters>,
    pub(crate) signals: Signals,
    pub(crate) drain: DrainHandle,
    pub(crate) connections: Arc<Connections>,
    /// Bounds the authorize hooks running at once.
    pub(crate) authorizing: admission::Gate,
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
///     let message = &event.data.message;
///     if message.as_str().is_some_and(|m| m.eq_ignore_ascii_case("[date]")) {
///         return event.send(httpdate::fmt_http_date(std::time::SystemTime::now()));
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
    /// The fan-out thread's queue, which `signals` feeds from the start.
    commands: Receiver<Command>,
    metrics: Arc<Counters>,
    /// Timers and schedules (`Server::timer`, `Server::schedule`).
    scheduler: Scheduler,
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
        let (signals, commands) = Signals::channel();
        Server {
            commands,
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

    /// Decides who may connect: `hook` sees every WebSocket upgrade request (path, query,
    /// headers with cookies, peer address, offered subprotocols) before anything is
    /// answered, and accepts it (with a user id, first groups and data of your own) or
    /// refuses it with an HTTP status the client gets instead of `101`. It runs on the new
    /// connection's own thread, so a slow hook (one asking a database) delays only its own
    /// client; at most [`ServerConfig::max_authorizing`] run at once. A hook that panics
    /// refuses with `500`. Set again, it replaces the one before. See [`crate::auth`].
    ///
    /// ```
    /// use signalhub::auth::{Accepted, Refused};
    /// use signalhub::Server;
    ///
    /// let mut server = Server::new();
    /// server.authorize(|request| {
    ///     match request.cookie("session") {
    ///         Some("s3cret") => Ok(Accepted::user("alice").groups(["ops", "eu"])),
    ///         _ => Err(Refused::unauthorized("log in first")),
    ///     }
    /// });
    /// ```
    pub fn authorize<F>(&mut self, hook: F) -> &mut Server
    where
        F: Fn(&UpgradeRequest<'_>) -> std::result::Result<Accepted, Refused>
            + Send
            + Sync
            + 'static,
    {
        self.routes.set_authorize_hook(Arc::new(hook));
        self
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
    /// use signalhub::http::WebResponse;
    /// use signalhub::Server;
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

    /// Runs `handler` every `every` from the server's start until its shutdown (Pode's
    /// `Add-PodeTimer`); see [`Scheduler::timer`](crate::schedule::Scheduler::timer).
    ///
    /// ```
    /// use std::time::Duration;
    /// use signalhub::{Endpoint, SendOptions, Server};
    ///
    /// # fn main() -> signalhub::Result<()> {
    /// let mut server = Server::new();
    /// server.endpoint(Endpoint::ws("127.0.0.1:0"))?;
    /// server.timer("heartbeat", Duration::from_secs(30), |event| {
    ///     event.signals().send(serde_json::json!({ "heartbeat": event.run }))
    /// })?;
    /// let handle = server.start()?;
    /// assert_eq!(handle.scheduler().names(), ["heartbeat"]);
    /// handle.shutdown();
    /// # Ok(()) }
    /// ```
    pub fn timer<F>(&mut self, name: &str, every: Duration, handler: F) -> Result<&mut Server>
    where
        F: Fn(&ScheduleEvent) -> Result<()> + Send + Sync + 'static,
    {
        self.scheduler.timer(name, every, handler)?;
        Ok(self)
    }

    /// Runs `handler` at the times a cron expression names, in local time, from the server's
    /// start until its shutdown (Pode's `Add-PodeSchedule`); see [`Scheduler::schedule`](crate::schedule::Scheduler::schedule).
    ///
    /// ```
    /// use signalhub::{Endpoint, SendOptions, Server};
    ///
    /// # fn main() -> signalhub::Result<()> {
    /// let mut server = Server::new();
    /// server.endpoint(Endpoint::ws("127.0.0.1:0"))?;
    /// // Every 10 seconds, the time to the clients on /time.
    /// server.schedule("clock", "*/10 * * * * *", |event| {
    ///     let time = httpdate::fmt_http_date(event.scheduled_for);
    ///     event.signals().send_with(time, &SendOptions::new().path("/time"))
    /// })?;
    /// assert!(server.schedule("bad", "61 * * * *", |_| Ok(())).is_err());
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "schedules")]
    #[cfg_attr(docsrs, doc(cfg(feature = "schedules")))]
    pub fn schedule<F>(&mut self, name: &str, cron: &str, handler: F) -> Result<&mut Server>
    where
        F: Fn(&ScheduleEvent) -> Result<()> + Send + Sync + 'static,
    {
        self.scheduler.schedule(name, cron, handler)?;
        Ok(self)
    }

    /// Like [`Server::schedule`], with the expression read in `zone`.
    #[cfg(feature = "schedules")]
    #[cfg_attr(docsrs, doc(cfg(feature = "schedules")))]
    pub fn schedule_in<F>(
        &mut self,
        name: &str,
        cron: &str,
        zone: CronZone,
        handler: F,
    ) -> Result<&mut Server>
    where
        F: Fn(&ScheduleEvent) -> Result<()> + Send + Sync + 'static,
    {
        self.scheduler.schedule_in(name, cron, zone, handler)?;
        Ok(self)
    }

    /// Reads the server's counters; usable before start (they stay at zero until then).
    pub fn metrics(&self) -> Metrics {
        Metrics(self.metrics.clone())
    }

    /// The handle that sends signals, from anywhere (see [`Signals`]).
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
