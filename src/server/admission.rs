//! Letting an upgraded connection in, on its own thread: the authorize hook (if any) decides,
//! then the client is registered with the fan-out thread and its `101` goes out.
//!
//! The hook runs here rather than on the door's poll loop, which serves every connection of
//! its port: a hook that asks a database delays only its own client. A [`Gate`] bounds how
//! many hooks run at once; an upgrade that cannot get in before its handshake time is up is
//! answered `503`.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Instant, SystemTime};

use crate::auth::{Accepted, AuthorizeHook, UpgradeRequest};
use crate::event::{ClientInfo, EndpointInfo, GroupList};
use crate::metrics::Counters;
use crate::server::connection::Connection;
use crate::server::fanout::{Command, Registration};
use crate::server::handshake::{Refusal, Upgrade};
use crate::server::limits::{Slot, ThreadGuard};
use crate::server::outbox::Outbox;
use crate::server::reply::ReplyPath;
use crate::server::Shared;
use crate::ClientId;

/// Bounds how many authorize hooks run at once.
pub(crate) struct Gate {
    running: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// A place taken in the [`Gate`], given back when dropped.
struct Pass<'a>(&'a Gate);

impl Gate {
    pub(crate) fn new(max: usize) -> Gate {
        Gate {
            running: Mutex::new(0),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    /// Takes a place, waiting for one until `until` at the latest.
    fn enter(&self, until: Instant) -> Option<Pass<'_>> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= self.max {
            let left = until.checked_duration_since(Instant::now())?;
            running = (self.freed.wait_timeout(running, left))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *running += 1;
        Some(Pass(self))
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// An upgraded connection waiting to be let in: everything its thread needs.
pub(crate) struct Admission {
    pub(crate) shared: Arc<Shared>,
    pub(crate) endpoint: Arc<EndpointInfo>,
    pub(crate) id: ClientId,
    pub(crate) upgrade: Upgrade,
    pub(crate) protocol: Option<String>,
    pub(crate) remote_addr: std::net::SocketAddr,
    /// Holds the `101`, paused.
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) leftover: Vec<u8>,
    /// permessage-deflate was agreed.
    pub(crate) deflate: bool,
    /// When its handshake time is up.
    pub(crate) deadline: Instant,
    pub(crate) slot: Slot,
    pub(crate) thread: ThreadGuard,
}

impl Admission {
    /// Decides, and for an accepted client registers it and sends the `101`. Returns the
    /// connection to run, or `None` when it was refused (answered and cut) or the server is
    /// stopping. Runs on the connection's thread (the hook may take its time).
    ///
    /// Boxed, and the client's record built out of line: this runs under every blocking read
    /// of the connection's thread, so its deepest frame (the registration's send) decides how
    /// much of that thread's stack stays resident (docs/PERFORMANCE.md).
    #[inline(never)]
    pub(crate) fn admit(self: Box<Self>) -> Option<Box<Connection>> {
        match self.authorize() {
            Ok(accepted) => {
                let connection = self.register(accepted)?;
                open(&connection.shared, &connection.outbox);
                Some(connection)
            }
            Err(refusal) => {
                self.refuse(&refusal);
                None
            }
        }
    }

    /// Registers an accepted client with the fan-out. Returns the connection to run, its `101`
    /// still held (see [`open`]), or `None` when the server is stopping. Without an authorize
    /// hook this runs on the door's thread, before the connection's thread starts (see
    /// `go_live` in `door/upgrade.rs`).
    pub(crate) fn register(self: Box<Self>, accepted: Accepted) -> Option<Box<Connection>> {
        let Admission {
            shared,
            endpoint,
            id,
            upgrade,
            protocol,
            remote_addr,
            outbox,
            leftover,
            deflate,
            slot,
            thread,
            ..
        } = *self;
        let path_key = upgrade.path.to_lowercase();
        let info = client_info(id, upgrade, &endpoint, remote_addr, protocol, accepted);
        let registration = Registration {
            info: info.clone(),
            sink: outbox.clone(),
        };
        if (shared.signals.commands())
            .send(Command::Register(registration))
            .is_err()
        {
            outbox.shutdown();
            return None; // shutting down
        }
        let route = shared.routes.find(&path_key, &endpoint.name);
        let reply = ReplyPath::new(
            id,
            outbox.clone(),
            shared.metrics.clone(),
            shared.signals.commands().clone(),
        );
        Some(Box::new(Connection {
            info,
            path_key,
            outbox,
            leftover,
            deflate,
            route,
            reply,
            shared,
            slot,
            thread,
        }))
    }

    /// Answers the upgrade with `refusal` instead of `101`, and cuts the connection.
    #[inline(never)]
    fn refuse(&self, refusal: &Refusal) {
        log::debug!(
            "refused the upgrade of {} to {:?}: {} {}",
            self.remote_addr,
            self.upgrade.path,
            refusal.status,
            refusal.reason
        );
        self.outbox.refuse(&refusal.response());
    }

    /// The hook's answer (accepted as nobody when there is none), or the refusal to send.
    #[inline(never)]
    fn authorize(&self) -> Result<Accepted, Refusal> {
        let Some(hook) = self.shared.routes.authorize_hook() else {
            return Ok(Accepted::anonymous());
        };
        let metrics = &self.shared.metrics;
        let Some(_pass) = self.shared.authorizing.enter(self.deadline) else {
            Counters::add(&metrics.connections_refused, 1);
            log::warn!("an upgrade waited too long for an authorize hook to be free: 503");
            return Err(Refusal::new(503, "server busy authorizing"));
        };
        let answer = run_hook(hook, &self.request());
        if answer.is_err() {
            Counters::add(&metrics.connections_unauthorized, 1);
        }
        answer
    }

    fn request(&self) -> UpgradeRequest<'_> {
        UpgradeRequest {
            path: &self.upgrade.path,
            query: &self.upgrade.query,
            headers: &self.upgrade.headers,
            remote_addr: self.remote_addr,
            endpoint: &self.endpoint,
            protocols: &self.upgrade.protocols,
        }
    }
}

/// Lets a registered client's `101` go out, and whatever was routed to it since behind it.
pub(crate) fn open(shared: &Shared, outbox: &Outbox) {
    Counters::add(&shared.metrics.connections_total, 1);
    outbox.open();
}

/// Runs the hook, containing its panics (answered `500`).
fn run_hook(hook: &AuthorizeHook, request: &UpgradeRequest<'_>) -> Result<Accepted, Refusal> {
    match catch_unwind(AssertUnwindSafe(|| hook(request))) {
        Ok(Ok(accepted)) => Ok(accepted),
        Ok(Err(refused)) => Err(Refusal::from(refused)),
        Err(_) => {
            log::error!("the authorize hook panicked; the upgrade is refused with 500");
            Err(Refusal::new(500, "authorization failed"))
        }
    }
}

/// The record of an accepted client, built out of line (see [`Admission::admit`]).
#[inline(never)]
fn client_info(
    id: ClientId,
    upgrade: Upgrade,
    endpoint: &Arc<EndpointInfo>,
    remote_addr: SocketAddr,
    protocol: Option<String>,
    accepted: Accepted,
) -> Arc<ClientInfo> {
    let Accepted { user, groups, data } = accepted;
    let mut unique: Vec<String> = Vec::with_capacity(groups.len());
    for group in groups {
        if !unique.contains(&group) {
            unique.push(group);
        }
    }
    Arc::new(ClientInfo {
        id,
        path: upgrade.path,
        endpoint: endpoint.clone(),
        remote_addr,
        headers: upgrade.headers,
        query: upgrade.query,
        subprotocol: protocol,
        user,
        connected_at: SystemTime::now(),
        data,
        groups: Arc::new(GroupList::new(unique)),
    })
}
