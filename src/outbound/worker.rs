//! A connection's own thread (`sh-out-<name>`): the blocking read loop, the keepalive, and
//! reconnecting.
//!
//! Keepalive: the socket's read timeout is the ping interval. It is the keepalive's clock,
//! not a poll: an idle connection wakes once per interval. When a read times out a ping is
//! sent; when the next one times out too, with nothing at all heard in between, the server
//! is taken for dead. So a dead server is noticed between one and two intervals after it was
//! last heard from, with no thread beyond the connection's own.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::SystemTime;

use tungstenite::{Error as WsError, Message, WebSocket};

use super::connection::{Conn, Order};
use super::content::WsData;
use super::dial::Dialed;
use super::event::{ConnectEvent, DisconnectEvent, DisconnectReason, WsEvent};
use super::stream::{ClientStream, Link};
use crate::protocol::frame::masked as frame;

/// Runs the connection from its first link until it is disconnected or gives up.
pub(crate) fn run(conn: Arc<Conn>, first: Dialed) {
    conn.thread_started();
    let mut next = Some(first);
    let mut tries = 0u32;
    let mut last_error = String::new();
    loop {
        if let Some(dialed) = next.take() {
            tries = 0;
            session(&conn, dialed);
        }
        match conn.take_order() {
            Some(Order::Disconnect) => break,
            Some(Order::Reset { url, ticket }) => match conn.attempt(url, Some(ticket)) {
                Ok(dialed) => {
                    next = Some(dialed);
                    continue;
                }
                Err(error) => {
                    tries = 1;
                    last_error = error;
                }
            },
            None => {}
        }
        let policy = conn.setup.reconnect.as_ref();
        let Some(policy) = policy.filter(|p| !p.exhausted(tries)) else {
            if tries > 0 {
                give_up(&conn, tries, last_error);
            }
            break;
        };
        conn.set_connecting();
        if conn.sleep(policy.delay(tries + 1, crate::random::unit())) {
            continue; // an order came: it goes first
        }
        tries += 1;
        match conn.attempt(None, None) {
            Ok(dialed) => next = Some(dialed),
            Err(error) => last_error = error,
        }
    }
    conn.stopped();
}

/// One established link: callbacks around the read loop.
fn session(conn: &Arc<Conn>, dialed: Dialed) {
    let Dialed {
        mut ws,
        link,
        protocol,
    } = dialed;
    let url = conn.url();
    log::debug!("connection {:?}: connected to {url}", conn.name);
    if let Some(hook) = &conn.setup.on_connect {
        let event = ConnectEvent {
            name: conn.name.clone(),
            url: url.clone(),
            protocol,
        };
        if catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
            log::error!("connection {:?}: the connect callback panicked", conn.name);
        }
    }
    let lost = read_loop(conn, &mut ws, &link, &url);
    link.cut();
    drop(ws);
    let (reason, reconnecting) = match conn.ordered_reset() {
        Some(true) => (DisconnectReason::Reset, true),
        Some(false) => (DisconnectReason::Requested, false),
        None => {
            let policy = conn.setup.reconnect.as_ref();
            let again = policy.is_some_and(|p| !p.exhausted(0));
            (lost.unwrap_or(DisconnectReason::Requested), again)
        }
    };
    conn.link_ended(&link, reconnecting);
    match &reason {
        DisconnectReason::Requested | DisconnectReason::Reset => {
            log::debug!("connection {:?}: {reason}", conn.name);
        }
        _ => log::warn!("connection {:?} to {url}: {reason}", conn.name),
    }
    disconnected(conn, url, reason, reconnecting);
}

/// Reconnecting failed for good.
fn give_up(conn: &Conn, tries: u32, error: String) {
    let reason = DisconnectReason::ReconnectFailed { tries, error };
    log::warn!("connection {:?}: {reason}", conn.name);
    disconnected(conn, conn.url(), reason, false);
}

fn disconnected(conn: &Conn, url: String, reason: DisconnectReason, reconnecting: bool) {
    let Some(hook) = &conn.setup.on_disconnect else {
        return;
    };
    let event = DisconnectEvent {
        name: conn.name.clone(),
        url,
        reason,
        reconnecting,
    };
    if catch_unwind(AssertUnwindSafe(|| hook(&event))).is_err() {
        log::error!(
            "connection {:?}: the disconnect callback panicked",
            conn.name
        );
    }
}

/// Reads until the link ends. `None` when we closed it (or were cut while closing), else
/// why it was lost.
fn read_loop(
    conn: &Arc<Conn>,
    ws: &mut WebSocket<ClientStream>,
    link: &Arc<Link>,
    url: &str,
) -> Option<DisconnectReason> {
    let mut ping_sent = false;
    let mut closing = false;
    loop {
        if !closing && (link.close_sent() || conn.has_order()) {
            // Ours to close: no more keepalive, a bounded wait for the server's reply.
            link.begin_close(1000, "");
            link.set_read_timeout(Some(conn.setup.close_timeout));
            closing = true;
        }
        let message = match ws.read() {
            Ok(message) => message,
            Err(_) if link.close_sent() => return None,
            Err(WsError::Io(e)) if is_timeout(&e) => {
                if ping_sent {
                    return Some(DisconnectReason::DeadPeer);
                }
                if let Err(e) = link.send(&frame::ping()) {
                    return Some(DisconnectReason::Failed(format!("cannot send a ping: {e}")));
                }
                ping_sent = true;
                continue;
            }
            Err(e) => return Some(lost(e)),
        };
        ping_sent = false;
        match message {
            Message::Text(text) => deliver(conn, link, url, text.as_bytes(), false),
            Message::Binary(bytes) => deliver(conn, link, url, &bytes, true),
            Message::Close(_) if link.close_sent() => return None,
            Message::Close(frame) => {
                let _ = ws.flush(); // tungstenite's reply
                return Some(DisconnectReason::Closed {
                    code: frame.as_ref().map(|f| u16::from(f.code)),
                    reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                });
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

fn lost(error: WsError) -> DisconnectReason {
    use tungstenite::error::ProtocolError;
    DisconnectReason::Failed(match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => "the connection ended".into(),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the server closed the connection without a close frame".into()
        }
        other => other.to_string(),
    })
}

/// Parses a message and runs the handler; a message that does not parse is logged and
/// skipped, an error or a panic in the handler is logged.
fn deliver(conn: &Arc<Conn>, link: &Arc<Link>, url: &str, body: &[u8], binary: bool) {
    let data = if binary {
        WsData::Bytes(body.to_vec())
    } else {
        let text = String::from_utf8_lossy(body); // tungstenite checked it is UTF-8
        match conn.setup.content.parse(&text) {
            Ok(data) => data,
            Err(reason) => {
                log::warn!("connection {:?}: ignored a message: {reason}", conn.name);
                return;
            }
        }
    };
    let event = WsEvent {
        name: conn.name.clone(),
        url: url.to_owned(),
        body: body.to_vec(),
        data,
        timestamp: SystemTime::now(),
        conn: conn.clone(),
        link: link.clone(),
    };
    match catch_unwind(AssertUnwindSafe(|| (conn.handler)(&event))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("connection {:?}: the handler failed: {e}", conn.name),
        Err(_) => log::error!(
            "connection {:?}: the handler panicked; the message was dropped",
            conn.name
        ),
    }
}

fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
