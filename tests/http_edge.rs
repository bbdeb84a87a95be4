//! The HTTP edge under abuse (SPEC 9, issue 14): stalled requests, resets, unread
//! downloads, idle kept-alive connections, caps, odd files and malformed heads. Each test
//! holds a hostile or slow peer open and checks that everyone else is served, and that the
//! server lets go of the peer (its socket, its place under the caps) once it is gone.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use signalhub::http::{Assets, WebResponse};
use signalhub::{Endpoint, Server, ServerConfig, ServerHandle};
use support::http::{get, raw_request, request, Conn};
use support::{config, read_until_closed, try_connect, wait_until, Client, WAIT};

/// The size of the big public file: larger than what loopback sockets buffer.
const BIG: usize = 20 << 20;

/// One test at a time: some count this process's threads and open files, which every other
/// test's server would change.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A server with an Http endpoint (`/hello`, `POST /broadcast`, public files: a big file and
/// a FIFO) and a Ws endpoint, and its folder (removed on drop).
struct Site {
    handle: ServerHandle,
    folder: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Site {
    fn start(config: ServerConfig) -> Site {
        let serial = serial();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let folder = std::env::temp_dir().join(format!(
            "signalhub-edge-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let public = folder.join("public");
        std::fs::create_dir_all(&public).expect("folder");
        std::fs::write(public.join("index.html"), "<h1>home</h1>").expect("index");
        std::fs::write(public.join("big.bin"), big_contents()).expect("big file");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            public.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .expect("mkfifo");
        let mut server = Server::with_config(config);
        server
            .endpoint(Endpoint::http("127.0.0.1:0").name("web"))
            .expect("http endpoint");
        server
            .endpoint(Endpoint::ws("127.0.0.1:0").name("ws"))
            .expect("ws endpoint");
        server.public(Assets::Folder(public));
        server
            .http_route("GET", "/hello", |_| Ok(WebResponse::text("hello")))
            .expect("route");
        server
            .http_route("POST", "/broadcast", |event| {
                let message = event.data.get("message").unwrap_or_default();
                event.signals().send(message)?;
                Ok(WebResponse::json(json!({ "sent": true })))
            })
            .expect("route");
        let handle = server.start().expect("server starts");
        Site {
            handle,
            folder,
            _serial: serial,
        }
    }

    fn http(&self) -> SocketAddr {
        self.handle.local_addr("web").expect("web")
    }

    fn ws_client(&self) -> Client {
        let url = format!("ws://{}/", self.handle.local_addr("ws").expect("ws"));
        try_connect(&url, &[]).expect("websocket connects")
    }

    /// `GET /hello` on a fresh connection answers `200 hello`.
    fn assert_serves(&self) {
        let reply = get(self.http(), "/hello");
        assert_eq!((reply.status, reply.text().as_str()), (200, "hello"));
    }

    /// `POST /broadcast` answers and `client` gets the message.
    fn assert_broadcasts(&self, client: &mut Client, message: &str) {
        let body = json!({ "message": message }).to_string();
        let headers = [("Content-Type", "application/json")];
        let reply = request(self.http(), "POST", "/broadcast", &headers, body.as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(client.recv(), message);
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.handle.shutdown();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn big_contents() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

fn quick_config() -> ServerConfig {
    let mut config = config();
    config.handshake_timeout = Duration::from_secs(2);
    config
}

/// A `POST /broadcast` that promises 100,000 bytes of body and sends one.
fn stalled_post(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(
            b"POST /broadcast HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
              Content-Length: 100000\r\n\r\n{",
        )
        .expect("write");
    stream
}

/// This process's open file descriptors.
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// This process's threads.
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .count()
}

/// A connection whose receive buffer stays small (this machine lets loopback buffers grow to
/// 32 MiB, which would swallow the whole file unread).
fn connect_with_small_buffer(addr: SocketAddr) -> TcpStream {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let socket =
        rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    sockopt::set_socket_recv_buffer_size(&socket, 4096).expect("SO_RCVBUF");
    rustix::net::connect(&socket, &addr).expect("connect");
    TcpStream::from(socket)
}

fn reset(stream: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO)).expect("SO_LINGER");
    drop(stream);
}

#[test]
fn stalled_request_bodies_hold_up_no_page_and_no_broadcast() {
    let site = Site::start(quick_config());
    let mut client = site.ws_client();
    let stalled: Vec<TcpStream> = (0..50).map(|_| stalled_post(site.http())).collect();
    for _ in 0..5 {
        site.assert_serves();
    }
    site.assert_broadcasts(&mut client, "through");
    // Each stalled request is answered 408 at the timeout, and closed.
    for mut stream in stalled {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let answer = read_until_closed(&mut stream);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    }
    site.assert_broadcasts(&mut client, "after");
}

#[test]
fn a_head_sent_one_byte_at_a_time_gets_408_at_the_timeout_however_it_trickles() {
    let site = Site::start(quick_config());
    let mut stream = TcpStream::connect(site.http()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let head = b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Padding: ";
    // A byte every 100 ms (the read timeout paces it): progress, but never a whole head.
    let deadline = Instant::now() + WAIT;
    let mut answer = Vec::new();
    for byte in head.iter().cycle() {
        assert!(Instant::now() < deadline, "still open after {WAIT:?}");
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                stream.set_read_timeout(Some(WAIT)).expect("timeout");
                answer.extend(read_until_closed(&mut stream));
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    site.assert_serves();
}

#[test]
fn resets_leave_nothing_behind() {
    let site = Site::start(quick_config());
    site.assert_serves();
    let (files_before, threads_before) = (open_files(), threads());
    let mut doomed: Vec<TcpStream> = (0..30).map(|_| stalled_post(site.http())).collect();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(site.http()).expect("connect");
        stream.write_all(b"GET /hel").expect("half a head");
        doomed.push(stream);
    }
    for _ in 0..10 {
        let mut stream = TcpStream::connect(site.http()).expect("connect");
        stream
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("download");
        doomed.push(stream);
    }
    site.assert_serves();
    for stream in doomed {
        reset(stream);
    }
    // The server closes its side of every reset connection at once (a dead socket kept in
    // its poll set would also make it spin), long before any timeout.
    wait_until("the server to let go of reset connections", || {
        open_files() <= files_before
    });
    assert_eq!(threads(), threads_before, "no thread per http connection");
    site.assert_serves();
}

#[test]
fn downloads_nobody_reads_hold_up_nobody_and_are_cut_when_stalled() {
    let site = Site::start(quick_config());
    let mut client = site.ws_client();
    let files_before = open_files();
    let mut readers: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = connect_with_small_buffer(site.http());
            stream
                .write_all(b"GET /big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
                .expect("request");
            stream
        })
        .collect();
    for _ in 0..5 {
        site.assert_serves();
    }
    site.assert_broadcasts(&mut client, "unblocked");
    // One reader catches up and gets the whole file, intact.
    let mut eager = Conn::open(site.http());
    let reply = eager.exchange(&raw_request("GET", "/big.bin", &[], b""));
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert!(reply.body == big_contents(), "the file arrives intact");
    drop(eager);
    // The others never read: the server lets go of them once nothing moved for the timeout
    // (its sockets close: only the test's own 8 remain), and they get less than the file.
    wait_until("the server to cut stalled downloads", || {
        open_files() <= files_before + readers.len()
    });
    for stream in &mut readers {
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let got = read_until_closed(stream);
        assert!(got.len() < BIG, "a stalled download ends early");
    }
}

#[test]
fn http_connections_count_against_the_per_address_cap() {
    let mut config = quick_config();
    config.max_connections_per_ip = 3;
    let site = Site::start(config);
    // Three requests whose bodies never come hold their places (the `100 Continue` says
    // each was taken in).
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut conn = Conn::open(site.http());
            conn.send(
                b"POST /broadcast HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n\
                  Content-Length: 100000\r\n\r\n",
            );
            assert_eq!(conn.read_reply(true).status, 100);
            conn.stream
        })
        .collect();
    let reply = get(site.http(), "/hello");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.text(), "too many connections from your address\n");
    let url = format!("ws://{}/", site.handle.local_addr("ws").expect("ws"));
    match try_connect(&url, &[]) {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {:?}", other.map(|c| c.id)),
    }
    assert!(site.handle.metrics().snapshot().connections_refused >= 2);
    for stream in stalled {
        reset(stream);
    }
    wait_until("places to be given back", || {
        get(site.http(), "/hello").status == 200
    });
}

#[test]
fn at_the_cap_an_idle_kept_alive_connection_makes_room() {
    let mut config = quick_config();
    config.max_connections = 3;
    let site = Site::start(config);
    let idle: Vec<Conn> = (0..3)
        .map(|_| {
            let mut conn = Conn::open(site.http());
            let reply = conn.exchange(&raw_request("GET", "/hello", &[], b""));
            assert_eq!(reply.status, 200);
            assert!(!reply.closes());
            conn
        })
        .collect();
    // A fourth client is served: the longest idle connection was closed for it.
    site.assert_serves();
    wait_until("an idle connection to make room", || {
        idle.iter().any(Conn::closed_now)
    });
}

#[test]
fn kept_alive_connections_close_once_idle_and_keep_alive_can_be_turned_off() {
    let mut config = quick_config();
    config.http_keep_alive = Some(Duration::from_millis(200));
    let site = Site::start(config);
    let mut conn = Conn::open(site.http());
    for _ in 0..3 {
        let reply = conn.exchange(&raw_request("GET", "/hello", &[], b""));
        assert_eq!((reply.status, reply.closes()), (200, false));
    }
    assert!(conn.is_closed(), "closed after the idle time");
    drop(site);

    let mut config = quick_config();
    config.http_keep_alive = None;
    let site = Site::start(config);
    let mut conn = Conn::open(site.http());
    let reply = conn.exchange(&raw_request("GET", "/hello", &[], b""));
    assert!(reply.closes());
    assert!(conn.is_closed());
}

#[test]
fn pipelined_requests_are_answered_in_order_and_http_1_0_closes_unless_asked() {
    let site = Site::start(quick_config());
    let mut conn = Conn::open(site.http());
    let mut both = raw_request("GET", "/hello", &[], b"");
    both.extend(raw_request("GET", "/index.html", &[], b""));
    both.extend(raw_request(
        "GET",
        "/missing",
        &[("Connection", "close")],
        b"",
    ));
    conn.send(&both);
    assert_eq!(conn.read_reply(false).text(), "hello");
    assert_eq!(conn.read_reply(false).text(), "<h1>home</h1>");
    let last = conn.read_reply(false);
    assert_eq!((last.status, last.closes()), (404, true));
    assert!(conn.is_closed());

    let mut old = Conn::open(site.http());
    let reply = old.exchange(b"GET /hello HTTP/1.0\r\n\r\n");
    assert!(reply.closes(), "{:?}", reply.headers);
    assert!(old.is_closed());
    let mut kept = Conn::open(site.http());
    let ask = b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let reply = kept.exchange(ask);
    assert_eq!(reply.header("Connection"), Some("keep-alive"));
    assert_eq!(kept.exchange(ask).text(), "hello");
}

#[test]
fn a_fifo_among_public_files_is_not_found_and_blocks_nobody() {
    let site = Site::start(quick_config());
    for _ in 0..8 {
        assert_eq!(get(site.http(), "/fifo").status, 404);
    }
    site.assert_serves();
}

#[test]
fn content_length_is_digits_only_and_heads_are_ascii() {
    let site = Site::start(quick_config());
    for length in ["+1", "-1", "1 1", "0x1", "1.0", "", "１"] {
        let raw =
            format!("POST /broadcast HTTP/1.1\r\nHost: test\r\nContent-Length: {length}\r\n\r\n{{");
        let reply = support::http::exchange(site.http(), raw.as_bytes());
        assert_eq!(reply.status, 400, "Content-Length: {length}");
        assert!(reply.closes());
    }
    let reply = support::http::exchange(
        site.http(),
        b"GET /hello HTTP/1.1\r\nHost: test\r\nX-Name: caf\xc3\xa9\r\n\r\n",
    );
    assert_eq!(reply.status, 400);
    let reply = support::http::exchange(site.http(), b"GET /hello HTTP/1.1\r\n\r\n");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (400, "missing Host header\n")
    );
    site.assert_serves();
}

