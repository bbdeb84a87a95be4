//! Bad input from clients (SPEC 6) and the server's limits (SPEC 13): what is refused, how,
//! and that nobody else notices.
//!
//! Tests drop their clients before shutting the server down, so shutdown need not wait out
//! the close handshakes of clients that no longer read.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use signalhub::{Endpoint, Error, Server, ServerConfig};
use support::*;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONTINUATION: u8 = 0x0;

/// Sends `{"message": marker}` from `from` and checks it is the very next thing everyone gets:
/// proof that nothing was sent before it, and that `from` is still connected.
fn everyone_gets_next(from: usize, clients: &mut [Client], marker: &str) {
    clients[from].send_json(json!({ "message": marker }));
    for client in clients.iter_mut() {
        assert_eq!(client.recv(), marker);
    }
}

/// The status line of a raw HTTP response, e.g. `HTTP/1.1 426 Upgrade Required`.
fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

// ---- SPEC 6: bad input -------------------------------------------------------------------

#[test]
fn bad_messages_send_nothing_and_keep_the_connection_open() {
    let server = start();
    let mut clients = vec![connect(&server, "/a"), connect(&server, "/b")];
    let bad = [
        // not JSON
        "hello",
        "{",
        "",
        r#"{"message":"x"} trailing"#,
        // JSON, not an object
        "[1]",
        r#""x""#,
        "5",
        "true",
        "null",
        // no message
        "{}",
        r#"{"path":"/a"}"#,
        r#"{"msg":"x","direct":true}"#,
        // direct not a bool
        r#"{"message":"d1","direct":"yes"}"#,
        r#"{"message":"d2","direct":1}"#,
        r#"{"message":"d3","direct":"true"}"#,
        r#"{"message":"d4","Direct":"yes"}"#,
        // path not a string
        r#"{"message":"p1","path":5}"#,
        r#"{"message":"p2","path":["/a"]}"#,
        r#"{"message":"p3","Path":{"p":"/a"}}"#,
        // clientId not a string
        r#"{"message":"c1","clientId":5}"#,
        r#"{"message":"c2","clientId":true}"#,
        r#"{"message":"c3","ClientId":["x"]}"#,
    ];
    for (i, text) in bad.iter().enumerate() {
        clients[0].send_text(text);
        everyone_gets_next(0, &mut clients, &format!("after bad input {i}: {text}"));
    }
    clients[1].send_text(r#"{"message":"from b","direct":"no"}"#);
    everyone_gets_next(1, &mut clients, "b still fine");
    for client in &mut clients {
        client.expect_nothing();
    }
    assert_eq!(server.metrics().snapshot().clients_connected, 2);
    drop(clients);
    server.shutdown();
}

#[test]
fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = start();
    let mut bad = connect(&server, "/");
    let mut others = vec![connect(&server, "/"), connect(&server, "/")];
    bad.send_raw_frame(TEXT, b"{\"message\":\"\xff\xfe\"}");
    assert_eq!(bad.recv_close(), Some(CloseCode::Invalid));
    everyone_gets_next(0, &mut others, "the others carry on");
    drop((bad, others));
    server.shutdown();
}

#[test]
fn invalid_utf8_in_a_binary_frame_closes_with_1007() {
    let server = start();
    let mut bad = connect(&server, "/");
    let mut others = vec![connect(&server, "/"), connect(&server, "/")];
    bad.send_raw_frame(BINARY, b"{\"message\":\"\xc3\x28\"}");
    assert_eq!(bad.recv_close(), Some(CloseCode::Invalid));
    everyone_gets_next(1, &mut others, "the others carry on");
    drop((bad, others));
    server.shutdown();
}

#[test]
fn invalid_utf8_split_over_fragments_closes_with_1007() {
    let server = start();
    let mut bad = connect(&server, "/");
    let mut other = connect(&server, "/");
    bad.send_raw_fragment(false, TEXT, b"{\"message\":\"\xe2\x82");
    bad.send_raw_fragment(true, CONTINUATION, b"\x28\"}");
    assert_eq!(bad.recv_close(), Some(CloseCode::Invalid));
    other.send_json(json!({"message": "still here"}));
    assert_eq!(other.recv(), "still here");
    drop((bad, other));
    server.shutdown();
}

