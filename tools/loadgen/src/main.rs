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
//! $L make-token SECRET bench   # an HS256 token (subject bench, group bench) for ?token=
//! $L fanout --url "ws://127.0.0.1:PORT/bench?token=$TOKEN" --to group:bench --clients 1000
//! $L fanout --url wss://127.0.0.1:PORT/ --ca DIR/ca.pem --clients 1000 --messages 200
//! $L fanout --url ws://127.0.0.1:PORT/ --clients 1000 --messages 200 --payload 4096 \
//!      --payload-kind json --compression true --pid PID
//! ```
//!
//! - `fanout`: N receivers and one sender. The sender probes until every receiver is
//!   registered, then broadcasts M messages `{"seq":i,"t":NS,"pad":"x…"}` (about `--payload`
//!   bytes), never more than `--window` (16) ahead of the oldest one not yet delivered to every
//!   receiver. Reports deliveries/s, latency percentiles, the share of deliveries within
//!   500 ms, loss and duplicates, and `wire_bytes_per_delivery`: the bytes the receivers read
//!   (below) over the deliveries. `--one-more true`: once all are connected, one more
//!   upgrade request, whose HTTP status is reported (`one_more_status`; 503 at the cap).
//!   `--payload-kind json` (instead of `pad`): the message is `{"seq":i,"t":NS,"data":[...]}`,
//!   an array of objects with numbers and short strings (ids, names, states, values,
//!   timestamps, zones, booleans) of about `--payload` bytes, made from `--seed` (1) and seq:
//!   deterministic, different for each message, and compressing as JSON does (the 4 KiB one
//!   to about a quarter; x padding a hundredfold). Its receivers read seq and t from the
//!   start of the text rather than parse it all (which would cost them more than the server
//!   spends on a delivery).
//! - `direct`: each client sends M `{"message":<i>,"direct":true}` one at a time and waits for
//!   the echo; i = client × M + seq, so an echo reaching the wrong client counts as misrouted.
//!   Reports `wire_bytes_per_round_trip` too.
//! - `idle`: N idle connections; the server's RSS, threads, kernel memory and CPU while idle.
//!   With `--compression true` it is ok only if the server accepted permessage-deflate for
//!   every connection (to compare the memory of connections that have it).
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
//! `--compression true` (fanout, direct, idle; default false): every client offers
//! `permessage-deflate; client_max_window_bits` (as browsers do) and checks the answer (an
//! extension not offered, or a parameter twice, unknown or out of range, fails the
//! handshake); `compression_negotiated` counts the connections that got it. Those read their
//! frames themselves (`deflate`: tungstenite refuses RSV1), unmasked, fragmented or not,
//! control frames between fragments (a ping is answered with a masked pong), and inflate the
//! messages whose first frame has RSV1 set: raw inflate, 15-bit window, `00 00 ff ff`
//! appended, a fresh state per message when the server said `server_no_context_takeover`
//! (else the context is kept). RSV1 without the extension, on a continuation or control
//! frame, RSV2/RSV3 or a masked frame is a read error. A worker thread inflates a given
//! compressed message once and copies it for its other connections (the server sends each
//! the same bytes; fanout reports `inflated` and `inflate_reused`). What they send is
//! uncompressed (always allowed) unless `--compress-sent true` (fanout, direct): each message
//! compressed on its own at zlib's default level, RSV1 set, masked. Connections the server
//! declined read through tungstenite as without the flag. Every client counts the bytes it
//! reads after the handshake's response (frame headers included; plaintext for wss).
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
//!
//! The code: `args` (the flags), `client` (sockets, batched handshakes, the epoll workers),
//! `deflate` (permessage-deflate: the offer and answer, the frame reader, inflate and
//! deflate), `payload` (`--payload-kind json`), `tls` (Wss clients, `make-cert`), `report`
//! (the clock, /proc, the JSON report's parts), and
//! a module per scenario: `fanout`, `direct`, `idle`, `bigcast`, `soak` (its churning clients
//! in `soak/churn.rs`) and `http` (one keep-alive connection in `http/conn.rs`).

mod args;
mod bigcast;
mod client;
mod deflate;
mod direct;
mod fanout;
mod http;
mod idle;
mod payload;
mod report;
mod soak;
mod tls;
mod token;

use log::warn;
use serde_json::json;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use args::{parse_args, Opts};
use bigcast::run_bigcast;
use direct::run_direct;
use fanout::run_fanout;
use http::run_http;
use idle::run_idle;
use report::{failure, merge, now_ns};
use soak::run_soak;
use tls::make_cert;
use token::make_token;

const USAGE: &str = "usage: loadgen fanout|direct|idle|soak --url ws[s]://127.0.0.1:PORT/PATH \
  [--ca CA.pem (wss)] [--clients N] [--messages M] [--payload BYTES] [--window W] \
  [--hold SECS] [--pid PID] [--threads T] [--batch B] [--stall SECS] [--timeout SECS] \
  [--label TEXT] [--compression true (fanout, direct, idle) [--compress-sent true]]
       fanout: [--to all|path:/PATH|group:NAME] (what the sender's messages name) \
  [--payload-kind pad|json] [--seed N]
       bigcast: [--clients N] [--size BYTES] --pid PID
       soak: [--steady N] [--churn N] [--churn-threads T] [--duration SECS] [--rate MSG/S] \
  [--settle SECS] --pid PID (--timeout defaults to --duration + 120)
       http: --url http://127.0.0.1:PORT/ [--connections N] [--requests TOTAL] [--stalled N] \
  [--mix alternate|get|post] [--header 'Name: value']... [--pid PID] [--stall SECS] [--timeout SECS]
       loadgen make-cert DIR
       loadgen make-token SECRET [GROUP...]";

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
    if args.first().is_some_and(|a| a == "make-token") {
        let Some((secret, groups)) = args[1..].split_first() else {
            eprintln!("loadgen: make-token needs a SECRET\n{USAGE}");
            std::process::exit(2);
        };
        println!("{}", make_token(secret, groups));
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
