//! The Redis backplane (SPEC 15, feature `redis`): three nodes of one cluster on a real
//! `redis-server` (started by the test on a free port, killed at the end), clients spread over
//! them. Broadcast, path and client-id signals cross nodes exactly once and in order per
//! sender; sender-only signals stay local; a node keeps serving while Redis is down and
//! resumes when it is back.
//!
//! Credentials (`requirepass`, an ACL user) and `rediss://` (a redis-server with TLS only, its
//! certificate from a CA generated here) are tested the same way; a wrong password or an
//! unknown CA leaves a node serving alone, logged once, without a reconnect storm.
//!
//! Without `redis-server` on the PATH the tests say SKIPPING loudly and pass; so does the TLS
//! test when redis-server was built without TLS.
//!
//! "Nothing else arrived" is proven with a fence: after the message under test, the same
//! sender broadcasts a marker; per receiver, one sender's signals keep their order across
//! nodes, so anything the first message caused arrives before the marker.
#![cfg(feature = "redis")]

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use log::{LevelFilter, Log, Metadata, Record};
use serde_json::json;
use signalhub::{Backplane, ClientId, SendOptions, ServerHandle};
use support::certs::TestCerts;
use support::*;

const FENCE: &str = "--fence--";

/// A `redis-server` on 127.0.0.1 (no persistence), killed when dropped.
struct RedisServer {
    port: u16,
    /// `redis` or `rediss` (then the port is the TLS port, and the only one).
    scheme: &'static str,
    /// Arguments beyond port, address and persistence: credentials, TLS files.
    args: Vec<String>,
    /// The user information (`:password@`, `user:password@`, or empty) of [`RedisServer::url`],
    /// the URL of the test's own connections and of most nodes.
    auth: String,
    /// For `rediss`: the CA the test's own connections trust.
    ca_file: Option<PathBuf>,
    child: Option<Child>,
    /// redis-server's output, read when it fails to start.
    log: PathBuf,
}

impl RedisServer {
    /// Starts one on a free port; `None` (after a loud message) when there is no redis-server.
    fn start() -> Option<RedisServer> {
        let mut server = RedisServer::new("redis", Vec::new(), "")?;
        server.launch().unwrap_or_else(|output| panic!("{output}"));
        Some(server)
    }

    /// One not started yet, on a free port; `None` (after a loud message) when there is no
    /// redis-server.
    fn new(scheme: &'static str, args: Vec<String>, auth: &str) -> Option<RedisServer> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok();
        if !found {
            eprintln!(
                "\n!!!!!!!! SKIPPING the backplane tests: redis-server is not installed \
                 (make unit / .ci/run install it) !!!!!!!!\n"
            );
            return None;
        }
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("signalhub-redis-{port}-{}.log", ClientId::random()));
        Some(RedisServer {
            port,
            scheme,
            args,
            auth: auth.to_owned(),
            ca_file: None,
            child: None,
            log,
        })
    }

    fn url(&self) -> String {
        self.url_with(&self.auth)
    }

    /// The URL with other user information (`:password@`, `user:password@`, or empty).
    fn url_with(&self, auth: &str) -> String {
        format!("{}://{auth}127.0.0.1:{}/", self.scheme, self.port)
    }

    /// Starts redis-server on the port and waits (bounded) until it answers PING. When it
    /// exits first, returns what it printed.
    fn launch(&mut self) -> Result<(), String> {
        let output = std::fs::File::create(&self.log).expect("redis-server's log file");
        let port = self.port.to_string();
        let port_args = match self.scheme {
            "rediss" => vec!["--port", "0", "--tls-port", &port],
            _ => vec!["--port", &port],
        };
        let child = Command::new("redis-server")
            .args(port_args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(&self.args)
            .stdout(output.try_clone().expect("log file"))
            .stderr(output)
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let printed = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("redis-server exited ({status}):\n{printed}"));
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = match &self.ca_file {
            Some(ca) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(ca)?),
                },
            )?,
            None => redis::Client::open(self.url())?,
        };
        client.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// Connections accepted since it started (rejected credentials included).
    fn connections_received(&self) -> u64 {
        let mut c = self.connection().expect("a connection");
        let info: String = redis::cmd("INFO").arg("stats").query(&mut c).expect("INFO");
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("total_connections_received in INFO stats")
    }

    fn ping(&self) -> bool {
        self.connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// Subscribers on the cluster's channel.
    fn subscribers(&self, cluster: &str) -> i64 {
        let Ok(mut c) = self.connection() else {
            return -1;
        };
        redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("signalhub:{cluster}"))
            .query::<(String, i64)>(&mut c)
            .map(|(_, n)| n)
            .unwrap_or(-1)
    }

    /// Waits until `n` nodes are subscribed (bounded).
    fn wait_subscribed(&self, cluster: &str, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.subscribers(cluster) != n {
            assert!(
                Instant::now() < deadline,
                "{n} nodes did not subscribe (have {})",
                self.subscribers(cluster)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Every log record of this test binary (all tests), as `LEVEL target: message`.
static LOGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl Log for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOGS.lock().unwrap_or_else(|p| p.into_inner()).push(line);
    }

    fn flush(&self) {}
}

/// Starts recording the log (once per test binary), down to debug.
fn record_logs() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Recorder).expect("the only logger of this test binary");
        log::set_max_level(LevelFilter::Debug);
    });
}

