//! Scale-out through Redis pub/sub (SPEC 15), behind the `redis` cargo feature.
//!
//! Several `signalhub` processes ("nodes") of one cluster share one Redis channel,
//! `signalhub:{cluster}`. Every broadcast, path and client-id signal a node routes is
//! published there once; every node delivers what it receives to its own matching clients.
//! Sender-only signals ([`Mode::Direct`](crate::Mode::Direct), a client's `direct`, its own
//! id) and client-id signals for a client of this node never leave the node.
//!
//! Two threads per node, both named and joined at shutdown:
//! - `sh-bp-publish` takes (target, frame) from the fan-out thread over a bounded channel
//!   (the fan-out never waits on Redis: when the channel is full the signal is only
//!   delivered locally, counted in `backplane_dropped`) and `PUBLISH`es them in order on one
//!   connection, so per-sender order holds on every node;
//! - `sh-bp-subscribe` holds a dedicated `SUBSCRIBE`d connection, decodes what arrives and
//!   hands it to the fan-out thread, marked remote so it is never published again. A node
//!   drops its own publications (each message carries the random node id of its publisher).
//!
//! When Redis is down (or refuses the credentials, or its certificate) the node keeps serving
//! its own clients: signals are delivered locally and not published (they are lost for the
//! other nodes; they are not replayed). Both threads log the outage once, retry with a
//! jittered backoff (100 ms doubling to 5 s) and log once when Redis is back.
//!
//! `rediss://` goes through the redis crate's rustls TLS (feature `tls-rustls`). That code
//! builds its rustls config on the process-wide default crypto provider, so a node with a
//! `rediss://` URL installs ring (the provider signalhub ships) as that default at start when
//! the application has installed none; one the application installed is used as it is.
//! Trust: the CA file of [`Backplane::ca_file`] alone, else Mozilla's roots (feature
//! `webpki-roots`, on by default), else the system's roots (read by the redis crate).
//!
//! Wire format of one message (binary, big-endian):
//! `b"SHB1"`, node id (16 bytes), kind (1 byte: 0 all, 1 path, 2 client, 3 wake-up, 4 group,
//! 5 user, 6 list of clients), opcode (1 byte: 1 text, 2 binary), target length (u16) and
//! target (the path, the client id as text, the group, the user id, or the listed client
//! ids as 16 big-endian bytes each), then the frame's payload (the bytes receivers get).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::metrics::Counters;
use crate::outbound::ReconnectPolicy;
use crate::protocol::frame::{OPCODE_BINARY, OPCODE_TEXT};
use crate::protocol::{Frame, Target};
use crate::server::{Command, Outgoing};
use crate::threads;
use crate::{ClientId, Error, Result};

/// Signals that may wait for the publisher thread; past this the fan-out drops (counts and
/// logs) instead of waiting.
const PUBLISH_QUEUE: usize = 16 * 1024;
/// First reconnect delay; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A subscribed connection silent this long is pinged, to find a dead (half-open) link.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long a `PUBLISH` (or a ping) may take before the connection counts as lost.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The first bytes of every message.
const MAGIC: &[u8; 4] = b"SHB1";

const KIND_ALL: u8 = 0;
const KIND_PATH: u8 = 1;
const KIND_CLIENT: u8 = 2;
/// Sent by a stopping node to itself, to unblock its subscriber.
const KIND_WAKE: u8 = 3;
const KIND_GROUP: u8 = 4;
const KIND_USER: u8 = 5;
const KIND_CLIENTS: u8 = 6;

/// The most client ids one message lists (its target length is a u16).
pub(crate) const MAX_LISTED: usize = u16::MAX as usize / 16;

