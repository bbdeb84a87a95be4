//! Examples the properties turned up where the server departed from the RFCs (all fixed
//! since), kept as plain examples.

use crate::server::handshake::{parse_head, Head, Request};

/// A head that is a valid upgrade but for `lines`, in place of its own lines of those names.
fn upgrade_with(lines: &str) -> String {
    let mut head = String::from("GET /x HTTP/1.1\r\n");
    let defaults = [
        ("Host", "Host: h\r\n"),
        ("Upgrade", "Upgrade: websocket\r\n"),
        ("Connection", "Connection: Upgrade\r\n"),
        ("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"),
        (
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        ),
    ];
    for (name, line) in defaults {
        if !lines.contains(&format!("{name}:")) {
            head.push_str(line);
        }
    }
    head + lines + "\r\n"
}

fn outcome(head: &str) -> Request {
    match parse_head(head.as_bytes(), None) {
        Head::Complete { outcome, .. } => outcome,
        Head::Partial => panic!("partial: {head:?}"),
    }
}

fn status(head: &str) -> Option<u16> {
    match outcome(head) {
        Request::Refuse(refusal) => Some(refusal.status),
        _ => None,
    }
}

/// RFC 9110 5.3: a list header's lines mean their values joined, so `Upgrade: h2c` and
/// `Upgrade: websocket` on two lines ask for a WebSocket as `Upgrade: h2c, websocket` does.
/// The server once read only the first line.
#[test]
fn an_upgrade_token_on_a_second_upgrade_line_counts() {
    let head = upgrade_with("Upgrade: h2c\r\nUpgrade: websocket\r\n");
    assert!(matches!(outcome(&head), Request::Upgrade(_)), "{head:?}");
}

/// Likewise for `Connection`: `keep-alive` and `Upgrade` on two lines. (Once `400`.)
#[test]
fn an_upgrade_token_on_a_second_connection_line_counts() {
    let head = upgrade_with("Connection: keep-alive\r\nConnection: Upgrade\r\n");
    assert!(matches!(outcome(&head), Request::Upgrade(_)), "{head:?}");
}

/// RFC 6455 4.2.1 (2) and RFC 9112 3.2: an upgrade needs a Host, and a server refuses a
/// handshake without one (`400`). (Once accepted.)
#[test]
fn an_upgrade_without_a_host_is_refused() {
    let head = upgrade_with("").replace("Host: h\r\n", "");
    assert_eq!(status(&head), Some(400), "{head:?}");
}

/// RFC 9112 3.2: a request with two Host lines is answered `400`. (Once accepted.)
#[test]
fn two_hosts_are_refused() {
    let upgrade = upgrade_with("Host: h\r\nHost: evil\r\n");
    assert_eq!(status(&upgrade), Some(400), "{upgrade:?}");
    let plain = "GET / HTTP/1.1\r\nHost: h\r\nHost: evil\r\n\r\n";
    assert_eq!(status(plain), Some(400), "{plain:?}");
}

/// RFC 9110 7.8: a server ignores `Upgrade` in an HTTP/1.0 request, which is then a plain
/// request. (Once refused as a
/// broken upgrade.)
#[test]
fn upgrade_in_http_1_0_is_ignored() {
    let head = "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert!(matches!(outcome(head), Request::Http(_)), "{head:?}");
}
