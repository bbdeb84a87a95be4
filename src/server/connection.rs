//! A connection's own thread: reads frames, runs its signal route or re-sends the message.
//!
//! The loop stays shallow (the handshake happened on the listener thread) because a thread's
//! stack stays resident at its deepest use. For the same reason what runs per message, at the
//! start and at the end is kept out of line (`#[inline(never)]`): inlined into the read loop,
//! its locals would sit in one big frame under every blocking read, resident for every idle
//! connection (docs/PERFORMANCE.md). The thread only ever blocks in `read`; everything
//! it writes (pongs, close frames) goes through the [`Outbox`] without blocking.

use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::SystemTime;

use crate::event::{ClientInfo, MessageEvent, RawMessage, SignalData, SignalEvent};
use crate::metrics::{Counters, Disconnect};
use crate::protocol::reader::{Failure, Incoming, MessageReader};
use crate::protocol::{parse_client_message, resolve_target, ClientMessage, EventTargets, Frame};
use crate::server::fanout::Command;
use crate::server::limits::{Slot, ThreadGuard};
use crate::server::outbox::Outbox;
use crate::server::reply::ReplyPath;
use crate::server::routes::{ClientHook, MessageHandler, Route};
use crate::server::Shared;
use crate::signals::SendOptions;
use crate::tls::TlsInput;

/// What the reader reads: the socket, blocking (decrypted on Wss). Everything the connection
/// writes goes through the outbox.
struct ConnectionStream {
    outbox: Arc<Outbox>,
    /// Wss: plaintext decrypted but not read yet.
    tls: Option<TlsInput>,
}

impl Read for ConnectionStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut socket = self.outbox.socket();
        let Some(input) = self.tls.as_mut() else {
            return socket.read(buf);
        };
        let outbox = &self.outbox;
        input.read(buf, socket, |raw, plain| outbox.decrypt(raw, plain))
    }
}

/// Everything a connection thread needs.
pub(crate) struct Connection {
    pub(crate) info: Arc<ClientInfo>,
    /// Its path lowercased, as routes and hooks are found by.
    pub(crate) path_key: String,
    pub(crate) outbox: Arc<Outbox>,
    /// Bytes read after the request head (frames the client sent right away).
    pub(crate) leftover: Vec<u8>,
    /// permessage-deflate was agreed: compressed messages are read.
    pub(crate) deflate: bool,
    pub(crate) route: Option<Arc<Route>>,
    /// Replies to the client itself, around the fan-out when nothing waits there.
    pub(crate) reply: Arc<ReplyPath>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) slot: Slot,
    pub(crate) thread: ThreadGuard,
}

/// Why the read loop stopped.
enum Ending {
    /// The close handshake is under way (asked for by the peer or by the server), or done.
    Closed,
    /// The peer went away without a close frame (a reset, a dropped network, a killed
    /// process): not a protocol error, just gone.
    Gone,
    /// We are failing the connection with this close code.
    Failed(u16, &'static str),
}

impl Connection {
    /// Runs the connection until it closes. Out of line, so that the thread's first frame
    /// stays small and the admission's calls under it stay shallow. Boxed: it was made before
    /// the thread started (without an authorize hook, on the door's thread), and it is freed
    /// when the connection ends rather than when the thread starts (docs/PERFORMANCE.md: what
    /// a connection's thread frees stays in glibc's cache of that thread).
    #[inline(never)]
    pub(crate) fn run(mut self: Box<Self>) {
        let path_key = std::mem::take(&mut self.path_key);
        let raw = self.shared.routes.message_handler(&path_key);
        let connect_hooks = self.shared.routes.connect_hooks(&path_key);
        if !connect_hooks.is_empty() {
            // What its connect hooks send counts in flight, as what its handlers send does.
            self.reply.enter();
        }
        run_hooks(&connect_hooks, &self.info, "connect");
        let mut stream = ConnectionStream {
            outbox: self.outbox.clone(),
            tls: self.outbox.is_tls().then(TlsInput::default),
        };
        let config = &self.shared.config;
        let mut reader = MessageReader::new(
            std::mem::take(&mut self.leftover),
            config.tuning.read_buffer_size,
            config.max_message_size,
            self.deflate,
        );
        let ending = self.read_loop(&mut reader, &mut stream, raw.as_deref());
        drop(reader);
        self.finish(ending, &path_key, &mut stream);
    }

