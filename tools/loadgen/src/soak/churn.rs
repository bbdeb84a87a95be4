//! `soak`'s churn: connections that connect, await one echo and go, over and over.
use rustix::event::epoll::{self, EventFlags as Ev};
use rustix::fd::OwnedFd;
use rustls::ClientConnection;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tungstenite::client::client_with_config;
use tungstenite::handshake::HandshakeError;
use tungstenite::{protocol::WebSocketConfig, Message, WebSocket};

use crate::args::Opts;
use crate::client::{wait_events, would_block, Handshake, Stream, READ_BUFFER};
use crate::report::Errors;

/// The longest one churn connection may take from connect to echo.
const CHURN_TIMEOUT: Duration = Duration::from_secs(10);

/// Live churn counters, for the per-minute lines.
#[derive(Default)]
pub struct ChurnCount {
    pub done: AtomicUsize,
    pub errors: AtomicUsize,
}

/// One churn connection, from connect to echo.
enum Phase {
    Connecting(TcpStream),
    Handshake(Handshake),
    Open(WebSocket<Stream>),
}

struct ChurnSlot {
    phase: Option<Phase>,
    born: Instant,
    value: u64, // what it sends, and awaits back
    sent: bool,
}

fn phase_name(p: &Option<Phase>) -> &'static str {
    match p {
        Some(Phase::Connecting(_)) => "connect",
        Some(Phase::Handshake(_)) => "handshake",
        Some(Phase::Open(_)) => "echo",
        None => "idle",
    }
}

/// Start a nonblocking TCP connect registered in `ep` under `token`.
fn churn_connect(o: &Opts, ep: &OwnedFd, token: usize) -> Result<TcpStream, String> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, flags, None)
        .map_err(|e| format!("socket: {e}"))?;
    match rustix::net::connect(&fd, &o.addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(format!("connect: {e}")),
    }
    let sock = TcpStream::from(fd);
    let _ = sock.set_nodelay(true);
    let data = epoll::EventData::new_u64(token as u64);
    epoll::add(ep, &sock, data, Ev::IN | Ev::OUT | Ev::ET).map_err(|e| format!("epoll: {e}"))?;
    Ok(sock)
}

/// Advance a churn connection as far as its socket allows. Ok(true) once the echo came back
/// (the connection is then closed), Ok(false) while it waits, Err when it failed.
fn churn_advance(o: &Opts, slot: &mut ChurnSlot) -> Result<bool, String> {
    loop {
        let r = match slot.phase.take() {
            None => return Ok(false),
            Some(Phase::Connecting(sock)) => {
                if let Some(e) = sock.take_error().map_err(|e| format!("connect: {e}"))? {
                    return Err(format!("connect: {e}"));
                }
                if sock.peer_addr().is_err() {
                    slot.phase = Some(Phase::Connecting(sock)); // not connected yet
                    return Ok(false);
                }
                let tls = match &o.tls {
                    None => None,
                    Some(t) => {
                        let tls = ClientConnection::new(t.config.clone(), t.name.clone());
                        Some(tls.map_err(|e| format!("tls: {e}"))?)
                    }
                };
                let stream = Stream::new(sock, tls);
                let cfg = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
                client_with_config(o.url.as_str(), stream, Some(cfg))
            }
            Some(Phase::Handshake(hs)) => hs.handshake(),
            Some(Phase::Open(mut ws)) => {
                let flushed = if slot.sent {
                    ws.flush()
                } else {
                    slot.sent = true;
                    let v = slot.value;
                    ws.send(Message::text(format!(r#"{{"message":{v},"direct":true}}"#)))
                };
                match flushed {
                    Err(e) if !would_block(&e) => return Err(format!("write: {e}")),
                    _ => {}
                }
                loop {
                    match ws.read() {
                        Ok(Message::Text(t)) if t.as_str() == slot.value.to_string() => {
                            if slot.value.is_multiple_of(2) {
                                let _ = ws.close(None); // a close frame, best effort
                                let _ = ws.flush();
                            }
                            return Ok(true); // dropping `ws` closes the socket
                        }
                        // Churners are among "everyone": skip the soak's broadcasts.
                        Ok(Message::Text(t))
                            if t.starts_with(r#"{"soak":"#) || t.starts_with(r#"{"probe":"#) => {}
                        Ok(Message::Text(t)) => return Err(format!("echo: got {t:.80}")),
                        Ok(Message::Close(_)) => return Err("echo: closed by server".into()),
                        Ok(_) => {}
                        Err(e) if would_block(&e) => break,
                        Err(e) => return Err(format!("read: {e}")),
                    }
                }
                slot.phase = Some(Phase::Open(ws));
                return Ok(false);
            }
        };
        match r {
            Ok((ws, _)) => slot.phase = Some(Phase::Open(ws)),
            Err(HandshakeError::Interrupted(hs)) => {
                slot.phase = Some(Phase::Handshake(hs));
                return Ok(false);
            }
            Err(HandshakeError::Failure(e)) => return Err(format!("handshake: {e}")),
        }
    }
}

/// One churn thread: keep `n` connections cycling until `stop` or `deadline`. Values sent
/// are `first`, `first + stride`, … so that each thread's are distinct.
pub fn churn(
    o: &Opts,
    n: usize,
    (first, stride): (u64, u64),
    count: &ChurnCount,
    stop: &AtomicBool,
    deadline: Instant,
) -> Errors {
    let mut errs = Errors::default();
    let ep = match epoll::create(epoll::CreateFlags::CLOEXEC) {
        Ok(ep) => ep,
        Err(e) => {
            errs.add(format!("epoll: {e}"));
            return errs;
        }
    };
    let mut slots: Vec<ChurnSlot> = (0..n)
        .map(|_| ChurnSlot {
            phase: None,
            born: Instant::now(),
            value: 0,
            sent: false,
        })
        .collect();
    let (mut value, mut events) = (first, Vec::with_capacity(256));
    let fail = |errs: &mut Errors, e: String| {
        errs.add(format!("churn: {e}"));
        count.errors.fetch_add(1, Relaxed);
    };
    while !stop.load(Relaxed) && Instant::now() < deadline {
        for (token, slot) in slots.iter_mut().enumerate() {
            if slot.phase.is_some() {
                continue;
            }
            (slot.born, slot.value, slot.sent) = (Instant::now(), value, false);
            value += stride;
            match churn_connect(o, &ep, token) {
                Ok(sock) => slot.phase = Some(Phase::Connecting(sock)),
                Err(e) => fail(&mut errs, e),
            }
        }
        wait_events(&ep, &mut events);
        for token in events.iter().map(|ev| ev.data.u64() as usize) {
            let Some(slot) = slots.get_mut(token) else {
                continue;
            };
            match churn_advance(o, slot) {
                Ok(true) => {
                    count.done.fetch_add(1, Relaxed);
                }
                Ok(false) => {}
                Err(e) => fail(&mut errs, e),
            }
        }
        for slot in &mut slots {
            if slot.phase.is_some() && slot.born.elapsed() > CHURN_TIMEOUT {
                fail(&mut errs, format!("timeout in {}", phase_name(&slot.phase)));
                slot.phase = None;
            }
        }
    }
    errs // dropping the slots closes whatever is still in flight
}
