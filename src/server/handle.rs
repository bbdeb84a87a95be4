//! Starting the server's threads, and the handle of a running server.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::admission::Gate;
use super::door::{Door, HttpPort, StopSignal};
use super::drain::{self, DrainHandle};
use super::fanout::{Command, FanOut, Keepalive};
use super::lifecycle::Lifecycle;
use super::limits::Connections;
use super::writer::Writer;
use super::{Port, Server, Shared};
use crate::event::EndpointInfo;
use crate::http::{HttpApp, HttpWorkers};
use crate::metrics::Metrics;
use crate::schedule::Scheduler;
use crate::signals::Signals;
use crate::{Error, Result};

/// Threads answering HTTP requests (handlers may block, so more than one).
const HTTP_WORKERS: usize = 4;

/// The threads of a running server, taken by the first shutdown.
#[derive(Default)]
struct Threads {
    doors: Vec<JoinHandle<()>>,
    fanout: Option<JoinHandle<()>>,
    drain: Option<(DrainHandle, JoinHandle<()>)>,
    http: Option<HttpWorkers>,
    /// Backplane: its publisher and subscriber threads, stopped after the fan-out.
    #[cfg(feature = "redis")]
    backplane: Option<crate::backplane::Running>,
}

/// Starts every thread of `server` on its bound ports.
pub(super) fn start(server: Server, ports: Vec<Port>) -> Result<ServerHandle> {
    let Server {
        config,
        routes,
        http,
        signals,
        commands,
        metrics,
        endpoints,
        scheduler,
    } = server;
    // First, so that a failure leaves nothing to stop (a writer stops when dropped).
    let writers = (1..config.tuning.fanout_writers)
        .map(|n| Writer::spawn(n, metrics.clone()))
        .collect::<Result<Vec<_>>>()?;
    let mut threads = Threads::default();
    let (drain, drain_thread) = drain::spawn()?;
    threads.drain = Some((drain.clone(), drain_thread));
    let keepalive = Keepalive {
        ping_interval: config.ping_interval,
        idle_timeout: config.idle_timeout,
    };
    let lifecycle = Arc::new(Lifecycle::default());
    let fanout = FanOut::new(
        commands,
        metrics.clone(),
        keepalive,
        config.shutdown_timeout,
        lifecycle.clone(),
    )
    .release_memory_after_bursts(config.tuning.release_memory_after_bursts)
    .with_writers(writers);
    #[cfg(feature = "redis")]
    let fanout = match &config.backplane {
        Some(backplane) => {
            match crate::backplane::start(backplane, signals.commands().clone(), metrics.clone()) {
                Ok((outlet, running)) => {
                    threads.backplane = Some(running);
                    fanout.with_backplane(outlet)
                }
                Err(e) => {
                    if let Some((drain, thread)) = threads.drain.take() {
                        drain.stop();
                        crate::threads::join(thread);
                    }
                    return Err(e);
                }
            }
        }
        None => fanout,
    };
    let mut http = http;
    http.set_allowed_origins(config.allowed_origins.clone());
    let shared = Arc::new(Shared {
        authorizing: Gate::new(config.max_authorizing),
        config,
        routes,
        metrics,
        signals,
        drain,
        connections: Arc::new(Connections::default()),
    });
    let handle = ServerHandle {
        endpoints: endpoint_infos(&ports, &endpoints),
        shared: shared.clone(),
        stop: Arc::new(StopSignal::new()?),
        threads: Mutex::new(None),
        lifecycle: lifecycle.clone(),
        scheduler,
    };
    let started = start_threads(&handle, &mut threads, fanout, http, ports)
        .and_then(|()| handle.scheduler.run());
    *handle.threads.lock().unwrap_or_else(|p| p.into_inner()) = Some(threads);
    if let Err(e) = started {
        handle.shutdown();
        return Err(e);
    }
    for endpoint in &handle.endpoints {
        log::info!(
            "listening on {}://{}",
            endpoint.protocol.as_str(),
            endpoint.address
        );
    }
    Ok(handle)
}

/// The bound endpoints, in the order they were added.
fn endpoint_infos(ports: &[Port], added: &[super::Endpoint]) -> Vec<EndpointInfo> {
    let mut infos: Vec<EndpointInfo> = ports
        .iter()
        .flat_map(|p| p.websocket.iter().chain(p.http.iter()))
        .map(|info| EndpointInfo::clone(info))
        .collect();
    let position = |name: &str| added.iter().position(|e| e.name.as_deref() == Some(name));
    infos.sort_by_key(|info| position(&info.name));
    infos
}

