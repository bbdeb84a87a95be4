//! Taking a WebSocket connection live: its client id, its outbox (holding the `101`), its
//! registration with the fan-out thread, and its own thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::transport::Transport;
use crate::event::{ClientInfo, EndpointInfo};
use crate::metrics::Counters;
use crate::server::connection::Connection;
use crate::server::fanout::{Command, Registration};
use crate::server::handshake::{switching_protocols, Refusal, Upgrade};
use crate::server::limits::Slot;
use crate::server::outbox::Outbox;
use crate::server::Shared;
use crate::ClientId;

/// Makes an upgraded connection live with the agreed `protocol`, counted by `slot`. A
/// connection whose thread cannot start is answered `503` instead.
pub(crate) fn go_live(
    shared: &Arc<Shared>,
    endpoint: &Arc<EndpointInfo>,
    protocol: Option<String>,
    transport: Transport,
    leftover: Vec<u8>,
    upgrade: Upgrade,
    slot: Slot,
) {
    let config = &shared.config;
    let peer = match transport.stream().peer_addr() {
        Ok(peer) => peer,
        Err(_) => return, // already gone
    };
    let (stream, tls, unsent) = transport.into_parts();
    if let Err(e) = stream.set_nonblocking(false) {
        log::debug!("dropping {peer}: {e}");
        return;
    }
    let id = ClientId::random();
    let path_key = upgrade.path.to_lowercase();
    let mut greeting = unsent;
    greeting.extend_from_slice(&switching_protocols(
        &upgrade.accept,
        id,
        protocol.as_deref(),
    ));
    let outbox = Outbox::new(
        stream,
        tls,
        greeting,
        config.max_queue_bytes,
        config.close_timeout,
        shared.drain.clone(),
    );
    let route = shared.routes.find(&path_key, &endpoint.name);
    let info = Arc::new(ClientInfo {
        id,
        path: upgrade.path,
        endpoint: endpoint.clone(),
        remote_addr: peer,
        headers: upgrade.headers,
        query: upgrade.query,
        subprotocol: protocol,
    });
    let registration = Registration {
        id,
        path: path_key,
        sink: outbox.clone(),
    };
    if (shared.signals.commands())
        .send(Command::Register(registration))
        .is_err()
    {
        return; // shutting down
    }
    let thread = shared.connections.thread_started();
    let connection = Connection {
        info,
        outbox: outbox.clone(),
        leftover,
        route,
        shared: shared.clone(),
        slot,
        thread,
    };
    let (commands, cut) = (shared.signals.commands().clone(), outbox.clone());
    let spawned = crate::threads::spawn_with_stack(
        "sh-conn",
        config.tuning.connection_stack_size,
        move || {
            // Handlers' panics are caught where they run; this is for the connection's own code.
            // Its client must not stay registered (nor its socket open) with no reader.
            if catch_unwind(AssertUnwindSafe(|| connection.run())).is_err() {
                log::error!("the thread of client {id} panicked; its connection is cut");
                cut.shutdown();
                let _ = commands.send(Command::Unregister(id));
            }
        },
    );
    match spawned {
        Ok(_) => {
            Counters::add(&shared.metrics.connections_total, 1);
            outbox.open();
        }
        Err(e) => {
            // The closure (and with it the slot and thread guard) is dropped: places freed.
            log::warn!("refusing {peer}: cannot start a connection thread: {e}");
            Counters::add(&shared.metrics.connections_refused, 1);
            let _ = shared.signals.commands().send(Command::Unregister(id));
            outbox.refuse(&Refusal::new(503, "server cannot take more connections").response());
        }
    }
}
