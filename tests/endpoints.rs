//! Http and Ws endpoints on shared and separate ports (SPEC 1), end to end.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::json;
use signalhub::http::WebResponse;
use signalhub::{Endpoint, Server, ServerHandle};
use support::*;

/// A server with `POST /broadcast` (seed 000) on the given endpoints.
fn start_web(endpoints: &[Endpoint]) -> ServerHandle {
    let mut server = Server::with_config(config());
    for endpoint in endpoints {
        server.endpoint(endpoint.clone()).expect("endpoint");
    }
    server
        .http_route("POST", "/broadcast", |event| {
            let message = event.data.get("message").unwrap_or_default();
            event.signals().send(json!({ "Message": message }))?;
            Ok(WebResponse::json(json!({ "sent": true })))
        })
        .expect("route");
    server
        .http_route("GET", "/hello", |_| Ok(WebResponse::text("hello")))
        .expect("route");
    server.start().expect("start")
}

fn addr(handle: &ServerHandle, name: &str) -> SocketAddr {
    handle.local_addr(name).expect("endpoint address")
}

/// One HTTP/1.1 request; the whole response (the server closes after it).
/// Sends `request` (with `Connection: close` added to its first head) and reads until the
/// server closes.
fn http(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let request = request.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

fn post_broadcast(addr: SocketAddr, body: &str) -> String {
    http(
        addr,
        &format!(
            "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn ws_client(addr: SocketAddr, path: &str) -> Client {
    try_connect(&format!("ws://{addr}{path}"), &[]).expect("websocket connects")
}

#[test]
fn http_and_ws_share_one_port() {
    let server = start_web(&[
        Endpoint::http("127.0.0.1:0").name("web"),
        Endpoint::ws("127.0.0.1:0").share_port_with("web"),
    ]);
    let (http_addr, ws_addr) = (addr(&server, "web"), addr(&server, "ws-1"));
    assert_eq!(http_addr, ws_addr, "one port for both");
    let mut client = ws_client(ws_addr, "/");
    let page = http(http_addr, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        page.starts_with("HTTP/1.1 200") && page.ends_with("hello"),
        "{page}"
    );
    let response = post_broadcast(http_addr, r#"{"message":"from http"}"#);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(client.recv(), r#"{"Message":"from http"}"#);
    server.shutdown();
}

#[test]
fn http_and_ws_on_separate_ports() {
    let server = start_web(&[
        Endpoint::http("127.0.0.1:0"),
        Endpoint::ws("127.0.0.1:0").name("live"),
    ]);
    let (http_addr, ws_addr) = (addr(&server, "http-0"), addr(&server, "live"));
    assert_ne!(http_addr, ws_addr);
    let mut client = ws_client(ws_addr, "/feed");
    let response = post_broadcast(http_addr, r#"{"message":"separate"}"#);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(client.recv(), r#"{"Message":"separate"}"#);
    server.shutdown();
}

#[test]
fn plain_http_on_a_ws_only_port_gets_426_and_an_upgrade_on_an_http_only_port_gets_400() {
    let server = start_web(&[
        Endpoint::http("127.0.0.1:0"),
        Endpoint::ws("127.0.0.1:0").name("live"),
    ]);
    let (http_addr, ws_addr) = (addr(&server, "http-0"), addr(&server, "live"));
    let mut client = ws_client(ws_addr, "/");
    let plain = http(ws_addr, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        plain.starts_with("HTTP/1.1 426 Upgrade Required"),
        "{plain}"
    );
    let upgrade = try_connect(&format!("ws://{http_addr}/"), &[]);
    match upgrade {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected 400, got {:?}", other.map(|c| c.id)),
    }
    server.signals().send("others carry on").expect("send");
    assert_eq!(client.recv(), "others carry on");
    server.shutdown();
}

#[test]
fn a_huge_declared_body_gets_413_and_the_server_lives() {
    let server = start_web(&[
        Endpoint::http("127.0.0.1:0").name("web"),
        Endpoint::ws("127.0.0.1:0").share_port_with("web"),
    ]);
    let port = addr(&server, "web");
    let response = http(
        port,
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000000000\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
    let conflicting = http(
        port,
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    );
    assert!(conflicting.starts_with("HTTP/1.1 400 "), "{conflicting}");
    let chunked = http(
        port,
        "POST /broadcast HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    assert!(chunked.starts_with("HTTP/1.1 411 "), "{chunked}");
    let page = http(port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    server.shutdown();
}

#[test]
fn every_http_request_is_checked_even_on_a_kept_alive_connection() {
    let server = start_web(&[Endpoint::http("127.0.0.1:0")]);
    let port = addr(&server, "http-0");
    // Two pipelined requests on a kept-alive connection: the door checks the second as it
    // checked the first, and refuses its huge body before anyone reads it.
    let mut stream = TcpStream::connect(port).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream
        .write_all(
            b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nPOST /broadcast HTTP/1.1\r\nHost: x\r\n\
              Content-Length: 100000000000000\r\n\r\n",
        )
        .expect("write");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let second = response
        .find("HTTP/1.1 413 ")
        .expect("the second request is refused");
    assert!(
        response[second..].contains("Connection: close"),
        "{response}"
    );
    assert_eq!(response.matches("HTTP/1.1 ").count(), 2, "{response}");
    server.shutdown();
}

#[test]
fn two_endpoints_of_one_kind_on_one_port_are_an_error() {
    let mut server = Server::with_config(config());
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("a"))
        .expect("first");
    let second = Endpoint::ws("127.0.0.1:0").share_port_with("a");
    server.endpoint(second).expect("second");
    let error = server.start().expect_err("start fails");
    assert!(
        matches!(error, signalhub::Error::InvalidConfig(_)),
        "{error}"
    );
}
