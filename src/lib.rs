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
//! - [`Server::http_route`], views and public files serve pages and HTTP routes beside the
//!   WebSockets ([`http`]).
//! - [`outbound::Connections`] connects out to other WebSocket servers by name, with a handler
//!   for what they send (Pode's `Connect-PodeWebSocket` and friends).
//! - [`Server::timer`] and [`Server::schedule`] run code on an interval or a cron expression
//!   ([`schedule`]).
//!
//! The crate root holds the server and what its handlers see; the rest is grouped by
//! subject: [`http`], [`outbound`], [`schedule`], [`metrics`], [`tls`], [`auth`].
//!
//! ## Features
//!
//! - `cli` (default): the `signalhub` binary and what only it uses (argh, ctrlc, simplelog); it
//!   turns on `pkcs12` and `self-signed`. An embedder turns it off with
//!   `default-features = false`.
//! - `webpki-roots` (default): Mozilla's root certificates for outbound `wss://` when no CA
//!   file is given.
//! - `schedules`: cron expressions ([`Server::schedule`], [`schedule::Scheduler::schedule`]);
//!   timers need no feature.
//! - `pkcs12`: [`tls::Certificate::Pkcs12`], `.pfx`/`.p12` files with a password.
//! - `self-signed`: [`tls::Certificate::SelfSigned`], a certificate generated at start.
//! - `redis`: [`Backplane`], signals shared by several servers through Redis.
//!
//! Linux only (Android's kernel too, untested): the crate calls the kernel through rustix,
//! and rustix offers some of those calls on Linux alone (`getrandom(2)`; macOS lacks
//! `pipe2(2)` and `MSG_NOSIGNAL` too). Other systems get a `compile_error!` that says so.
//!
//! ## About threads
//!
//! The server is synchronous, one thread per WebSocket connection. A door thread per port
//! accepts connections, completes handshakes and holds every HTTP connection without a
//! thread of its own; each WebSocket connection gets a thread that blocks reading; one
//! fan-out thread owns the registry of clients and writes every signal, encoded once, to
//! every receiver's socket without blocking; a drain thread finishes writes that sockets
//! could not take at once. An idle server uses no CPU. [`Signals`] and [`ServerHandle`] are
//! `Send + Sync`; `Signals` is cheap to clone.
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
// Unsafe code in two places, both for glibc, both for memory (why in docs/PERFORMANCE.md):
// malloc_trim, returning free memory after a burst of connections (src/server/memory.rs), and
// connection threads started as bare POSIX threads (src/threads.rs). Everything else is safe
// Rust.
#![deny(unsafe_code)]
#![deny(missing_docs)]
// docs.rs (`--cfg docsrs`, see Cargo.toml) labels feature-gated items with their feature.
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link to feature-gated items (Server::schedule, Backplane, ...), which resolve only
// with their features; `make lint` checks every link with every feature on.
#![cfg_attr(
    not(all(
        feature = "schedules",
        feature = "pkcs12",
        feature = "self-signed",
        feature = "redis"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

// rustix's getrandom is Linux's (and Android's) alone; pipe2 and MSG_NOSIGNAL are missing on
// macOS too. Without this, other targets fail deep inside the crate with unresolved names.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
compile_error!(
    "signalhub supports Linux only: it calls the kernel through rustix, and some of those \
     calls (getrandom(2) among them) exist there alone; macOS, the BSDs and Windows are not \
     supported"
);

pub mod auth;
#[cfg(feature = "redis")]
mod backplane;
mod client_id;
mod error;
mod event;
pub mod http;
pub mod metrics;
pub mod outbound;
mod pairs;
mod presence;
#[cfg(test)]
mod proptest_runner;
mod protocol;
mod random;
pub mod schedule;
mod server;
mod signals;
mod threads;
pub mod tls;
mod waker;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use backplane::Backplane;
pub use client_id::{ClientId, InvalidClientId};
pub use error::{Error, Result};
pub use event::{
    ClientInfo, EndpointInfo, MessageEvent, Protocol, RawMessage, SignalData, SignalEvent,
};
pub use pairs::{Pairs, PairsIter};
pub use presence::{Presence, PresenceFilter};
pub use server::config::{default_max_connections, Endpoint, Tuning};
pub use server::{Server, ServerConfig, ServerHandle};
pub use signals::{Mode, SendOptions, Signals};

/// The README's Rust examples, compiled by `cargo test --doc` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
