//! Connecting: the TCP connect, the TLS handshake (`wss://`) and the HTTP upgrade, all
//! within the connection's connect timeout, before the socket is split for reading and
//! writing.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::Request;
use tungstenite::{Error as WsError, HandshakeError, WebSocket};

use super::options::Setup;
use super::stream::{ClientStream, Link};
use crate::{Error, Result};

/// A connection made: the reader's WebSocket, the link others write through, and the
/// subprotocol the server picked.
pub(crate) struct Dialed {
    pub(crate) ws: WebSocket<ClientStream>,
    pub(crate) link: Arc<Link>,
    pub(crate) protocol: Option<String>,
}

/// A `ws://` or `wss://` URL, parsed.
struct Target {
    request: Request,
    host: String,
    port: u16,
    tls: bool,
}

/// Checks that `url` is a `ws://` or `wss://` URL with a host.
pub(crate) fn check_url(url: &str) -> Result<()> {
    target(url).map(drop)
}

fn target(url: &str) -> Result<Target> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    };
    let request = url
        .into_client_request()
        .map_err(|e| invalid(e.to_string()))?;
    let uri = request.uri();
    let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(invalid("expected ws:// or wss://".into())),
    };
    let host = match uri.host() {
        Some(host) if !host.is_empty() => host.trim_start_matches('[').trim_end_matches(']'),
        _ => return Err(invalid("no host".into())),
    };
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let host = host.to_owned();
    Ok(Target {
        request,
        host,
        port,
        tls,
    })
}

/// Connects to `url` and upgrades, within `setup.connect_timeout`.
pub(crate) fn dial(url: &str, setup: &Setup) -> Result<Dialed> {
    dial_steps(url, setup).map_err(|e| match e {
        Dial::Setup(e) => e,
        Dial::Failed(source) => Error::Connect {
            url: url.to_owned(),
            source: Box::new(source),
        },
    })
}

fn dial_steps(url: &str, setup: &Setup) -> Result<Dialed, Dial> {
    let Target {
        mut request,
        host,
        port,
        tls,
    } = target(url).map_err(Dial::Setup)?;
    for (name, value) in &setup.headers {
        request.headers_mut().append(name.clone(), value.clone());
    }
    if let Some(protocols) = &setup.protocols {
        (request.headers_mut()).insert("Sec-WebSocket-Protocol", protocols.clone());
    }
    let clock = Deadline(
        Instant::now() + setup.connect_timeout,
        setup.connect_timeout,
    );
    let socket = tcp_connect(&host, port, &clock).map_err(Dial::Failed)?;
    let session = match tls {
        false => None,
        true => Some(tls_handshake(&socket, &host, setup, &clock)?),
    };
    let link = Arc::new(Link::new(socket, session));
    let (ws, protocol) = upgrade(url, request, &link, &clock)?;
    let write_timeout = Some(setup.write_timeout).filter(|t| !t.is_zero());
    (link.socket().set_write_timeout(write_timeout)).map_err(|e| Dial::Failed(Error::Io(e)))?;
    link.set_read_timeout(setup.ping_interval);
    Ok(Dialed { ws, link, protocol })
}

/// Why a step failed: an error of its own, or the source of an [`Error::Connect`].
enum Dial {
    Setup(Error),
    Failed(Error),
}

/// When connecting must be done by, and the whole time allowed (for messages).
struct Deadline(Instant, Duration);

impl Deadline {
    /// The time left, or [`Error::Timeout`].
    fn left(&self) -> Result<Duration, Error> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::Timeout(self.1));
        }
        Ok(left)
    }

    /// Bounds the socket's next reads and writes by the time left.
    fn bound(&self, socket: &TcpStream) -> Result<(), Error> {
        let left = self.left()?;
        socket.set_read_timeout(Some(left))?;
        socket.set_write_timeout(Some(left))?;
        Ok(())
    }
}

