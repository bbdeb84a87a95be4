//! The authorize hook through real connections: refusals answered before any `101`, what the
//! hook sees, what it gives the connection, and that a slow or failing hook costs only its
//! own client.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::json;
use signalhub::auth::{Accepted, Refused, UpgradeRequest};
use signalhub::{PresenceFilter, ServerConfig, ServerHandle};
use support::*;

/// The whole response to a raw upgrade request (the server closes after a refusal).
fn raw_response(server: &ServerHandle, request: &str) -> String {
    let mut stream = TcpStream::connect(server.endpoints()[0].address).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    // Up to the end of the head and its body, or until the server closes.
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&response);
        if text.starts_with("HTTP/1.1 101 ") && text.contains("\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// A hook driven by the query: `?refuse=STATUS` refuses, `?user=U&groups=a,b` accepts.
fn by_query(request: &UpgradeRequest<'_>) -> Result<Accepted, Refused> {
    if let Some(status) = request.query("refuse") {
        let status = status.parse().unwrap_or(403);
        return Err(Refused::status(status, "refused by the test"));
    }
    let groups = request.query("groups").unwrap_or_default().split(',');
    let accepted = match request.query("user") {
        Some(user) => Accepted::user(user),
        None => Accepted::anonymous(),
    };
    Ok(accepted.groups(groups.filter(|g| !g.is_empty())))
}

#[test]
fn refusals_are_answered_with_their_status_before_any_upgrade() {
    let server = start_with(config(), |s| {
        s.authorize(by_query);
    });
    for (status, line) in [
        (401, "HTTP/1.1 401 Unauthorized\r\n"),
        (403, "HTTP/1.1 403 Forbidden\r\n"),
        (429, "HTTP/1.1 429 Too Many Requests\r\n"),
        (503, "HTTP/1.1 503 Service Unavailable\r\n"),
    ] {
        let response = raw_response(
            &server,
            &upgrade_request(&format!("/x?refuse={status}"), ""),
        );
        assert!(response.starts_with(line), "{response}");
        assert!(response.ends_with("refused by the test\n"), "{response}");
        assert!(!response.contains("101"), "{response}");
        let challenge = response.contains("WWW-Authenticate: Bearer\r\n");
        assert_eq!(challenge, status == 401, "{response}");
    }
    // A real client sees the same refusal, and the server kept nobody.
    let error = try_connect(&url(&server, "/x?refuse=401"), &[])
        .err()
        .expect("refused");
    assert_eq!(refused_status(&error), Some(401));
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.connections_unauthorized, 5);
    assert_eq!(metrics.clients_connected, 0);
    assert_eq!(metrics.connections_total, 0);
    // Accepted ones still get in.
    let mut client = connect(&server, "/x?user=ann");
    client.send_json(json!({ "message": "hi" }));
    assert_eq!(client.recv(), "hi");
    server.shutdown();
}

#[test]
fn the_hook_sees_path_query_headers_cookies_peer_and_offered_protocols() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut config = config();
    config.subprotocols = vec!["chat.v2".into()];
    let server = start_with(config, |s| {
        let seen = seen.clone();
        s.authorize(move |request| {
            let mut seen = seen.lock().unwrap();
            seen.push(format!("path={}", request.path));
            seen.push(format!("q={:?}", request.query("q")));
            seen.push(format!("session={:?}", request.cookie("session")));
            seen.push(format!("x={:?}", request.header("x-test")));
            seen.push(format!(
                "loopback={}",
                request.remote_addr.ip().is_loopback()
            ));
            seen.push(format!("protocols={:?}", request.protocols));
            seen.push(format!("endpoint={}", request.endpoint.name));
            seen.push(format!("token={:?}", request.bearer_token()));
            Ok(Accepted::anonymous())
        });
    });
    let client = try_connect(
        &url(&server, "/Chat%20Room?q=1&token=t0k"),
        &[
            ("Cookie", "theme=dark; session=abc123"),
            ("X-Test", "yes"),
            ("Sec-WebSocket-Protocol", "chat.v1, chat.v2"),
        ],
    )
    .expect("accepted");
    drop(client);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            "path=/Chat Room",
            "q=Some(\"1\")",
            "session=Some(\"abc123\")",
            "x=Some(\"yes\")",
            "loopback=true",
            "protocols=[\"chat.v1\", \"chat.v2\"]",
            "endpoint=ws-0",
            "token=Some(\"t0k\")",
        ]
    );
    server.shutdown();
}

