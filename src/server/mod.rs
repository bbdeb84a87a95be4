//! The WebSocket signal server: configuration, start, and the running server's handle.
//!
//! Threads, and who owns what:
//! - one listener thread per endpoint ([`listener`]): accepts and completes handshakes;
//! - one thread per connection ([`connection`]): blocking reads, runs signal routes;
//! - the fan-out thread ([`fanout`]): owns the registry of clients and routes every signal;
//! - the drain thread ([`drain`]): flushes what sockets could not take at once.

pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod connection;
pub(crate) mod drain;
pub(crate) mod fanout;
pub(crate) mod handshake;
pub(crate) mod http_door;
pub(crate) mod limits;
pub(crate) mod listener;
pub(crate) mod outbox;
pub(crate) mod registry;
pub(crate) mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use tungstenite::protocol::WebSocketConfig;

use crate::event::{ClientInfo, EndpointInfo, SignalEvent};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::signals::Signals;
use crate::{Error, Result};
use config::Endpoint;
pub use config::ServerConfig;
use drain::DrainHandle;
use fanout::{Command, FanOut, Keepalive};
use limits::Connections;
use listener::{Listener, StopSignal};
use routes::Routes;

/// Signals that may wait for the fan-out thread before senders block.
const COMMAND_QUEUE: usize = 16 * 1024;

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
    signals: Signals,
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
        Server {
            config,
            endpoints: Vec::new(),
            routes: Routes::default(),
            signals: Signals::default(),
        }
    }

    /// The configuration, to change before start.
    pub fn config_mut(&mut self) -> &mut ServerConfig {
        &mut self.config
    }

    /// Adds an endpoint. Names must be unique; unnamed endpoints are called `ws-N` by position.
    pub fn endpoint(&mut self, endpoint: Endpoint) -> Result<&mut Server> {
        endpoint.socket_addr()?;
        let mut endpoint = endpoint;
        let name = endpoint
            .name
            .clone()
            .unwrap_or_else(|| format!("ws-{}", self.endpoints.len()));
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

    /// Runs `hook` when a client on a matching path has gone (it no longer receives signals).
    pub fn on_disconnect<F>(&mut self, pattern: &str, hook: F) -> &mut Server
    where
        F: Fn(&ClientInfo) + Send + Sync + 'static,
    {
        self.routes.add_disconnect_hook(pattern, Arc::new(hook));
        self
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
        let mut bound = Vec::new();
        for endpoint in &self.endpoints {
            let addr = endpoint.socket_addr()?;
            let socket = listener::bind(addr).map_err(|source| Error::Bind {
                address: endpoint.address.clone(),
                source,
            })?;
            let info = EndpointInfo {
                name: endpoint.name.clone().unwrap_or_default(),
                address: socket.local_addr()?,
                protocol: endpoint.protocol,
            };
            bound.push((socket, Arc::new(info)));
        }
        Running::start(self, bound)
    }
}

/// The threads of a running server, taken by the first shutdown.
struct Threads {
    listeners: Vec<JoinHandle<()>>,
    fanout: Option<JoinHandle<()>>,
    drain: (DrainHandle, Option<JoinHandle<()>>),
}

struct Running;