/// Where a server shares its signals with other nodes: a Redis server and a cluster name.
/// Set it in [`ServerConfig::backplane`](crate::ServerConfig::backplane).
///
/// The URL forms (those of the `redis` crate):
/// - `redis://host:port/db` (port 6379 and database 0 when left out; the database does not
///   matter to pub/sub);
/// - with credentials: `redis://:password@host/` (Redis' `requirepass`) or
///   `redis://user:password@host/` (an ACL user); percent-encode `@`, `:`, `/`, `?`, `#`
///   and `%` in them (`p@ss` is `p%40ss`);
/// - `rediss://` instead of `redis://`: TLS (1.2 or 1.3, rustls), the certificate checked
///   against the CA file of [`Backplane::ca_file`] when one is given, else Mozilla's roots
///   (feature `webpki-roots`, on by default), else the system's; `#insecure` (no check) is
///   refused;
/// - `redis+unix:///path/redis.sock?db=0&user=u&pass=p`: a Unix socket.
///
/// Credentials go out in Redis' `AUTH` at each connection. Refused ones, like an unreachable
/// Redis or a certificate that does not check, do not stop the server: it serves its own
/// clients, logs the outage once and retries with a backoff. The password never shows in
/// logs, errors or this type's `Debug` form (it shows as `***`).
///
/// ```
/// let mut config = signalhub::ServerConfig::default();
/// config.backplane = Some(signalhub::Backplane::redis("redis://127.0.0.1:6379/").cluster("chat"));
/// // A managed Redis: TLS and an ACL user.
/// let managed = signalhub::Backplane::redis("rediss://app:s3cret@redis.example.com:6380/");
/// // A Redis with a certificate from a private CA.
/// let private = signalhub::Backplane::redis("rediss://:s3cret@10.0.0.5:6379/")
///     .ca_file("/etc/signalhub/redis-ca.pem");
/// assert!(!format!("{private:?}").contains("s3cret"));
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
#[derive(Clone, PartialEq, Eq)]
pub struct Backplane {
    url: String,
    cluster: String,
    ca_file: Option<PathBuf>,
}

impl Backplane {
    /// Redis at `url` (see [`Backplane`] for the forms: `redis://host:port/`,
    /// `rediss://user:password@host/`...), cluster `default`.
    pub fn redis(url: impl Into<String>) -> Backplane {
        Backplane {
            url: url.into(),
            cluster: "default".to_owned(),
            ca_file: None,
        }
    }

    /// Trusts the CA certificates of this PEM file (one or more), and only them, for a
    /// `rediss://` URL: for a Redis whose certificate comes from a private CA. The file is
    /// read, and checked, when the server starts: a missing or unusable file stops the start
    /// with an [`Error::Certificate`] naming it. A CA file with a `redis://` URL is an
    /// [`Error::InvalidConfig`].
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Backplane {
        self.ca_file = Some(path.into());
        self
    }

    /// Sets the cluster name: only nodes with the same name share signals (the Redis channel
    /// is `signalhub:{name}`).
    pub fn cluster(mut self, name: impl Into<String>) -> Backplane {
        self.cluster = name.into();
        self
    }

    /// The Redis URL as given, password included: log the `Debug` form of the [`Backplane`]
    /// instead, which hides it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster name.
    pub fn cluster_name(&self) -> &str {
        &self.cluster
    }

    /// The CA file given to [`Backplane::ca_file`], if any.
    pub fn ca_file_path(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The Redis channel the cluster shares.
    pub fn channel(&self) -> String {
        format!("signalhub:{}", self.cluster)
    }

    /// Checks the URL, the CA file and the name, without connecting.
    pub(crate) fn validate(&self) -> Result<()> {
        self.client()?;
        if self.cluster.is_empty() {
            return Err(Error::InvalidConfig(
                "backplane: the cluster name is empty".into(),
            ));
        }
        Ok(())
    }
}

impl Backplane {
    /// The redis crate's client for this configuration, which connects nowhere yet: the URL
    /// parsed, `#insecure` refused, the CA file read and checked.
    fn client(&self) -> Result<redis::Client> {
        use redis::IntoConnectionInfo;
        let bad_url = |e: redis::RedisError| {
            Error::InvalidConfig(format!(
                "backplane: bad Redis URL {:?}: {e}",
                redacted(&self.url)
            ))
        };
        let info = self.url.as_str().into_connection_info().map_err(bad_url)?;
        let tls = match info.addr() {
            redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
                return Err(Error::InvalidConfig(format!(
                    "backplane: Redis URL {:?}: #insecure (no certificate check) is not \
                     supported; give the server's CA with Backplane::ca_file",
                    redacted(&self.url)
                )))
            }
            redis::ConnectionAddr::TcpTls { .. } => true,
            _ => false,
        };
        match &self.ca_file {
            None => redis::Client::open(info).map_err(bad_url),
            Some(path) if !tls => Err(Error::InvalidConfig(format!(
                "backplane: a CA file ({}) needs a rediss:// URL, not {:?}",
                path.display(),
                redacted(&self.url)
            ))),
            Some(path) => {
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(crate::tls::ca_file_pem(path)?),
                };
                redis::Client::build_with_tls(info, certificates).map_err(bad_url)
            }
        }
    }
}

