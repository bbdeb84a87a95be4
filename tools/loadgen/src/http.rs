//! `http`: keep-alive connections sending `GET /` and `POST /broadcast`, beside stalled
//! requests.
mod conn;

use log::info;
use rustix::event::{poll, PollFd, PollFlags};
use serde_json::{json, Value};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::Opts;
use crate::client::{timespec, Wake};
use crate::report::{
    cpu_now, cpu_report, cpu_since, failure, merge, now_ns, percentiles_ms, round3, Errors,
};
use conn::{Fail, HttpConn};

/// The body of every measured `POST /broadcast`.
const BROADCAST_BODY: &str = r#"{"message":"bench"}"#;
/// The `Content-Length` a stalled request promises; it sends one byte of it.
const STALLED_LENGTH: usize = 100_000;
/// The measured routes, indexed by [`Mix::route`].
const ROUTES: [&str; 2] = ["GET /", "POST /broadcast"];
/// What can go wrong with one request, as counted in `error_kinds`.
const KINDS: [&str; 5] = ["status", "timeout", "reset", "connect", "protocol"];

/// `http`'s own flags.
pub struct HttpOpts {
    pub connections: usize,
    pub requests: usize, // in total, over all connections
    pub stalled: usize,
    pub mix: Mix,
    pub host: String, // the Host header: HOST:PORT of --url
    pub headers: Vec<String>,
}

/// Which routes the measured requests go to.
#[derive(Clone, Copy)]
pub enum Mix {
    /// `GET /`, `POST /broadcast`, `GET /`, … by request number, over all connections.
    Alternate,
    Get,
    Post,
}

impl FromStr for Mix {
    type Err = ();
    fn from_str(s: &str) -> Result<Mix, ()> {
        match s {
            "alternate" => Ok(Mix::Alternate),
            "get" => Ok(Mix::Get),
            "post" => Ok(Mix::Post),
            _ => Err(()),
        }
    }
}

impl Mix {
    /// The index in [`ROUTES`] of request number `i`.
    fn route(self, i: usize) -> usize {
        match self {
            Mix::Alternate => i % 2,
            Mix::Get => 0,
            Mix::Post => 1,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Mix::Alternate => "alternate",
            Mix::Get => "get",
            Mix::Post => "post",
        }
    }
}

/// The measured requests, byte for byte, indexed like [`ROUTES`].
fn http_requests(h: &HttpOpts) -> [Vec<u8>; 2] {
    let (host, extra) = (&h.host, http_extra_headers(h));
    let len = BROADCAST_BODY.len();
    [
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n"),
        format!(
            "POST /broadcast HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {len}\r\n{extra}\r\n{BROADCAST_BODY}"
        ),
    ]
    .map(String::into_bytes)
}

fn http_extra_headers(h: &HttpOpts) -> String {
    h.headers.iter().map(|l| format!("{l}\r\n")).collect()
}

struct HttpShared {
    requests: [Vec<u8>; 2],
    next: AtomicUsize,     // the number of the next request to send
    finished: AtomicUsize, // workers done
    wake: Wake,            // a worker finished
}

/// Counts a worker as finished when dropped, even by a panic.
struct Finished<'a>(&'a HttpShared);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Relaxed);
        self.0.wake.wake();
    }
}

/// What one connection saw.
#[derive(Default)]
struct HttpTally {
    latencies: [Vec<u64>; 2], // ns, of 2xx answers, by route
    start_ns: Option<u64>,    // once its first connection was open
    end_ns: u64,              // once it stopped: no requests left, or the deadline
    reconnects: u64,
    unannounced: u64, // kept-alive connections the server closed without a word
    kinds: [u64; KINDS.len()],
    errs: Errors,
}

impl HttpTally {
    fn fail(&mut self, Fail(kind, why): Fail) {
        self.kinds[kind] += 1;
        self.errs.add(why);
    }
}

