//! `loadgen`: load generator for signalhub, or any server speaking its WebSocket "signals"
//! protocol (text frames `{"message": ..., "direct": true}`; no target = send to everyone),
//! and for its HTTP side (`http`).
//!
//! ```text
//! cargo build --release -p loadgen
//! L=target/release/loadgen
//! $L fanout --url ws://127.0.0.1:PORT/ --clients 100 --messages 2000 --payload 64 --pid PID
//! $L direct --url ws://127.0.0.1:PORT/ --clients 100 --messages 1000 --pid PID
//! $L idle   --url ws://127.0.0.1:PORT/ --clients 10000 --hold 5 --pid PID
//! $L bigcast --url ws://127.0.0.1:PORT/ --clients 20 --size 8388608 --pid PID
//! $L soak   --url ws://127.0.0.1:PORT/ --steady 500 --churn 2000 --duration 600 --rate 50 --pid PID
//! $L http   --url http://127.0.0.1:PORT/ --connections 50 --requests 40000 --stalled 50 --pid PID
//! $L make-cert DIR   # DIR/ca.pem, DIR/cert.pem, DIR/key.pem for a Wss server
//! $L fanout --url wss://127.0.0.1:PORT/ --ca DIR/ca.pem --clients 1000 --messages 200
//! ```
//!
//! - `fanout`: N receivers and one sender. The sender probes until every receiver is
//!   registered, then broadcasts M messages `{"seq":i,"t":NS,"pad":"x…"}` (about `--payload`
//!   bytes), never more than `--window` (16) ahead of the oldest one not yet delivered to every
//!   receiver. Reports deliveries/s, latency percentiles, the share of deliveries within
//!   500 ms, loss and duplicates. `--one-more true`: once all are connected, one more
//!   upgrade request, whose HTTP status is reported (`one_more_status`; 503 at the cap).
//! - `direct`: each client sends M `{"message":<i>,"direct":true}` one at a time and waits for
//!   the echo; i = client × M + seq, so an echo reaching the wrong client counts as misrouted.
//! - `idle`: N idle connections; the server's RSS, threads, kernel memory and CPU while idle.
//! - `bigcast`: the server's memory for one big broadcast to clients that do not read. N
//!   receivers, each with SO_RCVBUF set to 4096 before connecting (loopback receive buffers
//!   here grow to 32 MiB and would take the whole message), never read after the handshake;
//!   one more client sends one text frame `{"message":"x…"}` with `--size` (8 MiB) bytes of
//!   padding, to everyone, and reads its own copy back. The server's RSS (/proc/PID/status
//!   VmRSS) is taken once everything is connected and again after the sender got its copy,
//!   each time from samples 100 ms apart until three in a row agree within 1 % (at most
//!   10 s). Reports `rss_before_kib`, `rss_after_kib`, `growth_kib`, `message_kib` and
//!   `growth_per_message` (growth / message size: 1 is one copy, N a copy per receiver),
//!   and `reached`: receivers with bytes waiting in their socket (FIONREAD, nothing read).
//!   Target: about one copy. The fan-out encodes one frame that every receiver's queue
//!   shares, and the sender's connection holds the message while reading and parsing it
//!   (signalhub's kept about one message of memory until the sender closed), so 1 to 3 is
//!   expected; ok: at most 3, every receiver connected and reached, the sender's copy back.
//!   Nothing is read from the receivers; the server keeps them until it drops them for not
//!   reading, and they are closed at the end.
//! - `soak`: `--steady` clients stay connected for `--duration` seconds while one more sends
//!   `{"message":{"soak":i}}` to everyone at `--rate` messages/s; each steady client checks the
//!   sequence numbers (gaps = lost). Meanwhile up to `--churn` clients at a time (over
//!   `--churn-threads` threads) connect (nonblocking), send `{"message":V,"direct":true}`, await
//!   the echo `V` and go: every other one with a close frame, the rest by just closing the
//!   socket. Churn then stops; after up to `--settle` seconds (until the figures are back
//!   within 10 %) the server's RSS, threads and open files (/proc/PID/fd) are compared with
//!   those taken once the steady clients were connected; a line per minute goes to stderr.
//!   ok: nothing lost, sender and steady clients alive to the end, each end/start <= 1.10.
//! - `http`: `--connections` (50) HTTP/1.1 keep-alive connections, a thread each, send
//!   `--requests` (20000, in total over all connections) one at a time per connection, and
//!   read each whole response (Content-Length, chunked, or up to the close). `--mix
//!   alternate` (the default) sends `GET /` and `POST /broadcast` (`{"message":"bench"}`,
//!   JSON) in turn, `get` or `post` only one of them; `--header 'Name: value'` (repeatable)
//!   goes on every request, e.g. `Authorization`. Before the load, `--stalled` (0) more
//!   connections each send a `POST /broadcast` head promising `Content-Length: 100000` and one
//!   byte of body, then nothing; they are not read until the load is over (but watched:
//!   `stalled_first_event_secs` is when the server first answered or closed one, seconds
//!   into the load), then counted as `stalled_answered` / `stalled_closed`. Reports
//!   requests/s (2xx answers over the time from the first connection open to the end of the
//!   load: every request done, or the deadline), latency percentiles in ms (from the first attempt to the end of the body),
//!   errors by kind (non-2xx `status`, `timeout` after `--stall`, `reset`, `connect`,
//!   `protocol`), and `reconnects`: connections opened after a connection's first, because
//!   a response said `Connection: close`, a request failed, or the server closed a kept-alive
//!   connection without saying so (`unannounced_closes`: the request then goes once more on
//!   a new connection, as HTTP clients do, and is no error). ok: no errors, none left unsent.
//!
//! With `--pid` the server's CPU time (from /proc), RSS and threads are reported too (for
//! `http`, once the load is over); `idle`, `bigcast` and `soak` need it.
//! `wss://` URLs need `--ca FILE`, the PEM CA that signed the server's certificate (`make-cert`
//! writes one): each client is then a rustls session (ring, TLS 1.3) over its nonblocking
//! socket, checked against the URL's host (`localhost` or `127.0.0.1`).
//! `--threads` (2) OS threads each multiplex many nonblocking tungstenite sockets with epoll;
//! handshakes are nonblocking as well, `--batch` (64) in flight. Only 127.0.0.1 / localhost
//! targets are accepted. One JSON line goes to stdout, progress to stderr. Exit status: 0 ok
//! (nothing lost, no errors), 1 not ok, 2 bad arguments. Every wait is bounded by `--timeout`
//! (120 s; `--stall` 10 s per message) and a watchdog ends the process soon after it.
use log::{info, warn};
use rustix::event::epoll::{self, EventFlags as Ev};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::OwnedFd;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};
use tungstenite::client::client_with_config;
use tungstenite::handshake::client::{ClientHandshake, Response};
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::{protocol::WebSocketConfig, Message, WebSocket};

