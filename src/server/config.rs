//! Server settings and endpoint descriptions.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::event::Protocol;
use crate::tls::Certificate;
use crate::{Error, Result};

/// Limits and timings for a server. Every field has a sane default; change what you need.
///
/// ```
/// use std::time::Duration;
/// let mut config = signalhub::ServerConfig::default();
/// config.max_message_size = 1 << 20;
/// config.handshake_timeout = Duration::from_secs(5);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest message (and frame) a client may send, in bytes; bigger closes it with 1009.
    /// Default 16 MiB.
    pub max_message_size: usize,
    /// Bytes that may wait for a client that is not reading before it is closed with 1008.
    /// One frame larger than this is still accepted when nothing is waiting. Default 4 MiB.
    pub max_queue_bytes: usize,
    /// Most connections at once, WebSocket and HTTP; more get `503` (before the upgrade).
    /// Default: what the open-file limit and `vm.max_map_count` (threads) allow, see
    /// [`default_max_connections`].
    pub max_connections: usize,
    /// Most connections at once from one IP address, WebSocket and HTTP. Default: no limit
    /// beyond `max_connections`.
    pub max_connections_per_ip: usize,
    /// Time a new connection has to send its first request head (a WebSocket upgrade or an
    /// HTTP request), and an HTTP request its head and body; also the longest an HTTP reply
    /// may go without the client taking any of it. A request that stalls gets `408`, a
    /// reply that stalls is cut. Default 10 s.
    pub handshake_timeout: Duration,
    /// Connections still in their handshake that one listener keeps at once; at the bound
    /// the oldest is dropped to make room, so silent connections cannot lock others out.
    /// Default 1024.
    pub max_pending_handshakes: usize,
    /// Largest upgrade request head (request line and headers). Default 8 KiB.
    pub max_request_head: usize,
    /// The WebSocket subprotocols the server speaks, most preferred first (for endpoints that
    /// do not name their own with [`Endpoint::subprotocols`]). A client that offers some
    /// (`Sec-WebSocket-Protocol`) gets the first of these it offers, in the `101` and in
    /// [`ClientInfo::subprotocol`](crate::ClientInfo::subprotocol); with none in common, or
    /// none offered, the connection is accepted without one (RFC 6455). Default: none.
    pub subprotocols: Vec<String>,
    /// Most [`authorize`](crate::Server::authorize) hooks running at once (each on its
    /// connection's thread); further upgrades wait for one to finish, and get `503` if
    /// their `handshake_timeout` passes first. Default 64.
    pub max_authorizing: usize,
    /// `Origin` values allowed to connect (compared case-insensitively); others get `403`.
    /// `None` (the default, as in Pode) allows every origin.
    pub allowed_origins: Option<Vec<String>>,
    /// How often the server pings every client. `None` turns pings off. Default 30 s.
    pub ping_interval: Option<Duration>,
    /// A client that sends nothing (not even a pong) for this long is dropped. `None` turns it
    /// off. Checked at each ping. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// How long a closing connection may take to finish the close handshake. Default 2 s.
    pub close_timeout: Duration,
    /// The longest [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) waits for clients
    /// to close before cutting them off. Default 5 s.
    pub shutdown_timeout: Duration,
    /// Largest HTTP request body a route accepts; a bigger one gets `413`. Default 1 MiB.
    pub max_http_body: usize,
    /// How long an HTTP connection may wait for its next request (HTTP/1.1 keep-alive).
    /// `None` closes it after every reply. Default 5 s.
    pub http_keep_alive: Option<Duration>,
    /// permessage-deflate (RFC 7692): compress messages both ways with every client that
    /// offers it, as browsers do. Default `false`. It needs the `compression` feature (which
    /// `cli` turns on); without it, `true` makes [`Server::start`](crate::Server::start) fail
    /// with [`Error::InvalidConfig`].
    pub compression: bool,
    /// How the server does its work rather than what it allows: measured defaults, to change
    /// only with a benchmark in hand.
    pub tuning: Tuning,
    /// Feature `redis`: share signals with the other nodes of a cluster through Redis
    /// pub/sub (SPEC 15). `None` (the default): this process alone.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub backplane: Option<crate::Backplane>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_size: 16 << 20,
            max_queue_bytes: 4 << 20,
            max_connections: default_max_connections(),
            max_connections_per_ip: usize::MAX,
            handshake_timeout: Duration::from_secs(10),
            max_request_head: 8 << 10,
            max_pending_handshakes: 1024,
            subprotocols: Vec::new(),
            max_authorizing: 64,
            allowed_origins: None,
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(60)),
            close_timeout: Duration::from_secs(2),
            shutdown_timeout: Duration::from_secs(5),
            tuning: Tuning::default(),
            max_http_body: 1 << 20,
            http_keep_alive: Some(Duration::from_secs(5)),
            compression: false,
            #[cfg(feature = "redis")]
            backplane: None,
        }
    }
}