/// The recorded lines containing all of `words`.
fn logged(words: &[&str]) -> Vec<String> {
    let logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
    logs.iter()
        .filter(|line| words.iter().all(|w| line.contains(w)))
        .cloned()
        .collect()
}

/// A password no log line may contain, unique to the test.
fn password(what: &str) -> String {
    format!("{what}-{}", ClientId::random())
}

fn node(url: &str, cluster: &str) -> ServerHandle {
    node_with(Backplane::redis(url).cluster(cluster))
}

fn node_with(backplane: Backplane) -> ServerHandle {
    let mut config = config();
    config.backplane = Some(backplane);
    start_with(config, |_| {})
}

fn cluster_name() -> String {
    format!("test-{}", signalhub::ClientId::random())
}

/// `sender` broadcasts a marker; it must be the next message of every client in `all`
/// (the sender among them).
fn fence(sender: usize, all: &mut [&mut Client]) {
    all[sender].send_json(json!({ "message": FENCE }));
    for (i, client) in all.iter_mut().enumerate() {
        assert_eq!(
            client.recv(),
            FENCE,
            "client #{i} got something before the fence"
        );
    }
}

#[test]
fn signals_cross_nodes_once_in_order_and_direct_stays_local() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let cluster = cluster_name();
    let a = node(&redis.url(), &cluster);
    let b = node(&redis.url(), &cluster);
    // One node speaks RESP3 (its subscription answers and messages are pushes).
    let c = node(&format!("{}?protocol=resp3", redis.url()), &cluster);
    redis.wait_subscribed(&cluster, 3);
    let mut a1 = connect(&a, "/chat");
    let mut a2 = connect(&a, "/");
    let mut b1 = connect(&b, "/chat");
    let mut b2 = connect(&b, "/other");
    let mut c1 = connect(&c, "/Chat");
    let mut all = [&mut a1, &mut a2, &mut b1, &mut b2, &mut c1];
    // Broadcast: everyone on every node, once.
    all[1].send_json(json!({ "message": "hello all" }));
    for client in all.iter_mut() {
        assert_eq!(client.recv(), "hello all");
    }
    fence(1, &mut all);
    // Path: the /chat clients of every node (paths are case-insensitive), not the others.
    all[3].send_json(json!({ "message": { "n": 1 }, "path": "/CHAT" }));
    for i in [0, 2, 4] {
        assert_eq!(all[i].recv(), r#"{"n":1}"#);
    }
    fence(3, &mut all);
    // Client id on another node: that client only.
    let a2_id = all[1].id.to_string();
    all[4].send_json(json!({ "message": "psst", "clientId": a2_id }));
    assert_eq!(all[1].recv(), "psst");
    fence(4, &mut all);
    // Direct and the sender's own id: the sender only, never published.
    let published = a.metrics().snapshot().backplane_published;
    let own = all[0].id.to_string();
    all[0].send_json(json!({ "message": "me", "direct": true }));
    all[0].send_json(json!({ "message": "me too", "clientId": own }));
    assert_eq!(all[0].recv(), "me");
    assert_eq!(all[0].recv(), "me too");
    // A client id on the same node stays on it too.
    let a1_id = all[0].id.to_string();
    all[1].send_json(json!({ "message": "neighbour", "clientId": a1_id }));
    assert_eq!(all[0].recv(), "neighbour");
    assert_eq!(
        a.metrics().snapshot().backplane_published,
        published,
        "sender-only and same-node client signals are not published"
    );
    fence(0, &mut all);
    // Signals from code (HTTP routes, timers...) cross nodes too.
    b.signals()
        .send_with("from code", &SendOptions::new().path("/chat"))
        .unwrap();
    b.signals().send(FENCE).unwrap();
    for i in [0, 2, 4] {
        assert_eq!(all[i].recv(), "from code");
    }
    for client in all.iter_mut() {
        assert_eq!(client.recv(), FENCE);
    }
    // Order per sender, on every node.
    for n in 0..200 {
        all[2].send_json(json!({ "message": n }));
    }
    for client in all.iter_mut() {
        for n in 0..200 {
            assert_eq!(client.recv(), n.to_string());
        }
    }
    fence(2, &mut all);
    let (ma, mb, mc) = (
        a.metrics().snapshot(),
        b.metrics().snapshot(),
        c.metrics().snapshot(),
    );
    assert!(ma.backplane_published > 0 && mb.backplane_published >= 200);
    assert!(ma.backplane_received >= 200 && mc.backplane_received >= 200);
    assert_eq!(
        ma.backplane_dropped + mb.backplane_dropped + mc.backplane_dropped,
        0
    );
    assert!(mb
        .to_prometheus()
        .contains("signalhub_backplane_published_total"));
    // Shutdown joins the backplane threads without waiting for a heartbeat (15 s apart,
    // beyond WAIT).
    within_wait("shutting the nodes down", move || drop((a, b, c)));
}

