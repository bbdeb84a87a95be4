//! `soak`: steady clients count every broadcast while others churn; the server's figures
//! before and after.
mod churn;

use log::info;
use rustix::event::{poll, PollFd, PollFlags};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::args::Opts;
use crate::client::{
    connect_all, sleep_until, timespec, with_workers, Client, Conn, Discard, Wake,
};
use crate::report::{failure, round3, rss_threads, Errors};
use churn::{churn, ChurnCount};

/// `soak`'s own flags.
pub struct SoakOpts {
    pub steady: usize,
    pub churn: usize,
    pub churn_threads: usize,
    pub duration: Duration,
    pub rate: f64,
    pub settle: Duration,
}

/// What a soak run may take beyond `--duration` (connecting, probing, draining, settling).
pub const SOAK_GRACE: f64 = 120.0;
/// A line to stderr this often.
const SOAK_LOG_EVERY: Duration = Duration::from_secs(60);

/// The server's VmRSS (KiB), Threads and open files, from /proc.
#[derive(Clone, Copy)]
struct Figures {
    rss_kib: u64,
    threads: u64,
    fds: u64,
}

impl Figures {
    fn read(pid: u32) -> Option<Figures> {
        let (rss_kib, threads) = rss_threads(pid)?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        Some(Figures {
            rss_kib,
            threads,
            fds,
        })
    }
    /// end/start for RSS, threads and open files.
    fn ratios(&self, start: &Figures) -> [f64; 3] {
        let r = |end: u64, start: u64| end as f64 / start.max(1) as f64;
        [
            r(self.rss_kib, start.rss_kib),
            r(self.threads, start.threads),
            r(self.fds, start.fds),
        ]
    }
    fn json(&self) -> Value {
        json!({"rss_kib": self.rss_kib, "threads": self.threads, "open_files": self.fds})
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (rss, threads, fds) = (self.rss_kib, self.threads, self.fds);
        write!(f, "RSS {rss} KiB, {threads} threads, {fds} open files")
    }
}

struct SoakShared {
    alive: AtomicUsize,    // steady clients still connected
    probed: AtomicUsize,   // steady clients that saw a probe, i.e. are registered
    received: AtomicUsize, // numbered messages received, all steady clients together
    wake: Wake,
}

/// The fields of a soak broadcast.
#[derive(Deserialize)]
struct SoakFrame {
    soak: Option<u64>,
    probe: Option<u64>,
}

/// A steady client: expects `{"soak":i}` for i = 0, 1, 2… and counts the gaps.
struct Steady {
    sh: Arc<SoakShared>,
    next: u64,     // the sequence number expected next
    received: u64, // numbered messages received in order
    gaps: u64,     // skipped sequence numbers
    stray: u64,    // out of order or repeated
    probed: bool,
    closed: bool,
}

impl Client for Steady {
    fn on_text(&mut self, text: &str, errs: &mut Errors) -> Option<String> {
        match serde_json::from_str::<SoakFrame>(text) {
            Ok(SoakFrame { soak: Some(i), .. }) if i >= self.next => {
                self.gaps += i - self.next;
                (self.next, self.received) = (i + 1, self.received + 1);
                self.sh.received.fetch_add(1, Relaxed);
            }
            Ok(SoakFrame { soak: Some(_), .. }) => self.stray += 1,
            Ok(SoakFrame { probe: Some(_), .. }) => {
                if !std::mem::replace(&mut self.probed, true) {
                    self.sh.probed.fetch_add(1, Relaxed);
                    self.sh.wake.wake();
                }
            }
            _ => errs.add(format!("steady: unexpected frame {text:.80}")),
        }
        None
    }
    fn closed(&mut self) {
        self.closed = true;
        self.sh.alive.fetch_sub(1, Relaxed);
        self.sh.wake.wake();
    }
}

/// Serve the sender's socket (reading and dropping its own copies of the broadcasts) until
/// `until`.
fn pump_until(c: &mut Conn<Discard>, until: Instant, errs: &mut Errors) {
    while c.open {
        let left = until.saturating_duration_since(Instant::now());
        let mut flags = PollFlags::IN;
        flags.set(PollFlags::OUT, c.want_out);
        let mut fds = [PollFd::new(c.ws.get_ref(), flags)];
        let _ = poll(&mut fds, Some(&timespec(left)));
        let writable = fds[0].revents().contains(PollFlags::OUT);
        c.service(true, writable, errs);
        if left.is_zero() {
            return;
        }
    }
    sleep_until(until);
}