/// One measured connection: take request numbers until they run out or `deadline`, one
/// request at a time, each bounded by `--stall` (latency counts from its first attempt). A
/// failed request or a response that ends the connection means a new connection for the
/// next request; a kept-alive connection the server closed unannounced, a second attempt.
fn http_worker(o: &Opts, sh: &HttpShared, deadline: Instant) -> HttpTally {
    let _finished = Finished(sh);
    let mut t = HttpTally::default();
    let mut conn = HttpConn::connect(o.addr, deadline)
        .map_err(|e| t.fail(e))
        .ok();
    let mut opened = conn.is_some(); // a connection since: the next one is a reconnect
    t.start_ns = Some(now_ns());
    'requests: while Instant::now() < deadline {
        let i = sh.next.fetch_add(1, Relaxed);
        if i >= o.http.requests {
            break;
        }
        let route = o.http.mix.route(i);
        let sent = now_ns();
        let until = (Instant::now() + o.stall).min(deadline);
        let (c, result) = loop {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match HttpConn::connect(o.addr, until) {
                    Ok(c) => {
                        t.reconnects += u64::from(opened);
                        opened = true;
                        c
                    }
                    Err(e) => {
                        t.fail(e);
                        continue 'requests;
                    }
                },
            };
            let r = c.exchange(&sh.requests[route], until);
            match r {
                Err(e) if c.closed_unannounced(&e) && Instant::now() < until => t.unannounced += 1,
                r => break (c, r),
            }
        };
        match result {
            Ok((status, close)) => {
                if (200..300).contains(&status) {
                    t.latencies[route].push(now_ns() - sent);
                } else {
                    t.fail(Fail(0, format!("{}: HTTP {status}", ROUTES[route])));
                }
                conn = (!close).then_some(c);
            }
            Err(e) => t.fail(e),
        }
    }
    t.end_ns = now_ns();
    t
}

/// Open `--stalled` connections, each sending a `POST /broadcast` head that promises
/// `STALLED_LENGTH` bytes of body, and one byte of it. Failures go to `errs`.
fn open_stalled(o: &Opts, deadline: Instant, errs: &mut Errors) -> Vec<TcpStream> {
    let h = &o.http;
    let (host, extra) = (&h.host, http_extra_headers(h));
    let head = format!(
        "POST /broadcast HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {STALLED_LENGTH}\r\n{extra}\r\n{{"
    );
    let open = || -> Result<TcpStream, Fail> {
        let mut c = HttpConn::connect(o.addr, deadline)?;
        (c.sock.write_all(head.as_bytes())).map_err(|e| Fail::io("stalled: write", e))?;
        Ok(c.sock)
    };
    let mut all = Vec::with_capacity(h.stalled);
    for _ in 0..h.stalled {
        match open() {
            Ok(sock) => all.push(sock),
            Err(Fail(_, why)) => errs.add(format!("stalled: {why}")),
        }
    }
    all
}

/// Until every worker finished (or `deadline`): note, in seconds since `t0`, when each
/// stalled socket first turns readable (the server answered or closed it). Nothing is read.
fn watch_stalled(
    stalled: &[TcpStream],
    sh: &HttpShared,
    workers: usize,
    t0: Instant,
    deadline: Instant,
) -> Vec<Option<f64>> {
    let mut seen = vec![None; stalled.len()];
    while sh.finished.load(Relaxed) < workers && Instant::now() < deadline {
        let quiet: Vec<usize> = (0..stalled.len()).filter(|&i| seen[i].is_none()).collect();
        let mut fds = vec![PollFd::new(&sh.wake.rd, PollFlags::IN)];
        fds.extend(
            quiet
                .iter()
                .map(|&i| PollFd::new(&stalled[i], PollFlags::IN)),
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = poll(&mut fds, Some(&timespec(left.min(Duration::from_secs(1)))));
        for (fd, &i) in fds[1..].iter().zip(&quiet) {
            if !fd.revents().is_empty() {
                seen[i] = Some(round3(t0.elapsed().as_secs_f64()));
            }
        }
        drop(fds);
        sh.wake.drain();
    }
    seen
}

/// What became of a stalled request, read now that the measurement is over: (answered,
/// closed), and the answer's first line.
fn stalled_outcome(sock: &mut TcpStream) -> (bool, bool, Option<String>) {
    let mut got = Vec::new();
    let closed = sock.set_nonblocking(true).is_err()
        || loop {
            let mut chunk = [0u8; 4096];
            match sock.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) if got.len() < 4096 => got.extend_from_slice(&chunk[..n]),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break e.kind() != io::ErrorKind::WouldBlock,
            }
        };
    let text = String::from_utf8_lossy(&got);
    let first = (!got.is_empty()).then(|| text.lines().next().unwrap_or_default().to_owned());
    (!got.is_empty(), closed, first)
}