#[test]
fn a_node_serves_its_own_clients_while_redis_is_down_and_resumes() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let cluster = cluster_name();
    let a = node(&redis.url(), &cluster);
    let b = node(&redis.url(), &cluster);
    redis.wait_subscribed(&cluster, 2);
    let mut a1 = connect(&a, "/");
    let mut b1 = connect(&b, "/");
    a1.send_json(json!({ "message": "before" }));
    assert_eq!(a1.recv(), "before");
    assert_eq!(b1.recv(), "before");

    redis.kill();
    // Local delivery goes on throughout (on both nodes).
    a1.send_json(json!({ "message": "during" }));
    assert_eq!(a1.recv(), "during");
    b1.send_json(json!({ "message": "during b" }));
    assert_eq!(b1.recv(), "during b");

    redis.launch().unwrap_or_else(|output| panic!("{output}"));
    redis.wait_subscribed(&cluster, 2);
    // The publisher reconnects on its next signal after its backoff: probe until one crosses.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "signals did not cross again after Redis came back"
        );
        a1.send_json(json!({ "message": "probe" }));
        match b1.try_recv(Duration::from_millis(200)) {
            Ok(text) => {
                assert_eq!(text, "probe", "what was sent during the outage stays local");
                break;
            }
            Err(_) => continue,
        }
    }
    a1.send_json(json!({ "message": "after" }));
    for (name, client) in [("a1", &mut a1), ("b1", &mut b1)] {
        loop {
            match client.recv().as_str() {
                "after" => break,
                "probe" => {}
                other => panic!("{name} got {other:?}"),
            }
        }
    }
    assert!(b.metrics().snapshot().backplane_received >= 2);
    assert!(
        a.metrics().snapshot().backplane_dropped >= 1,
        "the outage's signal was not published"
    );
    drop((a, b));
}

#[test]
fn a_node_starts_and_stops_without_redis() {
    let Some(_redis) = RedisServer::start() else {
        return;
    };
    // A port nobody listens on.
    let port = free_port();
    let a = node(&format!("redis://127.0.0.1:{port}/"), &cluster_name());
    let mut a1 = connect(&a, "/");
    let mut a2 = connect(&a, "/x");
    a1.send_json(json!({ "message": "local" }));
    assert_eq!(a1.recv(), "local");
    assert_eq!(a2.recv(), "local");
    // It does not wait on Redis: the wait for it is bounded by WAIT.
    within_wait("shutdown", move || a.shutdown());
}

#[test]
fn a_bad_redis_url_is_a_config_error() {
    let mut config = config();
    config.backplane = Some(Backplane::redis("http://nope"));
    let mut server = signalhub::Server::with_config(config);
    server
        .endpoint(signalhub::Endpoint::ws("127.0.0.1:0"))
        .unwrap();
    assert!(matches!(
        server.start(),
        Err(signalhub::Error::InvalidConfig(_))
    ));
}

