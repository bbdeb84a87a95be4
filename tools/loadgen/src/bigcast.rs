//! `bigcast`: the server's memory for one big broadcast to clients that do not read.
use log::info;
use rustix::event::{poll, PollFd, PollFlags};
use serde_json::{json, Value};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::Opts;
use crate::client::{connect_all, connect_to, timespec, Client, Conn, Ws};
use crate::report::{failure, round3, rss_threads, Errors};

/// SO_RCVBUF of bigcast's receivers (the kernel doubles it): the server's writes stall at
/// once instead of filling a loopback receive buffer that may grow to 32 MiB.
const BIGCAST_RCVBUF: usize = 4096;
/// RSS samples this far apart until three in a row agree within `RSS_STABLE`...
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(100);
const RSS_STABLE: f64 = 0.01;
/// ...or this long has passed.
const RSS_SETTLE_MAX: Duration = Duration::from_secs(10);

/// The server's VmRSS (KiB) once it stops changing: samples `RSS_SAMPLE_EVERY` apart until
/// three in a row are within `RSS_STABLE` of each other (true), or the last one when
/// `RSS_SETTLE_MAX` or `deadline` came first (false). None if /proc cannot be read.
fn settled_rss(pid: u32, deadline: Instant) -> Option<(u64, bool)> {
    let end = (Instant::now() + RSS_SETTLE_MAX).min(deadline);
    let mut last: Vec<u64> = Vec::with_capacity(3);
    loop {
        let (rss, _) = rss_threads(pid)?;
        if last.len() == 3 {
            last.remove(0);
        }
        last.push(rss);
        let (lo, hi) = (last.iter().min()?, last.iter().max()?);
        if last.len() == 3 && (hi - lo) as f64 <= *lo as f64 * RSS_STABLE {
            return Some((rss, true));
        }
        if Instant::now() + RSS_SAMPLE_EVERY > end {
            return Some((rss, false));
        }
        thread::sleep(RSS_SAMPLE_EVERY);
    }
}

/// The sender's side of bigcast: counts the big messages the server sent back to it.
#[derive(Default)]
struct Copies(usize);

impl Client for Copies {
    fn on_text(&mut self, _: &str, _: &mut Errors) -> Option<String> {
        self.0 += 1;
        None
    }
}

/// Send `text` and pump the connection until the server sent it back (true), or it closed or
/// `until` passed (false).
fn send_until_echoed(
    c: &mut Conn<Copies>,
    text: String,
    until: Instant,
    errs: &mut Errors,
) -> bool {
    c.send(text, errs);
    while c.open && c.client.0 == 0 {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut flags = PollFlags::IN;
        flags.set(PollFlags::OUT, c.want_out);
        let mut fds = [PollFd::new(c.ws.get_ref(), flags)];
        let _ = poll(&mut fds, Some(&timespec(left.min(RSS_SAMPLE_EVERY))));
        let writable = fds[0].revents().contains(PollFlags::OUT);
        c.service(true, writable, errs);
    }
    c.client.0 > 0
}

pub fn run_bigcast(o: &Opts, pid: u32, deadline: Instant) -> Value {
    let (mut errs, t0) = (Errors::default(), Instant::now());
    let to = (o.url.clone(), o.addr);
    let rcvbuf = Some(BIGCAST_RCVBUF);
    let mut receivers = connect_to(o, &to, rcvbuf, o.clients, o.batch, deadline, &mut errs);
    let sender = connect_all(o, 1, 1, deadline, &mut errs).pop();
    let (connected, connect_secs, n) = (receivers.len(), t0.elapsed().as_secs_f64(), o.clients);
    info!("connected {connected}/{n} receivers (SO_RCVBUF {BIGCAST_RCVBUF}) in {connect_secs:.2}s");
    let Some(sender) = sender else {
        let why = errs.samples.join("; ");
        return failure(o, format!("the sender could not connect: {why}"));
    };
    let Some((rss0, stable0)) = settled_rss(pid, deadline) else {
        return failure(o, format!("cannot read /proc/{pid}/status"));
    };
    let threads0 = rss_threads(pid).map(|s| s.1);
    let message = format!(r#"{{"message":"{}"}}"#, "x".repeat(o.size));
    let mut s = Conn::new(sender, Copies::default());
    let (t1, stall, kib) = (Instant::now(), o.stall, o.size / 1024);
    let echoed = send_until_echoed(&mut s, message, (t1 + stall).min(deadline), &mut errs);
    let echo_secs = t1.elapsed().as_secs_f64();
    if !echoed {
        errs.add(format!("no copy back to the sender in {stall:?}"));
    }
    info!("broadcast {kib} KiB; the sender's copy back after {echo_secs:.2}s");
    let after = settled_rss(pid, deadline);
    let threads1 = rss_threads(pid).map(|s| s.1);
    // Reached: bytes wait in its socket (FIONREAD: counted, not read); the server sends these
    // receivers nothing else within a run (its first ping is 30 s away).
    let waiting = |ws: &Ws| rustix::io::ioctl_fionread(ws.get_ref()).unwrap_or(0);
    let reached = receivers.iter().filter(|ws| waiting(ws) > 0).count();
    let _ = s.ws.close();
    for ws in &mut receivers {
        let _ = ws.close(); // best effort, never blocks; nothing of theirs was ever read
    }
    drop((s, receivers));
    let (rss1, stable1) = after.unzip();
    for (stable, when) in [(Some(stable0), "before"), (stable1, "after")] {
        if stable == Some(false) {
            let max = RSS_SETTLE_MAX;
            errs.add(format!(
                "RSS {when} the broadcast still moving after {max:?}"
            ));
        }
    }
    let growth = rss1.map(|r| r as i64 - rss0 as i64);
    let message_kib = o.size as f64 / 1024.0;
    let per_message = growth.map(|g| (g as f64 / message_kib * 100.0).round() / 100.0);
    let copies_ok = per_message.is_some_and(|c| c <= 3.0);
    let all_reached = connected == o.clients && reached == connected && echoed;
    let mut report = json!({
        "scenario": "bigcast",
        "ok": copies_ok && all_reached && errs.count == 0,
        "clients": o.clients, "connected": connected, "reached": reached, "size": o.size,
        "receiver_rcvbuf": BIGCAST_RCVBUF, "message_kib": round3(message_kib),
        "rss_before_kib": rss0, "rss_after_kib": rss1, "growth_kib": growth,
        "growth_per_message": per_message, "echo_secs": round3(echo_secs),
        "threads_before": threads0, "threads_after": threads1, "server_threads": threads1,
        "connect_secs": round3(connect_secs), "errors": errs.count, "error_samples": errs.samples,
    });
    if !copies_ok {
        report["error"] = json!(match per_message {
            Some(c) => format!("RSS grew by {c} times the message (target about 1, at most 3)"),
            None => format!("cannot read /proc/{pid}/status after the broadcast"),
        });
    }
    report
}