impl fmt::Debug for Backplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backplane")
            .field("url", &redacted(&self.url))
            .field("cluster", &self.cluster)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// What the fan-out thread hands to the publisher thread.
struct ToPublish {
    target: Target,
    frame: Frame,
}

/// The fan-out thread's side of the backplane: offers signals for publication.
pub(crate) struct Outlet {
    queue: Sender<ToPublish>,
    metrics: Arc<Counters>,
    /// Set while the queue is full, so a burst of drops logs once.
    full: bool,
}

impl Outlet {
    /// Queues a signal for publication; never blocks. A full queue drops it (for the other
    /// nodes only), counted and logged once per burst.
    pub(crate) fn offer(&mut self, target: &Target, frame: &Frame) {
        let item = ToPublish {
            target: target.clone(),
            frame: frame.clone(),
        };
        match self.queue.try_send(item) {
            Ok(()) => self.full = false,
            Err(TrySendError::Full(_)) => {
                Counters::add(&self.metrics.backplane_dropped, 1);
                if !self.full {
                    self.full = true;
                    log::warn!("backplane: publish queue full; signals stay local until it drains");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                Counters::add(&self.metrics.backplane_dropped, 1);
            }
        }
    }
}

/// The running backplane's threads.
pub(crate) struct Running {
    client: redis::Client,
    channel: String,
    node: [u8; 16],
    stop: Arc<AtomicBool>,
    /// Dropped to wake the subscriber from a backoff wait.
    wake: Option<Sender<()>>,
    /// Returns its connection, if it has one, for the subscriber's wake-up.
    publisher: Option<JoinHandle<Option<redis::Connection>>>,
    subscriber: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops both threads and joins them. Call it after the fan-out thread has stopped (its
    /// [`Outlet`] dropped): the publisher sends what is queued and hands back its connection,
    /// on which a wake-up is published for this node's subscriber (blocked reading Redis).
    /// With Redis unreachable the subscriber is in its backoff wait, woken at once, or at
    /// worst notices at its next heartbeat.
    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake.take();
        let connection = self
            .publisher
            .take()
            .and_then(|publisher| publisher.join().ok())
            .flatten();
        if let Some(subscriber) = self.subscriber.take() {
            if !subscriber.is_finished() {
                wake_subscriber(&self.client, &self.channel, &self.node, connection);
            }
            crate::threads::join(subscriber);
        }
    }
}

/// Starts the publisher and subscriber threads. Returns the fan-out's [`Outlet`] and the
/// threads. Does not wait for Redis: a node whose Redis is down starts and serves locally.
pub(crate) fn start(
    config: &Backplane,
    commands: Sender<Command>,
    metrics: Arc<Counters>,
) -> Result<(Outlet, Running)> {
    let client = config.client()?;
    if matches!(
        client.get_connection_info().addr(),
        redis::ConnectionAddr::TcpTls { .. }
    ) {
        install_crypto_provider();
    }
    let shown: Arc<str> = redacted(&config.url).into();
    let node = ClientId::random().as_u128().to_be_bytes();
    let channel = config.channel();
    let stop = Arc::new(AtomicBool::new(false));
    let (queue, queued) = crossbeam_channel::bounded(PUBLISH_QUEUE);
    let (wake, woken) = crossbeam_channel::bounded::<()>(0);
    let publisher = Publisher {
        client: client.clone(),
        shown: shown.clone(),
        channel: channel.clone(),
        node,
        queued,
        metrics: metrics.clone(),
    };
    let subscriber = Subscriber {
        client: client.clone(),
        shown: shown.clone(),
        channel: channel.clone(),
        node,
        commands,
        metrics: metrics.clone(),
        stop: stop.clone(),
        woken,
    };
    let mut running = Running {
        client,
        channel,
        node,
        stop,
        wake: Some(wake),
        publisher: None,
        subscriber: None,
    };
    running.subscriber = Some(threads::spawn("sh-bp-subscribe", move || subscriber.run())?);
    match threads::spawn("sh-bp-publish", move || publisher.run()) {
        Ok(thread) => running.publisher = Some(thread),
        Err(e) => {
            running.stop();
            return Err(e);
        }
    }
    log::info!("backplane: cluster {:?} on {shown}", config.cluster);
    let outlet = Outlet {
        queue,
        metrics,
        full: false,
    };
    Ok((outlet, running))
}

/// For `rediss://`: the redis crate builds its rustls config on the process-wide default
/// crypto provider, and rustls, when none is installed, installs the one its cargo features
/// name, or panics when they name two (an application that also enables aws-lc-rs). So
/// install ring, the provider signalhub ships, unless the application installed one.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
        log::debug!("backplane: ring installed as the process's rustls provider, for rediss://");
    }
}