    /// After the read loop: the close (if we fail the connection), unregistering, the
    /// disconnect hooks.
    // Boxed as `run` got it: unboxing it there would put a copy in `run`'s frame, above every
    // blocking read.
    #[allow(clippy::boxed_local)]
    #[inline(never)]
    fn finish(self: Box<Self>, ending: Ending, path_key: &str, stream: &mut ConnectionStream) {
        match ending {
            Ending::Failed(code, reason) => {
                log::debug!(
                    "client {} at {}: closing with {code}: {reason}",
                    self.info.id,
                    self.info.remote_addr
                );
                self.shared.metrics.disconnected(match code {
                    1007 => Disconnect::InvalidUtf8,
                    1009 => Disconnect::TooBig,
                    _ => Disconnect::ProtocolError,
                });
                self.close_in_order(Some(code), reason);
                discard_until_closed(stream);
            }
            Ending::Gone => {
                log::debug!(
                    "client {} at {}: gone without a close frame",
                    self.info.id,
                    self.info.remote_addr
                );
                self.shared.metrics.disconnected(Disconnect::Abrupt);
            }
            Ending::Closed => {}
        }
        self.outbox.reader_done();
        let _ = self
            .shared
            .signals
            .commands()
            .send(Command::Unregister(self.info.id));
        ReplyPath::leave();
        // The connection no longer counts against the caps, even while hooks run.
        let Connection {
            info,
            shared,
            slot,
            thread,
            ..
        } = *self;
        drop(slot);
        run_hooks(
            &shared.routes.disconnect_hooks(path_key),
            &info,
            "disconnect",
        );
        drop(thread);
    }

    fn read_loop(
        &self,
        reader: &mut MessageReader,
        stream: &mut ConnectionStream,
        raw: Option<&MessageHandler>,
    ) -> Ending {
        // The thread becomes the connection's (see `ReplyPath::enter`) at its first message,
        // not before: doing so registers a thread-local destructor, an allocation that an
        // idle connection does without.
        let mut entered = false;
        loop {
            let incoming = match reader.read(stream) {
                Ok(incoming) => incoming,
                Err(Failure::TooBig) => return Ending::Failed(1009, "message too big"),
                Err(Failure::InvalidUtf8) => return Ending::Failed(1007, "invalid utf-8"),
                // Closing already: its handshake ended, or we cut it (a close that timed out,
                // a full queue, shutdown).
                Err(_) if self.outbox.is_closing() => return Ending::Closed,
                Err(Failure::Gone) => return Ending::Gone,
                Err(Failure::Protocol(why)) => {
                    log::debug!("client {}: protocol error: {why}", self.info.id);
                    return Ending::Failed(1002, "protocol error");
                }
            };
            self.outbox.touch();
            if !entered {
                self.reply.enter();
                entered = true;
            }
            match incoming {
                Incoming::Text(text) => match raw {
                    Some(handler) => self.on_raw(handler, RawMessage::Text(&text)),
                    None => self.on_text(&text),
                },
                Incoming::Binary(bytes) => match (raw, std::str::from_utf8(&bytes)) {
                    (Some(handler), _) => self.on_raw(handler, RawMessage::Binary(&bytes)),
                    (None, Ok(text)) => self.on_text(text),
                    (None, Err(_)) => return Ending::Failed(1007, "invalid utf-8"),
                },
                // Dropped while closing: no pong after our close frame.
                Incoming::Ping(payload) => {
                    let _ = self.outbox.write_control(Frame::pong(&payload).as_bytes());
                }
                Incoming::Pong => {}
                // Echo the peer's code, after whatever was routed to it before. Nothing after
                // the peer's close frame counts (RFC 6455 5.5.1), so the reading ends here:
                // with the reader done, the outbox cuts the socket as soon as the echo is out.
                // The server closes TCP first (RFC 6455 7.1.1); a client waits for that, so
                // reading on until it hung up would hold both until the close timeout.
                Incoming::Close(code) => {
                    if !self.outbox.is_closing() {
                        self.shared.metrics.disconnected(Disconnect::Normal);
                    }
                    self.close_in_order(code, "");
                    return Ending::Closed;
                }
            }
        }
    }

    /// Closes the connection after everything routed to it so far: the fan-out thread sends
    /// the close frame behind the signals it has for this client (a reply to the client's
    /// last message among them). Without a fan-out (the server is stopping), at once.
    fn close_in_order(&self, code: Option<u16>, reason: &'static str) {
        self.outbox.request_close();
        let command = Command::Close(self.info.id, code, reason);
        if self.shared.signals.commands().send(command).is_err() {
            self.outbox.close(code, reason);
        }
    }

    /// An `on_message` connection: the message as sent, no JSON protocol.
    #[inline(never)]
    fn on_raw(&self, handler: &MessageHandler, message: RawMessage<'_>) {
        Counters::add(&self.shared.metrics.messages_received, 1);
        let event = MessageEvent {
            client: &self.info,
            message,
            signals: &self.shared.signals,
            reply: &self.reply,
        };
        match catch_unwind(AssertUnwindSafe(|| handler(&event))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!("message handler for client {}: {e}", self.info.id),
            Err(_) => log::error!("a message handler panicked; the message was dropped"),
        }
    }