#[test]
fn a_client_that_expects_100_continue_gets_it_then_its_answer() {
    let site = Site::start(quick_config());
    let mut client = site.ws_client();
    let mut conn = Conn::open(site.http());
    let body = br#"{"message":"continued"}"#;
    conn.send(
        format!(
            "POST /broadcast HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = conn.read_reply(true);
    assert_eq!(interim.status, 100);
    conn.send(body);
    assert_eq!(conn.read_reply(false).status, 200);
    assert_eq!(client.recv(), "continued");
}

#[test]
fn cross_site_state_changes_are_refused_and_do_nothing() {
    let mut config = quick_config();
    config.allowed_origins = Some(vec!["https://dashboard.example".into()]);
    let site = Site::start(config);
    let url = format!("ws://{}/", site.handle.local_addr("ws").expect("ws"));
    let mut client =
        try_connect(&url, &[("Origin", "https://dashboard.example")]).expect("connects");
    let post = |origin: Option<&str>, message: &str| {
        let body = json!({ "message": message }).to_string();
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(origin) = origin {
            headers.push(("Origin", origin));
        }
        request(site.http(), "POST", "/broadcast", &headers, body.as_bytes()).status
    };
    assert_eq!(post(Some("https://evil.example"), "forged"), 403);
    assert_eq!(post(Some("null"), "forged"), 403);
    assert_eq!(post(Some("http://test:1"), "forged"), 403);
    assert_eq!(post(Some("http://test"), "same site"), 200);
    assert_eq!(client.recv(), "same site", "nothing forged was sent");
    assert_eq!(post(Some("https://dashboard.example"), "allowed"), 200);
    assert_eq!(client.recv(), "allowed");
    assert_eq!(post(None, "no origin"), 200);
    assert_eq!(client.recv(), "no origin");
    // Reading is not changing: a page elsewhere may still GET.
    let reply = request(
        site.http(),
        "GET",
        "/hello",
        &[("Origin", "https://evil.example")],
        b"",
    );
    assert_eq!(reply.status, 200);
}

#[test]
fn http_connections_cost_no_thread() {
    let site = Site::start(quick_config());
    site.assert_serves();
    let before = threads();
    let stalled: Vec<TcpStream> = (0..60).map(|_| stalled_post(site.http())).collect();
    let kept: Vec<Conn> = (0..60)
        .map(|_| {
            let mut conn = Conn::open(site.http());
            assert_eq!(
                conn.exchange(&raw_request("GET", "/hello", &[], b""))
                    .status,
                200
            );
            conn
        })
        .collect();
    assert_eq!(threads(), before);
    drop((stalled, kept));
}

#[test]
fn when_no_thread_can_be_had_websockets_get_503_and_http_carries_on() {
    let mut config = quick_config();
    // No system can map a stack this big: every connection thread fails to start.
    config.tuning.connection_stack_size = 1 << 46;
    let site = Site::start(config);
    let url = format!("ws://{}/", site.handle.local_addr("ws").expect("ws"));
    for _ in 0..3 {
        match try_connect(&url, &[]) {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
            other => panic!("expected 503, got {:?}", other.map(|c| c.id)),
        }
        site.assert_serves();
    }
    assert_eq!(site.handle.metrics().snapshot().connections_refused, 3);
}
