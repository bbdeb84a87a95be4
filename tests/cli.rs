//! The `signalhub` binary end to end: `serve` and `connect` run as real processes on
//! 127.0.0.1 with port 0, read through their stdout/stderr lines. Every wait is bounded and
//! every process is stopped (SIGTERM, then SIGKILL if it lingers) when its test ends.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};
use support::certs::TestCerts;

use serde_json::{json, Value};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

const BIN: &str = env!("CARGO_BIN_EXE_signalhub");
/// The longest any test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// A running `signalhub` process with its output lines arriving on channels.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_with_env(args, &[])
    }

    /// [`Proc::spawn`] with environment changes: `Some` sets a variable, `None` removes it.
    fn spawn_with_env(args: &[&str], env: &[(&str, Option<&str>)]) -> Proc {
        let mut command = Command::new(BIN);
        for (name, value) in env {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Proc {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
        }
    }

    /// The next stdout line; panics (with stderr so far) if none comes in time.
    fn line(&self) -> String {
        match self.stdout.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(e) => panic!("no stdout line ({e:?}); stderr: {}", self.stderr_now()),
        }
    }

    /// The next stderr line.
    fn err_line(&self) -> String {
        self.stderr
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no stderr line: {e:?}"))
    }

    /// The next stderr line containing `text`, skipping others; panics if none comes in time.
    fn err_line_with(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no stderr line with {text:?} ({e:?}); seen: {seen:#?}"),
            }
        }
    }

    /// Waits for `connect`'s `connected to URL` line on stderr.
    fn wait_connected(&self) {
        let line = self.err_line();
        assert!(line.starts_with("connected to "), "{line}");
    }

    fn stderr_now(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }

    /// Everything left on stderr, once the process has exited.
    fn stderr_rest(&self) -> String {
        let deadline = Instant::now() + WAIT;
        let mut text = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => text.push(line),
                Err(_) => return text.join("\n"),
            }
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("write to stdin");
        stdin.flush().expect("flush stdin");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not exit in time"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends every line of `reader` on a channel, from a thread; the channel closes at EOF.
fn lines(reader: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}

/// A `signalhub serve` and the URLs it said it listens on.
struct Serve {
    proc: Proc,
    urls: Vec<String>,
}

impl Serve {
    /// Starts `serve ARGS` and reads `endpoints` listening lines.
    fn start(args: &[&str], endpoints: usize) -> Serve {
        Serve::start_with_env(args, endpoints, &[])
    }

    /// [`Serve::start`] with environment changes (see [`Proc::spawn_with_env`]).
    fn start_with_env(args: &[&str], endpoints: usize, env: &[(&str, Option<&str>)]) -> Serve {
        let all = [&["--log-level", "warn"][..], args].concat();
        Serve::start_logging(&all, endpoints, env)
    }

    /// [`Serve::start_with_env`] without its `--log-level warn`: the log at the level that
    /// `args` and `env` give.
    fn start_logging(args: &[&str], endpoints: usize, env: &[(&str, Option<&str>)]) -> Serve {
        let mut all = vec!["serve", "--ping-interval", "0"];
        all.extend_from_slice(args);
        let proc = Proc::spawn_with_env(&all, env);
        let urls = (0..endpoints)
            .map(|_| {
                let line = proc.line();
                let url = line.strip_prefix("listening on ");
                url.unwrap_or_else(|| panic!("{line}")).to_owned()
            })
            .collect();
        Serve { proc, urls }
    }

    /// Http and Ws on one shared port.
    fn shared() -> Serve {
        Serve::start(&["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0"], 2)
    }

    /// The address of the first endpoint with this scheme.
    fn addr(&self, scheme: &str) -> SocketAddr {
        let prefix = format!("{scheme}://");
        let url = self.urls.iter().find(|u| u.starts_with(&prefix));
        let url = url.unwrap_or_else(|| panic!("no {scheme} endpoint in {:?}", self.urls));
        url[prefix.len()..].parse().expect("an address")
    }

    fn http(&self) -> SocketAddr {
        self.addr("http")
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr("ws"))
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> ExitStatus {
        self.proc.terminate();
        self.proc.exit_status()
    }
}

/// `signalhub connect URL [ARGS]`.
fn connect(url: &str, args: &[&str]) -> Proc {
    let mut all = vec!["connect", url];
    all.extend_from_slice(args);
    Proc::spawn(&all)
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").port()
}

/// An HTTP answer.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request with `Connection: close`, written by hand.
fn http(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &str) -> Reply {
    http_with(addr, method, path, &[("Content-Type", content_type)], body)
}

/// [`http`] with these headers (`Host`, `Connection` and `Content-Length` are added).
fn http_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         {headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the reply");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let status = head
        .split(' ')
        .nth(1)
        .expect("a status")
        .parse()
        .expect("a number");
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path, "text/plain", "")
}

fn post_json(addr: SocketAddr, body: Value) -> Reply {
    http(
        addr,
        "POST",
        "/broadcast",
        "application/json",
        &body.to_string(),
    )
}

/// A direct WebSocket client and the id the server gave it.
fn ws_client(url: &str) -> (WebSocket<TcpStream>, String) {
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host");
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let (ws, response) = tungstenite::client(url, stream).expect("upgrade");
    let id = response.headers()["X-Signal-ClientId"]
        .to_str()
        .expect("ascii id")
        .to_owned();
    (ws, id)
}