/// Publishes a wake-up that only stops this node's subscriber (it checks the stop flag after
/// every message), on `connection` or a new one.
fn wake_subscriber(
    client: &redis::Client,
    channel: &str,
    node: &[u8; 16],
    connection: Option<redis::Connection>,
) {
    let connection = connection.or_else(|| Publisher::connect_to(client).ok());
    let Some(mut con) = connection else {
        return;
    };
    let mut buf = Vec::with_capacity(32);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(node);
    buf.extend_from_slice(&[KIND_WAKE, OPCODE_TEXT, 0, 0]);
    let _ = redis::cmd("PUBLISH")
        .arg(channel)
        .arg(&buf[..])
        .query::<i64>(&mut con);
}

/// The URL with its password replaced by `***`, for logs, errors and `Debug`: the password
/// of `user:password@` (a lone `name@` is hidden whole: it may be a password put there by
/// mistake) and the value of a `pass=` or `password=` query parameter (the form of
/// `redis+unix://` URLs). Hides too much rather than too little: an `@` anywhere counts as
/// the end of the user information.
fn redacted(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let rest = match url.find("://") {
        Some(i) => {
            out.push_str(&url[..i + 3]);
            &url[i + 3..]
        }
        None => url,
    };
    let rest = match rest.rfind('@') {
        Some(at) => {
            match rest[..at].find(':') {
                Some(colon) => {
                    out.push_str(&rest[..colon]);
                    out.push_str(":***@");
                }
                None => out.push_str("***@"),
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    let Some((before, query)) = rest.split_once('?') else {
        out.push_str(rest);
        return out;
    };
    out.push_str(before);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((key, _))
                if key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password") =>
            {
                out.push_str(key);
                out.push_str("=***");
            }
            _ => out.push_str(pair),
        }
    }
    out
}

/// The waits between reconnects to Redis: the outbound clients' policy (doubling from
/// [`MIN_BACKOFF`] to [`MAX_BACKOFF`], each wait up to a quarter shorter at random).
struct Backoff {
    policy: ReconnectPolicy,
    tries: u32,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            policy: ReconnectPolicy::new().initial(MIN_BACKOFF).max(MAX_BACKOFF),
            tries: 0,
        }
    }

    fn reset(&mut self) {
        self.tries = 0;
    }

    fn next_delay(&mut self) -> Duration {
        self.tries = self.tries.saturating_add(1);
        self.policy.delay(self.tries, crate::random::unit())
    }
}

/// Logs a Redis outage once and its end once.
struct Outage {
    role: &'static str,
    /// The Redis URL, password hidden.
    shown: Arc<str>,
    since: Option<Instant>,
}

impl Outage {
    fn new(role: &'static str, shown: &Arc<str>) -> Outage {
        Outage {
            role,
            shown: shown.clone(),
            since: None,
        }
    }