#[test]
fn the_hooks_user_groups_and_data_reach_every_handler() {
    struct Plan(&'static str);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let server = start_with(config(), |s| {
        s.authorize(|request| Ok(by_query(request)?.data(Plan("pro"))));
        let on_connect = seen.clone();
        s.on_connect("*", move |client| {
            on_connect.lock().unwrap().push(format!(
                "connect {:?} {:?} {:?}",
                client.user,
                client.groups(),
                client.data::<Plan>().map(|p| p.0)
            ));
        });
        s.route("/room", |event| {
            let client = &event.client;
            event.send(format!(
                "{:?} {:?} {} {:?} {:?}",
                client.user,
                client.groups(),
                client.in_group("eu"),
                client.data::<Plan>().map(|p| p.0),
                client.data::<String>(),
            ))
        })
        .unwrap();
    });
    let mut client = connect(&server, "/room?user=alice&groups=ops,eu,ops");
    client.send_json(json!({ "message": "who am I?", "direct": true }));
    assert_eq!(
        client.recv(),
        r#"Some("alice") ["ops", "eu"] true Some("pro") None"#
    );
    wait_until("the connect hook ran", || !seen.lock().unwrap().is_empty());
    assert_eq!(
        seen.lock().unwrap()[0],
        r#"connect Some("alice") ["ops", "eu"] Some("pro")"#
    );
    server.shutdown();
}

#[test]
fn a_slow_hook_delays_only_its_own_client() {
    let (release, released): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
    let (started, starts) = crossbeam_channel::unbounded::<()>();
    let server = start_with(config(), |s| {
        s.authorize(move |request| {
            if request.path == "/slow" {
                // Like a hook asking a database that takes its time.
                let _ = started.send(());
                let _ = released.recv_timeout(WAIT);
            }
            Ok(Accepted::anonymous())
        });
    });
    let slow_url = url(&server, "/slow");
    let slow = std::thread::spawn(move || try_connect(&slow_url, &[]).map(|_| ()));
    starts.recv_timeout(WAIT).expect("the slow hook runs");
    // Others connect and talk while it waits.
    let mut fast = connect(&server, "/fast");
    fast.send_json(json!({ "message": "quick" }));
    assert_eq!(fast.recv(), "quick");
    release.send_timeout((), WAIT).expect("the slow hook waits");
    slow.join()
        .unwrap()
        .expect("the slow client gets in once its hook answers");
    server.shutdown();
}

#[test]
fn hooks_beyond_max_authorizing_wait_then_get_503_when_their_time_is_up() {
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let (started, starts) = crossbeam_channel::unbounded::<()>();
    let mut config: ServerConfig = config();
    config.max_authorizing = 1;
    config.handshake_timeout = Duration::from_millis(300);
    let server = start_with(config, |s| {
        s.authorize(move |_| {
            let _ = started.send(());
            let _ = released.recv_timeout(WAIT);
            Ok(Accepted::anonymous())
        });
    });
    let first_url = url(&server, "/first");
    let first = std::thread::spawn(move || try_connect(&first_url, &[]).map(|_| ()));
    starts.recv_timeout(WAIT).expect("the first hook runs");
    // The one place is taken: the second waits out its handshake time, then 503.
    let error = try_connect(&url(&server, "/second"), &[])
        .err()
        .expect("refused");
    assert_eq!(refused_status(&error), Some(503));
    assert!(starts.try_recv().is_err(), "the second hook never ran");
    release
        .send_timeout((), WAIT)
        .expect("the first hook waits");
    first.join().unwrap().expect("the first client gets in");
    // The place is free again.
    let third_url = url(&server, "/third");
    let third = std::thread::spawn(move || try_connect(&third_url, &[]).map(|_| ()));
    starts.recv_timeout(WAIT).expect("the third hook runs");
    release
        .send_timeout((), WAIT)
        .expect("the third hook waits");
    third.join().unwrap().expect("the third client gets in");
    server.shutdown();
}

#[test]
fn a_panicking_hook_refuses_with_500_and_the_server_goes_on() {
    let server = start_with(config(), |s| {
        s.authorize(|request| {
            if request.path == "/boom" {
                panic!("a bug in the hook");
            }
            Ok(Accepted::anonymous())
        });
    });
    let error = try_connect(&url(&server, "/boom"), &[])
        .err()
        .expect("refused");
    assert_eq!(refused_status(&error), Some(500));
    let mut client = connect(&server, "/fine");
    client.send_json(json!({ "message": "still here" }));
    assert_eq!(client.recv(), "still here");
    server.shutdown();
}

#[test]
fn a_client_gone_while_its_hook_runs_leaves_nothing_behind() {
    let (release, released) = crossbeam_channel::bounded::<()>(0);
    let (started, starts) = crossbeam_channel::unbounded::<()>();
    let server = start_with(config(), |s| {
        s.authorize(move |_| {
            let _ = started.send(());
            let _ = released.recv_timeout(WAIT);
            Ok(Accepted::user("ghost"))
        });
    });
    let mut stream = TcpStream::connect(server.endpoints()[0].address).expect("connect");
    stream
        .write_all(upgrade_request("/gone", "").as_bytes())
        .expect("write");
    starts.recv_timeout(WAIT).expect("the hook runs");
    drop(stream); // the client hangs up (a reset if anything is unread)
    release.send_timeout((), WAIT).expect("the hook waits");
    // Accepted into a dead socket: registered, its reader finds the end, it is unregistered.
    wait_until("the ghost is gone", || {
        let metrics = server.metrics().snapshot();
        metrics.connections_total == 1 && metrics.clients_connected == 0
    });
    let presence = server.presence(&PresenceFilter::new()).unwrap();
    assert!(presence.is_empty(), "{presence:?}");
    server.shutdown();
}
