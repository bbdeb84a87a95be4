//! The crate's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

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
    /// A close code a server may not send (`Signals::disconnect`).
    InvalidCloseCode(u16),
    /// A value could not be serialized to JSON.
    Json(serde_json::Error),
    /// The server stopped by itself because a part of it it cannot do without failed: the
    /// fan-out thread, a port's door, a writer thread... (named here; see the log).
    ServerFailed(String),
    /// A thread could not be started.
    Spawn(io::Error),
    /// Another input/output error.
    Io(io::Error),
    /// A certificate, private key or CA file for TLS cannot be used: missing, unreadable, not
    /// PEM, empty, wrong password, key not matching the certificate, expired...
    Certificate {
        /// The file at fault.
        file: PathBuf,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// A self-signed development certificate cannot be generated (feature `self-signed`).
    SelfSigned(String),
    /// TLS failed: a handshake with a peer (an unknown certificate authority, a name the
    /// certificate does not cover...) or setting up a session.
    Tls(rustls::Error),
    /// A WebSocket protocol failure (an outbound connection's upgrade, say).
    WebSocket(tungstenite::Error),
    /// Something took longer than it may: the time allowed.
    Timeout(std::time::Duration),
    /// A host name did not resolve to an address.
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// A cron expression was rejected when a schedule was registered.
    InvalidSchedule {
        /// The schedule's name.
        name: String,
        /// The expression as given.
        expression: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A timer or schedule with this name is registered already.
    DuplicateSchedule(String),
    /// An outbound connection's URL is not a `ws://` or `wss://` URL with a host.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An outbound connection with this name exists already.
    DuplicateConnection(String),
    /// No outbound connection has this name.
    UnknownConnection(String),
    /// The outbound connection with this name is not connected (it is connecting, closing
    /// or closed).
    NotConnected(String),
    /// An outbound connection could not be made: the name did not resolve
    /// ([`Error::Resolve`]), TCP failed ([`Error::Io`]), TLS failed ([`Error::Tls`]), the
    /// upgrade failed ([`Error::WebSocket`]), or it all took longer than the connect timeout
    /// ([`Error::Timeout`]): the source says which.
    Connect {
        /// The URL.
        url: String,
        /// What failed.
        source: Box<Error>,
    },
    /// The server answered an outbound connection's upgrade with an HTTP status other than
    /// `101`.
    Refused {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response's body, if any.
        body: String,
    },
    /// A value cannot be sent in an outbound connection's content type (a JSON array as
    /// form fields, say).
    Encode(String),
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
            Error::InvalidCloseCode(code) => {
                write!(f, "{code} is not a close code a server may send")
            }
            Error::Json(_) => f.write_str("value cannot be serialized to json"),
            Error::ServerFailed(part) => {
                write!(f, "the server failed: {part} stopped (see the log)")
            }
            Error::Spawn(_) => f.write_str("cannot start a thread"),
            Error::Io(_) => f.write_str("i/o error"),
            Error::Certificate { file, reason } => write!(f, "tls: {}: {reason}", file.display()),
            Error::SelfSigned(reason) => write!(f, "tls: {reason}"),
            Error::Tls(_) => f.write_str("tls failed"),
            Error::WebSocket(_) => f.write_str("websocket protocol error"),
            Error::Timeout(after) => write!(f, "timed out after {after:?}"),
            Error::Resolve { host, .. } => write!(f, "cannot resolve {host}"),
            Error::InvalidSchedule {
                name,
                expression,
                reason,
            } => write!(
                f,
                "invalid cron expression {expression:?} for schedule {name:?}: {reason}"
            ),
            Error::DuplicateSchedule(name) => {
                write!(f, "a timer or schedule named {name:?} already exists")
            }
            Error::InvalidUrl { url, reason } => write!(f, "invalid url {url:?}: {reason}"),
            Error::DuplicateConnection(name) => {
                write!(f, "a connection named {name:?} already exists")
            }
            Error::UnknownConnection(name) => write!(f, "no connection named {name:?}"),
            Error::NotConnected(name) => write!(f, "connection {name:?} is not connected"),
            Error::Connect { url, .. } => write!(f, "cannot connect to {url}"),
            Error::Refused { url, status, .. } => {
                write!(f, "{url} refused the upgrade with http status {status}")
            }
            Error::Encode(reason) => write!(f, "cannot encode the message: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Resolve { source, .. } => Some(source),
            Error::Json(e) => Some(e),
            Error::Spawn(e) | Error::Io(e) => Some(e),
            Error::Tls(e) => Some(e),
            Error::WebSocket(e) => Some(e),
            Error::Connect { source, .. } => Some(&**source),
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
