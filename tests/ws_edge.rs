//! The WebSocket edge (SPEC 2, issue 15): what a client sent before its close is answered
//! before the close, on Ws and Wss; browser-size request heads on Wss; subprotocols.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;
use signalhub::{Endpoint, RawMessage, Server, ServerConfig, ServerHandle};
use support::certs::TestCerts;
use support::{config, masked_frame, read_frame, upgrade_request, WAIT};

const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;

/// Sends an upgrade request on `stream` and reads the response head.
fn upgrade(stream: &mut impl ReadWrite, path: &str, extra: &str) -> String {
    stream
        .write_all(upgrade_request(path, extra).as_bytes())
        .expect("write upgrade");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read the answer");
        assert_eq!(n, 1, "closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// A stream both ways (plain TCP or TLS).
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A message and a close frame in one write, then what the server sends: every frame up to
/// and including its close.
fn message_then_close(
    stream: &mut impl ReadWrite,
    message: &[u8],
    after: &[u8],
) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = masked_frame(true, TEXT, message);
    bytes.extend_from_slice(after);
    stream.write_all(&bytes).expect("write");
    let mut frames = Vec::new();
    loop {
        let frame = read_frame(stream);
        let done = frame.0 & 0x0f == CLOSE;
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

fn close_frame(code: u16) -> Vec<u8> {
    masked_frame(true, CLOSE, &code.to_be_bytes())
}

fn text_of(frame: &(u8, Vec<u8>)) -> String {
    assert_eq!(frame.0, 0x80 | TEXT, "a final text frame");
    String::from_utf8(frame.1.clone()).expect("utf-8")
}

fn close_code(frame: &(u8, Vec<u8>)) -> u16 {
    assert_eq!(frame.0, 0x80 | CLOSE, "a close frame");
    u16::from_be_bytes([frame.1[0], frame.1[1]])
}

/// A server with the automatic re-send everywhere and an echo of raw messages on `/echo`.
fn start_with(config: ServerConfig, endpoint: Endpoint) -> ServerHandle {
    let mut server = Server::with_config(config);
    server.endpoint(endpoint).expect("endpoint");
    server.on_message("/echo", |event| match event.message {
        RawMessage::Text(text) => event.reply_text(text),
        RawMessage::Binary(bytes) => event.reply_binary(bytes),
    });
    server.start().expect("server starts")
}

#[test]
fn a_reply_comes_before_the_close_that_followed_its_message() {
    let server = start_with(config(), Endpoint::ws("127.0.0.1:0"));
    let address = server.endpoints()[0].address;
    for round in 0..50 {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        assert!(upgrade(&mut stream, "/", "").starts_with("HTTP/1.1 101 "));
        let message = json!({ "message": round, "direct": true }).to_string();
        let frames = message_then_close(&mut stream, message.as_bytes(), &close_frame(1000));
        assert_eq!(frames.len(), 2, "round {round}: {frames:?}");
        assert_eq!(text_of(&frames[0]), round.to_string());
        assert_eq!(close_code(&frames[1]), 1000);
    }
    server.shutdown();
}

/// After the close frames crossed, the server hangs up (RFC 6455 7.1.1: the server closes TCP
/// first, and clients such as browsers and tungstenite wait for it): the client reads the end
/// of the stream long before the close timeout, which here is far longer than the wait.
fn hangs_up_after_the_echo(stream: &mut impl ReadWrite, round: usize) {
    stream.write_all(&close_frame(1000)).expect("write close");
    assert_eq!(
        close_code(&read_frame(stream)),
        1000,
        "round {round}: the echo"
    );
    let mut rest = [0u8; 16];
    match stream.read(&mut rest) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        other => panic!("round {round}: the server did not hang up: {other:?}"),
    }
}

#[test]
fn after_a_close_the_client_began_the_server_hangs_up_at_once() {
    let mut config = config();
    config.close_timeout = std::time::Duration::from_secs(120);
    let server = start_with(config.clone(), Endpoint::ws("127.0.0.1:0"));
    let address = server.endpoints()[0].address;
    for round in 0..20 {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        assert!(upgrade(&mut stream, "/", "").starts_with("HTTP/1.1 101 "));
        hangs_up_after_the_echo(&mut stream, round);
    }
    server.shutdown();

    let certs = TestCerts::new();
    let server = start_with(config, Endpoint::wss("127.0.0.1:0", certs.certificate()));
    let address = server.endpoints()[0].address;
    for round in 0..20 {
        let mut tls = certs.connect(address);
        assert!(upgrade(&mut tls, "/", "").starts_with("HTTP/1.1 101 "));
        hangs_up_after_the_echo(&mut tls, round);
    }
    server.shutdown();
}

#[test]
fn an_echo_comes_before_the_1002_that_failed_the_connection_right_after() {
    let server = start_with(config(), Endpoint::ws("127.0.0.1:0"));
    let address = server.endpoints()[0].address;
    for round in 0..20 {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        assert!(upgrade(&mut stream, "/echo", "").starts_with("HTTP/1.1 101 "));
        // An unmasked frame breaks the protocol.
        let broken = [0x81, 0x01, b'x'];
        let message = format!("echo {round}");
        let frames = message_then_close(&mut stream, message.as_bytes(), &broken);
        assert_eq!(frames.len(), 2, "round {round}: {frames:?}");
        assert_eq!(text_of(&frames[0]), message);
        assert_eq!(close_code(&frames[1]), 1002);
    }
    server.shutdown();
}

#[test]
fn over_wss_too_the_reply_comes_first() {
    let certs = TestCerts::new();
    let server = start_with(config(), Endpoint::wss("127.0.0.1:0", certs.certificate()));
    let address = server.endpoints()[0].address;
    for round in 0..20 {
        let mut tls = certs.connect(address);
        assert!(upgrade(&mut tls, "/", "").starts_with("HTTP/1.1 101 "));
        let message = json!({ "message": round, "direct": true }).to_string();
        let frames = message_then_close(&mut tls, message.as_bytes(), &close_frame(1000));
        assert_eq!(frames.len(), 2, "round {round}: {frames:?}");
        assert_eq!(text_of(&frames[0]), round.to_string());
        assert_eq!(close_code(&frames[1]), 1000);
    }
    server.shutdown();
}

#[test]
fn browser_size_heads_on_wss_get_101_and_oversized_ones_431_at_once() {
    let certs = TestCerts::new();
    let mut config = config();
    // Far longer than any wait below: an answer must come from the head itself.
    config.handshake_timeout = std::time::Duration::from_secs(60);
    let server = start_with(config, Endpoint::wss("127.0.0.1:0", certs.certificate()));
    let address = server.endpoints()[0].address;
    let cookie = |size: usize| format!("Cookie: session={}\r\n", "c".repeat(size));
    for size in [1_500, 2_500, 6 << 10] {
        let mut tls = certs.connect(address);
        let head = upgrade(&mut tls, "/", &cookie(size));
        assert!(head.starts_with("HTTP/1.1 101 "), "{size}: {head}");
    }
    let mut tls = certs.connect(address);
    let head = upgrade(&mut tls, "/", &cookie(12 << 10));
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    server.shutdown();
}

#[test]
fn the_server_picks_the_first_of_its_subprotocols_that_the_client_offers() {
    let mut config = config();
    config.subprotocols = vec!["v2.signals".into(), "v1.signals".into()];
    let mut server = Server::with_config(config);
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("default"))
        .expect("endpoint");
    server
        .endpoint(
            Endpoint::ws("127.0.0.1:0")
                .name("mqtt")
                .subprotocols(["mqtt"]),
        )
        .expect("endpoint");
    // The route answers with the protocol the connection agreed on.
    server
        .route("*", |event| {
            let protocol = event.client.subprotocol.clone().unwrap_or_default();
            event.send(format!("protocol={protocol}"))
        })
        .expect("route");
    let server = server.start().expect("starts");
    let address = |name: &str| server.local_addr(name).expect("endpoint");
    let cases = [
        ("default", "v1.signals, v2.signals", Some("v2.signals")),
        ("default", "other, v1.signals", Some("v1.signals")),
        ("default", "other", None),
        ("default", "", None),
        ("mqtt", "v2.signals, mqtt", Some("mqtt")),
        ("mqtt", "v2.signals", None),
    ];
    for (endpoint, offered, chosen) in cases {
        let mut stream = TcpStream::connect(address(endpoint)).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let extra = match offered {
            "" => String::new(),
            offered => format!("Sec-WebSocket-Protocol: {offered}\r\n"),
        };
        let head = upgrade(&mut stream, "/", &extra);
        assert!(head.starts_with("HTTP/1.1 101 "), "{offered}: {head}");
        let header = head
            .lines()
            .find_map(|line| line.strip_prefix("Sec-WebSocket-Protocol: "));
        assert_eq!(header, chosen, "{endpoint} offered {offered:?}: {head}");
        stream
            .write_all(&masked_frame(true, TEXT, br#"{"message":"which?"}"#))
            .expect("write");
        let reply = text_of(&read_frame(&mut stream));
        assert_eq!(reply, format!("protocol={}", chosen.unwrap_or_default()));
    }
    // A real client that offers one gets it.
    let url = format!("ws://{}/", address("default"));
    let mut request =
        tungstenite::client::IntoClientRequest::into_client_request(url.as_str()).expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v1.signals".parse().expect("header value"),
    );
    let (mut client, response) = tungstenite::connect(request).expect("connects");
    assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "v1.signals");
    client
        .send(tungstenite::Message::text(r#"{"message":"hi"}"#))
        .expect("send");
    assert_eq!(
        client.read().expect("reply").into_text().expect("text"),
        "protocol=v1.signals"
    );
    drop(client);
    server.shutdown();
}

#[test]
fn subprotocol_names_must_be_tokens() {
    let mut server = Server::with_config(config());
    let bad = server.endpoint(Endpoint::ws("127.0.0.1:0").subprotocols(["a b"]));
    assert!(matches!(bad, Err(signalhub::Error::InvalidConfig(_))));
    let mut config = config();
    config.subprotocols = vec!["x,y".into()];
    let mut server = Server::with_config(config);
    server
        .endpoint(Endpoint::ws("127.0.0.1:0"))
        .expect("endpoint");
    assert!(matches!(
        server.start(),
        Err(signalhub::Error::InvalidConfig(_))
    ));
}
