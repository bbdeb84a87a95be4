//! How an outbound connection is made and kept: [`ConnectOptions`].

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::ClientConfig;
use tungstenite::http::{HeaderName, HeaderValue};

use super::content::Content;
use super::event::{ConnectEvent, DisconnectEvent};
use super::reconnect::ReconnectPolicy;
use crate::{Error, Result};

/// Called each time a connection is established (first connect, reset, reconnect), on the
/// connection's thread.
pub type ConnectHook = dyn Fn(&ConnectEvent) + Send + Sync;

/// Called each time an established connection ends, and once more when reconnecting is
/// given up, on the connection's thread.
pub type DisconnectHook = dyn Fn(&DisconnectEvent) + Send + Sync;

/// Options for [`Connections::connect`](super::Connections::connect): public fields with defaults,
/// and chaining setters.
///
/// ```
/// use std::time::Duration;
/// use signalhub::outbound::{ConnectOptions, ReconnectPolicy};
///
/// let options = ConnectOptions::new()
///     .content_type("text/plain")
///     .header("Authorization", "Bearer 0123")
///     .protocol("chat.v1")
///     .ca_file("/etc/ssl/our-ca.pem")
///     .ping_interval(Some(Duration::from_secs(30)))
///     .reconnect(ReconnectPolicy::default())
///     .on_disconnect(|event| eprintln!("{} dropped: {}", event.name, event.reason));
/// assert_eq!(options.connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// How received text is parsed and values sent are written (default
    /// `application/json`); see [`WsData`](super::WsData).
    pub content_type: String,
    /// Extra headers for the upgrade request.
    pub headers: Vec<(String, String)>,
    /// Subprotocols offered (`Sec-WebSocket-Protocol`); when any are offered the server must
    /// pick one of them.
    pub protocols: Vec<String>,
    /// `wss://`: a PEM file of CA certificates to trust instead of the built-in web roots
    /// (read at connect: a missing or unusable file fails the connect).
    pub ca_file: Option<PathBuf>,
    /// `wss://`: accept any server certificate, self-signed, from an unknown CA, expired or
    /// for another name (default `false`); `ca_file` is then not used. **Dangerous**: whoever
    /// can intercept the connection can pose as the server and read and change everything
    /// sent; only a passive listener is kept out. For development against a self-signed
    /// certificate; where possible give its CA with `ca_file` instead. The server must still
    /// prove it holds its certificate's key.
    pub danger_accept_invalid_certs: bool,
    /// The time allowed for the TCP connect, the TLS handshake and the upgrade together
    /// (default 10 s). Name resolution happens before, and is not bounded by it.
    pub connect_timeout: Duration,
    /// The longest a write may block before the connection is given up (default 10 s).
    pub write_timeout: Duration,
    /// How long a close waits for the server's close reply before cutting (default 2 s).
    pub close_timeout: Duration,
    /// After this long without hearing from the server, a ping is sent; with no answer (or
    /// anything else) within as long again, the server is taken for dead and the connection
    /// ends. `None` turns the keepalive off (default 60 s, as Pode).
    pub ping_interval: Option<Duration>,
    /// Reconnect automatically when the connection drops (default `None`: it stays
    /// `Disconnected`).
    pub reconnect: Option<ReconnectPolicy>,
    /// Called when the connection is established; see [`ConnectHook`].
    pub on_connect: Option<Arc<ConnectHook>>,
    /// Called when the connection ends; see [`DisconnectHook`].
    pub on_disconnect: Option<Arc<DisconnectHook>>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            content_type: "application/json".to_owned(),
            headers: Vec::new(),
            protocols: Vec::new(),
            ca_file: None,
            danger_accept_invalid_certs: false,
            connect_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
            ping_interval: Some(Duration::from_secs(60)),
            reconnect: None,
            on_connect: None,
            on_disconnect: None,
        }
    }
}

impl ConnectOptions {
    /// The defaults.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// Sets the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> ConnectOptions {
        self.content_type = content_type.into();
        self
    }

    /// Adds a header to the upgrade request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Offers a subprotocol.
    pub fn protocol(mut self, protocol: impl Into<String>) -> ConnectOptions {
        self.protocols.push(protocol.into());
        self
    }

    /// Trusts the CA certificates in this PEM file for `wss://`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> ConnectOptions {
        self.ca_file = Some(path.into());
        self
    }

    /// With `true`, accepts any server certificate for `wss://`. Dangerous: see the field of
    /// the same name.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> ConnectOptions {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the write timeout.
    pub fn write_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.write_timeout = timeout;
        self
    }

    /// Sets the close timeout.
    pub fn close_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.close_timeout = timeout;
        self
    }

    /// Sets the keepalive ping interval (`None`: no keepalive).
    pub fn ping_interval(mut self, interval: Option<Duration>) -> ConnectOptions {
        self.ping_interval = interval;
        self
    }

    /// Reconnects automatically with this policy.
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> ConnectOptions {
        self.reconnect = Some(policy);
        self
    }

    /// Sets the connect callback.
    pub fn on_connect<F>(mut self, hook: F) -> ConnectOptions
    where
        F: Fn(&ConnectEvent) + Send + Sync + 'static,
    {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Sets the disconnect callback.
    pub fn on_disconnect<F>(mut self, hook: F) -> ConnectOptions
    where
        F: Fn(&DisconnectEvent) + Send + Sync + 'static,
    {
        self.on_disconnect = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hook = |set: bool| if set { "Some(<fn>)" } else { "None" };
        (f.debug_struct("ConnectOptions"))
            .field("content_type", &self.content_type)
            .field("headers", &self.headers)
            .field("protocols", &self.protocols)
            .field("ca_file", &self.ca_file)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("reconnect", &self.reconnect)
            .field("on_connect", &hook(self.on_connect.is_some()))
            .field("on_disconnect", &hook(self.on_disconnect.is_some()))
            .finish()
    }
}