pub fn run_http(o: &Opts, deadline: Instant) -> Value {
    let (h, mut errs) = (&o.http, Errors::default());
    let mut stalled = open_stalled(o, deadline, &mut errs);
    let stalled_open = stalled.len();
    info!("{stalled_open} of {} stalled requests open", h.stalled);
    let Ok(wake) = Wake::new() else {
        return failure(o, "cannot create a pipe".into());
    };
    let sh = HttpShared {
        requests: http_requests(h),
        next: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        wake,
    };
    let (cpu0, t0) = (cpu_now(o.pid), Instant::now());
    let (tallies, seen, cpu) = thread::scope(|s| {
        let mut workers = Vec::with_capacity(h.connections);
        for i in 0..h.connections {
            let sh = &sh;
            let spawned = thread::Builder::new()
                .name(format!("http-{i}"))
                .spawn_scoped(s, move || http_worker(o, sh, deadline));
            match spawned {
                Ok(w) => workers.push(w),
                Err(e) => errs.add(format!("spawn: {e}")),
            }
        }
        let seen = watch_stalled(&stalled, &sh, workers.len(), t0, deadline);
        let cpu = cpu_since(o.pid, cpu0);
        let mut tallies = Vec::with_capacity(workers.len());
        for w in workers {
            match w.join() {
                Ok(t) => tallies.push(t),
                Err(_) => errs.add("worker thread panicked"),
            }
        }
        (tallies, seen, cpu)
    });
    let outcomes: Vec<_> = stalled.iter_mut().map(stalled_outcome).collect();
    let stalled_answered = outcomes.iter().filter(|o| o.0).count();
    let stalled_closed = outcomes.iter().filter(|o| o.1).count();
    let stalled_answer = outcomes.iter().find_map(|o| o.2.clone());
    let stalled_first_event = seen.iter().flatten().copied().reduce(f64::min);
    let start_ns = tallies.iter().filter_map(|t| t.start_ns).min().unwrap_or(0);
    let end_ns = tallies.iter().map(|t| t.end_ns).max().unwrap_or(0);
    let (mut kinds, mut reconnects, mut unannounced) = ([0u64; KINDS.len()], 0, 0);
    let mut by_route: [Vec<u64>; 2] = Default::default();
    for t in tallies {
        for (all, k) in kinds.iter_mut().zip(t.kinds) {
            *all += k;
        }
        reconnects += t.reconnects;
        unannounced += t.unannounced;
        for (all, l) in by_route.iter_mut().zip(t.latencies) {
            all.extend(l);
        }
        errs.merge(t.errs);
    }
    let counts = by_route.each_ref().map(|l| l.len() as u64);
    let answered = counts[0] + counts[1];
    let attempted = sh.next.load(Relaxed).min(h.requests);
    let not_sent = h.requests - attempted;
    let secs = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    let all: Vec<u64> = by_route.iter().flatten().copied().collect();
    let [get, post] =
        by_route.map(|l| json!({"requests": l.len(), "latency_ms": percentiles_ms(l)}));
    let error_kinds: serde_json::Map<_, _> = (KINDS.iter())
        .zip(kinds)
        .map(|(k, n)| (k.to_string(), json!(n)))
        .collect();
    let report = json!({
        "scenario": "http", "ok": errs.count == 0 && not_sent == 0,
        "connections": h.connections, "requests_planned": h.requests, "requests": answered,
        "not_sent": not_sent, "mix": h.mix.name(), "duration_secs": round3(secs),
        "requests_per_s": (answered as f64 / secs.max(1e-9)).round(),
        "latency_ms": percentiles_ms(all), "by_route": {ROUTES[0]: get, ROUTES[1]: post},
        "reconnects": reconnects, "unannounced_closes": unannounced,
        "stalled": h.stalled, "stalled_open": stalled_open,
        "stalled_answered": stalled_answered, "stalled_closed": stalled_closed,
        "stalled_answer": stalled_answer, "stalled_first_event_secs": stalled_first_event,
        "errors": errs.count, "error_kinds": error_kinds,
        "error_samples": errs.samples,
    });
    merge(report, cpu_report(o.pid, cpu, answered, "request"))
}