impl Running {
    fn start(
        server: Server,
        bound: Vec<(std::net::TcpListener, Arc<EndpointInfo>)>,
    ) -> Result<ServerHandle> {
        let Server {
            config,
            routes,
            signals,
            ..
        } = server;
        let (commands, receiver) = crossbeam_channel::bounded(COMMAND_QUEUE);
        signals.attach(commands.clone())?;
        let (drain, drain_thread) = drain::spawn()?;
        let metrics = Arc::new(Metrics::default());
        let keepalive = Keepalive {
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
        };
        let fanout = FanOut::new(
            receiver,
            metrics.clone(),
            keepalive,
            config.shutdown_timeout,
        );
        let mut threads = Threads {
            listeners: Vec::new(),
            fanout: None,
            drain: (drain.clone(), Some(drain_thread)),
        };
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.read_buffer_size)
            .write_buffer_size(0)
            .max_message_size(Some(config.max_message_size))
            .max_frame_size(Some(config.max_message_size));
        let shared = Arc::new(Shared {
            config,
            routes,
            metrics,
            signals: signals.clone(),
            commands,
            drain,
            connections: Arc::new(Connections::default()),
            ws_config,
        });
        let handle = ServerHandle {
            endpoints: bound
                .iter()
                .map(|(_, info)| EndpointInfo::clone(info))
                .collect(),
            shared: shared.clone(),
            stop: Arc::new(StopSignal::new()?),
            threads: Mutex::new(None),
            stopped: (Mutex::new(false), Condvar::new()),
        };
        threads.fanout = Some(spawn_named("sh-fanout", move || fanout.run())?);
        for (socket, info) in bound {
            let listener = Listener::new(socket, info.clone(), shared.clone(), handle.stop.clone());
            let name = format!("sh-ws-{}", info.name.chars().take(9).collect::<String>());
            match spawn_named(&name, move || listener.run()) {
                Ok(thread) => threads.listeners.push(thread),
                Err(e) => {
                    *handle.threads.lock().unwrap_or_else(|p| p.into_inner()) = Some(threads);
                    handle.shutdown();
                    return Err(e);
                }
            }
        }
        for endpoint in &handle.endpoints {
            log::info!("listening on {}", endpoint.url());
        }
        *handle.threads.lock().unwrap_or_else(|p| p.into_inner()) = Some(threads);
        Ok(handle)
    }
}

fn spawn_named(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(body)
        .map_err(Error::Spawn)
}

/// A running server: its bound addresses, its counters, and shutdown.
///
/// It is `Send + Sync`: share it (for example in an `Arc`) to shut the server down from
/// another thread while one waits in [`ServerHandle::join`]. Dropping it shuts the server down.
pub struct ServerHandle {
    endpoints: Vec<EndpointInfo>,
    shared: Arc<Shared>,
    stop: Arc<StopSignal>,
    threads: Mutex<Option<Threads>>,
    stopped: (Mutex<bool>, Condvar),
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl ServerHandle {
    /// Every endpoint as bound, in the order added.
    pub fn endpoints(&self) -> &[EndpointInfo] {
        &self.endpoints
    }

    /// The bound address of the named endpoint.
    pub fn local_addr(&self, name: &str) -> Option<SocketAddr> {
        self.endpoints
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.address)
    }

    /// The handle that sends signals.
    pub fn signals(&self) -> Signals {
        self.shared.signals.clone()
    }

    /// The server's counters now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics.snapshot()
    }

    /// Stops the server: stops accepting, closes every client with 1001 (going away), writes
    /// what is queued, and joins every thread, within about `shutdown_timeout` plus
    /// `close_timeout`. Calling it again (or from several threads) waits for the first call.
    pub fn shutdown(&self) {
        let taken = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut threads) = taken else {
            self.join();
            return;
        };
        self.stop.stop();
        for listener in threads.listeners.drain(..) {
            let _ = listener.join();
        }
        if let Some(fanout) = threads.fanout.take() {
            let _ = self.shared.commands.send(Command::Shutdown);
            let _ = fanout.join();
        }
        let grace = self.shared.config.close_timeout + Duration::from_secs(1);
        if !self.shared.connections.wait_for_threads(grace) {
            log::warn!("some connection threads did not finish in time");
        }
        threads.drain.0.stop();
        if let Some(drain) = threads.drain.1.take() {
            let _ = drain.join();
        }
        let (stopped, done) = &self.stopped;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        done.notify_all();
    }

    /// Waits until the server has been shut down (by [`ServerHandle::shutdown`] on another thread).
    pub fn join(&self) {
        let (stopped, done) = &self.stopped;
        let mut is_stopped = stopped.lock().unwrap_or_else(|p| p.into_inner());
        while !*is_stopped {
            is_stopped = done.wait(is_stopped).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
