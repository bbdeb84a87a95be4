//! `fanout`: N receivers, one sender broadcasting numbered messages within a window.
use log::{info, warn};
use rustix::event::{poll, PollFd, PollFlags};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Opts;
use crate::client::{
    connect_all, connect_to, timespec, with_workers, Client, Conn, Discard, Wake, Wire, Ws,
    CONNECT_TIMEOUT,
};
use crate::payload::{json_message, PayloadKind};
use crate::report::{
    cpu_now, cpu_report, cpu_since, failure, merge, now_ns, percentiles_us, round3, Errors, Tally,
};

struct FanoutShared {
    counts: Vec<AtomicU32>, // receivers that got message i
    alive: AtomicUsize,     // receivers still connected
    probed: AtomicUsize,    // receivers that saw a probe, i.e. are registered
    wake: Wake,             // a message completed, or a receiver registered or died
}

impl FanoutShared {
    fn complete(&self, seq: usize) -> bool {
        self.counts[seq].load(Relaxed) as usize >= self.alive.load(Relaxed)
    }
    fn registered(&self) -> bool {
        self.probed.load(Relaxed) >= self.alive.load(Relaxed)
    }
}

/// The fields of a broadcast `message` that matter (the padding is skipped).
#[derive(Deserialize)]
struct Frame {
    seq: Option<usize>,
    t: Option<u64>,
    probe: Option<u64>,
}