#[test]
fn a_character_split_over_fragments_is_fine() {
    let server = start();
    let mut clients = vec![connect(&server, "/"), connect(&server, "/")];
    // "€" is e2 82 ac: split after its first byte.
    clients[0].send_raw_fragment(false, TEXT, b"{\"message\":\"\xe2");
    clients[0].send_raw_fragment(true, CONTINUATION, b"\x82\xac\"}");
    for client in &mut clients {
        assert_eq!(client.recv(), "€");
    }
    drop(clients);
    server.shutdown();
}

#[test]
fn a_binary_frame_holding_json_is_handled_like_text() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut other = connect(&server, "/b");
    sender.send_raw_frame(BINARY, br#"{"message":"from binary"}"#);
    sender
        .ws
        .send(Message::binary(&br#"{"Message":{"n":1},"path":"/b"}"#[..]))
        .expect("send binary");
    for client in [&mut sender, &mut other] {
        match client.ws.read().expect("a frame") {
            Message::Text(text) => assert_eq!(text.as_str(), "from binary"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
    match other.ws.read().expect("a frame") {
        Message::Text(text) => assert_eq!(text.as_str(), r#"{"n":1}"#),
        other => panic!("expected a text frame, got {other:?}"),
    }
    sender.expect_nothing();
    drop((sender, other));
    server.shutdown();
}

// ---- SPEC 6: message size ----------------------------------------------------------------

fn small_max_config() -> ServerConfig {
    let mut config = config();
    config.max_message_size = 1024;
    config
}

/// A `{"message":"xxx..."}` text of exactly `len` bytes.
fn message_of_len(len: usize) -> String {
    let overhead = r#"{"message":""}"#.len();
    format!(r#"{{"message":"{}"}}"#, "x".repeat(len - overhead))
}

#[test]
fn a_message_at_the_maximum_is_delivered() {
    let server = start_with(small_max_config(), |_| {});
    let mut clients = vec![connect(&server, "/"), connect(&server, "/")];
    let text = message_of_len(1024);
    clients[0].send_text(&text);
    for client in &mut clients {
        assert_eq!(client.recv().len(), 1024 - r#"{"message":""}"#.len());
    }
    drop(clients);
    server.shutdown();
}

#[test]
fn a_message_over_the_maximum_closes_with_1009_and_others_carry_on() {
    let server = start_with(small_max_config(), |_| {});
    let mut big = connect(&server, "/");
    let mut others = vec![connect(&server, "/"), connect(&server, "/")];
    big.send_text(&message_of_len(2048));
    assert_eq!(big.recv_close(), Some(CloseCode::Size));
    everyone_gets_next(0, &mut others, "the others carry on");
    everyone_gets_next(1, &mut others, "both ways");
    let mut late = connect(&server, "/");
    late.send_json(json!({"message": "new clients too"}));
    assert_eq!(late.recv(), "new clients too");
    for client in &mut others {
        assert_eq!(client.recv(), "new clients too");
    }
    drop((big, others, late));
    server.shutdown();
}

#[test]
fn one_byte_over_the_maximum_closes_with_1009() {
    let server = start_with(small_max_config(), |_| {});
    let mut big = connect(&server, "/");
    let mut other = connect(&server, "/");
    big.send_text(&message_of_len(1025));
    assert_eq!(big.recv_close(), Some(CloseCode::Size));
    other.expect_nothing();
    drop((big, other));
    server.shutdown();
}

#[test]
fn a_fragmented_message_over_the_maximum_closes_with_1009() {
    let server = start_with(small_max_config(), |_| {});
    let mut big = connect(&server, "/");
    let mut other = connect(&server, "/");
    let text = message_of_len(1400);
    let (first, rest) = text.as_bytes().split_at(700);
    big.send_raw_fragment(false, TEXT, first);
    big.send_raw_fragment(true, CONTINUATION, rest);
    assert_eq!(big.recv_close(), Some(CloseCode::Size));
    other.send_json(json!({"message": "fine"}));
    assert_eq!(other.recv(), "fine");
    drop((big, other));
    server.shutdown();
}

#[test]
fn a_3_mb_message_round_trips_with_the_default_maximum() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut other = connect(&server, "/");
    let body: String = (0..3 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    sender.send_json(json!({ "message": body }));
    for client in [&mut sender, &mut other] {
        let got = client.recv();
        assert_eq!(got.len(), body.len());
        assert!(got == body, "the 3 MB message came back altered");
    }
    drop((sender, other));
    server.shutdown();
}

// ---- SPEC 6: a client that does not read ---------------------------------------------------

#[test]
fn a_client_that_does_not_read_is_closed_alone_and_nobody_waits_for_it() {
    const READERS: usize = 100;
    /// Signals sent before the readers catch up: keeps each reader's backlog well under its
    /// own queue limit, so only the client that never reads can overflow.
    const ROUND: usize = 8;
    /// Rounds still sent once the slow client is gone, to show the readers carry on.
    const AFTER: usize = 10;
    /// Gives up if the slow client was not dropped after this many signals (16 MiB).
    const MOST: usize = 4096;
    let mut config = config();
    config.max_queue_bytes = 64 << 10;
    let server = start_with(config, |_| {});
    // A small receive window, so the kernel's buffers fill up soon.
    let stream = tcp_from(&server, [127, 0, 0, 1].into(), Some(4096)).expect("tcp");
    let mut slow = client_over(stream, &url(&server, "/slow")).expect("slow client connects");
    let mut readers: Vec<Client> = (0..READERS).map(|_| connect(&server, "/fast")).collect();
    let signals = server.signals();
    let padding = "x".repeat(4096);
    let mut sent = 0;
    let mut sent_when_dropped = None;
    while sent_when_dropped.is_none_or(|at| sent < at + AFTER * ROUND) {
        assert!(
            sent < MOST,
            "the slow client was not dropped after {sent} signals"
        );
        for i in sent..sent + ROUND {
            signals.send(format!("{i:05}{padding}")).expect("send");
        }
        for reader in &mut readers {
            for i in sent..sent + ROUND {
                let got = reader.recv();
                assert_eq!(
                    &got[..5],
                    format!("{i:05}"),
                    "readers get every signal in order"
                );
                assert_eq!(got.len(), 5 + padding.len());
            }
        }
        sent += ROUND;
        if sent_when_dropped.is_none() && server.metrics().snapshot().clients_dropped_slow > 0 {
            sent_when_dropped = Some(sent);
        }
    }
    // What the slow client finally reads: a prefix of the signals, in order, then a 1008
    // close or the end of the connection.
    let mut next = 0;
    let ending = loop {
        match slow.ws.read() {
            Ok(Message::Text(text)) => {
                assert_eq!(&text[..5], format!("{next:05}"));
                next += 1;
            }
            Ok(Message::Close(frame)) => break format!("close {:?}", frame.map(|f| f.code)),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the slow client was not closed (read {next} signals)")
            }
            Err(e) => break format!("ended: {e}"),
        }
    };
    let dropped_at = sent_when_dropped.expect("dropped");
    assert!(
        next <= dropped_at,
        "the slow client got {next} signals, but was dropped after {dropped_at}"
    );
    assert!(
        ending == "close Some(Policy)" || ending.starts_with("ended"),
        "{ending}"
    );
    wait_until("the slow client is gone", || {
        !server
            .metrics()
            .snapshot()
            .clients_by_path
            .contains_key("/slow")
    });
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.clients_dropped_slow, 1, "{metrics:?}");
    assert_eq!(
        metrics.clients_by_path.get("/fast"),
        Some(&(READERS as u64))
    );
    drop((slow, readers));
    server.shutdown();
}

#[test]
fn a_slow_client_alone_is_cut_after_the_close_timeout() {
    // The same overflow as above, but with nobody else on the server to wake the drain thread.
    let mut config = config();
    config.max_queue_bytes = 64 << 10;
    let server = start_with(config, |_| {});
    let stream = tcp_from(&server, [127, 0, 0, 1].into(), Some(4096)).expect("tcp");
    let _slow = client_over(stream, &url(&server, "/slow")).expect("slow client connects");
    let padding = "x".repeat(4096);
    let mut sent = 0u64;
    while server.metrics().snapshot().clients_dropped_slow == 0 {
        assert!(
            sent < 4096,
            "the slow client was not dropped after {sent} signals"
        );
        for _ in 0..8 {
            server.signals().send(&padding).expect("send");
        }
        sent += 8;
        wait_until("the fan-out thread took them", || {
            server.metrics().snapshot().signals_sent == sent
        });
    }
    // close_timeout is 500 ms: the socket should be cut well within WAIT.
    wait_until("the slow client is cut", || {
        server.metrics().snapshot().clients_connected == 0
    });
    server.shutdown();
}

// ---- SPEC 13: connection caps --------------------------------------------------------------

#[test]
fn connections_over_the_cap_get_503_before_the_upgrade() {
    let mut config = config();
    config.max_connections = 3;
    let server = start_with(config, |_| {});
    let mut clients: Vec<Client> = (0..3).map(|_| connect(&server, "/")).collect();
    let error = try_connect(&url(&server, "/"), &[])
        .err()
        .expect("the fourth is refused");
    assert_eq!(refused_status(&error), Some(503), "{error}");
    assert_eq!(server.metrics().snapshot().connections_refused, 1);
    let raw = raw_request(&server, &upgrade_request("/", ""));
    assert!(status_line(&raw).starts_with("HTTP/1.1 503 "), "{raw}");
    assert_eq!(server.metrics().snapshot().connections_refused, 2);
    let n = clients.len();
    everyone_gets_next(0, &mut clients[..n], "the first three still work");

    drop(clients.pop());
    wait_until("a client left", || {
        server.metrics().snapshot().clients_connected == 2
    });
    // The slot is given back just after the client leaves the registry: allow a retry or two.
    let mut again = None;
    wait_until("a new client is accepted", || {
        again = try_connect(&url(&server, "/"), &[]).ok();
        again.is_some()
    });
    clients.push(again.expect("accepted"));
    everyone_gets_next(2, &mut clients, "the newcomer is in");
    assert_eq!(server.metrics().snapshot().connections_total, 4);
    drop(clients);
    server.shutdown();
}

#[test]
fn connections_over_the_per_ip_cap_get_503() {
    let mut config = config();
    config.max_connections_per_ip = 2;
    let server = start_with(config, |_| {});
    let mut clients = vec![connect(&server, "/"), connect(&server, "/")];
    let error = try_connect(&url(&server, "/"), &[])
        .err()
        .expect("the third from 127.0.0.1 is refused");
    assert_eq!(refused_status(&error), Some(503), "{error}");
    assert_eq!(server.metrics().snapshot().connections_refused, 1);
    // Another address is counted on its own.
    let stream = tcp_from(&server, [127, 0, 0, 2].into(), None).expect("tcp from 127.0.0.2");
    clients.push(client_over(stream, &url(&server, "/")).expect("127.0.0.2 is accepted"));
    everyone_gets_next(2, &mut clients, "three from two addresses");
    drop(clients);
    server.shutdown();
}

#[test]
fn only_allowed_origins_connect() {
    let mut config = config();
    config.allowed_origins = Some(vec!["https://good.example".into()]);
    let server = start_with(config, |_| {});
    let url = url(&server, "/");
    let mut good = try_connect(&url, &[("Origin", "https://good.example")]).expect("good origin");
    let mut also_good =
        try_connect(&url, &[("Origin", "HTTPS://Good.Example")]).expect("origins ignore case");
    for headers in [
        &[("Origin", "https://evil.example")][..],
        &[("Origin", "https://good.example.evil")][..],
        &[][..],
    ] {
        let error = try_connect(&url, headers).err().expect("refused");
        assert_eq!(refused_status(&error), Some(403), "{headers:?}: {error}");
    }
    good.send_json(json!({"message": "hi"}));
    assert_eq!(good.recv(), "hi");
    assert_eq!(also_good.recv(), "hi");
    drop((good, also_good));
    server.shutdown();
}

// ---- SPEC 13: the handshake ----------------------------------------------------------------

fn tcp(server: &signalhub::ServerHandle) -> TcpStream {
    TcpStream::connect(server.endpoints()[0].address).expect("tcp connect")
}

#[test]
fn a_silent_connection_is_closed_and_half_a_head_gets_408_at_the_timeout() {
    let mut config = config();
    config.handshake_timeout = Duration::from_millis(300);
    let server = start_with(config, |_| {});
    let mut silent = tcp(&server);
    let mut half = tcp(&server);
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgr")
        .expect("write");
    assert!(read_until_closed(&mut silent).is_empty());
    let answer = read_until_closed(&mut half);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    let mut client = connect(&server, "/");
    client.send_json(json!({"message": "fine"}));
    assert_eq!(client.recv(), "fine");
    drop(client);
    server.shutdown();
}

#[test]
fn silent_connections_do_not_hold_up_real_clients() {
    let mut config = config();
    config.handshake_timeout = Duration::from_secs(10);
    let server = start_with(config, |_| {});
    let mut silent: Vec<TcpStream> = (0..50).map(|_| tcp(&server)).collect();
    for (i, stream) in silent.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        // Half of them start a request head and stop, slowloris-style.
        stream
            .write_all(format!("GET /s{i} HTTP/1.1\r\nHost: x\r\n").as_bytes())
            .expect("write");
    }
    let mut clients = vec![connect(&server, "/a"), connect(&server, "/b")];
    everyone_gets_next(0, &mut clients, "not held up");
    server.signals().send("from the server").expect("send");
    for client in &mut clients {
        assert_eq!(client.recv(), "from the server");
    }
    // The silent ones are still waiting (well inside their 10 s)...
    for stream in &mut silent {
        stream.set_nonblocking(true).expect("nonblocking");
        let err = stream.read(&mut [0u8; 1]).expect_err("nothing to read yet");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).expect("blocking");
    }
    // ...and shutdown closes them too.
    drop(clients);
    server.shutdown();
    for stream in &mut silent {
        read_until_closed(stream);
    }
}

#[test]
fn a_request_head_over_the_limit_gets_431() {
    let mut config = config();
    config.max_request_head = 1024;
    let server = start_with(config, |_| {});
    let mut client = connect(&server, "/");
    let big = format!("X-Big: {}\r\n", "b".repeat(4096));
    let response = raw_request(&server, &upgrade_request("/", &big));
    assert!(
        status_line(&response).starts_with("HTTP/1.1 431 "),
        "{response}"
    );
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let response = raw_request(&server, &upgrade_request("/", &many));
    assert!(
        status_line(&response).starts_with("HTTP/1.1 431 "),
        "{response}"
    );
    server.signals().send("still here").expect("send");
    assert_eq!(client.recv(), "still here");
    drop(client);
    server.shutdown();
}

#[test]
fn a_complete_request_head_over_the_limit_in_one_write_gets_431() {
    let mut config = config();
    config.max_request_head = 1024;
    let server = start_with(config, |_| {});
    let request = upgrade_request("/", &format!("X-Big: {}\r\n", "b".repeat(1500)));
    assert!(request.len() > 1024 && request.len() < 2048);
    let response = raw_request(&server, &request);
    assert!(
        status_line(&response).starts_with("HTTP/1.1 431 "),
        "{response}"
    );
    server.shutdown();
}

#[test]
fn requests_that_are_not_upgrades_are_refused_and_others_carry_on() {
    let server = start();
    let mut client = connect(&server, "/");

    let response = raw_request(&server, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(
        status_line(&response).starts_with("HTTP/1.1 426 Upgrade Required"),
        "{response}"
    );
    assert!(
        response
            .lines()
            .any(|l| l.eq_ignore_ascii_case("Upgrade: websocket")),
        "{response}"
    );

    let response = raw_request(&server, "\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(
        status_line(&response).starts_with("HTTP/1.1 400 "),
        "{response}"
    );

    let no_key =
        upgrade_request("/", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    let response = raw_request(&server, &no_key);
    assert!(
        status_line(&response).starts_with("HTTP/1.1 400 "),
        "{response}"
    );

    let old = upgrade_request("/", "").replace("Version: 13", "Version: 8");
    let response = raw_request(&server, &old);
    assert!(
        status_line(&response).starts_with("HTTP/1.1 426 "),
        "{response}"
    );

    let post = upgrade_request("/", "").replacen("GET", "POST", 1);
    let response = raw_request(&server, &post);
    assert!(
        status_line(&response).starts_with("HTTP/1.1 400 "),
        "{response}"
    );

    server.signals().send("unaffected").expect("send");
    assert_eq!(client.recv(), "unaffected");
    assert_eq!(server.metrics().snapshot().connections_total, 1);
    drop(client);
    server.shutdown();
}

// ---- SPEC 13: configuration errors ---------------------------------------------------------

fn start_error(config: ServerConfig) -> Error {
    let mut server = Server::with_config(config);
    server
        .endpoint(Endpoint::ws("127.0.0.1:0"))
        .expect("endpoint");
    server.start().expect_err("start fails")
}

#[test]
fn invalid_limits_make_start_fail() {
    type Change = fn(&mut ServerConfig);
    let cases: [(&str, Change); 9] = [
        ("max_message_size 0", |c| c.max_message_size = 0),
        ("max_queue_bytes 0", |c| c.max_queue_bytes = 0),
        ("max_connections 0", |c| c.max_connections = 0),
        ("max_connections_per_ip 0", |c| c.max_connections_per_ip = 0),
        ("max_request_head 100", |c| c.max_request_head = 100),
        ("read_buffer_size 0", |c| c.tuning.read_buffer_size = 0),
        ("connection_stack_size 4 KiB", |c| {
            c.tuning.connection_stack_size = 4 << 10
        }),
        ("ping_interval 0", |c| {
            c.ping_interval = Some(Duration::ZERO)
        }),
        // With pings off, a zero idle timeout made the fan-out thread spin.
        ("idle_timeout 0", |c| c.idle_timeout = Some(Duration::ZERO)),
    ];
    for (what, change) in cases {
        let mut config = config();
        change(&mut config);
        let error = start_error(config);
        assert!(
            matches!(error, Error::InvalidConfig(_)),
            "{what}: {error:?}"
        );
    }
}

#[test]
fn no_endpoints_is_invalid() {
    let error = Server::with_config(config())
        .start()
        .expect_err("start fails");
    assert!(matches!(error, Error::InvalidConfig(_)), "{error:?}");
}

#[test]
fn an_address_in_use_fails_to_bind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("addr").to_string();
    let mut server = Server::with_config(config());
    server
        .endpoint(Endpoint::ws(address.clone()))
        .expect("endpoint");
    match server.start().expect_err("start fails") {
        Error::Bind { address: a, source } => {
            assert_eq!(a, address);
            assert_eq!(source.kind(), io::ErrorKind::AddrInUse);
        }
        other => panic!("expected Error::Bind, got {other:?}"),
    }
}

#[test]
fn a_bad_address_is_refused_when_added() {
    for bad in [
        "8091",
        "127.0.0.1:http",
        "127.0.0.1:70000",
        "no such host.invalid:80",
    ] {
        match Server::new().endpoint(Endpoint::ws(bad)) {
            Err(Error::InvalidAddress { address, .. }) => assert_eq!(address, bad),
            Err(other) => panic!("{bad}: expected InvalidAddress, got {other:?}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
}

#[test]
fn duplicate_endpoint_names_are_refused() {
    let mut server = Server::new();
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("public"))
        .expect("first");
    match server.endpoint(Endpoint::ws("127.0.0.1:0").name("public")) {
        Err(Error::DuplicateEndpoint(name)) => assert_eq!(name, "public"),
        Err(other) => panic!("expected DuplicateEndpoint, got {other:?}"),
        Ok(_) => panic!("a duplicate name was accepted"),
    }
}