    fn down(&mut self, error: &redis::RedisError) {
        if self.since.is_some() {
            return;
        }
        self.since = Some(Instant::now());
        let what = match (error.kind(), error.code()) {
            (redis::ErrorKind::AuthenticationFailed, _) => "refused the credentials of the URL",
            (_, Some("NOAUTH")) => "wants credentials, and the URL has none",
            (_, Some("NOPERM")) => {
                "refused a command to the URL's user (its ACL needs PUBLISH, SUBSCRIBE and PING \
                 on the channel)"
            }
            _ => "unavailable",
        };
        log::warn!(
            "backplane {}: Redis at {} {what} ({error}); serving local clients only, reconnecting",
            self.role,
            self.shown
        );
    }

    fn up(&mut self) {
        if let Some(since) = self.since.take() {
            log::info!(
                "backplane {}: Redis at {} back after {:.1} s",
                self.role,
                self.shown,
                since.elapsed().as_secs_f64()
            );
        }
    }
}

/// Publishes in the order the fan-out routed.
struct Publisher {
    client: redis::Client,
    /// The Redis URL, password hidden.
    shown: Arc<str>,
    channel: String,
    node: [u8; 16],
    queued: Receiver<ToPublish>,
    metrics: Arc<Counters>,
}

impl Publisher {
    /// Runs until the fan-out's [`Outlet`] is gone and the queue is empty; returns its
    /// connection (for the subscriber's wake-up). While Redis is down, queued signals are dropped (they were delivered
    /// locally) and a reconnect is tried when a signal comes after the backoff delay: nothing
    /// runs while nothing is sent.
    fn run(self) -> Option<redis::Connection> {
        let mut connection: Option<redis::Connection> = None;
        let mut backoff = Backoff::new();
        let mut retry_at = Instant::now();
        let mut outage = Outage::new("publisher", &self.shown);
        let mut buf = Vec::new();
        for item in self.queued.iter() {
            if connection.is_none() && Instant::now() >= retry_at {
                match self.connect() {
                    Ok(c) => {
                        outage.up();
                        backoff.reset();
                        connection = Some(c);
                    }
                    Err(e) => {
                        outage.down(&e);
                        retry_at = Instant::now() + backoff.next_delay();
                    }
                }
            }
            let Some(con) = connection.as_mut() else {
                Counters::add(&self.metrics.backplane_dropped, 1);
                continue;
            };
            if !encode(&mut buf, &self.node, &item.target, &item.frame) {
                continue;
            }
            match redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(&buf[..])
                .query::<i64>(con)
            {
                Ok(_) => Counters::add(&self.metrics.backplane_published, 1),
                Err(e) => {
                    Counters::add(&self.metrics.backplane_dropped, 1);
                    outage.down(&e);
                    connection = None;
                    retry_at = Instant::now() + backoff.next_delay();
                }
            }
        }
        connection
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        Publisher::connect_to(&self.client)
    }

    /// A connection whose commands time out.
    fn connect_to(client: &redis::Client) -> redis::RedisResult<redis::Connection> {
        let connection = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(connection)
    }
}

/// Receives the cluster's signals and hands them to the fan-out thread.
struct Subscriber {
    client: redis::Client,
    /// The Redis URL, password hidden.
    shown: Arc<str>,
    channel: String,
    node: [u8; 16],
    commands: Sender<Command>,
    metrics: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Disconnected when the backplane stops.
    woken: Receiver<()>,
}

/// Why a subscribed session ended.
enum Ended {
    Stopped,
    Lost(redis::RedisError),
}