/// The next text message (pings are skipped).
fn ws_text(ws: &mut WebSocket<TcpStream>) -> String {
    loop {
        match ws.read().expect("a message") {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// A fresh folder under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("signalhub-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn write(&self, relative: &str, contents: &str) -> String {
        let path = self.0.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(&path, contents).expect("write");
        path.parent().expect("parent").display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_shared_port_serves_the_page_the_script_and_ws_config() {
    let server = Serve::shared();
    assert!(
        server.urls[0].starts_with("http://127.0.0.1:"),
        "{:?}",
        server.urls
    );
    assert!(
        server.urls[1].starts_with("ws://127.0.0.1:"),
        "{:?}",
        server.urls
    );
    assert_eq!(server.http().port(), server.addr("ws").port());

    let page = get(server.http(), "/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<form"), "{}", page.body);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let script = get(server.http(), "/script.js");
    assert_eq!(script.status, 200);
    assert!(script
        .header("Content-Type")
        .unwrap_or_default()
        .contains("javascript"));
    let config = get(server.http(), "/ws-config");
    assert_eq!(
        config.json(),
        json!({"port": null, "path": "/messages", "scheme": "ws"})
    );
    ws_client(&server.ws_url("/messages")); // the same port takes WebSocket upgrades

    assert!(server.stop().success());
}

#[test]
fn separate_ports_give_the_ws_port_in_ws_config() {
    let port = free_port();
    let ws = format!("127.0.0.1:{port}");
    let server = Serve::start(&["--http", "127.0.0.1:0", "--ws", &ws], 2);
    assert_eq!(server.urls[1], format!("ws://{ws}"));
    assert_ne!(server.http().port(), port);
    let config = get(server.http(), "/ws-config").json();
    assert_eq!(
        config,
        json!({"port": port, "path": "/messages", "scheme": "ws"})
    );
    assert!(server.stop().success());
}

#[test]
fn broadcast_from_json_and_form_reaches_connect_and_direct_clients() {
    let server = Serve::shared();
    let mut direct = ws_client(&server.ws_url("/messages")).0;
    let cli = connect(&server.ws_url("/elsewhere"), &[]);
    cli.wait_connected();

    let reply = post_json(server.http(), json!({ "message": "hello" }));
    assert_eq!((reply.status, reply.json()), (200, json!({ "sent": true })));
    let form = "application/x-www-form-urlencoded";
    let reply = http(
        server.http(),
        "POST",
        "/broadcast",
        form,
        "message=hi+there",
    );
    assert_eq!(reply.status, 200);

    for expected in [r#"{"Message":"hello"}"#, r#"{"Message":"hi there"}"#] {
        assert_eq!(ws_text(&mut direct), expected);
        assert_eq!(cli.line(), expected);
    }
    drop(direct);
    assert!(server.stop().success());
}

#[test]
fn broadcast_honours_path_and_client_id() {
    let server = Serve::shared();
    let (mut a, a_id) = ws_client(&server.ws_url("/a"));
    let (mut b, _) = ws_client(&server.ws_url("/b"));

    post_json(server.http(), json!({ "message": "for a", "path": "/A" }));
    post_json(
        server.http(),
        json!({ "message": "to a only", "clientId": a_id }),
    );
    post_json(server.http(), json!({ "message": "all" }));
    // Signals arrive in order: b's first message is the one for everyone.
    assert_eq!(ws_text(&mut b), r#"{"Message":"all"}"#);
    assert_eq!(ws_text(&mut a), r#"{"Message":"for a"}"#);
    assert_eq!(ws_text(&mut a), r#"{"Message":"to a only"}"#);
    assert_eq!(ws_text(&mut a), r#"{"Message":"all"}"#);
    drop((a, b));
    assert!(server.stop().success());
}

#[test]
fn broadcast_refuses_bad_bodies_with_a_reason() {
    let server = Serve::shared();
    let missing = post_json(server.http(), json!({ "text": "no message" }));
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (400, "missing message")
    );
    let bad_id = post_json(server.http(), json!({ "message": "x", "clientId": "nope" }));
    assert_eq!(bad_id.status, 400);
    assert!(
        bad_id.body.starts_with("invalid clientId"),
        "{}",
        bad_id.body
    );
    let not_json = http(server.http(), "POST", "/broadcast", "application/json", "{");
    assert_eq!(not_json.status, 400);
    assert!(server.stop().success());
}

#[test]
fn metrics_are_prometheus_text() {
    let server = Serve::shared();
    let client = ws_client(&server.ws_url("/m"));
    // The gauge follows the fan-out thread's registry, a moment after the upgrade.
    let deadline = Instant::now() + WAIT;
    let metrics = loop {
        let metrics = get(server.http(), "/metrics");
        if metrics.body.contains("signalhub_clients_connected 1\n") || Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(
        metrics.body.contains("signalhub_clients_connected 1\n"),
        "{}",
        metrics.body
    );
    drop(client);
    assert!(server.stop().success());
}

/// The variable the API token tests put their token in.
const TOKEN_VAR: &str = "SIGNALHUB_TEST_API_TOKEN";
const TOKEN: &str = "t0ken-for-the-cli-tests";

/// `POST /broadcast` of `{"message": message}` with these extra headers.
fn post_broadcast(addr: SocketAddr, message: &str, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let body = json!({ "message": message }).to_string();
    http_with(addr, "POST", "/broadcast", &all, &body)
}

#[test]
fn api_token_env_guards_broadcast_and_leaves_the_rest_open() {
    let args = ["--http", "127.0.0.1:0", "--ws", "127.0.0.1:0"];
    let args = [&args[..], &["--api-token-env", TOKEN_VAR]].concat();
    let server = Serve::start_with_env(&args, 2, &[(TOKEN_VAR, Some(TOKEN))]);
    let (mut client, _) = ws_client(&server.ws_url("/messages"));

    let missing = post_broadcast(server.http(), "no header", &[]);
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert_eq!(missing.header("WWW-Authenticate"), Some("Bearer"));
    let wrong_value = format!("Bearer {TOKEN}x");
    for (name, value) in [
        ("Authorization", wrong_value.as_str()),
        ("Authorization", "Bearer wrong"),
        ("Authorization", &format!("Basic {TOKEN}")),
        ("X-Api-Token", TOKEN),
    ] {
        let refused = post_broadcast(server.http(), "wrong token", &[(name, value)]);
        assert_eq!(refused.status, 401, "{name}: {value}");
        assert_eq!(refused.header("WWW-Authenticate"), Some("Bearer"));
    }
    let right = format!("Bearer {TOKEN}");
    let sent = post_broadcast(
        server.http(),
        "with the token",
        &[("Authorization", &right)],
    );
    assert_eq!((sent.status, sent.json()), (200, json!({ "sent": true })));
    // Signals arrive in order: had a refused one gone out, it would come first.
    assert_eq!(ws_text(&mut client), r#"{"Message":"with the token"}"#);

    for path in ["/", "/script.js", "/ws-config", "/metrics"] {
        assert_eq!(get(server.http(), path).status, 200, "{path}");
    }
    drop(client);
    assert!(server.stop().success());
}

#[test]
fn api_token_env_unset_or_empty_is_a_usage_error() {
    for value in [None, Some("")] {
        let args = ["serve", "--ws", "127.0.0.1:0", "--api-token-env", TOKEN_VAR];
        let mut proc = Proc::spawn_with_env(&args, &[(TOKEN_VAR, value)]);
        assert_eq!(proc.exit_status().code(), Some(2), "{value:?}");
        let stderr = proc.stderr_rest();
        assert_eq!(stderr.lines().count(), 1, "{value:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("signalhub: --api-token-env: {TOKEN_VAR} is ")),
            "{stderr}"
        );
    }
}

/// The warning `serve` gives when `POST /broadcast` is reachable beyond loopback unguarded.
const OPEN_WARNING: &str = "POST /broadcast is open to anyone who can reach";

#[test]
fn every_interface_prints_0_0_0_0_and_warns_without_a_token() {
    let server = Serve::start(&["--http", "*:0", "--ws", "127.0.0.1:0"], 2);
    let http = server.http();
    assert_eq!(http.ip().to_string(), "0.0.0.0", "{:?}", server.urls);
    assert_ne!(http.port(), 0);
    let loopback = SocketAddr::from(([127, 0, 0, 1], http.port()));
    assert_eq!(get(loopback, "/metrics").status, 200);
    let mut proc = server.proc;
    proc.terminate();
    assert!(proc.exit_status().success());
    let stderr = proc.stderr_rest();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains(&format!("{OPEN_WARNING} 0.0.0.0:{}", http.port())),
        "{stderr}"
    );
    assert!(warnings[0].contains("--api-token-env"), "{stderr}");
}

#[test]
fn every_interface_with_a_token_does_not_warn() {
    let args = ["--http", "*:0", "--ws", "*:0", "--api-token-env", TOKEN_VAR];
    let server = Serve::start_with_env(&args, 2, &[(TOKEN_VAR, Some(TOKEN))]);
    for (url, scheme) in server.urls.iter().zip(["http", "ws"]) {
        let prefix = format!("{scheme}://0.0.0.0:");
        assert!(url.starts_with(&prefix), "{url}");
        assert_ne!(url[prefix.len()..].parse::<u16>().expect("a port"), 0);
    }
    let mut proc = server.proc;
    proc.terminate();
    assert!(proc.exit_status().success());
    let stderr = proc.stderr_rest();
    assert!(!stderr.contains(OPEN_WARNING), "{stderr}");
}

#[test]
fn a_port_without_a_host_listens_on_every_interface() {
    let args = ["--http", ":0", "--ws", ":0", "--api-token-env", TOKEN_VAR];
    let server = Serve::start_with_env(&args, 2, &[(TOKEN_VAR, Some(TOKEN))]);
    for (url, scheme) in server.urls.iter().zip(["http", "ws"]) {
        let prefix = format!("{scheme}://0.0.0.0:");
        assert!(url.starts_with(&prefix), "{url}");
        assert_ne!(url[prefix.len()..].parse::<u16>().expect("a port"), 0);
    }
    // `:0` twice is one address: the two share a port, as `*:0` twice would.
    assert_eq!(server.http().port(), server.addr("ws").port());
    let loopback = SocketAddr::from(([127, 0, 0, 1], server.http().port()));
    assert_eq!(get(loopback, "/metrics").status, 200);
    assert!(server.stop().success());
}

#[test]
fn with_no_address_flags_serve_listens_on_loopback_8090_and_8091() {
    let skip = |why: &str| {
        eprintln!("SKIPPING with_no_address_flags_serve_listens_on_loopback_8090_and_8091: {why}");
    };
    let busy: Vec<&str> = ["127.0.0.1:8090", "127.0.0.1:8091"]
        .into_iter()
        .filter(|addr| TcpListener::bind(addr).is_err())
        .collect();
    if !busy.is_empty() {
        return skip(&format!("{busy:?} in use on this machine"));
    }
    let mut proc = Proc::spawn(&["serve", "--ping-interval", "0", "--log-level", "warn"]);
    let mut urls = Vec::new();
    for _ in 0..2 {
        match proc.stdout.recv_timeout(WAIT) {
            Ok(line) => urls.push(line),
            Err(e) => {
                // Taken by someone else since the check above: not this test's failure.
                let status = proc.exit_status();
                let stderr = proc.stderr_rest();
                if status.code() == Some(1) && stderr.contains("cannot listen") {
                    return skip(&format!("a port was taken meanwhile: {stderr}"));
                }
                panic!("no listening line ({e:?}), {status}: {stderr}");
            }
        }
    }
    assert_eq!(
        urls,
        [
            "listening on http://127.0.0.1:8090",
            "listening on ws://127.0.0.1:8091"
        ]
    );
    let http: SocketAddr = "127.0.0.1:8090".parse().expect("an address");
    assert_eq!(
        get(http, "/ws-config").json(),
        json!({"port": 8091, "path": "/messages", "scheme": "ws"})
    );
    ws_client("ws://127.0.0.1:8091/messages");
    proc.terminate();
    assert!(proc.exit_status().success());
    let stderr = proc.stderr_rest();
    assert!(!stderr.contains(OPEN_WARNING), "{stderr}");
}

/// The debug line the router logs for a `GET /metrics`.
const METRICS_DEBUG_LINE: &str = "GET /metrics from 127.0.0.1";

/// SIGTERM, then everything `serve` wrote on stderr.
fn stop_and_read_stderr(server: Serve) -> String {
    let mut proc = server.proc;
    proc.terminate();
    assert!(proc.exit_status().success());
    proc.stderr_rest()
}

#[test]
fn rust_log_sets_the_level_without_log_level() {
    for rust_log in ["debug", "signalhub=debug", "warn,signalhub=debug"] {
        let env = [("RUST_LOG", Some(rust_log))];
        let server = Serve::start_logging(&["--http", "127.0.0.1:0"], 1, &env);
        assert_eq!(get(server.http(), "/metrics").status, 200);
        let line = server.proc.err_line_with(METRICS_DEBUG_LINE);
        assert!(line.contains("[DEBUG]"), "{rust_log}: {line}");
        assert!(server.stop().success(), "{rust_log}");
    }
    // Warnings only: not the info lines (`listening on`, `shutting down`).
    let env = [("RUST_LOG", Some("WARN"))];
    let server = Serve::start_logging(&["--http", "127.0.0.1:0"], 1, &env);
    assert_eq!(get(server.http(), "/metrics").status, 200);
    let stderr = stop_and_read_stderr(server);
    assert!(!stderr.contains("[INFO]"), "{stderr}");
    assert!(!stderr.contains("[DEBUG]"), "{stderr}");
}

#[test]
fn log_level_wins_over_rust_log() {
    let env = [("RUST_LOG", Some("debug"))];
    let args = ["--http", "127.0.0.1:0", "--log-level", "warn"];
    let server = Serve::start_logging(&args, 1, &env);
    assert_eq!(get(server.http(), "/metrics").status, 200);
    let stderr = stop_and_read_stderr(server);
    assert!(!stderr.contains(METRICS_DEBUG_LINE), "{stderr}");
    assert!(!stderr.contains("[INFO]"), "{stderr}");

    // Without either, info: `listening on` and `shutting down`, no debug lines.
    let server = Serve::start_logging(&["--http", "127.0.0.1:0"], 1, &[("RUST_LOG", None)]);
    assert_eq!(get(server.http(), "/metrics").status, 200);
    let stderr = stop_and_read_stderr(server);
    assert!(stderr.contains("[INFO] shutting down"), "{stderr}");
    assert!(!stderr.contains("[DEBUG]"), "{stderr}");
}

#[test]
fn rust_log_entries_not_understood_get_one_warning() {
    let env = [("RUST_LOG", Some("info,rustls=trace,signalhub=loud"))];
    let server = Serve::start_logging(&["--http", "127.0.0.1:0"], 1, &env);
    let stderr = stop_and_read_stderr(server);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("RUST_LOG")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("[WARN] RUST_LOG: ignoring `rustls=trace`, `signalhub=loud`"),
        "{stderr}"
    );
    assert!(stderr.contains("[INFO] shutting down"), "{stderr}");
}

#[test]
fn connect_sends_stdin_lines_and_prints_what_comes_back() {
    let server = Serve::start(&["--ws", "127.0.0.1:0"], 1);
    let (mut watcher, _) = ws_client(&server.ws_url("/watch"));
    let mut cli = connect(&server.ws_url("/"), &[]);
    cli.wait_connected();

    cli.send_line(r#"{"message":"hi"}"#);
    assert_eq!(cli.line(), "hi");
    cli.send_line("not json, ignored by the server");
    cli.send_line(r#"{"message":{"n":1}}"#);
    assert_eq!(cli.line(), r#"{"n":1}"#);
    assert_eq!(ws_text(&mut watcher), "hi");
    assert_eq!(ws_text(&mut watcher), r#"{"n":1}"#);

    cli.close_stdin();
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
    drop(watcher);
    assert!(server.stop().success());
}

#[test]
fn connect_exits_0_when_the_server_shuts_down() {
    let server = Serve::shared();
    let mut cli = connect(&server.ws_url("/messages"), &[]);
    cli.wait_connected();
    assert!(server.stop().success());
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
}

#[test]
fn connect_exits_1_with_the_code_on_an_abnormal_close() {
    let server = Serve::start(&["--ws", "127.0.0.1:0", "--max-message-size", "16"], 1);
    let mut cli = connect(&server.ws_url("/"), &[]);
    cli.wait_connected();
    cli.send_line(r#"{"message":"far too long for the limit"}"#);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("code 1009"), "{stderr}");
    assert!(server.stop().success());
}

#[test]
fn connect_to_a_closed_port_fails_with_a_reason() {
    let mut cli = connect(&format!("ws://127.0.0.1:{}/", free_port()), &[]);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn connect_reports_a_refused_upgrade_with_its_status() {
    let args = ["--ws", "127.0.0.1:0", "--max-connections", "1"];
    let server = Serve::start(&args, 1);
    let first = ws_client(&server.ws_url("/"));
    let mut cli = connect(&server.ws_url("/"), &[]);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    drop(first);
    assert!(server.stop().success());

    let http_only = Serve::start(&["--http", "127.0.0.1:0"], 1);
    let mut cli = connect(&format!("ws://{}/", http_only.http()), &[]);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("HTTP 400"), "{stderr}");
    assert!(http_only.stop().success());
}

#[test]
fn connect_sends_extra_headers_with_header_or_dash_capital_h() {
    let origin = "http://good.example";
    let server = Serve::start(&["--ws", "127.0.0.1:0", "--allowed-origin", origin], 1);
    for flag in ["--header", "-H"] {
        let mut refused = connect(&server.ws_url("/"), &[flag, "Origin: http://evil.example"]);
        assert_eq!(refused.exit_status().code(), Some(1), "{flag}");
        let stderr = refused.stderr_rest();
        assert!(stderr.contains("HTTP 403"), "{flag}: {stderr}");

        let good = format!("Origin: {origin}");
        let mut cli = connect(&server.ws_url("/"), &[flag, &good]);
        cli.wait_connected();
        cli.close_stdin();
        assert!(cli.exit_status().success(), "{flag}: {}", cli.stderr_rest());
    }
    assert!(server.stop().success());
}

/// A Wss server of the library's own on 127.0.0.1, with a CA made at test time.
struct WssServer {
    handle: signalhub::ServerHandle,
    certs: TestCerts,
}

impl WssServer {
    fn start() -> WssServer {
        let certs = TestCerts::new();
        let mut server = signalhub::Server::new();
        server
            .endpoint(signalhub::Endpoint::wss("127.0.0.1:0", certs.certificate()))
            .expect("endpoint");
        let handle = server.start().expect("wss server starts");
        WssServer { handle, certs }
    }

    fn url(&self) -> String {
        format!("wss://{}/", self.handle.endpoints()[0].address)
    }

    fn ca(&self) -> String {
        self.certs.ca_file().display().to_string()
    }
}

#[test]
fn serve_takes_wss_endpoints_with_a_pem_certificate() {
    let certs = TestCerts::new();
    let (cert, key) = (certs.path("cert.pem"), certs.path("key.pem"));
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let server = Serve::start(&["--wss", "127.0.0.1:0", "--cert", cert, "--key", key], 1);
    let url = format!("wss://localhost:{}/", server.addr("wss").port());
    let ca = certs.ca_file().display().to_string();
    let mut cli = connect(&url, &["--ca", &ca]);
    cli.wait_connected();
    cli.send_line(r#"{"message":"served over tls"}"#);
    assert_eq!(cli.line(), "served over tls");
    cli.close_stdin();
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
    assert!(server.stop().success());
}

#[test]
fn wss_without_a_certificate_is_a_usage_error() {
    let mut proc = Proc::spawn(&["serve", "--wss", "127.0.0.1:0"]);
    assert_eq!(proc.exit_status().code(), Some(2));
    let stderr = proc.stderr_rest();
    assert!(stderr.contains("--cert and --key"), "{stderr}");
}

#[test]
fn connect_speaks_wss_with_a_ca_file() {
    let server = WssServer::start();
    let mut cli = connect(&server.url(), &["--ca", &server.ca()]);
    cli.wait_connected();
    cli.send_line(r#"{"message":"over tls","direct":true}"#);
    assert_eq!(cli.line(), "over tls");
    cli.close_stdin();
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
    server.handle.shutdown();
}

#[test]
fn connect_to_wss_fails_on_an_unknown_ca_or_a_missing_file() {
    let server = WssServer::start();
    let mut cli = connect(&server.url(), &[]);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("certificate"), "{stderr}");
    let mut cli = connect(&server.url(), &["--ca", "/nonexistent/ca.pem"]);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("/nonexistent/ca.pem"), "{stderr}");
    server.handle.shutdown();
}

/// The start of the warning `connect --danger-accept-invalid-certs` prints on stderr.
const DANGER_WARNING: &str = "signalhub: warning: --danger-accept-invalid-certs: ";

/// `connect URL --danger-accept-invalid-certs`: warns, connects, and a message makes the
/// round trip through the server's `/messages` route.
fn connect_accepting_any_certificate(url: &str) {
    let mut cli = connect(url, &["--danger-accept-invalid-certs"]);
    let warning = cli.err_line();
    assert!(warning.starts_with(DANGER_WARNING), "{warning}");
    cli.wait_connected();
    cli.send_line(r#"{"message":"unverified but encrypted","direct":true}"#);
    assert_eq!(cli.line(), "unverified but encrypted");
    cli.close_stdin();
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
}

#[test]
fn connect_with_danger_accept_invalid_certs_takes_a_certificate_nobody_trusts() {
    let server = WssServer::start();
    // Without the flag (or --ca), the test CA is unknown: refused.
    let mut cli = connect(&server.url(), &[]);
    assert_eq!(cli.exit_status().code(), Some(1));
    let stderr = cli.stderr_rest();
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(!stderr.contains(DANGER_WARNING), "{stderr}");
    connect_accepting_any_certificate(&server.url());
    server.handle.shutdown();
}

#[test]
fn danger_accept_invalid_certs_with_ca_is_a_usage_error() {
    let args = [
        "connect",
        "wss://127.0.0.1:1/",
        "--ca",
        "ca.pem",
        "--danger-accept-invalid-certs",
    ];
    let mut proc = Proc::spawn(&args);
    assert_eq!(proc.exit_status().code(), Some(2));
    let stderr = proc.stderr_rest();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("give one or the other"), "{stderr}");
}

/// `serve --self-signed` and `connect --danger-accept-invalid-certs`, the development pair.
#[cfg(feature = "self-signed")]
#[test]
fn connect_with_danger_accept_invalid_certs_reaches_serve_self_signed() {
    let server = Serve::start(&["--wss", "127.0.0.1:0", "--self-signed"], 1);
    let url = format!("wss://{}/messages", server.addr("wss"));
    let mut refused = connect(&url, &[]);
    assert_eq!(refused.exit_status().code(), Some(1));
    let stderr = refused.stderr_rest();
    assert!(stderr.contains("certificate"), "{stderr}");
    connect_accepting_any_certificate(&url);
    assert!(server.stop().success());
}

#[test]
fn sigterm_closes_clients_with_1001_and_exits_0() {
    let server = Serve::shared();
    let (mut client, _) = ws_client(&server.ws_url("/messages"));
    let mut proc = server.proc;
    proc.terminate();
    let close = loop {
        match client.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("no close frame: {e}"),
        }
    };
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let _ = client.read(); // answers the close
    assert!(proc.exit_status().success());
}

#[test]
fn a_port_in_use_fails_with_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let mut proc = Proc::spawn(&["serve", "--ws", &addr]);
    assert_eq!(proc.exit_status().code(), Some(1));
    let stderr = proc.stderr_rest();
    assert!(stderr.contains("cannot listen"), "{stderr}");
}

#[test]
fn bad_flags_exit_2_with_one_line_on_stderr() {
    for args in [
        &["serve", "--bogus"][..],
        &["serve", "--max-connections", "x"],
        &["serve", "--ping-interval", "soon"],
        &["serve", "--ws", "no-port"],
        &["serve", "--ws", "127.0.0.1:0", "--max-connections", "0"],
        &["connect"],
        &["connect", "http://127.0.0.1:1/"],
        &["connect", "ws://127.0.0.1:1/", "--header", "no colon"],
        &["frobnicate"],
    ] {
        let mut proc = Proc::spawn(args);
        assert_eq!(proc.exit_status().code(), Some(2), "{args:?}");
        let stderr = proc.stderr_rest();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("signalhub: "), "{args:?}: {stderr}");
    }
}

/// The exit status and stdout of `signalhub ARGS` (stdin empty), within [`WAIT`].
fn run(args: &[&str]) -> (ExitStatus, String) {
    let mut proc = Proc::spawn(args);
    proc.close_stdin();
    let status = proc.exit_status();
    let mut stdout = Vec::new();
    // The channel closes at the end of stdout, once its reader thread gets there.
    while let Ok(line) = proc.stdout.recv_timeout(WAIT) {
        stdout.push(line);
    }
    (status, stdout.join("\n"))
}

#[test]
fn version_and_dash_capital_v_print_the_version_and_exit_0() {
    let expected = format!("signalhub {}", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        let (status, stdout) = run(&[flag]);
        assert!(status.success(), "{flag}: {status}");
        assert_eq!(stdout, expected, "{flag}");
    }
}

#[test]
fn dash_h_is_help_at_the_top_and_for_each_subcommand() {
    for (short, long) in [
        (&["-h"][..], &["--help"][..]),
        (&["serve", "-h"], &["serve", "--help"]),
        (&["connect", "-h"], &["connect", "--help"]),
    ] {
        let (status, text) = run(short);
        assert!(status.success(), "{short:?}: {status}");
        assert!(text.starts_with("Usage: signalhub"), "{short:?}: {text}");
        assert!(text.contains("-h, --help"), "{short:?}: {text}");
        assert_eq!(text, run(long).1, "{short:?} and {long:?} differ");
    }
    let (_, top) = run(&["-h"]);
    assert!(top.contains("-V, --version"), "{top}");
    let (_, connect) = run(&["connect", "-h"]);
    assert!(connect.contains("-H, --header"), "{connect}");
}

#[test]
fn help_exits_0_and_mentions_every_flag() {
    let help = |args: &[&str]| {
        let output = Command::new(BIN).args(args).output().expect("runs");
        assert!(output.status.success(), "{args:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let top = help(&["--help"]);
    assert!(top.contains("serve") && top.contains("connect"), "{top}");
    let serve = help(&["serve", "--help"]);
    for flag in [
        "--http",
        "--ws",
        "--views",
        "--public",
        "--log-level",
        "--max-message-size",
        "--max-queue-bytes",
        "--max-connections",
        "--max-connections-per-ip",
        "--handshake-timeout",
        "--max-request-head",
        "--allowed-origin",
        "--ping-interval",
        "--idle-timeout",
        "--max-http-body",
        "--api-token-env",
    ] {
        assert!(serve.contains(flag), "{flag} missing from:\n{serve}");
    }
    let connect = help(&["connect", "--help"]);
    assert!(
        ["--header", "--ca", "--danger-accept-invalid-certs", "URL"]
            .iter()
            .all(|flag| connect.contains(flag)),
        "{connect}"
    );
}

#[test]
fn views_and_public_folders_replace_the_built_in_page() {
    let dir = TempDir::new("assets");
    let views = dir.write("views/index.html", "<p>my own page</p>");
    let public = dir.write("public/app.css", "p { color: red }");
    let server = Serve::start(
        &[
            "--http",
            "127.0.0.1:0",
            "--views",
            &views,
            "--public",
            &public,
        ],
        1,
    );
    assert_eq!(get(server.http(), "/").body, "<p>my own page</p>");
    assert_eq!(get(server.http(), "/app.css").body, "p { color: red }");
    assert_eq!(get(server.http(), "/script.js").status, 404);
    assert_eq!(get(server.http(), "/ws-config").status, 404); // no Ws endpoint
    assert!(server.stop().success());
}

/// The environment `serve` runs with, from /proc (glibc edits `GLIBC_TUNABLES` in place while
/// parsing it, so only its start can be relied on).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn environment_of(serve: &Serve) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{}/environ", serve.proc.child.id())).expect("environ");
    raw.split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn serve_runs_with_its_glibc_settings_in_the_same_process() {
    let serve = Serve::start_with_env(&["--ws", "127.0.0.1:0"], 1, &[("GLIBC_TUNABLES", Some(""))]);
    // GLIBC_TUNABLES set (even empty) is the caller's choice: kept as it is.
    assert!(environment_of(&serve).contains(&"GLIBC_TUNABLES=".to_owned()));
    serve.stop();

    let serve = Serve::start_with_env(&["--ws", "127.0.0.1:0"], 1, &[("GLIBC_TUNABLES", None)]);
    assert!(serve.urls[0].starts_with("ws://"), "{:?}", serve.urls);
    // The process we started (same pid) now runs with the settings.
    let tunables = environment_of(&serve)
        .into_iter()
        .find(|v| v.starts_with("GLIBC_TUNABLES="))
        .expect("GLIBC_TUNABLES is set");
    let first_setting = signalhub_tunables().split(':').next().unwrap().to_owned();
    assert!(
        tunables.starts_with(&format!("GLIBC_TUNABLES={first_setting}")),
        "{tunables}"
    );
    // ...and with the marker that keeps it from running itself once more.
    let marker = format!("{TUNED_MARKER}=1");
    assert!(environment_of(&serve).contains(&marker));
    assert!(serve.stop().success());

    // The marker alone (as if glibc had dropped GLIBC_TUNABLES): no second run.
    let env = [("GLIBC_TUNABLES", None), (TUNED_MARKER, Some("1"))];
    let serve = Serve::start_with_env(&["--ws", "127.0.0.1:0"], 1, &env);
    let environment = environment_of(&serve);
    assert!(
        !environment.iter().any(|v| v.starts_with("GLIBC_TUNABLES=")),
        "{environment:?}"
    );
    assert!(environment.contains(&marker));
    assert!(serve.stop().success());
}

/// The variable src/cli/tunables.rs sets on the program it runs again (`MARKER` there).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TUNED_MARKER: &str = "SIGNALHUB_TUNED";

/// What src/cli/tunables.rs sets (the binary's modules are not a library; read the source).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn signalhub_tunables() -> String {
    let source = include_str!("../src/cli/tunables.rs");
    let start = source
        .find("\"glibc.")
        .expect("SERVER_TUNABLES in tunables.rs");
    let rest = &source[start + 1..];
    rest[..rest.find('"').expect("closing quote")].to_owned()
}

/// `GET path` over TLS to `addr`, trusting the test CA; the whole response text.
fn https_get(certs: &TestCerts, addr: SocketAddr, path: &str) -> String {
    let mut tls = certs.connect(addr);
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn serve_takes_https_sharing_a_port_with_wss() {
    let certs = TestCerts::new();
    let (cert, key) = (certs.path("cert.pem"), certs.path("key.pem"));
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let args = [
        "--https",
        "127.0.0.1:0",
        "--wss",
        "127.0.0.1:0",
        "--cert",
        cert,
        "--key",
        key,
    ];
    let server = Serve::start(&args, 2);
    let https = server.addr("https");
    assert_eq!(https, server.addr("wss"), "one port");
    let page = https_get(&certs, https, "/");
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    let config = https_get(&certs, https, "/ws-config");
    assert!(
        config.ends_with(r#"{"path":"/messages","port":null,"scheme":"wss"}"#),
        "{config}"
    );
    let url = format!("wss://localhost:{}/messages", https.port());
    let ca = certs.ca_file().display().to_string();
    let mut cli = connect(&url, &["--ca", &ca]);
    cli.wait_connected();
    cli.send_line(r#"{"message":"[date]"}"#);
    let date = cli.line();
    assert!(
        pode_time_of_day(&date).is_some(),
        "the page's [date] route answers: {date}"
    );
    cli.close_stdin();
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
    assert!(server.stop().success());
}

#[test]
fn connect_prints_the_reply_to_a_line_sent_just_before_stdin_ends() {
    // `echo '{"message":"[date]"}' | signalhub connect ws://.../messages`: the line and the
    // end of input come together; the reply still arrives before the server's close.
    let server = Serve::start(&["--ws", "127.0.0.1:0"], 1);
    for _ in 0..10 {
        let mut cli = connect(&server.ws_url("/messages"), &["--close-timeout", "5"]);
        cli.send_line(r#"{"message":"[date]"}"#);
        cli.close_stdin();
        let date = cli.line();
        assert!(
            pode_time_of_day(&date).is_some(),
            "the [date] reply: {date}"
        );
        assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
    }
    assert!(server.stop().success());
}

/// Of a date as Pode's `[datetime]::Now` prints it in en-US, `M/d/yyyy h:mm:ss AM|PM`
/// (`12/4/2026 9:30:05 PM`): the seconds since midnight; `None` for anything else.
fn pode_time_of_day(text: &str) -> Option<u64> {
    // Digits without leading zeros (month, day, hour), or exactly `width` digits.
    let number = |part: &str, width: Option<usize>| -> Option<u64> {
        let value: u64 = part.parse().ok()?;
        let exact = match width {
            Some(width) => part.len() == width && part.bytes().all(|b| b.is_ascii_digit()),
            None => value.to_string() == part,
        };
        exact.then_some(value)
    };
    let (date, rest) = text.split_once(' ')?;
    let (clock, half) = rest.split_once(' ')?;
    let date: Vec<&str> = date.split('/').collect();
    let clock: Vec<&str> = clock.split(':').collect();
    let (&[month, day, year], &[hour, minute, second]) = (date.as_slice(), clock.as_slice()) else {
        return None;
    };
    let (month, day) = (number(month, None)?, number(day, None)?);
    number(year, Some(4))?;
    let hour = number(hour, None)?;
    let (minute, second) = (number(minute, Some(2))?, number(second, Some(2))?);
    let valid = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (1..=12).contains(&hour)
        && minute < 60
        && second < 60;
    let afternoon = match half {
        "AM" => 0,
        "PM" => 12,
        _ => return None,
    };
    valid.then_some(((hour % 12 + afternoon) * 60 + minute) * 60 + second)
}

#[test]
fn pode_dates_are_recognised() {
    assert_eq!(pode_time_of_day("12/4/2026 9:30:05 PM"), Some(77_405));
    assert_eq!(pode_time_of_day("1/31/2026 12:00:00 AM"), Some(0));
    assert_eq!(pode_time_of_day("1/31/2026 12:00:01 PM"), Some(43_201));
    for bad in [
        "Fri, 04 Dec 2026 21:30:05 GMT",
        "12/04/2026 9:30:05 PM",
        "12/4/2026 09:30:05 PM",
        "12/4/2026 21:30:05",
        "12/4/26 9:30:05 PM",
        "13/4/2026 9:30:05 PM",
        "12/4/2026 9:30:5 PM",
    ] {
        assert_eq!(pode_time_of_day(bad), None, "{bad}");
    }
}

/// Seconds since midnight, UTC.
fn utc_time_of_day() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("after 1970").as_secs() % 86_400
}

#[test]
fn date_is_the_local_time_of_the_server() {
    // A zone 14 hours ahead of UTC all year (a POSIX TZ rule: no zoneinfo needed), so that
    // UTC would show a different time whatever the hour.
    const AHEAD: u64 = 14 * 3600;
    let env = [("TZ", Some("<+14>-14"))];
    let server = Serve::start_with_env(&["--ws", "127.0.0.1:0"], 1, &env);
    let mut cli = connect(&server.ws_url("/messages"), &[]);
    cli.wait_connected();
    let before = utc_time_of_day();
    cli.send_line(r#"{"message":"[date]"}"#);
    let date = cli.line();
    let after = utc_time_of_day();
    let shown = pode_time_of_day(&date).unwrap_or_else(|| panic!("not a Pode date: {date}"));
    // Between the two readings of the clock (around midnight too), shifted by the zone.
    let since_before = (shown + 2 * 86_400 - AHEAD - before) % 86_400;
    let span = (after + 86_400 - before) % 86_400;
    assert!(
        since_before <= span,
        "{date}: shown {shown} s, UTC {before}..={after} s"
    );
    cli.close_stdin();
    assert!(cli.exit_status().success(), "{}", cli.stderr_rest());
    assert!(server.stop().success());
}

// --- Tokens and control routes (--jwt-secret-env, GET /clients, POST /disconnect) ---

const JWT_VAR: &str = "SIGNALHUB_TEST_JWT_SECRET";
const JWT_SECRET: &str = "a-secret-of-more-than-thirty-two-bytes!";

/// An HS256 token signed with `secret` holding `claims`.
fn jwt(secret: &str, claims: Value) -> String {
    use data_encoding::BASE64URL_NOPAD;
    let header = BASE64URL_NOPAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature = BASE64URL_NOPAD.encode(ring::hmac::sign(&key, signed.as_bytes()).as_ref());
    format!("{signed}.{signature}")
}

/// Seconds since 1970, `ahead` from now (negative: in the past).
fn unix_time(ahead: i64) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    now.expect("after 1970").as_secs() as i64 + ahead
}

/// A server with tokens required and an API token for its control routes.
fn guarded_server() -> Serve {
    let args = [
        "--http",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--api-token-env",
        TOKEN_VAR,
        "--jwt-secret-env",
        JWT_VAR,
    ];
    Serve::start_with_env(
        &args,
        2,
        &[(TOKEN_VAR, Some(TOKEN)), (JWT_VAR, Some(JWT_SECRET))],
    )
}

/// The HTTP status a WebSocket upgrade to `url` (with these headers) is answered with.
fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> u16 {
    use tungstenite::client::IntoClientRequest;
    let mut request = url.into_client_request().expect("a request");
    for (name, value) in headers {
        let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).expect("name");
        request
            .headers_mut()
            .insert(name, value.parse().expect("value"));
    }
    let addr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host");
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    match tungstenite::client(request, stream) {
        Ok(_) => 101,
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            response.status().as_u16()
        }
        Err(e) => panic!("upgrade failed: {e}"),
    }
}

#[test]
fn jwt_secret_env_refuses_clients_without_a_good_token_with_401() {
    let server = guarded_server();
    let url = server.ws_url("/messages");
    let good = jwt(JWT_SECRET, json!({ "sub": "ann", "exp": unix_time(600) }));
    let cases = [
        (url.clone(), 401),
        (format!("{url}?token="), 401),
        (format!("{url}?token=not.a.token"), 401),
        (
            format!(
                "{url}?token={}",
                jwt(
                    "another-secret-of-thirty-two-bytes!!",
                    json!({ "sub": "ann" })
                )
            ),
            401,
        ),
        (
            format!(
                "{url}?token={}",
                jwt(JWT_SECRET, json!({ "sub": "ann", "exp": unix_time(-10) }))
            ),
            401,
        ),
        (
            format!(
                "{url}?token={}",
                jwt(JWT_SECRET, json!({ "exp": unix_time(600) }))
            ),
            401,
        ),
        (
            format!(
                "{url}?token={}",
                jwt(JWT_SECRET, json!({ "sub": "ann", "groups": "ops" }))
            ),
            401,
        ),
        (format!("{url}?token={good}"), 101),
    ];
    for (url, status) in &cases {
        assert_eq!(upgrade_status(url, &[]), *status, "{url}");
    }
    let bearer = format!("Bearer {good}");
    assert_eq!(upgrade_status(&url, &[("Authorization", &bearer)]), 101);
    assert_eq!(
        upgrade_status(&url, &[("Authorization", "Bearer x.y.z")]),
        401
    );
    // The page and its routes need no token.
    assert_eq!(get(server.http(), "/").status, 200);
    assert!(server.stop().success());
}

#[test]
fn token_claims_give_the_user_and_groups_that_sends_and_group_messages_use() {
    let server = guarded_server();
    let token = |sub: &str, groups: Value| {
        let claims = json!({ "sub": sub, "groups": groups, "exp": unix_time(600) });
        jwt(JWT_SECRET, claims)
    };
    let url = |sub: &str, groups: Value| {
        format!(
            "{}?token={}",
            server.ws_url("/messages"),
            token(sub, groups)
        )
    };
    let (mut ann_ops, ann_id) = ws_client(&url("ann", json!(["ops"])));
    let (mut ann_phone, _) = ws_client(&url("ann", json!([])));
    let (mut bob_ops, _) = ws_client(&url("bob", json!(["ops", "eu"])));
    let (mut eve, _) = ws_client(&url("eve", json!([])));
    // A member's own group message reaches the group; a non-member's goes nowhere.
    eve.send(Message::text(r#"{"message": "let me in", "group": "ops"}"#))
        .expect("send");
    ann_ops
        .send(Message::text(r#"{"message": "ops only", "group": "ops"}"#))
        .expect("send");
    assert_eq!(ws_text(&mut ann_ops), "ops only");
    assert_eq!(ws_text(&mut bob_ops), "ops only");
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let broadcast = |body: Value| {
        http_with(
            server.http(),
            "POST",
            "/broadcast",
            &headers,
            &body.to_string(),
        )
    };
    // POST /broadcast to a user (all her connections) and to a group.
    assert_eq!(
        broadcast(json!({ "message": "hi ann", "userId": "ann" })).status,
        200
    );
    assert_eq!(ws_text(&mut ann_ops), r#"{"Message":"hi ann"}"#);
    assert_eq!(ws_text(&mut ann_phone), r#"{"Message":"hi ann"}"#);
    assert_eq!(
        broadcast(json!({ "message": "eu", "group": "eu" })).status,
        200
    );
    assert_eq!(ws_text(&mut bob_ops), r#"{"Message":"eu"}"#);
    assert_eq!(broadcast(json!({ "message": "all" })).status, 200);
    for ws in [&mut ann_ops, &mut ann_phone, &mut bob_ops, &mut eve] {
        assert_eq!(
            ws_text(ws),
            r#"{"Message":"all"}"#,
            "nothing else came first"
        );
    }
    // GET /clients: everyone, with users and groups; filtered.
    let clients = |query: &str| {
        let reply = http_with(
            server.http(),
            "GET",
            &format!("/clients{query}"),
            &headers,
            "",
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    };
    let all = clients("");
    assert_eq!(all.as_array().expect("a list").len(), 4);
    let ann = (all.as_array().unwrap().iter())
        .find(|c| c["clientId"] == ann_id.as_str())
        .expect("ann's first connection");
    assert_eq!(ann["userId"], "ann");
    assert_eq!(ann["groups"], json!(["ops"]));
    assert_eq!(ann["path"], "/messages");
    assert!(ann["remoteAddr"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(ann["connectedAt"].as_str().unwrap().ends_with('Z'));
    let users = |query: &str| {
        let mut users: Vec<String> = (clients(query).as_array().unwrap().iter())
            .map(|c| c["userId"].as_str().unwrap().to_owned())
            .collect();
        users.sort();
        users
    };
    assert_eq!(users("?group=ops"), ["ann", "bob"]);
    assert_eq!(users("?userId=ann"), ["ann", "ann"]);
    assert_eq!(users("?path=/MESSAGES&group=eu"), ["bob"]);
    assert!(users("?path=/other").is_empty());
    assert!(server.stop().success());
}

#[test]
fn control_routes_need_the_api_token_and_disconnect_closes_with_the_code() {
    let server = guarded_server();
    let token = jwt(JWT_SECRET, json!({ "sub": "ann" }));
    let (mut ann, ann_id) = ws_client(&format!("{}?token={token}", server.ws_url("/x")));
    for (method, path) in [("GET", "/clients"), ("POST", "/disconnect")] {
        let reply = http_with(server.http(), method, path, &[], "");
        assert_eq!(reply.status, 401, "{method} {path}");
        assert_eq!(reply.header("WWW-Authenticate"), Some("Bearer"));
    }
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let disconnect = |body: &str| http_with(server.http(), "POST", "/disconnect", &headers, body);
    for (body, status) in [
        ("{}".to_owned(), 400),
        ("[1]".to_owned(), 400),
        (json!({ "clientId": "nope" }).to_string(), 400),
        (json!({ "clientId": ann_id, "code": 1005 }).to_string(), 400),
        (json!({ "clientId": ann_id, "code": "x" }).to_string(), 400),
        (
            json!({ "clientId": "0123abcd-0000-4000-8000-00000000cafe" }).to_string(),
            404,
        ),
    ] {
        let reply = disconnect(&body);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
    }
    let reply =
        disconnect(&json!({ "clientId": ann_id, "code": 4001, "reason": "bye" }).to_string());
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({ "disconnected": true }))
    );
    loop {
        match ann.read().expect("the close") {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), 4001);
                assert_eq!(frame.reason, "bye");
                break;
            }
            Message::Close(None) => panic!("a close without a code"),
            _ => {}
        }
    }
    assert!(server.stop().success());
}

#[test]
fn without_an_api_token_there_are_no_control_routes() {
    let server = Serve::shared();
    assert_eq!(get(server.http(), "/clients").status, 404);
    assert!(server.stop().success());
}

#[test]
fn jwt_secret_env_unset_or_short_is_a_usage_error() {
    for value in [None, Some("tiny-s3cret")] {
        let args = ["serve", "--ws", "127.0.0.1:0", "--jwt-secret-env", JWT_VAR];
        let mut proc = Proc::spawn_with_env(&args, &[(JWT_VAR, value)]);
        assert_eq!(proc.exit_status().code(), Some(2), "{value:?}");
        let stderr = proc.stderr_rest();
        assert!(
            stderr.starts_with(&format!("signalhub: --jwt-secret-env: {JWT_VAR} is ")),
            "{stderr}"
        );
        assert!(
            !stderr.contains("tiny-s3cret"),
            "the secret is never shown: {stderr}"
        );
    }
}

/// The `Sec-WebSocket-Extensions` header of the `101` a raw upgrade offering
/// permessage-deflate gets, if any.
fn agreed_extensions(ws: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect(ws).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let request = "GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";
    stream.write_all(request.as_bytes()).expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).expect("read"), 1, "closed early");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_owned())
    })
}

#[test]
fn compression_is_agreed_only_with_the_flag() {
    let plain = Serve::start(&["--ws", "127.0.0.1:0"], 1);
    assert_eq!(agreed_extensions(plain.addr("ws")), None);
    assert!(plain.stop().success());
    let compressing = Serve::start(&["--ws", "127.0.0.1:0", "--compression"], 1);
    let agreed = agreed_extensions(compressing.addr("ws")).expect("agreed");
    assert!(
        agreed.starts_with("permessage-deflate; server_no_context_takeover"),
        "{agreed}"
    );
    assert!(compressing.stop().success());
}
