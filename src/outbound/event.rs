//! What user code is handed: received messages ([`WsEvent`]) and connection changes
//! ([`ConnectEvent`], [`DisconnectEvent`]).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::connection::Conn;
use super::content::WsData;
use super::stream::Link;
use crate::protocol::frame::masked as frame;
use crate::Result;

/// A connection's message handler: gets each message received; an `Err` is logged.
pub type WsHandler = dyn Fn(&WsEvent) -> Result<()> + Send + Sync;

/// One message received on an outbound connection: Pode's `$WsEvent`.
///
/// Inside the handler the connection is implied: [`reply`](WsEvent::reply) answers on it,
/// [`reset`](WsEvent::reset) reconnects it (to a new URL, say one that came in this very
/// message, Slack-style) and [`disconnect`](WsEvent::disconnect) closes it.
///
/// ```no_run
/// use signalhub::outbound::{ConnectOptions, Connections, WsData};
///
/// # fn main() -> signalhub::Result<()> {
/// let clients = Connections::new();
/// clients.connect("bot", "wss://example.com/rtm", ConnectOptions::new(), |event| {
///     if let WsData::Json(value) = &event.data {
///         if let Some(url) = value["url"].as_str() {
///             return event.reset(Some(url)); // the server moves us on
///         }
///         event.reply(serde_json::json!({ "seen": value["id"] }))?;
///     }
///     Ok(())
/// })?;
/// # Ok(()) }
/// ```
#[non_exhaustive]
pub struct WsEvent {
    /// The connection's name.
    pub name: String,
    /// The URL the connection is on.
    pub url: String,
    /// The message as received: a text frame's UTF-8 bytes, or a binary frame's bytes.
    pub body: Vec<u8>,
    /// The message parsed by the connection's content type.
    pub data: WsData,
    /// When the message was received.
    pub timestamp: SystemTime,
    pub(crate) conn: Arc<Conn>,
    pub(crate) link: Arc<Link>,
}

impl WsEvent {
    /// The body as text, if it is UTF-8 (always, for a text frame).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }

    /// Sends `value` back on this connection, in a text frame: a string as it is, anything
    /// else written per the connection's content type (compact JSON by default).
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`](crate::Error::NotConnected) once the connection is closing;
    /// [`Error::Encode`](crate::Error::Encode) for a value the content type cannot hold.
    pub fn reply(&self, value: impl Serialize) -> Result<()> {
        let frame = self.conn.encode(value)?;
        self.conn.send_on(&self.link, &frame)
    }

    /// Sends `bytes` back on this connection in a binary frame.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`](crate::Error::NotConnected) once the connection is closing.
    pub fn reply_binary(&self, bytes: impl AsRef<[u8]>) -> Result<()> {
        self.conn
            .send_on(&self.link, &frame::binary(bytes.as_ref()))
    }

    /// Closes this connection and connects again, to `url` when given (it becomes the
    /// connection's URL), else to the same one. The close frame goes out at once (nothing
    /// more can be sent on this connection); connecting again happens when the handler
    /// returns, and [`ConnectOptions::on_connect`](super::ConnectOptions::on_connect) tells
    /// when it is done.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`](crate::Error::InvalidUrl) for a URL that is not `ws://` or
    /// `wss://`; the connection is then left as it is.
    pub fn reset(&self, url: Option<&str>) -> Result<()> {
        self.conn.reset(url.map(str::to_owned))
    }

    /// Closes this connection (it stays listed, `Disconnected`). The close frame goes out
    /// at once; the server's reply is awaited after the handler returns.
    pub fn disconnect(&self) -> Result<()> {
        self.conn.disconnect()
    }
}

impl fmt::Debug for WsEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (f.debug_struct("WsEvent"))
            .field("name", &self.name)
            .field("url", &self.url)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("data", &self.data)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// A connection was established.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectEvent {
    /// The connection's name.
    pub name: String,
    /// The URL it connected to.
    pub url: String,
    /// The subprotocol the server picked, if any were offered.
    pub protocol: Option<String>,
}

/// A connection ended, or reconnecting it was given up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DisconnectEvent {
    /// The connection's name.
    pub name: String,
    /// The URL it was on.
    pub url: String,
    /// Why.
    pub reason: DisconnectReason,
    /// Whether it will connect again by itself (a reset, or the reconnect policy); when
    /// `false` it is now `Disconnected`.
    pub reconnecting: bool,
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// Closed by [`Connections::disconnect`](super::Connections::disconnect),
    /// [`remove`](super::Connections::remove), [`shutdown`](super::Connections::shutdown) or
    /// [`WsEvent::disconnect`].
    Requested,
    /// Closed by a reset, to connect again.
    Reset,
    /// The server closed it with this code (`None`: a close frame without one) and reason.
    Closed {
        /// The close code.
        code: Option<u16>,
        /// The close reason (often empty).
        reason: String,
    },
    /// The server stopped answering: nothing came back within two ping intervals.
    DeadPeer,
    /// The connection failed: reset, cut without a close frame, a protocol error...
    Failed(String),
    /// Connecting again (after a drop or a reset) failed `tries` times in a row and was
    /// given up; `error` is the last failure.
    ReconnectFailed {
        /// Failed tries in a row.
        tries: u32,
        /// The last one's error.
        error: String,
    },
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Requested => f.write_str("closed as requested"),
            DisconnectReason::Reset => f.write_str("closed to reconnect"),
            DisconnectReason::Closed { code: None, .. } => f.write_str("closed by the server"),
            DisconnectReason::Closed {
                code: Some(code),
                reason,
            } if reason.is_empty() => {
                write!(f, "closed by the server with code {code}")
            }
            DisconnectReason::Closed {
                code: Some(code),
                reason,
            } => write!(f, "closed by the server with code {code}: {reason}"),
            DisconnectReason::DeadPeer => f.write_str("the server stopped answering pings"),
            DisconnectReason::Failed(why) => write!(f, "connection lost: {why}"),
            DisconnectReason::ReconnectFailed { tries, error } => {
                write!(f, "gave up reconnecting after {tries} tries: {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DisconnectReason as R;

    #[test]
    fn reasons_read_well() {
        let closed = |code, reason: &str| R::Closed {
            code,
            reason: reason.into(),
        };
        assert_eq!(closed(None, "").to_string(), "closed by the server");
        assert_eq!(
            closed(Some(1009), "").to_string(),
            "closed by the server with code 1009"
        );
        assert_eq!(
            closed(Some(1008), "queue full").to_string(),
            "closed by the server with code 1008: queue full"
        );
        let gave_up = R::ReconnectFailed {
            tries: 3,
            error: "refused".into(),
        };
        assert_eq!(
            gave_up.to_string(),
            "gave up reconnecting after 3 tries: refused"
        );
    }
}