impl Subscriber {
    fn run(self) {
        let mut backoff = Backoff::new();
        let mut outage = Outage::new("subscriber", &self.shown);
        while !self.stop.load(Ordering::SeqCst) {
            match self.session(&mut outage, &mut backoff) {
                Ended::Stopped => return,
                Ended::Lost(e) => outage.down(&e),
            }
            match self.woken.recv_timeout(backoff.next_delay()) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// One connection: subscribe, then forward messages until it breaks or the node stops.
    fn session(&self, outage: &mut Outage, backoff: &mut Backoff) -> Ended {
        let mut connection = match Publisher::connect_to(&self.client) {
            Ok(c) => c,
            Err(e) => return Ended::Lost(e),
        };
        if let Err(e) = subscribe(&mut connection, &self.channel) {
            return Ended::Lost(e);
        }
        let mut pubsub = connection.as_pubsub();
        if let Err(e) = pubsub.set_read_timeout(Some(HEARTBEAT)) {
            return Ended::Lost(e);
        }
        outage.up();
        backoff.reset();
        // Stopped before the subscription took: the wake-up may have gone out unheard.
        if self.stop.load(Ordering::SeqCst) {
            return Ended::Stopped;
        }
        loop {
            let message = match pubsub.get_message() {
                Ok(message) => message,
                Err(e) if e.is_timeout() && !self.stop.load(Ordering::SeqCst) => {
                    // Quiet for a while: make sure the link is alive.
                    match pubsub.ping::<redis::Value>() {
                        Ok(_) => continue,
                        Err(e) => return Ended::Lost(e),
                    }
                }
                Err(e) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return Ended::Stopped;
                    }
                    return Ended::Lost(e);
                }
            };
            if self.stop.load(Ordering::SeqCst) {
                return Ended::Stopped;
            }
            match decode(message.get_payload_bytes()) {
                Some(Decoded::Signal {
                    node,
                    target,
                    frame,
                }) if node != self.node => {
                    Counters::add(&self.metrics.backplane_received, 1);
                    if self
                        .commands
                        .send(Command::Signal(Outgoing::remote(frame, target)))
                        .is_err()
                    {
                        return Ended::Stopped; // the fan-out thread is gone
                    }
                }
                Some(_) => {} // our own publication, or a wake-up
                None => log::warn!("backplane: ignored a malformed message on {}", self.channel),
            }
        }
    }
}

/// Subscribes `connection` to `channel` and checks Redis' answer. The redis crate's
/// `PubSub::subscribe` drops that answer, so a refusal (`NOAUTH` without a password where
/// one is needed, `NOPERM` for an ACL user without the channel) would pass for a
/// subscription: the node would wait, deaf, on a connection that never delivers.
fn subscribe(connection: &mut redis::Connection, channel: &str) -> redis::RedisResult<()> {
    use redis::{PushKind, Value};
    let command = redis::cmd("SUBSCRIBE").arg(channel).get_packed_command();
    connection.send_packed_command(&command)?;
    let answer = connection.recv_response()?;
    let confirmed = match &answer {
        // RESP2: ["subscribe", channel, count].
        Value::Array(items) => matches!(
            items.as_slice(),
            [Value::BulkString(kind), Value::BulkString(name), Value::Int(_)]
                if kind.as_slice() == b"subscribe" && name.as_slice() == channel.as_bytes()
        ),
        // RESP3 (`?protocol=resp3`): a push of kind subscribe, [channel, count].
        Value::Push {
            kind: PushKind::Subscribe,
            data,
        } => matches!(
            data.as_slice(),
            [Value::BulkString(name), Value::Int(_)] if name.as_slice() == channel.as_bytes()
        ),
        _ => false,
    };
    match answer {
        _ if confirmed => Ok(()),
        Value::ServerError(e) => Err(e.into()),
        other => Err(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "unexpected answer to SUBSCRIBE",
            format!("{other:?}"),
        ))),
    }
}

