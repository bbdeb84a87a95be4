//! Wss (SPEC 10) end to end: a rustls client trusting a CA generated at test time.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};
use serde_json::json;
use signalhub::http::WebResponse;
use signalhub::tls::Certificate;
use signalhub::{ClientId, Endpoint, Server, ServerConfig, ServerHandle};
use support::certs::TestCerts;
use support::{config, read_until_closed, WAIT};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type TlsSocket = WebSocket<StreamOwned<ClientConnection, TcpStream>>;

fn start_wss(certs: &TestCerts, config: ServerConfig) -> ServerHandle {
    let mut server = Server::with_config(config);
    server
        .endpoint(Endpoint::wss("127.0.0.1:0", certs.certificate()))
        .expect("endpoint");
    server.start().expect("wss server starts")
}

/// A WebSocket client over TLS to `path`, with its client id.
fn tls_connect(server: &ServerHandle, certs: &TestCerts, path: &str) -> (TlsSocket, ClientId) {
    let address = server.endpoints()[0].address;
    let request = format!("wss://localhost:{}{path}", address.port())
        .into_client_request()
        .expect("request");
    let (socket, response) =
        tungstenite::client(request, certs.connect(address)).expect("wss handshake");
    let id = response.headers()["X-Signal-ClientId"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("client id");
    (socket, id)
}

fn recv(socket: &mut TlsSocket) -> String {
    loop {
        match socket.read().expect("a message") {
            Message::Text(text) => return text.to_string(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

fn send(socket: &mut TlsSocket, value: serde_json::Value) {
    socket.send(Message::text(value.to_string())).expect("send");
}

fn recv_close(socket: &mut TlsSocket) -> Option<CloseCode> {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        match socket.read() {
            Ok(Message::Close(frame)) => return frame.map(|f| f.code),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    panic!("no close within {WAIT:?}");
}

#[test]
fn the_routing_table_holds_over_wss() {
    let certs = TestCerts::new();
    let server = start_wss(&certs, config());
    let (mut a, a_id) = tls_connect(&server, &certs, "/chat");
    let (mut b, _) = tls_connect(&server, &certs, "/news");
    send(&mut a, json!({"message": "everyone"}));
    assert_eq!(recv(&mut a), "everyone");
    assert_eq!(recv(&mut b), "everyone");
    send(&mut b, json!({"message": {"to": "chat"}, "path": "/chat"}));
    assert_eq!(recv(&mut a), r#"{"to":"chat"}"#);
    send(&mut a, json!({"message": "me", "direct": true}));
    assert_eq!(recv(&mut a), "me");
    send(
        &mut b,
        json!({"message": "for a", "clientId": a_id.to_string()}),
    );
    assert_eq!(recv(&mut a), "for a");
    server.signals().send("marker").expect("send");
    assert_eq!(recv(&mut b), "marker", "b got nothing it was not meant to");
    drop((a, b));
    server.shutdown();
}

#[test]
fn a_3_mb_message_round_trips_over_wss() {
    let certs = TestCerts::new();
    let server = start_wss(&certs, config());
    let (mut a, _) = tls_connect(&server, &certs, "/");
    let (mut b, _) = tls_connect(&server, &certs, "/");
    let big = "z".repeat(3 << 20);
    send(&mut a, json!({ "message": big }));
    assert_eq!(recv(&mut b).len(), 3 << 20);
    assert_eq!(recv(&mut a), big);
    drop((a, b));
    server.shutdown();
}

#[test]
fn a_wss_client_that_does_not_read_is_closed_and_others_get_everything() {
    let certs = TestCerts::new();
    let mut config = config();
    config.max_queue_bytes = 64 << 10;
    let server = start_wss(&certs, config);
    let (_slow, _) = tls_connect(&server, &certs, "/");
    let (mut reader, _) = tls_connect(&server, &certs, "/");
    let padding = "p".repeat(4096);
    let mut sent = 0;
    while server.metrics().snapshot().clients_dropped_slow == 0 {
        assert!(sent < 20_000, "the slow client was never dropped");
        for _ in 0..8 {
            server
                .signals()
                .send(format!("{sent:06}{padding}"))
                .expect("send");
            sent += 1;
        }
        for expected in sent - 8..sent {
            assert!(recv(&mut reader).starts_with(&format!("{expected:06}")));
        }
    }
    support::wait_until("the slow client is cut", || {
        server.metrics().snapshot().clients_connected == 1
    });
    drop(reader);
    server.shutdown();
}

#[test]
fn stalled_handshakes_are_dropped_without_holding_up_others() {
    let certs = TestCerts::new();
    let mut config = config();
    config.handshake_timeout = Duration::from_millis(300);
    let server = start_wss(&certs, config);
    let address = server.endpoints()[0].address;
    let silent = TcpStream::connect(address).expect("connect");
    let mut half_hello = TcpStream::connect(address).expect("connect");
    half_hello
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("write");
    let (mut client, _) = tls_connect(&server, &certs, "/");
    send(&mut client, json!({"message": "still served"}));
    assert_eq!(recv(&mut client), "still served");
    // Both dropped: the server ends them (EOF or reset) within WAIT, not a read timeout.
    for mut stalled in [silent, half_hello] {
        read_until_closed(&mut stalled);
    }
    drop(client);
    server.shutdown();
}

#[test]
fn a_plain_ws_client_on_a_wss_port_fails_cleanly() {
    let certs = TestCerts::new();
    let server = start_wss(&certs, config());
    let url = format!("ws://{}/", server.endpoints()[0].address);
    assert!(support::try_connect(&url, &[]).is_err());
    let (mut client, _) = tls_connect(&server, &certs, "/");
    server.signals().send("others carry on").expect("send");
    assert_eq!(recv(&mut client), "others carry on");
    drop(client);
    server.shutdown();
}

#[test]
fn shutdown_closes_wss_clients_with_1001() {
    let certs = TestCerts::new();
    let server = start_wss(&certs, config());
    let (mut client, _) = tls_connect(&server, &certs, "/");
    std::thread::scope(|scope| {
        scope.spawn(|| server.shutdown());
        assert_eq!(recv_close(&mut client), Some(CloseCode::Away));
    });
}

#[test]
fn a_missing_certificate_file_fails_start_naming_it() {
    let mut server = Server::with_config(config());
    let certificate = Certificate::pem("/nonexistent/cert.pem", "/nonexistent/key.pem");
    server
        .endpoint(Endpoint::wss("127.0.0.1:0", certificate))
        .expect("endpoint");
    let error = server.start().expect_err("start fails").to_string();
    assert!(error.contains("/nonexistent/cert.pem"), "{error}");
}

/// An Https endpoint sharing its port with a Wss endpoint, with a page and `POST /broadcast`.
fn start_https_and_wss(certs: &TestCerts) -> ServerHandle {
    let mut server = Server::with_config(config());
    server
        .endpoint(Endpoint::https("127.0.0.1:0", certs.certificate()).name("web"))
        .expect("https endpoint");
    server
        .endpoint(Endpoint::wss("127.0.0.1:0", certs.certificate()).share_port_with("web"))
        .expect("wss endpoint");
    server
        .http_route("GET", "/hello", |_| Ok(WebResponse::text("hello over tls")))
        .expect("route");
    server
        .http_route("POST", "/broadcast", |event| {
            event.signals().send(event.data.get("message"))?;
            Ok(WebResponse::json(json!({ "sent": true })))
        })
        .expect("route");
    server.start().expect("server starts")
}

/// Sends one request over TLS (`Connection: close`) and reads the whole response.
fn https_exchange(server: &ServerHandle, certs: &TestCerts, request: &str) -> String {
    let mut tls = certs.connect(server.endpoints()[0].address);
    tls.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn https_and_wss_share_one_port() {
    let certs = TestCerts::new();
    let server = start_https_and_wss(&certs);
    let kinds: Vec<&str> = server
        .endpoints()
        .iter()
        .map(|e| e.protocol.as_str())
        .collect();
    assert_eq!(kinds, ["https", "wss"]);
    assert_eq!(server.endpoints()[0].address, server.endpoints()[1].address);
    let (mut client, _) = tls_connect(&server, &certs, "/");
    let page = https_exchange(
        &server,
        &certs,
        "GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    assert!(page.ends_with("hello over tls"), "{page}");
    // A same-site post from the page (https origin) reaches the wss client.
    let body = r#"{"message":"from the page"}"#;
    let post = https_exchange(
        &server,
        &certs,
        &format!(
            "POST /broadcast HTTP/1.1\r\nHost: localhost\r\nOrigin: https://localhost\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(post.starts_with("HTTP/1.1 200 "), "{post}");
    assert_eq!(recv(&mut client), "from the page");
    // Plain HTTP on the TLS port is not understood, and costs the others nothing.
    let mut plain = TcpStream::connect(server.endpoints()[0].address).expect("connect");
    plain.set_read_timeout(Some(WAIT)).expect("timeout");
    plain
        .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"));
    server.signals().send("still here").expect("send");
    assert_eq!(recv(&mut client), "still here");
    drop(client);
    server.shutdown();
}

#[test]
fn endpoints_sharing_a_port_need_the_same_tls() {
    let certs = TestCerts::new();
    let other = TestCerts::new();
    for (web, sockets) in [
        (
            Endpoint::http("127.0.0.1:0").name("web"),
            Endpoint::wss("127.0.0.1:0", certs.certificate()),
        ),
        (
            Endpoint::https("127.0.0.1:0", certs.certificate()).name("web"),
            Endpoint::ws("127.0.0.1:0"),
        ),
        (
            Endpoint::https("127.0.0.1:0", certs.certificate()).name("web"),
            Endpoint::wss("127.0.0.1:0", other.certificate()),
        ),
    ] {
        let mut server = Server::with_config(config());
        server.endpoint(web).expect("web");
        server
            .endpoint(sockets.share_port_with("web"))
            .expect("sockets");
        let error = server.start().expect_err("start fails");
        assert!(
            matches!(error, signalhub::Error::InvalidConfig(_)),
            "{error}"
        );
    }
}