/// A wrong password leaves its node alone: it serves its own clients, logs the refusal once
/// per thread (publisher, subscriber), retries with the backoff (a handful of connections, not
/// a storm), and never logs a password. `secrets`: every password of the test, the wrong one
/// (that of `wrong_url`) last.
fn wrong_password_stays_local(
    redis: &RedisServer,
    cluster: &str,
    wrong_url: &str,
    secrets: &[&str],
) {
    let shown = wrong_url.replace(secrets[secrets.len() - 1], "***");
    let before = redis.connections_received();
    let c = node(wrong_url, cluster);
    let mut c1 = connect(&c, "/");
    let mut c2 = connect(&c, "/x");
    for n in 0..20 {
        c1.send_json(json!({ "message": format!("local {n}") }));
    }
    for n in 0..20 {
        assert_eq!(c1.recv(), format!("local {n}"));
        assert_eq!(c2.recv(), format!("local {n}"));
    }
    wait_until("the refusals are logged", || {
        logged(&["refused the credentials", &shown]).len() == 2
    });
    // Two seconds of backoff: the subscriber retries after about 0.1, 0.2, 0.4, 0.8 s...
    std::thread::sleep(Duration::from_secs(2));
    c1.send_json(json!({ "message": "still local" }));
    assert_eq!(c1.recv(), "still local");
    let attempts = redis.connections_received() - before;
    assert!(
        attempts <= 15,
        "{attempts} connections in about 2 s: the node does not back off"
    );
    let refused = logged(&["refused the credentials", &shown]);
    assert_eq!(refused.len(), 2, "logged once per thread: {refused:#?}");
    assert!(
        refused.iter().any(|l| l.contains("publisher"))
            && refused.iter().any(|l| l.contains("subscriber"))
    );
    assert!(
        c.metrics().snapshot().backplane_dropped >= 1,
        "its signals were not published"
    );
    assert_eq!(c.metrics().snapshot().backplane_published, 0);
    within_wait("shutting the refused node down", move || drop(c));
    for secret in secrets {
        let leaks = logged(&[secret]);
        assert!(leaks.is_empty(), "a password in the log: {leaks:#?}");
    }
}

#[test]
fn credentials_in_the_url_requirepass_and_an_acl_user() {
    record_logs();
    let pass = password("pass");
    let alice = password("alice");
    let wrong = password("wrong");
    let args = [
        "--requirepass",
        &pass,
        "--user",
        "alice",
        "on",
        &format!(">{alice}"),
        "~*",
        "&*",
        "+@all",
        // Every command, but no channel (Redis 7 gives new users none).
        "--user",
        "bob",
        "on",
        &format!(">{alice}"),
        "~*",
        "+@all",
    ];
    let Some(mut redis) = RedisServer::new(
        "redis",
        args.map(String::from).to_vec(),
        &format!(":{pass}@"),
    ) else {
        return;
    };
    redis.launch().unwrap_or_else(|output| panic!("{output}"));
    let cluster = cluster_name();
    // The default user with requirepass, and an ACL user.
    let a = node(&redis.url(), &cluster);
    let b = node(&redis.url_with(&format!("alice:{alice}@")), &cluster);
    redis.wait_subscribed(&cluster, 2);
    let mut a1 = connect(&a, "/");
    let mut b1 = connect(&b, "/");
    a1.send_json(json!({ "message": "from a" }));
    b1.send_json(json!({ "message": "from b" }));
    for client in [&mut a1, &mut b1] {
        let mut got = [client.recv(), client.recv()];
        got.sort();
        assert_eq!(got, ["from a", "from b"]);
    }
    // A wrong password, for the default user and for the ACL user.
    wrong_password_stays_local(
        &redis,
        &cluster,
        &redis.url_with(&format!(":{wrong}@")),
        &[&pass, &alice, &wrong],
    );
    wrong_password_stays_local(
        &redis,
        &cluster,
        &redis.url_with(&format!("alice:{wrong}@")),
        &[&pass, &alice, &wrong],
    );
    assert_eq!(
        redis.subscribers(&cluster),
        2,
        "the refused nodes never subscribed"
    );
    // No password where one is needed (NOAUTH), a user without the channel (NOPERM): Redis
    // answers SUBSCRIBE with an error, which must not pass for a subscription.
    let no_password = redis.url_with("");
    let no_channel = redis.url_with(&format!("bob:{alice}@"));
    let c = node(&no_password, &cluster);
    let d = node(&no_channel, &cluster);
    for (node, shown, why) in [
        (&c, no_password.clone(), "the URL has none"),
        (&d, no_channel.replace(&alice, "***"), "ACL"),
    ] {
        let mut alone = connect(node, "/");
        alone.send_json(json!({ "message": "alone" }));
        assert_eq!(alone.recv(), "alone");
        wait_until("the refusal is logged", || {
            logged(&[&shown, why]).len() == 2
        });
    }
    a1.send_json(json!({ "message": "still crossing" }));
    assert_eq!(b1.recv(), "still crossing");
    assert_eq!(a1.recv(), "still crossing");
    assert_eq!(redis.subscribers(&cluster), 2);
    within_wait("shutting the nodes down", move || drop((a, b, c, d)));
    for secret in [&pass, &alice, &wrong] {
        assert!(logged(&[secret]).is_empty(), "a password in the log");
    }
}

