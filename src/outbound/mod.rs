//! Outbound WebSocket clients (SPEC 11): Pode's `Connect-PodeWebSocket`,
//! `Send-PodeWebSocket`, `Disconnect-PodeWebSocket` and `Reset-PodeWebSocket`.
//!
//! [`Connections`] holds named connections to `ws://` and `wss://` servers. Each connection has
//! a thread (`sh-out-<name>`) that blocks reading and calls the connection's handler with a
//! [`WsEvent`] per message; anyone may send on it meanwhile.
//!
//! How a connection is built:
//! - `dial`: TCP connect, TLS handshake (rustls, web roots or a CA file) and HTTP upgrade,
//!   all within the connect timeout, before the socket is split.
//! - `stream`: the split. The reader blocks on the raw socket holding no lock (on TLS it
//!   then locks the session briefly to decrypt); every write, tungstenite's pongs and close
//!   replies as well as frames from other threads (`frame`, masked), goes through one write
//!   lock as a whole buffer.
//! - `worker`: the read loop, the keepalive (the socket's read timeout is the ping clock:
//!   silence for one interval sends a ping, silence for another means a dead server) and
//!   reconnecting with backoff (`reconnect`), in a wait any order interrupts.
//! - `connection`: the state other threads share with the worker, and their orders.

mod connection;
mod content;
mod dial;
mod event;
mod options;
mod reconnect;
mod registry;
mod stream;
mod worker;

pub use connection::ConnectionState;
pub use content::WsData;
pub use event::{ConnectEvent, DisconnectEvent, DisconnectReason, WsEvent, WsHandler};
pub use options::{ConnectHook, ConnectOptions, DisconnectHook};
pub use reconnect::ReconnectPolicy;
pub use registry::Connections;
