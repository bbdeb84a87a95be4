//! Handing an upgraded WebSocket connection to its own thread: a client id, an outbox
//! holding the `101` (paused), and the thread that lets it in ([`Admission`]: the authorize
//! hook, its registration) and then reads from it.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;

use super::transport::Transport;
use crate::auth::Accepted;
use crate::event::EndpointInfo;
use crate::metrics::Counters;
use crate::server::admission::{open, Admission};
use crate::server::fanout::Command;
use crate::server::handshake::{switching_protocols, Refusal, Upgrade};
use crate::server::limits::Slot;
use crate::server::outbox::{Outbox, Terms};
use crate::server::Shared;
use crate::ClientId;

/// Starts an upgraded connection's thread with the agreed `protocol`, counted by `slot`. A
/// connection whose thread cannot start is answered `503` instead.
#[allow(clippy::too_many_arguments)]
pub(crate) fn go_live(
    shared: &Arc<Shared>,
    endpoint: &Arc<EndpointInfo>,
    protocol: Option<String>,
    transport: Transport,
    leftover: Vec<u8>,
    upgrade: Upgrade,
    slot: Slot,
    deadline: Instant,
) {
    let config = &shared.config;
    let remote_addr = match transport.stream().peer_addr() {
        Ok(peer) => peer,
        Err(_) => return, // already gone
    };
    let (stream, tls, unsent) = transport.into_parts();
    if let Err(e) = stream.set_nonblocking(false) {
        log::debug!("dropping {remote_addr}: {e}");
        return;
    }
    let id = ClientId::random();
    let deflate = agree_on_deflate(config, &upgrade);
    let greeting = switching_protocols(
        &upgrade.accept,
        id,
        protocol.as_deref(),
        deflate.as_ref().map(|(response, _)| response.as_str()),
    );
    let terms = Terms {
        limit: config.max_queue_bytes,
        close_grace: config.close_timeout,
        drain: shared.drain.clone(),
        deflate: deflate.as_ref().map(|(_, window_bits)| *window_bits),
    };
    let outbox = Outbox::new(stream, tls, unsent, greeting, terms);
    // Boxed: the thread's closure is moved through several frames of std's thread start, each
    // a copy under every blocking read (a thread's stack stays resident at its deepest use).
    let admission = Box::new(Admission {
        shared: shared.clone(),
        endpoint: endpoint.clone(),
        id,
        upgrade,
        protocol,
        remote_addr,
        outbox: outbox.clone(),
        leftover,
        deflate: deflate.is_some(),
        deadline,
        slot,
        thread: shared.connections.thread_started(),
    });
    let (commands, cut) = (shared.signals.commands().clone(), outbox.clone());
    let stack = config.tuning.connection_stack_size;
    if shared.routes.authorize_hook().is_some() {
        // The hook may take its time: it runs on the connection's own thread.
        let spawned = crate::threads::spawn_connection("sh-conn", stack, move || {
            contain(id, &cut, &commands, || {
                if let Some(connection) = admission.admit() {
                    connection.run();
                }
            });
        });
        if let Err(e) = spawned {
            refuse_without_a_thread(shared, remote_addr, &outbox, &e);
        }
        return;
    }
    // No hook: the client is registered here, so that its thread allocates and frees nothing
    // until its client sends something. What a thread frees stays in glibc's cache of that
    // thread, which an idle connection's thread never uses again (docs/PERFORMANCE.md). Its
    // `101` goes out once the thread runs; until then (or if it cannot start) it is held.
    let Some(connection) = admission.register(Accepted::anonymous()) else {
        return; // shutting down
    };
    let spawned = crate::threads::spawn_connection("sh-conn", stack, move || {
        contain(id, &cut, &commands, || connection.run());
    });
    match spawned {
        Ok(()) => open(shared, &outbox),
        Err(e) => {
            let _ = (shared.signals.commands()).send(Command::Unregister(id));
            refuse_without_a_thread(shared, remote_addr, &outbox, &e);
        }
    }
}

/// No thread could be started for the connection: its upgrade is answered `503`. The thread's
/// closure (and with it the slot and thread guard) was dropped, so their places are free.
fn refuse_without_a_thread(
    shared: &Shared,
    remote_addr: SocketAddr,
    outbox: &Outbox,
    error: &crate::Error,
) {
    log::warn!("refusing {remote_addr}: cannot start a connection thread: {error}");
    Counters::add(&shared.metrics.connections_refused, 1);
    outbox.refuse(&Refusal::new(503, "server cannot take more connections").response());
}

/// Runs a connection's own code, containing its panics (handlers' panics are caught where they
/// run): its client must not stay registered (nor its socket open) with no reader.
fn contain(id: ClientId, cut: &Outbox, commands: &Sender<Command>, run: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(run)).is_err() {
        log::error!("the thread of client {id} panicked; its connection is cut");
        cut.shutdown();
        let _ = commands.send(Command::Unregister(id));
    }
}

/// permessage-deflate, when the server offers it and the client asked for terms it takes:
/// the response header's value and the window the server compresses with.
#[cfg(feature = "compression")]
fn agree_on_deflate(config: &crate::ServerConfig, upgrade: &Upgrade) -> Option<(String, u8)> {
    if !config.compression {
        return None;
    }
    let offers = (upgrade.headers.iter())
        .filter(|(name, _)| name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|(_, value)| value);
    let agreement = crate::protocol::deflate::negotiate(offers)?;
    Some((agreement.response(), agreement.window_bits))
}

/// Without the `compression` feature nothing is agreed.
#[cfg(not(feature = "compression"))]
fn agree_on_deflate(_config: &crate::ServerConfig, _upgrade: &Upgrade) -> Option<(String, u8)> {
    None
}
