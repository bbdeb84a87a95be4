//! The Redis backplane (SPEC 15, feature `redis`): three nodes of one cluster on a real
//! `redis-server` (started by the test on a free port, killed at the end), clients spread over
//! them. Broadcast, path and client-id signals cross nodes exactly once and in order per
//! sender; sender-only signals stay local; a node keeps serving while Redis is down and
//! resumes when it is back.
//!
//! Without `redis-server` on the PATH the tests say SKIPPING loudly and pass.
//!
//! "Nothing else arrived" is proven with a fence: after the message under test, the same
//! sender broadcasts a marker; per receiver, one sender's signals keep their order across
//! nodes, so anything the first message caused arrives before the marker.
#![cfg(feature = "redis")]

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use signalhub::{Backplane, SendOptions, ServerHandle};
use support::*;

const FENCE: &str = "--fence--";

/// A `redis-server` on 127.0.0.1 (no persistence), killed when dropped.
struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port; `None` (after a loud message) when there is no redis-server.
    fn start() -> Option<RedisServer> {
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
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer { port, child: None };
        server.launch();
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts redis-server on the port and waits (bounded) until it answers PING.
    fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
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
    }
}

fn node(url: &str, cluster: &str) -> ServerHandle {
    let mut config = config();
    config.backplane = Some(Backplane::redis(url).cluster(cluster));
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
    let c = node(&redis.url(), &cluster);
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

    redis.launch();
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
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
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