/// How the server does its work: implementation knobs with measured defaults (the figures are
/// in `docs/PERFORMANCE.md`). Change them only with a benchmark in hand.
///
/// ```
/// let mut config = signalhub::ServerConfig::default();
/// config.tuning.fanout_writers = 1; // a one-core host
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// Bytes a connection reads from its socket at a time: small keeps idle connections lean
    /// (a thread's stack and buffers stay resident at their deepest use). Default 512.
    pub read_buffer_size: usize,
    /// Stack reserved for each connection's thread, where signal route handlers run. Only the
    /// pages used count against memory. Default 512 KiB; at least 64 KiB.
    pub connection_stack_size: usize,
    /// After connections come and go (256 or more ended), hand the allocator's free memory
    /// back to the system (glibc's `malloc_trim`, a second after the last of them ended, every
    /// 10 s while churn goes on). Default `true`.
    pub release_memory_after_bursts: bool,
    /// Threads writing signals to clients: the fan-out thread and `fanout_writers - 1`
    /// writer threads (`sh-writer-N`) sharing the receivers of batches that reach 256 clients
    /// or more. Default: 2 on a machine with two or more cores, else 1. 1 to 16.
    pub fanout_writers: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            read_buffer_size: 512,
            connection_stack_size: 512 << 10,
            release_memory_after_bursts: true,
            fanout_writers: default_fanout_writers(),
        }
    }
}

/// Two writers where there are two cores to run them.
fn default_fanout_writers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.clamp(1, 2)
}

/// The shortest ping interval or idle timeout: the fan-out thread wakes that often at most.
const MIN_TICK: Duration = Duration::from_millis(10);

impl ServerConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        let checks = [
            (
                self.max_message_size == 0,
                "max_message_size must be above 0",
            ),
            (
                !(1..=16).contains(&self.tuning.fanout_writers),
                "fanout_writers must be 1 to 16",
            ),
            (self.max_queue_bytes == 0, "max_queue_bytes must be above 0"),
            (self.max_connections == 0, "max_connections must be above 0"),
            (
                self.max_pending_handshakes == 0,
                "max_pending_handshakes must be above 0",
            ),
            (
                self.max_connections_per_ip == 0,
                "max_connections_per_ip must be above 0",
            ),
            (self.max_authorizing == 0, "max_authorizing must be above 0"),
            (
                self.max_request_head < 256,
                "max_request_head must be at least 256",
            ),
            (
                self.tuning.read_buffer_size == 0,
                "read_buffer_size must be above 0",
            ),
            (
                self.tuning.connection_stack_size < 64 << 10,
                "connection_stack_size must be at least 64 KiB",
            ),
            (
                self.ping_interval.is_some_and(|d| d < MIN_TICK),
                "ping_interval must be at least 10 ms",
            ),
            (
                self.idle_timeout.is_some_and(|d| d < MIN_TICK),
                "idle_timeout must be at least 10 ms",
            ),
            (
                self.http_keep_alive.is_some_and(|d| d < MIN_TICK),
                "http_keep_alive must be at least 10 ms",
            ),
        ];
        if let Some((_, what)) = checks.iter().find(|(bad, _)| *bad) {
            return Err(Error::InvalidConfig((*what).to_owned()));
        }
        check_subprotocols(&self.subprotocols)?;
        #[cfg(not(feature = "compression"))]
        if self.compression {
            return Err(Error::InvalidConfig(
                "compression needs signalhub's `compression` feature".to_owned(),
            ));
        }
        #[cfg(feature = "redis")]
        if let Some(backplane) = &self.backplane {
            backplane.validate()?;
        }
        Ok(())
    }
}