/// A `--payload-kind json` message's seq and t, read from its start (`{"seq":S,"t":T,...}`,
/// as the sender writes them) without parsing the kilobytes of JSON after them: checking
/// those costs the loadgen more than the server spends on a delivery, and would make a run
/// measure the loadgen. None if the text does not start so, or does not end with `]}`.
fn seq_and_t(text: &str) -> Option<(usize, u64)> {
    fn number(s: &str) -> Option<(u64, &str)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        Some((s[..digits].parse().ok()?, &s[digits..]))
    }
    let (seq, rest) = number(text.strip_prefix(r#"{"seq":"#)?)?;
    let (t, rest) = number(rest.strip_prefix(r#","t":"#)?)?;
    let whole = rest.starts_with(',') && text.ends_with("]}");
    whole.then_some((usize::try_from(seq).ok()?, t))
}

struct Receiver {
    sh: Arc<FanoutShared>,
    seen: Vec<u64>, // bitmap of the seqs received
    json: bool,     // --payload-kind json: seq and t from the start (`seq_and_t`)
    probed: bool,
    tally: Tally,
    wire: Wire,
}

impl Receiver {
    fn new(sh: Arc<FanoutShared>, messages: usize, json: bool) -> Self {
        let (seen, tally) = (vec![0; messages.div_ceil(64)], Tally::default());
        Receiver {
            sh,
            seen,
            json,
            probed: false,
            tally,
            wire: Wire::default(),
        }
    }
    fn record(&mut self, seq: usize, t: u64, now: u64) {
        let (word, bit) = (seq / 64, 1u64 << (seq % 64));
        if self.seen[word] & bit != 0 {
            self.tally.dups += 1;
            return;
        }
        self.seen[word] |= bit;
        self.tally.unique += 1;
        self.tally.latencies.push(now.saturating_sub(t));
        self.tally.last_ns = now;
        if self.sh.counts[seq].fetch_add(1, Relaxed) as usize + 1 >= self.sh.alive.load(Relaxed) {
            self.sh.wake.wake();
        }
    }
}

impl Client for Receiver {
    fn on_text(&mut self, text: &str, errs: &mut Errors) -> Option<String> {
        let now = now_ns();
        if self.json {
            match seq_and_t(text) {
                Some((seq, t)) if seq < self.sh.counts.len() => {
                    self.record(seq, t, now);
                    return None;
                }
                _ => {} // a probe, or something wrong: see below
            }
        }
        match serde_json::from_str::<Frame>(text) {
            Ok(Frame {
                seq: Some(seq),
                t: Some(t),
                ..
            }) if seq < self.sh.counts.len() => self.record(seq, t, now),
            Ok(Frame { probe: Some(_), .. }) if !self.probed => {
                self.probed = true;
                self.sh.probed.fetch_add(1, Relaxed);
                self.sh.wake.wake();
            }
            Ok(Frame { probe: Some(_), .. }) => {}
            _ => errs.add(format!("receiver: unexpected frame {text:.80}")),
        }
        None
    }
    fn closed(&mut self) {
        self.sh.alive.fetch_sub(1, Relaxed);
        self.sh.wake.wake();
    }
    fn wire(&mut self, wire: Wire) {
        self.wire = wire;
    }
}

/// The sending connection, run by the main thread. The server sends it every broadcast too;
/// it reads and drops those.
struct Sender<'a> {
    conn: Conn<Discard>,
    sh: &'a FanoutShared,
    errs: Errors,
}

impl<'a> Sender<'a> {
    fn new(ws: Ws, sh: &'a FanoutShared) -> Self {
        let (conn, errs) = (Conn::new(ws, Discard), Errors::default());
        Sender { conn, sh, errs }
    }
    fn send(&mut self, text: String) -> bool {
        self.conn.send(text, &mut self.errs);
        self.conn.service(true, false, &mut self.errs);
        self.conn.open
    }
    /// Sleep until a worker wakes us, the socket is ready or `limit` passes; service both.
    fn pump(&mut self, limit: Duration) {
        let mut flags = PollFlags::IN;
        flags.set(PollFlags::OUT, self.conn.want_out);
        let ws = PollFd::new(self.conn.ws.get_ref(), flags);
        let mut fds = [PollFd::new(&self.sh.wake.rd, PollFlags::IN), ws];
        let n = if self.conn.open { 2 } else { 1 };
        let _ = poll(&mut fds[..n], Some(&timespec(limit)));
        let writable = fds[1].revents().contains(PollFlags::OUT);
        self.sh.wake.drain();
        self.conn.service(true, writable, &mut self.errs);
    }
    /// Pump until `done()` (true), or until `limit` or `deadline` passes (false).
    fn wait(&mut self, limit: Duration, deadline: Instant, done: impl Fn() -> bool) -> bool {
        let end = (Instant::now() + limit).min(deadline);
        while !done() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.pump(left.min(Duration::from_millis(100)));
        }
        true
    }
}

/// Send probes until every live receiver has seen one, so that all are registered.
fn probe(s: &mut Sender, o: &Opts, deadline: Instant) {
    let (sh, start) = (s.sh, Instant::now());
    for k in 0u64.. {
        if sh.registered() {
            info!("all receivers registered after {k} probe(s)");
            return;
        }
        if start.elapsed() > o.stall || Instant::now() >= deadline || !s.conn.open {
            s.errs
                .add("probe: some receivers got no probe; sending anyway");
            return;
        }
        s.send(format!(r#"{{"message":{{"probe":{k}}}{}}}"#, o.to));
        s.wait(Duration::from_millis(100), deadline, || sh.registered());
    }
}

/// Padding that makes a message's `message` value about `--payload` bytes long.
fn padding(o: &Opts) -> String {
    let bare = format!(r#"{{"seq":{},"t":{},"pad":""}}"#, o.messages - 1, now_ns()).len();
    "x".repeat(o.payload.saturating_sub(bare))
}

/// Send the measured messages, at most `window` ahead of the oldest incomplete one, then wait
/// for the last window. Returns how many were sent.
fn send_measured(s: &mut Sender, o: &Opts, deadline: Instant) -> usize {
    let (sh, pad, mut sent) = (s.sh, padding(o), 0usize);
    let stall = o.stall;
    let stalled = |seq| format!("stall: message {seq} not delivered everywhere in {stall:?}");
    for i in 0..o.messages {
        if i >= o.window && !s.wait(o.stall, deadline, || sh.complete(i - o.window)) {
            s.errs.add(stalled(i - o.window));
            return sent;
        }
        let t = now_ns();
        let to = &o.to;
        let text = match o.payload_kind {
            PayloadKind::Pad => format!(r#"{{"message":{{"seq":{i},"t":{t},"pad":"{pad}"}}{to}}}"#),
            PayloadKind::Json => {
                let value = json_message(i, t, o.payload, o.seed);
                format!(r#"{{"message":{value}{to}}}"#)
            }
        };
        if !s.send(text) {
            break;
        }
        sent += 1;
    }
    for seq in sent.saturating_sub(o.window)..sent {
        if !s.wait(o.stall, deadline, || sh.complete(seq)) {
            s.errs.add(stalled(seq));
            break;
        }
    }
    sent
}

pub fn run_fanout(o: &Opts, deadline: Instant) -> Value {
    let (mut errs, t0) = (Errors::default(), Instant::now());
    let receivers = match &o.url2 {
        None => connect_all(o, o.clients, o.batch, deadline, &mut errs),
        Some(second) => {
            let half = o.clients / 2;
            let mut first = connect_all(o, o.clients - half, o.batch, deadline, &mut errs);
            first.extend(connect_to(
                o, second, None, half, o.batch, deadline, &mut errs,
            ));
            first
        }
    };
    let sender = connect_all(o, 1, 1, deadline, &mut errs).pop();
    let (connected, connect_secs) = (receivers.len(), t0.elapsed().as_secs_f64());
    let n = o.clients;
    info!("connected {connected}/{n} receivers in {connect_secs:.2}s");
    let one_more = o.one_more.then(|| one_more_status(o.addr));
    let Ok(wake) = Wake::new() else {
        return failure(o, "cannot create a pipe".into());
    };
    let sh = Arc::new(FanoutShared {
        counts: (0..o.messages).map(|_| AtomicU32::new(0)).collect(),
        alive: AtomicUsize::new(connected),
        probed: AtomicUsize::new(0),
        wake,
    });
    let json = o.payload_kind == PayloadKind::Json;
    let receiver = |ws| (ws, Receiver::new(sh.clone(), o.messages, json));
    let clients = receivers.into_iter().map(receiver).collect();
    let (receivers, worker_errs, (sent, first_ns, cpu)) =
        with_workers(clients, o.threads, deadline, || {
            let Some(ws) = sender else {
                return (0, now_ns(), [None, None]);
            };
            let mut s = Sender::new(ws, &sh);
            probe(&mut s, o, deadline);
            let (cpu0, first_ns) = (cpu_now(o.pid), now_ns());
            let sent = send_measured(&mut s, o, deadline);
            let cpu = cpu_since(o.pid, cpu0);
            let _ = s.conn.ws.close();
            errs.merge(s.errs);
            (sent, first_ns, cpu)
        });
    errs.merge(worker_errs);
    let wire_bytes: u64 = receivers.iter().map(|r| r.wire.bytes).sum();
    let negotiated = receivers.iter().filter(|r| r.wire.deflate).count();
    let inflated: u64 = receivers.iter().map(|r| r.wire.inflated).sum();
    let reused: u64 = receivers.iter().map(|r| r.wire.reused).sum();
    let all = Tally::sum(receivers.into_iter().map(|r| r.tally));
    let expected = (o.clients * o.messages) as u64;
    let lost = expected.saturating_sub(all.unique);
    let secs = all.last_ns.saturating_sub(first_ns) as f64 / 1e9;
    let within = all
        .latencies
        .iter()
        .filter(|&&ns| ns <= 500_000_000)
        .count();
    let within_500ms = within as f64 / all.latencies.len().max(1) as f64;
    let wire_per_delivery = (all.unique > 0).then(|| round3(wire_bytes as f64 / all.unique as f64));
    let report = json!({
        "scenario": "fanout", "ok": lost == 0 && all.dups == 0 && errs.count == 0,
        "clients": o.clients, "connected": connected, "messages": o.messages, "sent": sent,
        "payload": o.payload, "window": o.window, "threads": o.threads, "expected": expected,
        "delivered": all.unique, "lost": lost, "duplicates": all.dups,
        "duration_secs": round3(secs), "deliveries_per_sec": (all.unique as f64 / secs.max(1e-9)).round(),
        "latency_us": percentiles_us(all.latencies), "connect_secs": round3(connect_secs),
        "within_500ms": (within_500ms * 1e4).round() / 1e4,
        "payload_kind": format!("{:?}", o.payload_kind).to_lowercase(),
        "compression": o.compression, "compress_sent": o.compress_sent,
        "compression_negotiated": negotiated, "inflated": inflated, "inflate_reused": reused,
        "wire_bytes": wire_bytes, "wire_bytes_per_delivery": wire_per_delivery,
        "errors": errs.count, "error_samples": errs.samples,
    });
    let report = match one_more {
        Some(status) => merge(report, json!({ "one_more_status": status })),
        None => report,
    };
    merge(report, cpu_report(o.pid, cpu, all.unique, "delivery"))
}

/// `--one-more`: the HTTP status answering one more upgrade request (plain ws://), or null
/// if there was none within 5 s. A server at its connection cap answers 503.
fn one_more_status(addr: SocketAddr) -> Value {
    const REQUEST: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    let attempt = || -> io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        stream.write_all(REQUEST.as_bytes())?;
        let mut head = [0u8; 64];
        let n = stream.read(&mut head)?;
        let line = String::from_utf8_lossy(&head[..n]);
        let code = line.split(' ').nth(1).and_then(|c| c.parse().ok());
        code.ok_or_else(|| io::Error::other(format!("not an HTTP response: {line:?}")))
    };
    match attempt() {
        Ok(code) => {
            info!("one more connection: HTTP {code}");
            json!(code)
        }
        Err(e) => {
            warn!("one more connection: {e}");
            Value::Null
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_and_t_from_the_start() {
        let m = json_message(12, 345, 4096, 1);
        assert_eq!(seq_and_t(&m), Some((12, 345)));
        assert_eq!(seq_and_t(r#"{"seq":1,"t":2,"data":[]}"#), Some((1, 2)));
        for bad in [
            r#"{"seq":1,"t":2,"pad":"x"}"#,
            r#"{"probe":1}"#,
            r#"{"seq":1,"t":2}"#,
            r#"{"seq":1,"t":2,"data":[{"id":1}"#,
            r#"{"seq":,"t":2,"data":[]}"#,
            r#"{"seq":1,"t":-2,"data":[]}"#,
            r#"{"seq":99999999999999999999,"t":2,"data":[]}"#,
        ] {
            assert_eq!(seq_and_t(bad), None, "{bad}");
        }
    }
}