/// The first address of `host` that accepts a TCP connection in time.
fn tcp_connect(host: &str, port: u16, clock: &Deadline) -> Result<TcpStream, Error> {
    let resolve = |source| Error::Resolve {
        host: host.to_owned(),
        source,
    };
    let addresses: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(resolve)?.collect();
    let mut last = resolve(io::Error::new(io::ErrorKind::NotFound, "no address"));
    for address in addresses {
        match TcpStream::connect_timeout(&address, clock.left()?) {
            Ok(socket) => {
                let _ = socket.set_nodelay(true);
                return Ok(socket);
            }
            Err(e) if is_timeout(&e) => return Err(clock.left().err().unwrap_or(Error::Io(e))),
            Err(e) => last = Error::Io(e),
        }
    }
    Err(last)
}

/// `wss://`: the TLS handshake, driven to its end on the raw socket.
fn tls_handshake(
    socket: &TcpStream,
    host: &str,
    setup: &Setup,
    clock: &Deadline,
) -> Result<ClientConnection, Dial> {
    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
        Dial::Setup(Error::InvalidUrl {
            url: host.to_owned(),
            reason: format!("the host cannot be checked against a certificate: {e}"),
        })
    })?;
    let config = setup.tls_config().map_err(Dial::Setup)?;
    let mut session =
        ClientConnection::new(config, name).map_err(|e| Dial::Setup(Error::Tls(e)))?;
    let mut io = socket;
    while session.is_handshaking() {
        clock.bound(socket).map_err(Dial::Failed)?;
        match session.complete_io(&mut io) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(Dial::Failed(tls_failure(e))),
        }
    }
    Ok(session)
}

/// The HTTP upgrade, through the split stream; gives the reader's WebSocket and the picked
/// subprotocol.
fn upgrade(
    url: &str,
    request: Request,
    link: &Arc<Link>,
    clock: &Deadline,
) -> Result<(WebSocket<ClientStream>, Option<String>), Dial> {
    clock.bound(link.socket()).map_err(Dial::Failed)?;
    let mut attempt = tungstenite::client(request, ClientStream::new(link.clone()));
    loop {
        match attempt {
            Ok((ws, response)) => {
                let protocol = (response.headers().get("Sec-WebSocket-Protocol"))
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                return Ok((ws, protocol));
            }
            Err(HandshakeError::Interrupted(mid)) => {
                // A read timed out: go on while there is time left.
                clock.bound(link.socket()).map_err(Dial::Failed)?;
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(error)) => return Err(upgrade_error(url, error, clock)),
        }
    }
}

/// Why the upgrade failed: the server's refusal with its status, a timeout, or another
/// reason.
fn upgrade_error(url: &str, error: WsError, clock: &Deadline) -> Dial {
    match error {
        WsError::Http(response) => {
            let body = response.body().as_deref().unwrap_or_default();
            let mut body = String::from_utf8_lossy(body).trim().to_owned();
            if body.len() > 200 {
                let mut end = 200;
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                body.truncate(end);
            }
            Dial::Setup(Error::Refused {
                url: url.to_owned(),
                status: response.status().as_u16(),
                body,
            })
        }
        WsError::Io(e) if is_timeout(&e) => {
            Dial::Failed(clock.left().err().unwrap_or(Error::Io(e)))
        }
        other => Dial::Failed(Error::WebSocket(other)),
    }
}

/// rustls' own error when the I/O error carries one (a handshake it refused), else the I/O
/// error itself.
fn tls_failure(error: io::Error) -> Error {
    let tls = (error.get_ref()).and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(tls) => Error::Tls(tls.clone()),
        None => Error::Io(error),
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ws_and_wss_urls_with_a_host_pass() {
        let t = target("ws://127.0.0.1:9/x?y=1").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 9, false));
        let t = target("WSS://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("::1", 443, true));
        assert_eq!(target("ws://h/").unwrap().port, 80);
        for bad in [
            "http://127.0.0.1/",
            "not a url",
            "ws:///path",
            "",
            "127.0.0.1:80",
        ] {
            assert!(
                matches!(check_url(bad), Err(Error::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_closed_port_fails_with_the_url_and_the_refusal_as_its_source() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let setup = Setup::new(crate::outbound::ConnectOptions::new()).unwrap();
        let err = dial(&format!("ws://127.0.0.1:{port}/"), &setup)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!("cannot connect to ws://127.0.0.1:{port}/")
        );
        let Error::Connect { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(
            matches!(&**source, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused),
            "{source:?}"
        );
    }
}
