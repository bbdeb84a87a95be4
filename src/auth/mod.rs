//! Who may connect: the [`authorize`](crate::Server::authorize) hook's request and answers.
//!
//! The hook sees each WebSocket upgrade request ([`UpgradeRequest`]: path, query, headers
//! with cookies, peer address, offered subprotocols) before anything is answered, and
//! either accepts it ([`Accepted`]: a user id, first groups, data of your own) or refuses it
//! with an HTTP status ([`Refused`]) that the client gets instead of `101`.
//!
//! It runs on the new connection's own thread, never on the thread accepting connections,
//! so a hook that asks a database delays only its own client; at most
//! [`ServerConfig::max_authorizing`](crate::ServerConfig::max_authorizing) run at once.
//!
//! ```
//! use signalhub::auth::{Accepted, Refused};
//! use signalhub::Server;
//!
//! let mut server = Server::new();
//! server.authorize(|request| match request.bearer_token() {
//!     Some("let-me-in") => Ok(Accepted::user("alice").group("ops")),
//!     Some(_) => Err(Refused::unauthorized("bad token")),
//!     None => Err(Refused::unauthorized("a token is required")),
//! });
//! ```

mod hook;

pub(crate) use hook::AuthorizeHook;
pub use hook::{Accepted, Refused, UpgradeRequest};