fn start_threads(
    handle: &ServerHandle,
    threads: &mut Threads,
    fanout: FanOut,
    http: HttpApp,
    ports: Vec<Port>,
) -> Result<()> {
    let shared = &handle.shared;
    threads.fanout = Some(crate::threads::spawn("sh-fanout", move || fanout.run())?);
    if ports.iter().any(|p| p.http.is_some()) {
        threads.http = Some(HttpWorkers::start(Arc::new(http), HTTP_WORKERS)?);
    }
    for port in ports {
        let Some(info) = port.websocket.clone().or(port.http.clone()) else {
            continue;
        };
        let http_port = match (&port.http, &threads.http) {
            (Some(_), Some(workers)) => Some(HttpPort::new(workers.sender())?),
            _ => None,
        };
        let door = Door::new(
            port.socket,
            info.clone(),
            shared.clone(),
            handle.stop.clone(),
        )
        .serving(port.websocket.clone(), http_port, port.tls.clone())
        .speaking(
            port.subprotocols
                .unwrap_or_else(|| shared.config.subprotocols.clone()),
        );
        let name = format!("sh-door-{}", info.address.port());
        let lifecycle = handle.lifecycle.clone();
        let thread = crate::threads::spawn(&name, move || {
            // A door that stops would leave its port dead while the process runs on: the
            // server fails instead, visibly (`join` returns the error).
            if catch_unwind(AssertUnwindSafe(|| door.run())).is_err() {
                log::error!("the door of {} failed; stopping the server", info.url());
                lifecycle.fail(format!("the door of port {}", info.address.port()));
            }
        })?;
        threads.doors.push(thread);
    }
    Ok(())
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
    lifecycle: Arc<Lifecycle>,
    /// Timers and schedules: stopped first at shutdown, so their last signals still go out.
    scheduler: Scheduler,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl ServerHandle {
    /// Every endpoint as bound, in the order added. Endpoints sharing a port have the same
    /// address.
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

    /// Who is connected now, as `filter` picks: see [`Signals::presence`].
    pub fn presence(&self, filter: &crate::PresenceFilter) -> Result<Vec<crate::Presence>> {
        self.shared.signals.presence(filter)
    }

    /// Closes one client with a close code and reason: see [`Signals::disconnect`].
    pub fn disconnect(&self, id: crate::ClientId, code: u16, reason: &str) -> Result<bool> {
        self.shared.signals.disconnect(id, code, reason)
    }

    /// The timers and schedules: add and remove them while the server runs.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The server's counters: `metrics().snapshot()` reads them.
    pub fn metrics(&self) -> Metrics {
        Metrics(self.shared.metrics.clone())
    }

    /// Stops the server: stops timers and schedules first (runs in progress finish, and their
    /// signals still go out), stops accepting, closes every client with 1001 (going away),
    /// writes what is queued, and joins every thread, within about `shutdown_timeout` plus
    /// `close_timeout`. Calling it again (or from several threads) waits for the first call.
    pub fn shutdown(&self) {
        let taken = self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(mut threads) = taken else {
            self.lifecycle.wait_shut_down();
            return;
        };
        self.scheduler.shutdown();
        self.stop.stop();
        for door in threads.doors.drain(..) {
            crate::threads::join(door);
        }
        if let Some(http) = threads.http.take() {
            http.stop();
        }
        if let Some(fanout) = threads.fanout.take() {
            let _ = self.shared.signals.commands().send(Command::Shutdown);
            crate::threads::join(fanout);
        }
        #[cfg(feature = "redis")]
        if let Some(backplane) = threads.backplane.take() {
            backplane.stop();
        }
        let grace = self.shared.config.close_timeout + Duration::from_secs(1);
        if !self.shared.connections.wait_for_threads(grace) {
            log::warn!("some connection threads did not finish in time");
        }
        if let Some((drain, thread)) = threads.drain.take() {
            drain.stop();
            crate::threads::join(thread);
        }
        self.lifecycle.shut_down();
    }

    /// Waits until the server has been shut down (by [`ServerHandle::shutdown`] on another
    /// thread), or has failed: if its fan-out thread ever stops routing, every client is cut,
    /// the server shuts itself down and this returns [`Error::ServerFailed`].
    pub fn join(&self) -> Result<()> {
        if let Some(part) = self.lifecycle.wait_failed_or_shut_down() {
            self.shutdown();
            return Err(Error::ServerFailed(part));
        }
        Ok(())
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