type Ws = WebSocket<Stream>;
type Handshake = MidHandshake<ClientHandshake<Stream>>;
type HandshakeResult = Result<(Ws, Response), HandshakeError<ClientHandshake<Stream>>>;
type Pending = Option<(Handshake, Instant)>; // a handshake in progress and its start
/// [server, this process] CPU seconds.
type Cpu = [Option<f64>; 2];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TICK: Duration = Duration::from_millis(20);
const TICK_TS: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 20_000_000,
};
const READ_BUFFER: usize = 4096;
const CLK_TCK: f64 = 100.0; // USER_HZ, the unit of CPU times in /proc/PID/stat
const USAGE: &str = "usage: loadgen fanout|direct|idle|soak --url ws[s]://127.0.0.1:PORT/PATH \
  [--ca CA.pem (wss)] [--clients N] [--messages M] [--payload BYTES] [--window W] \
  [--hold SECS] [--pid PID] [--threads T] [--batch B] [--stall SECS] [--timeout SECS] \
  [--label TEXT]
       bigcast: [--clients N] [--size BYTES] --pid PID
       soak: [--steady N] [--churn N] [--churn-threads T] [--duration SECS] [--rate MSG/S] \
  [--settle SECS] --pid PID (--timeout defaults to --duration + 120)
       http: --url http://127.0.0.1:PORT/ [--connections N] [--requests TOTAL] [--stalled N] \
  [--mix alternate|get|post] [--header 'Name: value']... [--pid PID] [--stall SECS] [--timeout SECS]
       loadgen make-cert DIR";

// ------------------------------------------------------------------------------- options

struct Opts {
    scenario: String,
    url: String,
    addr: SocketAddr,
    clients: usize,
    messages: usize,
    payload: usize,
    /// bigcast: bytes of padding in the one message.
    size: usize,
    window: usize,
    hold: Duration,
    pid: Option<u32>,
    threads: usize,
    batch: usize,
    stall: Duration,
    timeout: Duration,
    label: Option<String>,
    tls: Option<Tls>, // wss://
    /// fanout: a second server (another node of a cluster) that half the receivers use.
    url2: Option<(String, SocketAddr)>,
    /// fanout: once every client is connected, try one more and report its HTTP status.
    one_more: bool,
    soak: SoakOpts,
    http: HttpOpts,
}

/// `soak`'s own flags.
struct SoakOpts {
    steady: usize,
    churn: usize,
    churn_threads: usize,
    duration: Duration,
    rate: f64,
    settle: Duration,
}

/// What every `wss://` client of a run shares.
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// `--key value` pairs, removed as they are read so that leftovers are unknown flags.
struct Flags(HashMap<String, String>);

impl Flags {
    fn opt<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        let Some(v) = self.0.remove(key) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| format!("bad --{key} {v:?}"))
    }
    fn get<T: FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        Ok(self.opt(key)?.unwrap_or(default))
    }
    fn secs(&mut self, key: &str, default: f64) -> Result<Duration, String> {
        let s = self.get(key, default)?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("bad --{key} {s}"))
    }
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let (scenario, rest) = args.split_first().ok_or("missing scenario")?;
    let known = ["fanout", "direct", "idle", "bigcast", "soak", "http"];
    if !known.contains(&scenario.as_str()) {
        return Err(format!("unknown scenario {scenario:?}"));
    }
    let (mut f, mut headers) = (Flags(HashMap::new()), Vec::new());
    for pair in rest.chunks(2) {
        let [flag, value] = pair else {
            return Err(format!("{} needs a value", pair[0]));
        };
        let key = flag
            .strip_prefix("--")
            .ok_or(format!("expected a --flag, got {flag:?}"))?;
        match key {
            "header" => headers.push(value.clone()), // repeatable
            _ => drop(f.0.insert(key.to_string(), value.clone())),
        }
    }
    let url: String = f.opt("url")?.ok_or("--url is required")?;
    let (addr, host, scheme) = parse_url(&url)?;
    match (scenario.as_str(), scheme) {
        ("http", "http") => {}
        ("http", _) => return Err("http needs an http:// --url".into()),
        (_, "http") => return Err(format!("{scenario} needs a ws:// or wss:// --url")),
        _ => {}
    }
    let secure = scheme == "wss";
    let tls = match (secure, f.opt::<String>("ca")?) {
        (true, Some(ca)) => Some(tls_client(&ca, &host)?),
        (true, None) => {
            return Err("wss:// needs --ca CA.pem (the CA of the server certificate)".into())
        }
        (false, Some(_)) => return Err("--ca is for wss:// URLs".into()),
        (false, None) => None,
    };
    let url2 = match f.opt::<String>("url2")? {
        None => None,
        Some(url) => match parse_url(&url)? {
            (addr, _, "ws") => Some((url, addr)),
            _ => return Err("--url2 takes a ws:// URL".into()),
        },
    };
    if let Some(bad) = headers.iter().find(|h| !valid_header(h)) {
        return Err(format!("bad --header {bad:?}: want 'Name: value'"));
    }
    if !headers.is_empty() && scenario != "http" {
        return Err("--header is for http".into());
    }
    let http = HttpOpts {
        connections: f.get("connections", 50)?,
        requests: f.get("requests", 20_000)?,
        stalled: f.get("stalled", 0)?,
        mix: f.get("mix", Mix::Alternate)?,
        host: format!("{host}:{}", addr.port()),
        headers,
    };
    let soak = SoakOpts {
        steady: f.get("steady", 500)?,
        churn: f.get("churn", 2000)?,
        churn_threads: f.get("churn-threads", 2)?,
        duration: f.secs("duration", 600.0)?,
        rate: f.get("rate", 50.0)?,
        settle: f.secs("settle", 15.0)?,
    };
    let timeout = match scenario.as_str() {
        "soak" => f.secs("timeout", soak.duration.as_secs_f64() + SOAK_GRACE)?,
        _ => f.secs("timeout", 120.0)?,
    };
    let o = Opts {
        scenario: scenario.clone(),
        addr,
        url,
        clients: f.get("clients", 100)?,
        messages: f.get("messages", 1000)?,
        payload: f.get("payload", 64)?,
        size: f.get("size", 8 << 20)?,
        window: f.get("window", 16)?,
        hold: f.secs("hold", 5.0)?,
        pid: f.opt("pid")?,
        threads: f.get("threads", 2)?,
        batch: f.get("batch", 64)?,
        stall: f.secs("stall", 10.0)?,
        timeout,
        label: f.opt("label")?,
        tls,
        url2,
        one_more: f.get("one-more", false)?,
        soak,
        http,
    };
    if let Some(k) = f.0.keys().next() {
        return Err(format!("unknown flag --{k}"));
    }
    if [o.clients, o.messages, o.window, o.threads, o.batch].contains(&0) {
        return Err("--clients, --messages, --window, --threads, --batch must be > 0".into());
    }
    if ["idle", "bigcast", "soak"].contains(&o.scenario.as_str()) && o.pid.is_none() {
        return Err(format!("{} needs --pid", o.scenario));
    }
    if o.size == 0 {
        return Err("--size must be > 0".into());
    }
    if o.http.connections == 0 || o.http.requests == 0 {
        return Err("--connections, --requests must be > 0".into());
    }
    let s = &o.soak;
    if [s.steady, s.churn_threads].contains(&0) || !(s.rate > 0.0 && s.rate <= 1e5) {
        return Err("--steady, --churn-threads must be > 0, --rate in (0, 100000]".into());
    }
    Ok(o)
}

