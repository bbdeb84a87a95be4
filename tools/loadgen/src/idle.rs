//! `idle`: N idle connections, and what they cost the server.
use log::info;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tungstenite::Message;

use crate::args::Opts;
use crate::client::{connect_all, sleep_until, would_block, Ws};
use crate::report::{cpu_now, cpu_since, failure, proc_field, round3, rss_threads, Errors};

/// Still open: reading finds nothing but "would block" (and perhaps a ping).
fn still_open(ws: &mut Ws) -> bool {
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => return false,
            Ok(_) => {}
            Err(e) => return would_block(&e),
        }
    }
}

/// Growth per connection, KiB with one decimal.
fn per_conn(before: Option<u64>, after: Option<u64>, n: usize) -> Option<f64> {
    let growth = after? as f64 - before? as f64;
    (n > 0).then(|| (growth / n as f64 * 10.0).round() / 10.0)
}

pub fn run_idle(o: &Opts, pid: u32, deadline: Instant) -> Value {
    let Some((rss0, threads0)) = rss_threads(pid) else {
        return failure(o, format!("cannot read /proc/{pid}/status"));
    };
    let kernel_mem = || ["KernelStack", "Slab"].map(|k| proc_field("/proc/meminfo", k));
    let (kmem0, mut errs, t0) = (kernel_mem(), Errors::default(), Instant::now());
    let mut conns = connect_all(o, o.clients, o.batch, deadline, &mut errs);
    let (n, connect_secs, wanted) = (conns.len(), t0.elapsed().as_secs_f64(), o.clients);
    info!("connected {n}/{wanted} clients in {connect_secs:.2}s; holding them");
    sleep_until((Instant::now() + Duration::from_secs(1)).min(deadline));
    let (status, kmem1, cpu0) = (rss_threads(pid), kernel_mem(), cpu_now(Some(pid)));
    sleep_until((Instant::now() + o.hold).min(deadline));
    let [cpu, loadgen_cpu] = cpu_since(Some(pid), cpu0);
    let alive: usize = conns.iter_mut().map(|ws| still_open(ws) as usize).sum();
    let negotiated = conns.iter().filter(|ws| ws.wire().deflate).count();
    // With --compression true, every connection must have it (to compare the memory).
    if o.compression && negotiated < n {
        let why = format!("permessage-deflate accepted for {negotiated} of {n} connections");
        errs.add(why);
    }
    conns.iter_mut().for_each(|ws| drop(ws.close()));
    let (rss1, threads1) = status.unzip();
    json!({
        "scenario": "idle", "ok": n == o.clients && alive == n && errs.count == 0 && status.is_some(),
        "compression": o.compression, "compression_negotiated": negotiated,
        "clients": o.clients, "connected": n, "still_alive": alive, "hold_secs": o.hold.as_secs_f64(),
        "rss_before_kib": rss0, "rss_after_kib": rss1, "rss_per_conn_kib": per_conn(Some(rss0), rss1, n),
        "threads_before": threads0, "threads_after": threads1,
        "kernel_stack_per_conn_kib": per_conn(kmem0[0], kmem1[0], n),
        "slab_per_conn_kib": per_conn(kmem0[1], kmem1[1], n),
        "cpu_secs_during_hold": cpu, "loadgen_cpu_secs_during_hold": loadgen_cpu,
        "connect_secs": round3(connect_secs), "errors": errs.count, "error_samples": errs.samples,
    })
}