/// Every name must be a token (letters, digits and `!#$%&'*+-.^_`|~`), as the header needs.
pub(crate) fn check_subprotocols(names: &[String]) -> Result<()> {
    match names
        .iter()
        .find(|n| !crate::server::handshake::is_valid_protocol(n))
    {
        Some(bad) => Err(Error::InvalidConfig(format!(
            "subprotocol {bad:?} is not a token"
        ))),
        None => Ok(()),
    }
}

/// Threads and file descriptors this process can spare for connections: each connection takes
/// one thread (four memory mappings under `vm.max_map_count` counted: std's threads take four,
/// the bare threads used on Linux with glibc two) and one file descriptor, with headroom kept
/// for everything else.
pub fn default_max_connections() -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| n as usize);
    let maps = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65530);
    let by_files = files.saturating_sub(256);
    let by_threads = (maps / 4).saturating_sub(1000);
    by_files.min(by_threads).max(1)
}

/// One listening endpoint: a protocol on an address, optionally named.
///
/// The address is `host:port`; `*` as the host means every interface (as in Pode) and port 0
/// picks a free port (read it back from the [`ServerHandle`](crate::ServerHandle)).
///
/// ```
/// let ep = signalhub::Endpoint::ws("*:8091").name("public");
/// # let _ = ep;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub(crate) address: String,
    pub(crate) protocol: Protocol,
    pub(crate) name: Option<String>,
    pub(crate) share_with: Option<String>,
    pub(crate) certificate: Option<Certificate>,
    /// This endpoint's subprotocols, instead of the server's.
    pub(crate) subprotocols: Option<Vec<String>>,
}

impl Endpoint {
    /// Pages and HTTP routes. On the same address as a `Ws` endpoint, the two share the
    /// port: WebSocket upgrades become connections, everything else is served as HTTP.
    pub fn http(address: impl Into<String>) -> Endpoint {
        Endpoint {
            address: address.into(),
            protocol: Protocol::Http,
            name: None,
            share_with: None,
            certificate: None,
            subprotocols: None,
        }
    }

    /// Pages and HTTP routes over TLS (1.2 and 1.3, rustls), with this certificate. On the
    /// same address as a `Wss` endpoint (with the same certificate), the two share the port.
    ///
    /// ```no_run
    /// use signalhub::tls::Certificate;
    /// use signalhub::Endpoint;
    /// let certificate = Certificate::pem("cert.pem", "key.pem");
    /// let page = Endpoint::https("*:8443", certificate.clone());
    /// let sockets = Endpoint::wss("*:8443", certificate);
    /// # let _ = (page, sockets);
    /// ```
    pub fn https(address: impl Into<String>, certificate: Certificate) -> Endpoint {
        Endpoint {
            protocol: Protocol::Https,
            certificate: Some(certificate),
            ..Endpoint::http(address)
        }
    }

    /// WebSockets over TLS (1.2 and 1.3, rustls), with this certificate.
    ///
    /// ```no_run
    /// use signalhub::tls::Certificate;
    /// use signalhub::Endpoint;
    /// let ep = Endpoint::wss("*:8443", Certificate::pem("cert.pem", "key.pem"));
    /// # let _ = ep;
    /// ```
    pub fn wss(address: impl Into<String>, certificate: Certificate) -> Endpoint {
        Endpoint {
            protocol: Protocol::Wss,
            certificate: Some(certificate),
            ..Endpoint::ws(address)
        }
    }