/// The address and host of a `SCHEME://127.0.0.1:PORT/...` or `SCHEME://localhost:PORT/...`
/// URL, and its scheme: `ws`, `wss` or `http`.
fn parse_url(url: &str) -> Result<(SocketAddr, String, &'static str), String> {
    let (scheme, rest) = ["ws", "wss", "http"]
        .into_iter()
        .find_map(|s| Some((s, url.strip_prefix(s)?.strip_prefix("://")?)))
        .ok_or("--url must start with ws://, wss:// or http://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').ok_or("--url needs a port")?;
    if host != "127.0.0.1" && host != "localhost" {
        return Err(format!(
            "refusing host {host:?}: only 127.0.0.1 or localhost"
        ));
    }
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    Ok((
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        host.to_owned(),
        scheme,
    ))
}

/// `--header` values: `Name: value`, a token for the name and no line breaks.
fn valid_header(h: &str) -> bool {
    let Some((name, _)) = h.split_once(':') else {
        return false;
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(token) && !h.contains(['\r', '\n'])
}

/// A client config trusting the CA certificates of the PEM file `ca` (ring, explicitly), and
/// the name the server's certificate must have.
fn tls_client(ca: &str, host: &str) -> Result<Tls, String> {
    let bad = |e: &dyn std::fmt::Display| format!("--ca {ca}: {e}");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?}: {e}"))?;
    Ok(Tls {
        config: Arc::new(config),
        name,
    })
}

/// `make-cert DIR`: a CA (`DIR/ca.pem`) and a certificate it signed for `localhost` and
/// `127.0.0.1` (`DIR/cert.pem`, its key `DIR/key.pem`), ECDSA P-256, for a bench's Wss server.
fn make_cert(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let gen = |e: rcgen::Error| format!("rcgen: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (ca_params.distinguished_name).push(DnType::CommonName, "signalhub loadgen CA");
    let ca_key = KeyPair::generate_for(alg).map_err(gen)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(gen)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let key = KeyPair::generate_for(alg).map_err(gen)?;
    let cert = (CertificateParams::new(names).map_err(gen)?)
        .signed_by(&key, &ca)
        .map_err(gen)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ];
    for (name, pem) in files {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true).mode(0o600);
        let written = options
            .open(&path)
            .and_then(|mut f| f.write_all(pem.as_bytes()));
        written.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

// ------------------------------------------------------------------ clock, /proc, results

/// Nanoseconds on a monotonic clock shared by every thread of this process.
fn now_ns() -> u64 {
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

fn cpu_now(pid: Option<u32>) -> Cpu {
    [pid.and_then(|p| cpu_secs(&p.to_string())), cpu_secs("self")]
}

fn cpu_since(pid: Option<u32>, start: Cpu) -> Cpu {
    let now = cpu_now(pid);
    [0, 1].map(|i| Some(round3(now[i]? - start[i]?)))
}

/// The number after `key` in a /proc file such as `status` or `meminfo` (KiB for sizes).
fn proc_field(file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}

/// (VmRSS KiB, Threads) of a process.
fn rss_threads(pid: u32) -> Option<(u64, u64)> {
    let file = format!("/proc/{pid}/status");
    Some((proc_field(&file, "VmRSS")?, proc_field(&file, "Threads")?))
}

/// Error count plus a few distinct samples.
#[derive(Default)]
struct Errors {
    count: u64,
    samples: Vec<String>,
}

impl Errors {
    fn add(&mut self, e: impl Into<String>) {
        let e = e.into();
        self.count += 1;
        if self.samples.len() < 5 && !self.samples.contains(&e) {
            self.samples.push(e);
        }
    }
    fn merge(&mut self, other: Errors) {
        self.count += other.count - other.samples.len() as u64;
        other.samples.into_iter().for_each(|e| self.add(e));
    }
}

/// What clients saw: latencies (ns), unique, duplicate and misrouted frames, last delivery.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    unique: u64,
    dups: u64,
    misrouted: u64,
    last_ns: u64,
}

impl Tally {
    fn sum(tallies: impl Iterator<Item = Tally>) -> Tally {
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
fn percentiles_us(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    let at = |q: f64| match v.len() {
        0 => Value::Null,
        n => json!((v[((q * n as f64).ceil() as usize).clamp(1, n) - 1] / 100) as f64 / 10.0),
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)})
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Server CPU seconds (also per unit of `work`), RSS and threads, and our own CPU seconds.
fn cpu_report(pid: Option<u32>, [server, loadgen]: Cpu, work: u64, unit: &str) -> Value {
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

fn failure(o: &Opts, error: String) -> Value {
    json!({"scenario": o.scenario, "ok": false, "error": error})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn sleep_until(t: Instant) {
    thread::sleep(t.saturating_duration_since(Instant::now()));
}

fn timespec(d: Duration) -> Timespec {
    Timespec::try_from(d).unwrap_or(TICK_TS)
}

/// Wait up to one `TICK` for epoll events.
fn wait_events(ep: &OwnedFd, events: &mut Vec<epoll::Event>) {
    events.clear();
    let _ = epoll::wait(ep, rustix::buffer::spare_capacity(events), Some(&TICK_TS));
}

/// A nonblocking pipe that worker threads write a byte to, to wake the main thread.
struct Wake {
    rd: OwnedFd,
    wr: OwnedFd,
}

impl Wake {
    fn new() -> std::io::Result<Self> {
        use rustix::pipe::{pipe_with, PipeFlags};
        let (rd, wr) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC)?;
        Ok(Wake { rd, wr })
    }
    fn wake(&self) {
        let _ = rustix::io::write(&self.wr, &[1]); // a full pipe already wakes the reader
    }
    fn drain(&self) {
        while matches!(rustix::io::read(&self.rd, &mut [0; 256]), Ok(n) if n > 0) {}
    }
    fn wait(&self, limit: Duration) {
        let mut fds = [PollFd::new(&self.rd, PollFlags::IN)];
        let _ = poll(&mut fds, Some(&timespec(limit)));
        self.drain();
    }
}

// --------------------------------------------------------------------------------- streams

/// A client's socket: plain TCP (`ws://`) or a TLS session over it (`wss://`). Nonblocking
/// either way: reads and writes return `WouldBlock` when the socket does.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// TLS bytes waiting for the socket (a write that would block, or what the handshake or
    /// a read produced): flush once the socket is writable.
    fn wants_write(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.tls.wants_write())
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Plain(s) => s.as_fd(),
            Stream::Tls(t) => t.sock.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

/// A rustls client session over a nonblocking socket, as tungstenite's stream. `read` returns
/// plaintext, pulling TLS records from the socket as needed, and `WouldBlock` only once the
/// socket is drained (what edge-triggered epoll needs); `write` encrypts into rustls' buffer
/// (`WouldBlock` only when that is full and the socket takes nothing); `flush` hands the
/// buffer to the socket (`WouldBlock`: flush again when writable).
struct TlsStream {
    tls: ClientConnection,
    sock: TcpStream,
}

impl TlsStream {
    /// Write what rustls has for the peer until it has nothing left or the socket is full.
    fn push(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Ok(0) once the server sent close_notify, UnexpectedEof on a bare TCP EOF.
            match self.tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            self.tls.read_tls(&mut self.sock)?; // WouldBlock: nothing more for now
            let state = self.tls.process_new_packets();
            // Our handshake flight (and the request buffered behind it), alerts, key updates.
            // Best effort: what the socket cannot take waits for a writable event.
            let _ = self.push();
            if let Err(e) = state {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        self.push()?; // rustls' buffer is full: make room
        match self.tls.writer().write(buf)? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tls.writer().flush()?;
        self.push()
    }
}

// ------------------------------------------------------------------------------ connecting

fn would_block(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

/// TCP connect (blocking, bounded), then a nonblocking handshake registered under `slot`.
fn start_handshake(
    o: &Opts,
    to: &(String, SocketAddr),
    rcvbuf: Option<usize>,
    ep: &OwnedFd,
    slot: usize,
) -> Result<HandshakeResult, String> {
    let sock = tcp_connect(to.1, rcvbuf).map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    sock.set_nonblocking(true)
        .map_err(|e| format!("connect: {e}"))?;
    let stream = match &o.tls {
        None => Stream::Plain(sock),
        Some(t) => {
            let tls = ClientConnection::new(t.config.clone(), t.name.clone());
            let tls = tls.map_err(|e| format!("tls: {e}"))?;
            Stream::Tls(Box::new(TlsStream { tls, sock }))
        }
    };
    let data = epoll::EventData::new_u64(slot as u64);
    epoll::add(ep, &stream, data, Ev::IN | Ev::OUT | Ev::ET).map_err(|e| format!("epoll: {e}"))?;
    let cfg = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    Ok(client_with_config(to.0.as_str(), stream, Some(cfg)))
}

/// A TCP connection to `addr` within `CONNECT_TIMEOUT`. With `rcvbuf`, SO_RCVBUF is set to it
/// before connecting, so the window the server sees stays that small (loopback receive
/// buffers here grow to 32 MiB otherwise).
fn tcp_connect(addr: SocketAddr, rcvbuf: Option<usize>) -> io::Result<TcpStream> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    let Some(size) = rcvbuf else {
        return TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
    };
    let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
    let fd = rustix::net::socket_with(AddressFamily::INET, SocketType::STREAM, flags, None)?;
    sockopt::set_socket_recv_buffer_size(&fd, size)?;
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let mut fds = [PollFd::new(&fd, PollFlags::OUT)];
    if poll(&mut fds, Some(&timespec(CONNECT_TIMEOUT)))? == 0 {
        return Err(io::ErrorKind::TimedOut.into());
    }
    sockopt::socket_error(&fd)??;
    Ok(TcpStream::from(fd))
}

/// Collect a finished handshake in `open`, or return the one still in progress.
fn settle(r: HandshakeResult, born: Instant, open: &mut Vec<Ws>, errs: &mut Errors) -> Pending {
    match r {
        Ok((ws, _)) => open.push(ws),
        Err(HandshakeError::Interrupted(hs)) => return Some((hs, born)),
        Err(HandshakeError::Failure(e)) => errs.add(format!("handshake: {e}")),
    }
    None
}

/// Open `n` connections, at most `batch` handshakes in flight; failures go to `errs`. The
/// sockets stay registered in a private epoll set until it is closed on return.
fn connect_all(o: &Opts, n: usize, batch: usize, deadline: Instant, errs: &mut Errors) -> Vec<Ws> {
    connect_to(o, &(o.url.clone(), o.addr), None, n, batch, deadline, errs)
}

/// [`connect_all`] to the server at `to` (URL and address), with SO_RCVBUF set to `rcvbuf`
/// when given ([`tcp_connect`]).
fn connect_to(
    o: &Opts,
    to: &(String, SocketAddr),
    rcvbuf: Option<usize>,
    n: usize,
    batch: usize,
    deadline: Instant,
    errs: &mut Errors,
) -> Vec<Ws> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC);
    let Ok(ep) = ep.inspect_err(|e| errs.add(format!("epoll: {e}"))) else {
        return Vec::new();
    };
    let mut slots: Vec<Pending> = (0..batch.min(n)).map(|_| None).collect();
    let expired = |(_, born): &(Handshake, Instant)| {
        born.elapsed() > CONNECT_TIMEOUT || Instant::now() >= deadline
    };
    let (mut open, mut started, mut events) = (Vec::with_capacity(n), 0, Vec::with_capacity(64));
    loop {
        for (slot, entry) in slots.iter_mut().enumerate() {
            while entry.is_none() && started < n && Instant::now() < deadline {
                started += 1;
                match start_handshake(o, to, rcvbuf, &ep, slot) {
                    Ok(r) => *entry = settle(r, Instant::now(), &mut open, errs),
                    Err(e) => errs.add(e),
                }
            }
        }
        if slots.iter().all(Option::is_none) && (started == n || Instant::now() >= deadline) {
            return open;
        }
        wait_events(&ep, &mut events);
        for slot in events.iter().map(|ev| ev.data.u64() as usize) {
            if let Some((hs, born)) = slots[slot].take() {
                slots[slot] = settle(hs.handshake(), born, &mut open, errs);
            }
        }
        for entry in &mut slots {
            if entry.as_ref().is_some_and(expired) {
                *entry = None; // closing the socket also drops it from the epoll set
                errs.add("connect: handshake timeout");
            }
        }
    }
}

// -------------------------------------------------------------------------- worker threads

/// Per-connection behaviour. Returned strings are sent as text frames.
trait Client: Send {
    fn start(&mut self) -> Option<String> {
        None
    }
    fn on_text(&mut self, text: &str, errs: &mut Errors) -> Option<String>;
    /// Called every `TICK` while the connection is open, e.g. to detect stalls.
    fn tick(&mut self, _errs: &mut Errors) {}
    /// The connection failed or the server closed it.
    fn closed(&mut self) {}
}

/// A client that reads and drops everything (the fanout sender's own copies).
struct Discard;

impl Client for Discard {
    fn on_text(&mut self, _: &str, _: &mut Errors) -> Option<String> {
        None
    }
}

struct Conn<C> {
    ws: Ws,
    client: C,
    open: bool,
    want_out: bool,       // part of a frame is still unwritten
    interest: Option<Ev>, // what the socket is registered for in the worker's epoll
}

impl<C: Client> Conn<C> {
    fn new(ws: Ws, client: C) -> Self {
        Conn {
            ws,
            client,
            open: true,
            want_out: false,
            interest: None,
        }
    }
    /// Finish a pending write if `writable`, then read until the socket would block.
    fn service(&mut self, readable: bool, writable: bool, errs: &mut Errors) {
        if writable && self.open {
            let r = self.ws.flush();
            self.after_write(r, errs);
        }
        while readable && self.open {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    if let Some(reply) = self.client.on_text(&t, errs) {
                        self.send(reply, errs);
                    }
                }
                Ok(Message::Close(_)) => self.fail("closed by server".into(), errs),
                Ok(_) => {}
                Err(e) if would_block(&e) => break,
                Err(e) => self.fail(format!("read: {e}"), errs),
            }
        }
        // TLS bytes a read produced (or a blocked write left) go out when writable.
        self.want_out |= self.open && self.ws.get_ref().wants_write();
    }
    fn send(&mut self, text: String, errs: &mut Errors) {
        let r = self.ws.send(Message::text(text));
        self.after_write(r, errs);
    }
    /// WouldBlock leaves the rest of the frame buffered in tungstenite until writable.
    fn after_write(&mut self, r: tungstenite::Result<()>, errs: &mut Errors) {
        match r {
            Ok(()) => self.want_out = false,
            Err(e) if would_block(&e) => self.want_out = true,
            Err(e) => self.fail(format!("write: {e}"), errs),
        }
    }
    fn fail(&mut self, why: String, errs: &mut Errors) {
        if std::mem::replace(&mut self.open, false) {
            errs.add(why);
            self.client.closed();
        }
    }
    /// Register for IN, IN|OUT while a write is pending, or nothing once closed.
    fn sync_interest(&mut self, ep: &OwnedFd, token: usize) {
        let mut flags = Ev::IN;
        flags.set(Ev::OUT, self.want_out);
        let want = self.open.then_some(flags);
        let (fd, data) = (self.ws.get_ref(), epoll::EventData::new_u64(token as u64));
        let _ = match (self.interest, want) {
            (old, new) if old == new => return,
            (None, Some(f)) => epoll::add(ep, fd, data, f),
            (Some(_), Some(f)) => epoll::modify(ep, fd, data, f),
            (_, None) => epoll::delete(ep, fd),
        };
        self.interest = want;
    }
}

/// One worker thread: serve `clients` until `stop` or `deadline`, then close them.
fn drive<C: Client>(
    clients: Vec<(Ws, C)>,
    stop: &AtomicBool,
    deadline: Instant,
) -> (Vec<C>, Errors) {
    let mut errs = Errors::default();
    let mut conns: Vec<Conn<C>> = clients
        .into_iter()
        .map(|(ws, c)| Conn::new(ws, c))
        .collect();
    match epoll::create(epoll::CreateFlags::CLOEXEC) {
        Ok(ep) => event_loop(&ep, &mut conns, stop, deadline, &mut errs),
        Err(e) => errs.add(format!("epoll: {e}")),
    }
    for c in &mut conns {
        let _ = c.ws.close(None); // best effort: queue a close frame, never block
    }
    (conns.into_iter().map(|c| c.client).collect(), errs)
}

fn event_loop<C: Client>(
    ep: &OwnedFd,
    conns: &mut [Conn<C>],
    stop: &AtomicBool,
    deadline: Instant,
    errs: &mut Errors,
) {
    for (i, c) in conns.iter_mut().enumerate() {
        if let Some(first) = c.client.start() {
            c.send(first, errs);
        }
        c.sync_interest(ep, i);
    }
    let (mut events, mut last_tick) = (Vec::with_capacity(256), Instant::now());
    while !stop.load(Relaxed) && Instant::now() < deadline {
        wait_events(ep, &mut events);
        for ev in &events {
            let (i, flags) = (ev.data.u64() as usize, ev.flags);
            conns[i].service(
                flags.intersects(Ev::IN | Ev::ERR | Ev::HUP),
                flags.contains(Ev::OUT),
                errs,
            );
            conns[i].sync_interest(ep, i);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            conns
                .iter_mut()
                .filter(|c| c.open)
                .for_each(|c| c.client.tick(errs));
        }
    }
}

/// Spread `clients` over `threads` workers and run `during` on this thread; then stop the
/// workers and collect their clients and errors.
fn with_workers<C: Client, R>(
    clients: Vec<(Ws, C)>,
    threads: usize,
    deadline: Instant,
    during: impl FnOnce() -> R,
) -> (Vec<C>, Errors, R) {
    let (stop, mut errs) = (AtomicBool::new(false), Errors::default());
    let mut groups: Vec<Vec<(Ws, C)>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, client) in clients.into_iter().enumerate() {
        groups[i % threads].push(client);
    }
    let (all, result) = thread::scope(|s| {
        let stop = &stop;
        let workers: Vec<_> = groups
            .into_iter()
            .map(|g| s.spawn(move || drive(g, stop, deadline)))
            .collect();
        let result = during();
        stop.store(true, Relaxed);
        let mut all = Vec::new();
        for w in workers {
            match w.join() {
                Ok((clients, e)) => {
                    all.extend(clients);
                    errs.merge(e);
                }
                Err(_) => errs.add("worker thread panicked"),
            }
        }
        (all, result)
    });
    (all, errs, result)
}