/// What the sending side of a soak run saw.
struct SoakRun {
    sent: u64,
    sender_open: bool,
    probed_all: bool,
    drained_all: bool,
    late_ms: f64, // most the sender fell behind its schedule
    start: Option<Figures>,
    end: Option<Figures>,
    settle_secs: f64,
    churn_done: usize,
    churn_errs: Errors,
    sender_errs: Errors,
    minutes: Vec<Value>,
}

pub fn run_soak(o: &Opts, pid: u32, deadline: Instant) -> Value {
    let so = &o.soak;
    let (mut errs, t0) = (Errors::default(), Instant::now());
    let steady = connect_all(o, so.steady, o.batch, deadline, &mut errs);
    let sender = connect_all(o, 1, 1, deadline, &mut errs).pop();
    let connected = steady.len();
    let connect_secs = t0.elapsed().as_secs_f64();
    info!(
        "connected {connected}/{} steady clients in {connect_secs:.2}s",
        so.steady
    );
    let Ok(wake) = Wake::new() else {
        return failure(o, "cannot create a pipe".into());
    };
    let Some(sender) = sender else {
        return failure(o, format!("sender cannot connect: {:?}", errs.samples));
    };
    let sh = Arc::new(SoakShared {
        alive: AtomicUsize::new(connected),
        probed: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
        wake,
    });
    let client = |ws| {
        let sh = sh.clone();
        let (next, received, gaps, stray, probed, closed) = (0, 0, 0, 0, false, false);
        let s = Steady {
            sh,
            next,
            received,
            gaps,
            stray,
            probed,
            closed,
        };
        (ws, s)
    };
    let clients = steady.into_iter().map(client).collect();
    let (clients, worker_errs, run) = with_workers(clients, o.threads, deadline, || {
        soak_send(o, pid, Conn::new(sender, Discard), &sh, deadline)
    });
    errs.merge(worker_errs);
    soak_report(o, connected, connect_secs, clients, errs, run)
}