#[test]
fn rediss_with_a_ca_file_and_credentials() {
    record_logs();
    let certs = TestCerts::new();
    let pass = password("pass");
    let path = |file: &str| certs.path(file).display().to_string();
    let args = vec![
        "--tls-cert-file".to_owned(),
        path("cert.pem"),
        "--tls-key-file".to_owned(),
        path("key.pem"),
        "--tls-ca-cert-file".to_owned(),
        path("ca.pem"),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
        "--requirepass".to_owned(),
        pass.clone(),
    ];
    let Some(mut redis) = RedisServer::new("rediss", args, &format!(":{pass}@")) else {
        return;
    };
    redis.ca_file = Some(certs.ca_file());
    if let Err(output) = redis.launch() {
        let lower = output.to_lowercase();
        if lower.contains("tls")
            && (lower.contains("not supported")
                || lower.contains("build_tls")
                || lower.contains("bad directive"))
        {
            eprintln!(
                "\n!!!!!!!! SKIPPING the rediss:// test: this redis-server was built without TLS \
                 (Debian's redis-server has it) !!!!!!!!\n{output}"
            );
            return;
        }
        panic!("{output}");
    }
    let cluster = cluster_name();
    let a = node_with(
        Backplane::redis(redis.url())
            .cluster(&cluster)
            .ca_file(certs.ca_file()),
    );
    let b = node_with(
        Backplane::redis(redis.url())
            .cluster(&cluster)
            .ca_file(certs.ca_file()),
    );
    redis.wait_subscribed(&cluster, 2);
    let mut a1 = connect(&a, "/chat");
    let mut b1 = connect(&b, "/chat");
    a1.send_json(json!({ "message": "over tls", "path": "/chat" }));
    assert_eq!(a1.recv(), "over tls");
    assert_eq!(b1.recv(), "over tls");
    b1.send_json(json!({ "message": "and back" }));
    assert_eq!(b1.recv(), "and back");
    assert_eq!(a1.recv(), "and back");
    assert!(b.metrics().snapshot().backplane_received >= 1);

    // Another CA's file, or none (Mozilla's roots): the certificate does not check; the node
    // serves alone and says why, once per thread.
    let other = TestCerts::new();
    let strangers = [
        node_with(
            Backplane::redis(redis.url())
                .cluster(&cluster)
                .ca_file(other.ca_file()),
        ),
        node_with(Backplane::redis(redis.url()).cluster(&cluster)),
    ];
    for stranger in &strangers {
        let mut s1 = connect(stranger, "/chat");
        s1.send_json(json!({ "message": "unverified" }));
        assert_eq!(s1.recv(), "unverified");
    }
    let shown = redis.url_with(":***@");
    wait_until("the certificate refusals are logged", || {
        logged(&["subscriber", &shown, "certificate"]).len() >= 2
    });
    assert_eq!(
        redis.subscribers(&cluster),
        2,
        "the strangers never subscribed"
    );
    a1.send_json(json!({ "message": "still crossing" }));
    assert_eq!(a1.recv(), "still crossing");
    assert_eq!(b1.recv(), "still crossing");
    within_wait("shutting the nodes down", move || drop((a, b, strangers)));
    assert!(logged(&[&pass]).is_empty(), "the password in the log");
}