/// The options, checked once at connect and kept by the connection.
pub(crate) struct Setup {
    pub(crate) content: Content,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) protocols: Option<HeaderValue>,
    pub(crate) connect_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) reconnect: Option<ReconnectPolicy>,
    pub(crate) on_connect: Option<Arc<ConnectHook>>,
    pub(crate) on_disconnect: Option<Arc<DisconnectHook>>,
    ca_file: Option<PathBuf>,
    danger_accept_invalid_certs: bool,
    /// The `wss://` client config, made at the first `wss://` connect and kept.
    tls: OnceLock<Arc<ClientConfig>>,
}

impl Setup {
    /// Checks `options`: header names and values, subprotocols, timeouts, the policy.
    pub(crate) fn new(options: ConnectOptions) -> Result<Setup> {
        let invalid = |what: String| Error::InvalidConfig(what);
        let headers = (options.headers.iter())
            .map(|(name, value)| {
                let bad = |e: &dyn fmt::Display| invalid(format!("header {name:?}: {e}"));
                let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| bad(&e))?;
                let value = HeaderValue::from_str(value.trim()).map_err(|e| bad(&e))?;
                Ok((name, value))
            })
            .collect::<Result<Vec<_>>>()?;
        let protocols = match options.protocols.as_slice() {
            [] => None,
            list => {
                if list.iter().any(|p| !is_token(p)) {
                    return Err(invalid(format!("invalid subprotocol in {list:?}")));
                }
                let joined = list.join(", ");
                Some(HeaderValue::from_str(&joined).map_err(|e| invalid(e.to_string()))?)
            }
        };
        if options.connect_timeout.is_zero() || options.close_timeout.is_zero() {
            return Err(invalid("timeouts must be longer than zero".into()));
        }
        if options.ping_interval.is_some_and(|p| p.is_zero()) {
            return Err(invalid("the ping interval must be longer than zero".into()));
        }
        if let Some(policy) = &options.reconnect {
            policy.check()?;
        }
        let tls = OnceLock::new();
        if options.danger_accept_invalid_certs {
            let _ = tls.set(crate::tls::insecure_client_config()?);
        } else if let Some(ca_file) = &options.ca_file {
            // Read now: a bad CA file is an error of connect itself, before any network.
            let _ = tls.set(crate::tls::client_config(Some(ca_file))?);
        }
        Ok(Setup {
            content: Content::of(&options.content_type),
            headers,
            protocols,
            connect_timeout: options.connect_timeout,
            write_timeout: options.write_timeout,
            close_timeout: options.close_timeout,
            ping_interval: options.ping_interval,
            reconnect: options.reconnect,
            on_connect: options.on_connect,
            on_disconnect: options.on_disconnect,
            ca_file: options.ca_file,
            danger_accept_invalid_certs: options.danger_accept_invalid_certs,
            tls,
        })
    }

    /// The `wss://` client config: the CA file's certificates, or the web roots (or, with
    /// `danger_accept_invalid_certs`, any certificate).
    pub(crate) fn tls_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = self.tls.get() {
            return Ok(config.clone());
        }
        let config = if self.danger_accept_invalid_certs {
            crate::tls::insecure_client_config()?
        } else {
            crate::tls::client_config(self.ca_file.as_deref())?
        };
        Ok(self.tls.get_or_init(|| config).clone())
    }
}

/// An HTTP token (RFC 9110), as a subprotocol name must be.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_pode_like() {
        let options = ConnectOptions::new();
        assert_eq!(options.content_type, "application/json");
        assert_eq!(options.ping_interval, Some(Duration::from_secs(60)));
        assert!(options.reconnect.is_none());
        let setup = Setup::new(options).unwrap();
        assert_eq!(setup.content, Content::Json);
        assert!(setup.protocols.is_none());
    }

    #[test]
    fn headers_and_subprotocols_are_checked() {
        let ok = ConnectOptions::new()
            .header(" X-Token ", " abc ")
            .protocol("a.v1")
            .protocol("b");
        let setup = Setup::new(ok).unwrap();
        assert_eq!(setup.headers[0].0.as_str(), "x-token");
        assert_eq!(setup.headers[0].1.to_str().unwrap(), "abc");
        assert_eq!(setup.protocols.unwrap().to_str().unwrap(), "a.v1, b");
        for bad in [
            ConnectOptions::new().header("bad name", "x"),
            ConnectOptions::new().header("X", "line\nbreak"),
            ConnectOptions::new().protocol("two words"),
            ConnectOptions::new().protocol(""),
            ConnectOptions::new().ping_interval(Some(Duration::ZERO)),
            ConnectOptions::new().connect_timeout(Duration::ZERO),
            ConnectOptions::new().reconnect(ReconnectPolicy::new().jitter(2.0)),
        ] {
            let what = format!("{bad:?}");
            assert!(
                matches!(Setup::new(bad), Err(Error::InvalidConfig(_))),
                "{what}"
            );
        }
    }

    #[test]
    fn debug_hides_the_hooks() {
        let options = ConnectOptions::new().on_connect(|_| {});
        let text = format!("{options:?}");
        assert!(text.contains("on_connect: \"Some(<fn>)\""), "{text}");
    }
}
