//! # signalhub
//!
//! Pode-style WebSocket **signals** for Rust: a server that pushes live updates to browsers,
//! takes messages from clients and fans them out by path or client id.
//!
//! - Clients send `{"message": ..., "path": "/x", "clientId": "...", "direct": true}`; with no
//!   signal route on their path the server re-sends the message where they asked (everyone, a
//!   path, one client, or back to the sender).
//! - [`Server::route`] adds a signal route (Pode's `Add-PodeSignalRoute`) whose handler gets a
//!   [`SignalEvent`] and decides what to send.
//! - [`Signals`] sends from anywhere (Pode's `Send-PodeSignal`).
//! - [`Clients`] connects out to other WebSocket servers by name, with a handler for what
//!   they send (Pode's `Connect-PodeWebSocket` and friends).
//!
//! ## About threads
//!
//! The server is synchronous, one thread per connection. A listener thread per endpoint
//! accepts connections and completes handshakes; each connection gets a thread that blocks
//! reading; one fan-out thread owns the registry of clients and writes every signal, encoded
//! once, to every receiver's socket without blocking; a drain thread finishes writes that
//! sockets could not take at once. An idle server uses no CPU. [`Signals`] and
//! [`ServerHandle`] are `Send + Sync`; `Signals` is cheap to clone.
//!
//! ```no_run
//! use signalhub::{Endpoint, Server};
//!
//! fn main() -> signalhub::Result<()> {
//!     let mut server = Server::new();
//!     server.endpoint(Endpoint::ws("*:8091"))?;
//!     let signals = server.signals();
//!     let handle = server.start()?;
//!     signals.send(serde_json::json!({ "Message": "hello, everyone" }))?;
//!     handle.join()?;
//!     Ok(())
//! }
//! ```
// One unsafe call in the crate: glibc's malloc_trim, returning free memory after a burst of
// connections (src/server/memory.rs, measured there). Everything else is safe Rust.
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "redis")]
mod backplane;
mod client;
mod client_id;
mod error;
mod event;
mod http;
mod metrics;
mod pairs;
#[cfg(test)]
mod proptest_runner;
mod protocol;
mod random;
mod schedule;
mod server;
mod signals;
mod threads;
mod tls;
mod waker;

#[cfg(feature = "redis")]
pub use backplane::Backplane;
pub use client::{
    Clients, ConnectEvent, ConnectHook, ConnectOptions, ConnectionState, DisconnectEvent,
    DisconnectHook, DisconnectReason, ReconnectPolicy, WsData, WsEvent, WsHandler,
};
pub use client_id::{ClientId, InvalidClientId};
pub use error::{Error, Result};
pub use event::{
    ClientInfo, EndpointInfo, MessageEvent, Protocol, RawMessage, SignalData, SignalEvent,
};
pub use http::{ApiToken, Assets, HttpHandler, WebData, WebEvent, WebResponse};
pub use metrics::{Disconnects, MetricsSnapshot, ServerMetrics};
pub use pairs::{Pairs, PairsIter};
#[cfg(feature = "schedules")]
pub use schedule::CronZone;
pub use schedule::{ScheduleEvent, Scheduler};
pub use server::config::{default_max_connections, Endpoint};
pub use server::{Server, ServerConfig, ServerHandle};
pub use signals::{Mode, SendOptions, Signals};
pub use tls::Certificate;
