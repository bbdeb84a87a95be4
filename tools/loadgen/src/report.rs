//! The clock, the server's figures from /proc, and the parts of the JSON reports.
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::Instant;

use crate::args::Opts;

/// [server, this process] CPU seconds.
type Cpu = [Option<f64>; 2];
const CLK_TCK: f64 = 100.0; // USER_HZ, the unit of CPU times in /proc/PID/stat

/// Nanoseconds on a monotonic clock shared by every thread of this process.
pub fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// User + system CPU seconds of a process (a pid or `self`).
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / CLK_TCK) // utime and stime, fields 14 and 15
}

pub fn cpu_now(pid: Option<u32>) -> Cpu {
    [pid.and_then(|p| cpu_secs(&p.to_string())), cpu_secs("self")]
}

pub fn cpu_since(pid: Option<u32>, start: Cpu) -> Cpu {
    let now = cpu_now(pid);
    [0, 1].map(|i| Some(round3(now[i]? - start[i]?)))
}

/// The number after `key` in a /proc file such as `status` or `meminfo` (KiB for sizes).
pub fn proc_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}

/// (VmRSS KiB, Threads) of a process.
pub fn rss_threads(pid: u32) -> Option<(u64, u64)> {
    let file = format!("/proc/{pid}/status");
    Some((proc_field(&file, "VmRSS")?, proc_field(&file, "Threads")?))
}

/// Error count plus a few distinct samples.
#[derive(Default)]
pub struct Errors {
    pub count: u64,
    pub samples: Vec<String>,
}

impl Errors {
    pub fn add(&mut self, e: impl Into<String>) {
        let e = e.into();
        self.count += 1;
        if self.samples.len() < 5 && !self.samples.contains(&e) {
            self.samples.push(e);
        }
    }
    pub fn merge(&mut self, other: Errors) {
        self.count += other.count - other.samples.len() as u64;
        other.samples.into_iter().for_each(|e| self.add(e));
    }
}

/// What clients saw: latencies (ns), unique, duplicate and misrouted frames, last delivery.
#[derive(Default)]
pub struct Tally {
    pub latencies: Vec<u64>,
    pub unique: u64,
    pub dups: u64,
    pub misrouted: u64,
    pub last_ns: u64,
}

impl Tally {
    pub fn sum(tallies: impl Iterator<Item = Tally>) -> Tally {
        tallies.fold(Tally::default(), |mut all, t| {
            all.latencies.extend(t.latencies);
            (all.unique, all.dups) = (all.unique + t.unique, all.dups + t.dups);
            (all.misrouted, all.last_ns) =
                (all.misrouted + t.misrouted, all.last_ns.max(t.last_ns));
            all
        })
    }
}

/// p50/p90/p95/p99/max in microseconds (one decimal) of nanosecond samples.
pub fn percentiles_us(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    let at = |q: f64| match v.len() {
        0 => Value::Null,
        n => json!((v[((q * n as f64).ceil() as usize).clamp(1, n) - 1] / 100) as f64 / 10.0),
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)})
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Server CPU seconds (also per unit of `work`), RSS and threads, and our own CPU seconds.
pub fn cpu_report(pid: Option<u32>, [server, loadgen]: Cpu, work: u64, unit: &str) -> Value {
    let status = pid.and_then(rss_threads);
    let per_unit = server
        .filter(|_| work > 0)
        .map(|s| round3(s * 1e6 / work as f64));
    json!({
        "server_cpu_secs": server, format!("server_cpu_us_per_{unit}"): per_unit,
        "server_rss_kib": status.map(|s| s.0), "server_threads": status.map(|s| s.1),
        "loadgen_cpu_secs": loadgen,
    })
}

pub fn failure(o: &Opts, error: String) -> Value {
    json!({"scenario": o.scenario, "ok": false, "error": error})
}

pub fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// p50/p90/p95/p99/max in milliseconds (three decimals) of nanosecond samples.
pub fn percentiles_ms(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    let at = |q: f64| match v.len() {
        0 => Value::Null,
        n => json!((v[((q * n as f64).ceil() as usize).clamp(1, n) - 1] / 1000) as f64 / 1000.0),
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)})
}