/// The main thread's part: probe, figures at start, churn and paced broadcasts for
/// `--duration`, a line a minute, then stop churn, drain and settle, figures at end.
fn soak_send(
    o: &Opts,
    pid: u32,
    mut c: Conn<Discard>,
    sh: &SoakShared,
    deadline: Instant,
) -> SoakRun {
    let (so, mut errs) = (&o.soak, Errors::default());
    // Probe until every steady client is registered.
    let probe_start = Instant::now();
    let mut probed_all = false;
    for k in 0u64.. {
        if sh.probed.load(Relaxed) >= sh.alive.load(Relaxed) {
            probed_all = true;
            info!("all steady clients registered after {k} probe(s)");
            break;
        }
        if probe_start.elapsed() > o.stall || Instant::now() >= deadline || !c.open {
            break;
        }
        c.send(format!(r#"{{"message":{{"probe":{k}}}}}"#), &mut errs);
        pump_until(
            &mut c,
            Instant::now() + Duration::from_millis(100),
            &mut errs,
        );
    }
    sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline));
    let start = Figures::read(pid);
    if let Some(f) = &start {
        info!("start: server {f}");
    }
    let (count, stop) = (ChurnCount::default(), AtomicBool::new(false));
    let end_at = (Instant::now() + so.duration).min(deadline);
    let period = Duration::from_secs_f64(1.0 / so.rate);
    let (mut sent, mut late_ms, mut minutes) = (0u64, 0f64, Vec::new());
    let t0 = Instant::now();
    let churn_errs = thread::scope(|s| {
        let threads = so.churn_threads.min(so.churn.max(1));
        let churners: Vec<_> = (0..threads)
            .map(|i| {
                let n = so.churn / threads + usize::from(i < so.churn % threads);
                let (count, stop) = (&count, &stop);
                let values = (i as u64, threads as u64);
                s.spawn(move || churn(o, n, values, count, stop, deadline))
            })
            .collect();
        let (mut next_send, mut next_log) = (t0, t0 + SOAK_LOG_EVERY);
        while c.open && Instant::now() < end_at {
            let now = Instant::now();
            if now >= next_send {
                late_ms = late_ms.max((now - next_send).as_secs_f64() * 1e3);
                c.send(format!(r#"{{"message":{{"soak":{sent}}}}}"#), &mut errs);
                sent += 1;
                next_send = t0 + period.mul_f64(sent as f64);
            }
            if now >= next_log {
                next_log += SOAK_LOG_EVERY;
                let (done, failed) = (count.done.load(Relaxed), count.errors.load(Relaxed));
                let f = Figures::read(pid);
                let secs = t0.elapsed().as_secs();
                let shown = f.map_or("unreadable".into(), |f| f.to_string());
                info!("soak {secs}s: churn {done} done ({failed} errors), {sent} sent, server {shown}");
                minutes.push(json!({
                    "elapsed_secs": secs, "churn_done": done, "churn_errors": failed,
                    "sent": sent, "server": f.map(|f| f.json()),
                }));
            }
            pump_until(&mut c, next_send.min(next_log).min(end_at), &mut errs);
        }
        stop.store(true, Relaxed);
        let mut all = Errors::default();
        for t in churners {
            match t.join() {
                Ok(e) => all.merge(e),
                Err(_) => all.add("churn thread panicked"),
            }
        }
        all
    });
    let (done, failed) = (count.done.load(Relaxed), count.errors.load(Relaxed));
    info!("churn stopped: {done} done, {failed} errors; {sent} messages sent");
    // Drain: every live steady client should get every message.
    let drain_end = (Instant::now() + o.stall).min(deadline);
    let expected = |sh: &SoakShared| sent as usize * sh.alive.load(Relaxed);
    while sh.received.load(Relaxed) < expected(sh) && Instant::now() < drain_end {
        pump_until(
            &mut c,
            Instant::now() + Duration::from_millis(50),
            &mut errs,
        );
    }
    let drained_all = sh.received.load(Relaxed) >= expected(sh);
    // Settle: until the figures are back within 10 % of the start, or --settle passes.
    let settle_start = Instant::now();
    let settle_end = (settle_start + so.settle).min(deadline);
    let mut end = Figures::read(pid);
    loop {
        let back = match (&start, &end) {
            (Some(s), Some(e)) => e.ratios(s).iter().all(|r| *r <= 1.10),
            _ => false,
        };
        if back && settle_start.elapsed() >= Duration::from_secs(3) || Instant::now() >= settle_end
        {
            break;
        }
        pump_until(
            &mut c,
            Instant::now() + Duration::from_millis(500),
            &mut errs,
        );
        end = Figures::read(pid);
    }
    if let Some(f) = &end {
        info!("end: server {f}");
    }
    let sender_open = c.open;
    let _ = c.ws.close();
    SoakRun {
        churn_done: done,
        sender_errs: errs,
        sent,
        sender_open,
        probed_all,
        drained_all,
        late_ms,
        start,
        end,
        settle_secs: round3(settle_start.elapsed().as_secs_f64()),
        churn_errs,
        minutes,
    }
}

fn soak_report(
    o: &Opts,
    connected: usize,
    connect_secs: f64,
    clients: Vec<Steady>,
    mut errs: Errors,
    run: SoakRun,
) -> Value {
    errs.merge(run.sender_errs);
    let so = &o.soak;
    let sent = run.sent;
    // A client's loss: the gaps, plus what never came after its last message.
    let lost: u64 = clients
        .iter()
        .map(|c| c.gaps + sent.saturating_sub(c.next))
        .sum();
    let received = clients.iter().map(|c| c.received);
    let (min, max) = (received.clone().min(), received.max());
    let stray: u64 = clients.iter().map(|c| c.stray).sum();
    let disconnected = clients.iter().filter(|c| c.closed).count();
    let ratios = match (&run.start, &run.end) {
        (Some(s), Some(e)) => Some(e.ratios(s).map(round3)),
        _ => None,
    };
    let back = ratios.is_some_and(|r| r.iter().all(|r| *r <= 1.10));
    let ok = lost == 0
        && back
        && connected == so.steady
        && disconnected == 0
        && run.sender_open
        && stray == 0
        && errs.count == 0;
    json!({
        "scenario": "soak", "ok": ok,
        "steady_clients": so.steady, "steady_connected": connected,
        "steady_disconnected": disconnected, "churn_concurrency": so.churn,
        "duration_secs": so.duration.as_secs_f64(), "rate_per_sec": so.rate,
        "messages_sent": sent, "expected_per_client": sent,
        "received_per_client": {"min": min, "max": max},
        "lost": lost, "out_of_order_or_duplicate": stray,
        "all_registered_before_start": run.probed_all, "drained_all": run.drained_all,
        "sender_alive_to_end": run.sender_open, "sender_max_late_ms": round3(run.late_ms),
        "churn_completed": run.churn_done,
        "churn_errors": run.churn_errs.count, "churn_error_samples": run.churn_errs.samples,
        "server_start": run.start.map(|f| f.json()), "server_end": run.end.map(|f| f.json()),
        "end_over_start": ratios.map(|[rss, threads, fds]| json!({"rss": rss, "threads": threads, "open_files": fds})),
        "settle_secs": run.settle_secs, "per_minute": run.minutes,
        "connect_secs": round3(connect_secs), "errors": errs.count, "error_samples": errs.samples,
    })
}