// ---------------------------------------------------------------------------------- fanout

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

struct Receiver {
    sh: Arc<FanoutShared>,
    seen: Vec<u64>, // bitmap of the seqs received
    probed: bool,
    tally: Tally,
}

impl Receiver {
    fn new(sh: Arc<FanoutShared>, messages: usize) -> Self {
        let (seen, tally) = (vec![0; messages.div_ceil(64)], Tally::default());
        Receiver {
            sh,
            seen,
            probed: false,
            tally,
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
        s.send(format!(r#"{{"message":{{"probe":{k}}}}}"#));
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
        if !s.send(format!(
            r#"{{"message":{{"seq":{i},"t":{t},"pad":"{pad}"}}}}"#
        )) {
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

fn run_fanout(o: &Opts, deadline: Instant) -> Value {
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
    let receiver = |ws| (ws, Receiver::new(sh.clone(), o.messages));
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
            let _ = s.conn.ws.close(None);
            errs.merge(s.errs);
            (sent, first_ns, cpu)
        });
    errs.merge(worker_errs);
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
    let report = json!({
        "scenario": "fanout", "ok": lost == 0 && all.dups == 0 && errs.count == 0,
        "clients": o.clients, "connected": connected, "messages": o.messages, "sent": sent,
        "payload": o.payload, "window": o.window, "threads": o.threads, "expected": expected,
        "delivered": all.unique, "lost": lost, "duplicates": all.dups,
        "duration_secs": round3(secs), "deliveries_per_sec": (all.unique as f64 / secs.max(1e-9)).round(),
        "latency_us": percentiles_us(all.latencies), "connect_secs": round3(connect_secs),
        "within_500ms": (within_500ms * 1e4).round() / 1e4,
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

// ---------------------------------------------------------------------------------- direct

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
}

fn run_direct(o: &Opts, deadline: Instant) -> Value {
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
    let all = Tally::sum(clients.into_iter().map(|c| c.tally));
    let (round_trips, expected) = (all.latencies.len() as u64, (o.clients * o.messages) as u64);
    let lost = expected.saturating_sub(round_trips);
    let secs = all.last_ns.saturating_sub(start_ns) as f64 / 1e9;
    let report = json!({
        "scenario": "direct", "ok": lost == 0 && all.misrouted == 0 && all.dups == 0 && errs.count == 0,
        "clients": o.clients, "connected": connected, "messages": o.messages, "threads": o.threads,
        "expected": expected, "round_trips": round_trips, "lost": lost,
        "misrouted": all.misrouted, "duplicates": all.dups, "duration_secs": round3(secs),
        "round_trips_per_sec": (round_trips as f64 / secs.max(1e-9)).round(),
        "rtt_us": percentiles_us(all.latencies), "connect_secs": round3(connect_secs),
        "errors": errs.count, "error_samples": errs.samples,
    });
    merge(report, cpu_report(o.pid, cpu, round_trips, "round_trip"))
}

// ------------------------------------------------------------------------------------ idle

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

fn run_idle(o: &Opts, pid: u32, deadline: Instant) -> Value {
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
    conns.iter_mut().for_each(|ws| drop(ws.close(None)));
    let (rss1, threads1) = status.unzip();
    json!({
        "scenario": "idle", "ok": n == o.clients && alive == n && errs.count == 0 && status.is_some(),
        "clients": o.clients, "connected": n, "still_alive": alive, "hold_secs": o.hold.as_secs_f64(),
        "rss_before_kib": rss0, "rss_after_kib": rss1, "rss_per_conn_kib": per_conn(Some(rss0), rss1, n),
        "threads_before": threads0, "threads_after": threads1,
        "kernel_stack_per_conn_kib": per_conn(kmem0[0], kmem1[0], n),
        "slab_per_conn_kib": per_conn(kmem0[1], kmem1[1], n),
        "cpu_secs_during_hold": cpu, "loadgen_cpu_secs_during_hold": loadgen_cpu,
        "connect_secs": round3(connect_secs), "errors": errs.count, "error_samples": errs.samples,
    })
}

// --------------------------------------------------------------------------------- bigcast

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

fn run_bigcast(o: &Opts, pid: u32, deadline: Instant) -> Value {
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
    let _ = s.ws.close(None);
    for ws in &mut receivers {
        let _ = ws.close(None); // best effort, never blocks; nothing of theirs was ever read
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

// ------------------------------------------------------------------------------------ soak

/// What a soak run may take beyond `--duration` (connecting, probing, draining, settling).
const SOAK_GRACE: f64 = 120.0;
/// The longest one churn connection may take from connect to echo.
const CHURN_TIMEOUT: Duration = Duration::from_secs(10);
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

/// Live churn counters, for the per-minute lines.
#[derive(Default)]
struct ChurnCount {
    done: AtomicUsize,
    errors: AtomicUsize,
}

/// One churn connection, from connect to echo.
enum Phase {
    Connecting(TcpStream),
    Handshake(Handshake),
    Open(Ws),
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
                let stream = match &o.tls {
                    None => Stream::Plain(sock),
                    Some(t) => {
                        let tls = ClientConnection::new(t.config.clone(), t.name.clone());
                        let tls = tls.map_err(|e| format!("tls: {e}"))?;
                        Stream::Tls(Box::new(TlsStream { tls, sock }))
                    }
                };
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
fn churn(
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

fn run_soak(o: &Opts, pid: u32, deadline: Instant) -> Value {
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
    let _ = c.ws.close(None);
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

// ------------------------------------------------------------------------------------ http

/// The body of every measured `POST /broadcast`.
const BROADCAST_BODY: &str = r#"{"message":"bench"}"#;
/// The `Content-Length` a stalled request promises; it sends one byte of it.
const STALLED_LENGTH: usize = 100_000;
/// The longest response head (or chunk-size line) accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// The measured routes, indexed by [`Mix::route`].
const ROUTES: [&str; 2] = ["GET /", "POST /broadcast"];
/// What can go wrong with one request, as counted in `error_kinds`.
const KINDS: [&str; 5] = ["status", "timeout", "reset", "connect", "protocol"];

/// `http`'s own flags.
struct HttpOpts {
    connections: usize,
    requests: usize, // in total, over all connections
    stalled: usize,
    mix: Mix,
    host: String, // the Host header: HOST:PORT of --url
    headers: Vec<String>,
}

/// Which routes the measured requests go to.
#[derive(Clone, Copy)]
enum Mix {
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

/// Why a request failed: its kind (an index in [`KINDS`]) and a sample message.
struct Fail(usize, String);

impl Fail {
    fn io(what: &str, e: io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::timeout(),
            _ => Fail(2, format!("{what}: {e}")),
        }
    }
    fn timeout() -> Fail {
        Fail(1, "timeout".into())
    }
    fn eof() -> Fail {
        Fail(2, "closed by server before the response ended".into())
    }
    fn protocol(why: impl std::fmt::Display) -> Fail {
        Fail(4, format!("protocol: {why}"))
    }
}

/// How a response's body ends.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// One keep-alive connection: blocking, every read bounded by the request's limit.
struct HttpConn {
    sock: TcpStream,
    buf: Vec<u8>, // read, not yet consumed
    served: u64,  // whole responses read on it
    got: bool,    // some of the current response arrived
}

impl HttpConn {
    fn connect(addr: SocketAddr, deadline: Instant) -> Result<HttpConn, Fail> {
        let limit = CONNECT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        if limit.is_zero() {
            return Err(Fail(3, "connect: deadline".into()));
        }
        let sock = TcpStream::connect_timeout(&addr, limit);
        let sock = sock.map_err(|e| Fail(3, format!("connect: {e}")))?;
        let _ = sock.set_nodelay(true);
        sock.set_write_timeout(Some(limit))
            .map_err(|e| Fail(3, format!("connect: {e}")))?;
        Ok(HttpConn {
            sock,
            buf: Vec::with_capacity(8192),
            served: 0,
            got: false,
        })
    }

    /// Read once more into `buf`; an end of stream is `Ok(false)`.
    fn fill(&mut self, until: Instant) -> Result<bool, Fail> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Fail::timeout());
        }
        (self.sock.set_read_timeout(Some(left))).map_err(|e| Fail::io("read", e))?;
        let len = self.buf.len();
        self.buf.resize(len + 16 * 1024, 0);
        let r = loop {
            match self.sock.read(&mut self.buf[len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => break r,
            }
        };
        self.buf.truncate(len + *r.as_ref().unwrap_or(&0));
        self.got |= matches!(r, Ok(n) if n > 0);
        r.map(|n| n > 0).map_err(|e| Fail::io("read", e))
    }

    /// Read until `buf` holds `n` bytes; the end of the stream first is an error.
    fn need(&mut self, n: usize, until: Instant) -> Result<(), Fail> {
        while self.buf.len() < n {
            if !self.fill(until)? {
                return Err(Fail::eof());
            }
        }
        Ok(())
    }

    /// Read until `buf` holds a whole line; returns its length without the CRLF.
    fn line(&mut self, until: Instant) -> Result<usize, Fail> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                return Ok(at);
            }
            if self.buf.len() > MAX_RESPONSE_HEAD {
                return Err(Fail::protocol("line too long"));
            }
            if !self.fill(until)? {
                return Err(Fail::eof());
            }
        }
    }

    /// Send one request and read its whole response by `until`: the status, and whether
    /// the server ends the connection after it.
    fn exchange(&mut self, request: &[u8], until: Instant) -> Result<(u16, bool), Fail> {
        self.got = !self.buf.is_empty();
        self.sock
            .write_all(request)
            .map_err(|e| Fail::io("write", e))?;
        let (status, framing, mut close, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let (status, framing, close) = response_framing(&response);
                    break (status, framing, close, n);
                }
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(Fail::protocol("response head too long"))
                }
                Ok(httparse::Status::Partial) => {
                    if !self.fill(until)? {
                        return Err(Fail::eof());
                    }
                }
                Err(e) => return Err(Fail::protocol(e)),
            }
        };
        self.buf.drain(..head_len);
        match framing {
            Framing::Length(n) => {
                self.need(n, until)?;
                self.buf.drain(..n);
            }
            Framing::Chunked => self.chunked_body(until)?,
            Framing::UntilClose => {
                while self.fill(until)? {}
                (self.buf.clear(), close = true).1
            }
        }
        self.served += 1;
        Ok((status, close))
    }

    /// After a failed exchange: the server had closed this kept-alive connection without
    /// saying so (no `Connection: close`) and sent nothing of the response, so the request
    /// may go again on a new connection, as HTTP clients do.
    fn closed_unannounced(&self, fail: &Fail) -> bool {
        fail.0 == 2 && self.served > 0 && !self.got
    }

    /// Consume a chunked body and its trailers.
    fn chunked_body(&mut self, until: Instant) -> Result<(), Fail> {
        loop {
            let end = self.line(until)?;
            let size = String::from_utf8_lossy(&self.buf[..end]);
            let size = size.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(Fail::protocol)?;
            self.buf.drain(..end + 2);
            if size == 0 {
                break;
            }
            self.need(size + 2, until)?;
            self.buf.drain(..size + 2);
        }
        loop {
            let end = self.line(until)?; // trailers, up to an empty line
            self.buf.drain(..end + 2);
            if end == 0 {
                return Ok(());
            }
        }
    }
}

/// A parsed response head's status, how its body ends, and whether the connection ends
/// after it (`Connection: close`, or HTTP/1.0 without `Connection: keep-alive`).
fn response_framing(r: &httparse::Response) -> (u16, Framing, bool) {
    let status = r.code.unwrap_or(0);
    let header = |name: &'static str| {
        r.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let has_token = |name, token| header(name).any(|v| v.split(',').any(|t| t.trim() == token));
    let close = has_token("connection", "close")
        || (r.version == Some(0) && !has_token("connection", "keep-alive"));
    let length = header("content-length")
        .next()
        .and_then(|v| v.trim().parse().ok());
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if has_token("transfer-encoding", "chunked") {
        Framing::Chunked
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    (status, framing, close)
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

/// p50/p90/p95/p99/max in milliseconds (three decimals) of nanosecond samples.
fn percentiles_ms(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    let at = |q: f64| match v.len() {
        0 => Value::Null,
        n => json!((v[((q * n as f64).ceil() as usize).clamp(1, n) - 1] / 1000) as f64 / 1000.0),
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p95": at(0.95), "p99": at(0.99), "max": at(1.0)})
}

fn run_http(o: &Opts, deadline: Instant) -> Value {
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

// ------------------------------------------------------------------------------------ main

/// Raise the soft open-file limit to the hard limit; returns the soft limit now in force.
fn raise_nofile() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
    getrlimit(Resource::Nofile).current
}

/// Last resort should a run overrun `--timeout` anyway: report a failure and exit.
fn arm_watchdog(o: &Opts) {
    let report = failure(o, format!("watchdog: overran --timeout {:?}", o.timeout));
    let limit = o.timeout + Duration::from_secs(5);
    thread::spawn(move || {
        thread::sleep(limit);
        println!("{report}");
        std::process::exit(1);
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "make-cert") {
        let [_, dir] = &args[..] else {
            eprintln!("loadgen: make-cert needs one DIR\n{USAGE}");
            std::process::exit(2);
        };
        if let Err(e) = make_cert(Path::new(dir)) {
            eprintln!("loadgen: make-cert: {e}");
            std::process::exit(1);
        }
        return;
    }
    let o = parse_args(&args).unwrap_or_else(|e| {
        eprintln!("loadgen: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let config = simplelog::Config::default();
    let _ = simplelog::WriteLogger::init(log::LevelFilter::Info, config, std::io::stderr());
    now_ns(); // start the shared clock
    let nofile = raise_nofile();
    let clients = match o.scenario.as_str() {
        "soak" => o.soak.steady + o.soak.churn + 1,
        "http" => o.http.connections + o.http.stalled,
        _ => o.clients,
    };
    if nofile.is_some_and(|limit| clients as u64 + 64 > limit) {
        warn!("open-file limit {nofile:?} is too low for {clients} clients");
    }
    let deadline = Instant::now() + o.timeout;
    arm_watchdog(&o);
    let report = match (o.scenario.as_str(), o.pid) {
        ("fanout", _) => run_fanout(&o, deadline),
        ("direct", _) => run_direct(&o, deadline),
        ("bigcast", Some(pid)) => run_bigcast(&o, pid, deadline),
        ("soak", Some(pid)) => run_soak(&o, pid, deadline),
        ("http", _) => run_http(&o, deadline),
        (_, Some(pid)) => run_idle(&o, pid, deadline),
        (_, None) => failure(&o, "needs --pid".into()),
    };
    let report = match &o.label {
        Some(label) => merge(json!({"label": label}), report),
        None => report,
    };
    println!("{report}");
    std::process::exit(if report["ok"] == true { 0 } else { 1 });
}
