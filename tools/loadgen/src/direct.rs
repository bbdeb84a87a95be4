//! `direct`: each client sends direct messages one at a time and awaits each echo.
use log::info;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Opts;
use crate::client::{connect_all, sleep_until, with_workers, Client, Wake, Wire};
use crate::report::{
    cpu_now, cpu_report, cpu_since, failure, merge, now_ns, percentiles_us, round3, Errors, Tally,
};

struct DirectShared {
    messages: u64,
    stall_ns: u64,
    finished: AtomicUsize, // clients done: all echoes received, gave up, or died
    wake: Wake,
}

/// Sends `{"message":V,"direct":true}`, V = me × messages + seq, one at a time and awaits the
/// echo `V`. Echoes of other clients' values are misrouted.
struct Echoer {
    me: u64,
    next: u64,
    sent_ns: u64,
    done: bool,
    tally: Tally,
    wire: Wire,
    sh: Arc<DirectShared>,
}

impl Echoer {
    fn new(me: u64, sh: Arc<DirectShared>) -> Self {
        let (next, sent_ns, done, tally) = (0, 0, false, Tally::default());
        Echoer {
            me,
            next,
            sent_ns,
            done,
            tally,
            wire: Wire::default(),
            sh,
        }
    }
    fn message(&mut self) -> String {
        self.sent_ns = now_ns();
        let v = self.me * self.sh.messages + self.next;
        format!(r#"{{"message":{v},"direct":true}}"#)
    }
    fn finish(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.tally.last_ns = now_ns();
            self.sh.finished.fetch_add(1, Relaxed);
            self.sh.wake.wake();
        }
    }
}

impl Client for Echoer {
    fn start(&mut self) -> Option<String> {
        Some(self.message())
    }
    fn on_text(&mut self, text: &str, errs: &mut Errors) -> Option<String> {
        let Ok(v) = text.parse::<u64>() else {
            errs.add(format!("direct: unexpected frame {text:.80}"));
            return None;
        };
        let m = self.sh.messages;
        if v / m != self.me {
            self.tally.misrouted += 1;
            return None;
        }
        if v % m != self.next || self.done {
            self.tally.dups += 1;
            return None;
        }
        let rtt = now_ns().saturating_sub(self.sent_ns);
        self.tally.latencies.push(rtt);
        self.next += 1;
        if self.next < m {
            return Some(self.message());
        }
        self.finish();
        None
    }
    fn tick(&mut self, errs: &mut Errors) {
        if !self.done && now_ns().saturating_sub(self.sent_ns) > self.sh.stall_ns {
            errs.add("direct: echo timeout");
            self.finish();
        }
    }
    fn closed(&mut self) {
        self.finish();
    }
    fn wire(&mut self, wire: Wire) {
        self.wire = wire;
    }
}

pub fn run_direct(o: &Opts, deadline: Instant) -> Value {
    let (mut errs, t0) = (Errors::default(), Instant::now());
    let conns = connect_all(o, o.clients, o.batch, deadline, &mut errs);
    let (connected, connect_secs) = (conns.len(), t0.elapsed().as_secs_f64());
    let n = o.clients;
    info!("connected {connected}/{n} clients in {connect_secs:.2}s");
    let Ok(wake) = Wake::new() else {
        return failure(o, "cannot create a pipe".into());
    };
    let sh = Arc::new(DirectShared {
        messages: o.messages as u64,
        stall_ns: o.stall.as_nanos() as u64,
        finished: AtomicUsize::new(0),
        wake,
    });
    let echoer = |(me, ws)| (ws, Echoer::new(me as u64, sh.clone()));
    let clients = conns.into_iter().enumerate().map(echoer).collect();
    let (start_ns, cpu0) = (now_ns(), cpu_now(o.pid));
    let (clients, worker_errs, cpu) = with_workers(clients, o.threads, deadline, || {
        while sh.finished.load(Relaxed) < connected && Instant::now() < deadline {
            sh.wake.wait(Duration::from_millis(100));
        }
        let cpu = cpu_since(o.pid, cpu0);
        sleep_until((Instant::now() + Duration::from_millis(300)).min(deadline)); // strays
        cpu
    });
    errs.merge(worker_errs);
    let wire_bytes: u64 = clients.iter().map(|c| c.wire.bytes).sum();
    let negotiated = clients.iter().filter(|c| c.wire.deflate).count();
    let all = Tally::sum(clients.into_iter().map(|c| c.tally));
    let (round_trips, expected) = (all.latencies.len() as u64, (o.clients * o.messages) as u64);
    let lost = expected.saturating_sub(round_trips);
    let secs = all.last_ns.saturating_sub(start_ns) as f64 / 1e9;
    let wire_per_round_trip =
        (round_trips > 0).then(|| round3(wire_bytes as f64 / round_trips as f64));
    let report = json!({
        "scenario": "direct", "ok": lost == 0 && all.misrouted == 0 && all.dups == 0 && errs.count == 0,
        "clients": o.clients, "connected": connected, "messages": o.messages, "threads": o.threads,
        "expected": expected, "round_trips": round_trips, "lost": lost,
        "misrouted": all.misrouted, "duplicates": all.dups, "duration_secs": round3(secs),
        "round_trips_per_sec": (round_trips as f64 / secs.max(1e-9)).round(),
        "rtt_us": percentiles_us(all.latencies), "connect_secs": round3(connect_secs),
        "compression": o.compression, "compress_sent": o.compress_sent,
        "compression_negotiated": negotiated, "wire_bytes": wire_bytes,
        "wire_bytes_per_round_trip": wire_per_round_trip,
        "errors": errs.count, "error_samples": errs.samples,
    });
    merge(report, cpu_report(o.pid, cpu, round_trips, "round_trip"))
}