#[test]
fn a_ca_file_needs_rediss_and_must_hold_a_certificate() {
    let mut config = config();
    config.backplane = Some(Backplane::redis("redis://127.0.0.1:1/").ca_file("/etc/hostname"));
    let mut server = signalhub::Server::with_config(config);
    server
        .endpoint(signalhub::Endpoint::ws("127.0.0.1:0"))
        .unwrap();
    assert!(matches!(
        server.start(),
        Err(signalhub::Error::InvalidConfig(_))
    ));
    let certs = TestCerts::new();
    let mut config = support::config();
    config.backplane =
        Some(Backplane::redis("rediss://127.0.0.1:1/").ca_file(certs.path("key.pem")));
    let mut server = signalhub::Server::with_config(config);
    server
        .endpoint(signalhub::Endpoint::ws("127.0.0.1:0"))
        .unwrap();
    match server.start() {
        Err(signalhub::Error::Certificate { file, .. }) => assert_eq!(file, certs.path("key.pem")),
        other => panic!("expected a certificate error, got {:?}", other.err()),
    }
}

/// A node whose clients say who they are in the query: `?user=U&groups=a,b`.
fn node_with_groups(url: &str, cluster: &str) -> ServerHandle {
    let mut config = config();
    config.backplane = Some(Backplane::redis(url).cluster(cluster));
    start_with(config, |server| {
        server.authorize(|request| {
            let groups = request.query("groups").unwrap_or_default().split(',');
            let accepted = match request.query("user") {
                Some(user) => signalhub::auth::Accepted::user(user),
                None => signalhub::auth::Accepted::anonymous(),
            };
            Ok(accepted.groups(groups.filter(|g| !g.is_empty())))
        });
    })
}

#[test]
fn groups_users_and_lists_of_ids_reach_members_on_every_node() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let cluster = cluster_name();
    let a = node_with_groups(&redis.url(), &cluster);
    let b = node_with_groups(&redis.url(), &cluster);
    redis.wait_subscribed(&cluster, 2);
    let mut alice_a = connect(&a, "/x?user=alice&groups=ops");
    let mut bob_a = connect(&a, "/x?user=bob");
    let mut alice_b = connect(&b, "/y?user=alice");
    let mut ops_b = connect(&b, "/y?user=carol&groups=ops");
    let mut all = [&mut alice_a, &mut bob_a, &mut alice_b, &mut ops_b];
    // A member's own group message reaches the members on both nodes.
    all[0].send_json(json!({ "message": "ops, from a", "group": "ops" }));
    assert_eq!(all[0].recv(), "ops, from a");
    assert_eq!(all[3].recv(), "ops, from a");
    fence(0, &mut all);
    // A non-member's goes nowhere, on no node.
    all[1].send_json(json!({ "message": "not for bob", "group": "ops" }));
    fence(1, &mut all);
    // From code on b: a group, a user (her connections on both nodes), a list of ids.
    let signals = b.signals();
    signals
        .send_with("ops, from code", &SendOptions::new().group("ops"))
        .unwrap();
    signals
        .send_with("hi alice", &SendOptions::new().user("alice"))
        .unwrap();
    let listed = [all[1].id, all[2].id];
    signals
        .send_with("listed", &SendOptions::new().client_ids(listed))
        .unwrap();
    signals.send(FENCE).unwrap();
    assert_eq!(all[0].recv(), "ops, from code");
    assert_eq!(all[3].recv(), "ops, from code");
    assert_eq!(all[0].recv(), "hi alice");
    assert_eq!(all[2].recv(), "hi alice");
    assert_eq!(all[1].recv(), "listed");
    assert_eq!(all[2].recv(), "listed");
    for client in all.iter_mut() {
        assert_eq!(client.recv(), FENCE);
    }
    // A join on one node is seen by group sends from the other.
    b.signals().join(all[1].id, "ops").unwrap(); // bob is on a: b does not know him
    a.signals().join(all[1].id, "ops").unwrap();
    b.signals()
        .send_with("bob too", &SendOptions::new().group("ops"))
        .unwrap();
    for i in [0, 1, 3] {
        assert_eq!(all[i].recv(), "bob too");
    }
    fence(2, &mut all);
    // Presence stays per node.
    let here = |node: &ServerHandle| {
        node.presence(&signalhub::PresenceFilter::new().group("ops"))
            .unwrap()
            .len()
    };
    assert_eq!((here(&a), here(&b)), (2, 1));
    within_wait("shutting the nodes down", move || drop((a, b)));
}
