//! The crate's one error type.

use std::fmt;
use std::io;

/// Everything that can go wrong in signalhub.
///
/// Messages are short and lowercase; the underlying cause, when there is one, is available
/// through [`std::error::Error::source`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint address could not be parsed or resolved.
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Binding an endpoint's listening socket failed.
    Bind {
        /// The address that could not be bound.
        address: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Two endpoints were given the same name.
    DuplicateEndpoint(String),
    /// A signal route was registered twice for the same path (and endpoint).
    DuplicateRoute(String),
    /// A route or hook names an endpoint that does not exist.
    UnknownEndpoint(String),
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// The server is not running: it was not started yet, or it has shut down.
    NotRunning,
    /// `Mode::Direct` was used outside a signal route, where there is no sender to reply to.
    DirectOutsideRoute,
    /// A value could not be serialized to JSON.
    Json(serde_json::Error),
    /// A thread could not be started.
    Spawn(io::Error),
    /// Another input/output error.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidAddress { address, reason } => {
                write!(f, "invalid address {address:?}: {reason}")
            }
            Error::Bind { address, .. } => write!(f, "cannot listen on {address}"),
            Error::DuplicateEndpoint(name) => write!(f, "duplicate endpoint name {name:?}"),
            Error::DuplicateRoute(path) => write!(f, "a signal route for {path:?} already exists"),
            Error::UnknownEndpoint(name) => write!(f, "no endpoint named {name:?}"),
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::NotRunning => f.write_str("the server is not running"),
            Error::DirectOutsideRoute => {
                f.write_str("direct mode needs a signal route's event to know the sender")
            }
            Error::Json(_) => f.write_str("value cannot be serialized to json"),
            Error::Spawn(_) => f.write_str("cannot start a thread"),
            Error::Io(_) => f.write_str("i/o error"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Json(e) => Some(e),
            Error::Spawn(e) | Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Json(e)
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