    #[inline(never)]
    fn on_text(&self, text: &str) {
        Counters::add(&self.shared.metrics.messages_received, 1);
        let message = match parse_client_message(text) {
            Ok(message) => message,
            Err(reason) => {
                Counters::add(&self.shared.metrics.messages_ignored, 1);
                log::debug!(
                    "client {} at {}: ignored a message: {reason}",
                    self.info.id,
                    self.info.remote_addr
                );
                return;
            }
        };
        match &self.route {
            Some(route) => self.run_route(route, message),
            None => self.resend(message),
        }
    }

    /// No route: re-send the message as the client asked (Pode's automatic `Send-PodeSignal`).
    #[inline(never)]
    fn resend(&self, message: ClientMessage<'_>) {
        let event = EventTargets {
            sender: self.info.id,
            path: message.path.as_deref(),
            client_id: message.client_id.as_deref(),
            group: message.group.as_deref(),
            direct: message.direct,
        };
        let Ok(Some(target)) = resolve_target(&SendOptions::default(), Some(event)) else {
            return;
        };
        let Some(frame) = Frame::text_from_raw(message.message) else {
            return;
        };
        let _ = self.reply.send(frame, target);
    }

    #[inline(never)]
    fn run_route(&self, route: &Route, message: ClientMessage<'_>) {
        let value = match serde_json::from_str(message.message.get()) {
            Ok(value) => value,
            Err(e) => {
                // Valid JSON that a Value cannot hold, such as 1e400.
                Counters::add(&self.shared.metrics.messages_ignored, 1);
                log::debug!("client {}: ignored a message: {e}", self.info.id);
                return;
            }
        };
        let data = SignalData {
            message: value,
            path: message.path,
            client_id: message.client_id,
            group: message.group,
            direct: message.direct,
        };
        let event = SignalEvent {
            data,
            client: self.info.clone(),
            route: route.pattern.clone(),
            timestamp: SystemTime::now(),
            signals: self.shared.signals.clone(),
            reply: self.reply.clone(),
        };
        match catch_unwind(AssertUnwindSafe(|| (route.handler)(&event))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::warn!(
                "signal route {:?} for client {}: {e}",
                route.pattern,
                self.info.id
            ),
            Err(_) => log::error!(
                "signal route {:?} panicked; the message was dropped",
                route.pattern
            ),
        }
    }
}

#[inline(never)]
fn run_hooks(hooks: &[Arc<ClientHook>], info: &ClientInfo, kind: &str) {
    for hook in hooks {
        if catch_unwind(AssertUnwindSafe(|| hook(info))).is_err() {
            log::error!("a {kind} hook panicked for client {}", info.id);
        }
    }
}

/// After failing a connection: read and drop what the peer still sends (so our close frame is
/// not lost to a reset), until its close reply arrives, it hangs up, or the outbox's close
/// deadline cuts the socket. Reads go through the connection's stream, so on Wss the
/// plaintext is scanned, not the ciphertext. The stream may be mid-frame, so the reply is
/// spotted by its first two bytes; a false match inside a payload only ends a failing
/// connection sooner.
fn discard_until_closed(stream: &mut impl Read) {
    let mut sink = [0u8; 512];
    let mut last = 0u8;
    while let Ok(n @ 1..) = stream.read(&mut sink) {
        if starts_close_reply(last, &sink[..n]) {
            return;
        }
        last = sink[n - 1];
    }
}

/// Whether `bytes` (after `before`) hold the start of a client's close frame: FIN + close
/// opcode, then the mask bit with a control-frame length.
fn starts_close_reply(before: u8, bytes: &[u8]) -> bool {
    let is_start = |a: u8, b: u8| a == 0x88 && b & 0x80 != 0 && b & 0x7f <= 125;
    is_start(before, bytes[0]) || bytes.windows(2).any(|w| is_start(w[0], w[1]))
}

#[cfg(test)]
mod tests {
    use super::starts_close_reply;

    #[test]
    fn a_masked_close_frame_is_spotted_even_across_reads() {
        assert!(starts_close_reply(0, &[1, 2, 0x88, 0x82, 0, 0]));
        assert!(starts_close_reply(0x88, &[0x80]));
        assert!(!starts_close_reply(0, &[0x88, 0x02])); // not masked: not from a client
        assert!(!starts_close_reply(0, &[0x81, 0x85, 1, 2]));
    }
}