/// Appends a signal's wire form to `buf` (cleared first). False when the frame is not a
/// text or binary data frame (never the case for signals) or the target is too long.
fn encode(buf: &mut Vec<u8>, node: &[u8; 16], target: &Target, frame: &Frame) -> bool {
    let (opcode, payload) = (frame.opcode(), frame.payload());
    if !matches!(opcode, OPCODE_TEXT | OPCODE_BINARY) {
        return false;
    }
    let owned: Vec<u8>;
    let (kind, target): (u8, &[u8]) = match target {
        Target::All => (KIND_ALL, b""),
        Target::Path(path) => (KIND_PATH, path.as_bytes()),
        Target::Client(id) => {
            owned = id.to_string().into_bytes();
            (KIND_CLIENT, &owned)
        }
        Target::Clients(ids) => {
            owned = ids
                .iter()
                .flat_map(|id| id.as_u128().to_be_bytes())
                .collect();
            (KIND_CLIENTS, &owned)
        }
        Target::User(user) => (KIND_USER, user.as_bytes()),
        // A client's group message is checked (the sender is a member) before it is offered.
        Target::Group(group) | Target::GroupOfSender { group, .. } => {
            (KIND_GROUP, group.as_bytes())
        }
    };
    let Ok(target_len) = u16::try_from(target.len()) else {
        return false;
    };
    buf.clear();
    buf.reserve(4 + 16 + 4 + target.len() + payload.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(node);
    buf.push(kind);
    buf.push(opcode);
    buf.extend_from_slice(&target_len.to_be_bytes());
    buf.extend_from_slice(target);
    buf.extend_from_slice(payload);
    true
}

/// A message read from the channel.
#[derive(Debug)]
enum Decoded {
    Signal {
        node: [u8; 16],
        target: Target,
        frame: Frame,
    },
    Wake,
}

/// Reads a message; `None` when it is not one of ours or is malformed.
fn decode(bytes: &[u8]) -> Option<Decoded> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let node: [u8; 16] = rest.get(..16)?.try_into().ok()?;
    let (&kind, rest) = rest.get(16..)?.split_first()?;
    let (&opcode, rest) = rest.split_first()?;
    let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let target = rest.get(2..2 + len)?;
    let payload = rest.get(2 + len..)?;
    let target = match kind {
        KIND_ALL if target.is_empty() => Target::All,
        KIND_PATH => Target::Path(std::str::from_utf8(target).ok()?.to_owned()),
        KIND_CLIENT => Target::Client(std::str::from_utf8(target).ok()?.parse().ok()?),
        KIND_GROUP => Target::Group(std::str::from_utf8(target).ok()?.to_owned()),
        KIND_USER => Target::User(std::str::from_utf8(target).ok()?.to_owned()),
        KIND_CLIENTS if target.len() % 16 == 0 => {
            let ids = target.chunks_exact(16).map(|bytes| {
                let bytes: [u8; 16] = bytes.try_into().unwrap_or_default();
                ClientId::from_u128(u128::from_be_bytes(bytes))
            });
            Target::clients(ids.collect())
        }
        KIND_WAKE => return Some(Decoded::Wake),
        _ => return None,
    };
    let frame = match opcode {
        OPCODE_TEXT => Frame::text(payload),
        OPCODE_BINARY => Frame::binary(payload),
        _ => return None,
    };
    Some(Decoded::Signal {
        node,
        target,
        frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(target: Target, frame: Frame) {
        let node = [7u8; 16];
        let mut buf = Vec::new();
        assert!(encode(&mut buf, &node, &target, &frame));
        match decode(&buf) {
            Some(Decoded::Signal {
                node: n,
                target: t,
                frame: f,
            }) => {
                assert_eq!(n, node);
                assert_eq!(t, target);
                assert_eq!(f.as_bytes(), frame.as_bytes());
            }
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn messages_round_trip_for_every_target_and_size() {
        round_trip(Target::All, Frame::text(b"hi"));
        round_trip(Target::Path("/chat".into()), Frame::text(&[b'x'; 300]));
        round_trip(
            Target::Client(ClientId::random()),
            Frame::binary(&[1u8; 70_000]),
        );
        round_trip(Target::All, Frame::text(b""));
        round_trip(Target::Group("ops".into()), Frame::text(b"g"));
        round_trip(Target::User("alice".into()), Frame::binary(b"u"));
        round_trip(
            Target::clients((0..MAX_LISTED).map(|_| ClientId::random()).collect()),
            Frame::text(b"many"),
        );
    }

    #[test]
    fn malformed_messages_are_rejected() {
        assert!(decode(b"").is_none());
        assert!(decode(b"SHB1short").is_none());
        let mut buf = Vec::new();
        encode(
            &mut buf,
            &[1; 16],
            &Target::Path("/p".into()),
            &Frame::text(b"x"),
        );
        assert!(
            decode(&buf[..buf.len() - 4]).is_none(),
            "cut inside the target"
        );
        buf[21] = 9; // opcode
        assert!(decode(&buf).is_none());
        let mut client = Vec::new();
        encode(
            &mut client,
            &[1; 16],
            &Target::Client(ClientId::random()),
            &Frame::text(b"x"),
        );
        client[26] = b'z'; // not hex
        assert!(decode(&client).is_none());
        assert!(
            !encode(&mut client, &[1; 16], &Target::All, &Frame::ping(b"p")),
            "no control frames"
        );
    }

    #[test]
    fn backoff_grows_to_five_seconds_with_jitter() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay();
        assert!(first >= MIN_BACKOFF * 3 / 4 && first <= MIN_BACKOFF);
        for _ in 0..10 {
            backoff.next_delay();
        }
        let last = backoff.next_delay();
        assert!(last >= MAX_BACKOFF * 3 / 4 && last <= MAX_BACKOFF);
        backoff.reset();
        assert!(backoff.next_delay() <= MIN_BACKOFF);
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        for (url, shown) in [
            ("redis://:secret@host:6379/0", "redis://:***@host:6379/0"),
            ("rediss://alice:secret@host/", "rediss://alice:***@host/"),
            ("redis://alice:s%40c:r@et@host/", "redis://alice:***@host/"),
            ("redis://secret@host/", "redis://***@host/"),
            ("redis://host/", "redis://host/"),
            (
                "redis://host/?protocol=resp3",
                "redis://host/?protocol=resp3",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&user=bob&pass=secret",
                "redis+unix:///run/redis.sock?db=1&user=bob&pass=***",
            ),
            (
                "unix:///run/redis.sock?PASSWORD=secret",
                "unix:///run/redis.sock?PASSWORD=***",
            ),
            ("no-scheme:secret@host", "no-scheme:***@host"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }

    #[test]
    fn credentials_come_from_the_url_percent_decoded() {
        for (url, user, password) in [
            (
                "redis://alice:p%40ss%3Aw@127.0.0.1/",
                Some("alice"),
                Some("p@ss:w"),
            ),
            ("rediss://:secret@127.0.0.1:6380/2", None, Some("secret")),
            ("redis://127.0.0.1/", None, None),
            (
                "redis+unix:///tmp/r.sock?user=bob&pass=pw",
                Some("bob"),
                Some("pw"),
            ),
        ] {
            let client = Backplane::redis(url).client().unwrap();
            let settings = client.get_connection_info().redis_settings();
            assert_eq!(settings.username(), user, "{url}");
            assert_eq!(settings.password(), password, "{url}");
        }
    }

    #[test]
    fn tls_urls_and_ca_files_are_checked_at_start() {
        let tls = Backplane::redis("rediss://:pw@127.0.0.1:6380/")
            .client()
            .unwrap();
        assert!(matches!(
            tls.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        ));
        let err = Backplane::redis("rediss://127.0.0.1/#insecure")
            .validate()
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig(m) if m.contains("#insecure")),
            "{err}"
        );
        let err = Backplane::redis("redis://127.0.0.1/")
            .ca_file("/nonexistent/ca.pem")
            .validate()
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig(m) if m.contains("needs a rediss:// URL")),
            "{err}"
        );
        let err = Backplane::redis("rediss://127.0.0.1/")
            .ca_file("/nonexistent/ca.pem")
            .validate()
            .unwrap_err();
        assert_eq!(err.to_string(), "tls: /nonexistent/ca.pem: not found");
        let not_pem =
            std::env::temp_dir().join(format!("signalhub-bp-ca-{}.pem", ClientId::random()));
        std::fs::write(&not_pem, "hello").unwrap();
        let err = Backplane::redis("rediss://127.0.0.1/")
            .ca_file(&not_pem)
            .validate()
            .unwrap_err();
        let _ = std::fs::remove_file(&not_pem);
        assert!(
            matches!(&err, Error::Certificate { file, .. } if *file == not_pem),
            "{err}"
        );
    }

    #[test]
    fn debug_and_errors_hide_the_password() {
        let backplane = Backplane::redis("redis://alice:secret@127.0.0.1:6379/").cluster("c");
        let debug = format!("{backplane:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(
            debug.contains("redis://alice:***@127.0.0.1:6379/"),
            "{debug}"
        );
        let err = Backplane::redis("redis://:secret@127.0.0.1/notanumber")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains(":***@"), "{err}");
    }
}