    /// A plain WebSocket endpoint.
    pub fn ws(address: impl Into<String>) -> Endpoint {
        Endpoint {
            address: address.into(),
            protocol: Protocol::Ws,
            name: None,
            share_with: None,
            certificate: None,
            subprotocols: None,
        }
    }

    /// The WebSocket subprotocols this endpoint speaks, most preferred first, instead of
    /// [`ServerConfig::subprotocols`]: a client gets the first of them it offers.
    ///
    /// ```
    /// let ep = signalhub::Endpoint::ws("*:8091").subprotocols(["graphql-transport-ws", "graphql-ws"]);
    /// # let _ = ep;
    /// ```
    pub fn subprotocols<I, S>(mut self, names: I) -> Endpoint
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Shares the port of the endpoint named `name` (of the other kind): WebSocket upgrades
    /// go to the `Ws` one, everything else to the `Http` one. Endpoints with the same
    /// address and a non-zero port share it anyway; this is how to share a port-0 one.
    pub fn share_port_with(mut self, name: impl Into<String>) -> Endpoint {
        self.share_with = Some(name.into());
        self
    }

    /// Names the endpoint, so routes can be limited to it and its address looked up by name.
    pub fn name(mut self, name: impl Into<String>) -> Endpoint {
        self.name = Some(name.into());
        self
    }

    /// Resolves the address; `*` becomes `0.0.0.0`.
    pub(crate) fn socket_addr(&self) -> Result<SocketAddr> {
        let invalid = |reason: &str| Error::InvalidAddress {
            address: self.address.clone(),
            reason: reason.to_owned(),
        };
        let (host, port) = self
            .address
            .rsplit_once(':')
            .ok_or_else(|| invalid("expected host:port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
        let host = match host {
            "*" => "0.0.0.0",
            h => h.trim_start_matches('[').trim_end_matches(']'),
        };
        (host, port)
            .to_socket_addrs()
            .map_err(|e| invalid(&e.to_string()))?
            .next()
            .ok_or_else(|| invalid("the host resolves to no address"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_resolve_with_star_meaning_every_interface() {
        assert_eq!(
            Endpoint::ws("*:8091").socket_addr().unwrap(),
            "0.0.0.0:8091".parse().unwrap()
        );
        assert_eq!(
            Endpoint::ws("127.0.0.1:0").socket_addr().unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            Endpoint::ws("[::1]:9").socket_addr().unwrap(),
            "[::1]:9".parse().unwrap()
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        for bad in ["8091", "127.0.0.1:http", "127.0.0.1:70000"] {
            let err = Endpoint::ws(bad).socket_addr().unwrap_err();
            assert!(matches!(err, Error::InvalidAddress { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn default_cap_stays_under_the_thread_and_file_ceilings() {
        let cap = default_max_connections();
        assert!((1..65530 / 4).contains(&cap), "{cap}");
    }

    #[test]
    fn zero_limits_are_rejected() {
        let config = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert!(matches!(config.validate(), Err(Error::InvalidConfig(_))));
        assert!(ServerConfig::default().validate().is_ok());
        for writers in [0, 17] {
            let mut config = ServerConfig::default();
            config.tuning.fanout_writers = writers;
            assert!(
                matches!(config.validate(), Err(Error::InvalidConfig(_))),
                "{writers}"
            );
        }
    }

    #[test]
    fn compression_needs_its_feature() {
        let config = ServerConfig {
            compression: true,
            ..ServerConfig::default()
        };
        let result = config.validate();
        #[cfg(feature = "compression")]
        assert!(result.is_ok(), "{result:?}");
        #[cfg(not(feature = "compression"))]
        assert!(
            matches!(&result, Err(Error::InvalidConfig(what)) if what.contains("`compression`")),
            "{result:?}"
        );
    }
}
