//! The HTTP side end to end: routes, views and public files answered by a running server's
//! `Http` endpoint, over real sockets on 127.0.0.1. Requests are written by hand so that paths
//! reach the server exactly as sent (HTTP clients normalize `..`).
//!
//! Ported from the socket tests that lived in `src/http/mod.rs` (which served an `HttpApp`
//! from a bare tiny_http server); now every request goes through the server's door.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signalhub::http::{Assets, WebData, WebEvent, WebResponse};
use signalhub::{Endpoint, Error, Server, ServerConfig, ServerHandle};
use support::http::{exchange, get, post, raw_request, request, Conn};
use support::{config, try_connect, wait_until, WAIT};

const SECRET: &str = "top secret, outside public";

/// A header that once told the server a proxied peer's address; now an ordinary header.
const OLD_PEER_HEADER: &str = "X-Signalhub-Peer";

/// A temp folder with `views/`, `public/`, a secret file beside them and a `public2/`
/// sibling; removed on drop.
struct Folder {
    dir: PathBuf,
}

impl Folder {
    fn new() -> Folder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "signalhub-http-test-{}-{unique}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let folder = Folder { dir };
        for (path, contents) in [
            ("views/index.html", &b"<h1>the view</h1>"[..]),
            ("views/admin/users.html", b"<p>users</p>"),
            ("public/index.html", b"<h1>home</h1>"),
            ("public/app.js", b"console.log('hi');"),
            ("public/style.css", b"body { margin: 0 }"),
            ("public/data.json", br#"{"a":1}"#),
            ("public/image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            ("public/notes.TXT", b"notes"),
            ("public/blob.bin", b"\0\x01\x02"),
            ("public/sub/page.html", b"<p>sub</p>"),
            ("public/.hidden", b"hidden"),
            ("secret.txt", SECRET.as_bytes()),
            ("public2/other.txt", SECRET.as_bytes()),
        ] {
            folder.write(path, contents);
        }
        folder
    }

    fn write(&self, relative: &str, contents: &[u8]) {
        let path = self.dir.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("create dir");
        std::fs::write(path, contents).expect("write file");
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running server with an `Http` endpoint (`addr`) and a `Ws` endpoint (`ws`), and the
/// folder it serves; shut down on drop, before the folder goes.
struct Running {
    handle: Arc<ServerHandle>,
    addr: SocketAddr,
    ws: SocketAddr,
    _folder: Folder,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

/// Starts a server on 127.0.0.1 (ports 0) after `setup` has added routes, views and files.
fn serve(
    config: ServerConfig,
    folder: Folder,
    setup: impl FnOnce(&mut Server, &Folder),
) -> Running {
    let mut server = Server::with_config(config);
    server
        .endpoint(Endpoint::http("127.0.0.1:0").name("web"))
        .expect("http endpoint");
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("live"))
        .expect("ws endpoint");
    setup(&mut server, &folder);
    let handle = server.start().expect("server starts");
    let addr = handle.local_addr("web").expect("http address");
    let ws = handle.local_addr("live").expect("ws address");
    Running {
        handle: Arc::new(handle),
        addr,
        ws,
        _folder: folder,
    }
}

fn route(
    server: &mut Server,
    method: &str,
    path: &str,
    handler: impl Fn(&WebEvent) -> signalhub::Result<WebResponse> + Send + Sync + 'static,
) {
    server.http_route(method, path, handler).expect("route");
}

fn describe(event: &WebEvent) -> Value {
    let data = match &event.data {
        WebData::Json(value) => json!({ "json": value }),
        WebData::Form(fields) => json!({ "form": fields }),
        WebData::Text(text) => json!({ "text": text }),
        _ => json!(null),
    };
    json!({
        "method": event.method,
        "path": event.path,
        "query": event.query,
        "q": event.query("q"),
        "x_test": event.header("X-TEST"),
        "peer_header": event.header(OLD_PEER_HEADER),
        "remote": event.remote_addr.map(|a| a.to_string()),
        "data": data,
        "message": event.data.get("message"),
    })
}

/// What most tests serve: routes of every kind, views and public files.
fn full_app(server: &mut Server, folder: &Folder) {
    server.views(Assets::Folder(folder.path("views")));
    server.public(Assets::Folder(folder.path("public")));
    route(server, "GET", "/hello", |_| Ok(WebResponse::text("hello")));
    route(server, "post", "/Echo", |e| {
        Ok(WebResponse::json(describe(e)))
    });
    route(server, "GET", "/echo", |e| {
        Ok(WebResponse::json(describe(e)))
    });
    route(server, "DELETE", "/items", |_| Ok(WebResponse::status(204)));
    route(server, "PUT", "/items", |_| Ok(WebResponse::status(204)));
    route(server, "GET", "/page", |_| Ok(WebResponse::view("index")));
    route(server, "GET", "/page-ext", |_| {
        Ok(WebResponse::view("index.html"))
    });
    route(server, "GET", "/users", |_| {
        Ok(WebResponse::view("admin/users"))
    });
    route(server, "GET", "/no-view", |_| Ok(WebResponse::view("nope")));
    route(server, "GET", "/fails", |_| {
        Err(Error::InvalidConfig("database down".into()))
    });
    route(server, "GET", "/panics", |_| panic!("handler bug"));
    route(server, "GET", "/teapot", |_| {
        Ok(WebResponse::html("<b>tea</b>")
            .with_status(418)
            .with_header("X-Extra", "yes")
            .with_header("Content-Length", "9999")
            .with_header("Transfer-Encoding", "chunked")
            .with_header("Connection", "close"))
    });
    route(server, "GET", "/bad-header", |_| {
        Ok(WebResponse::text("x").with_header("X-Bad", "line\r\nbreak"))
    });
    route(server, "GET", "/bad-status", |_| {
        Ok(WebResponse::text("x").with_status(42))
    });
    route(server, "POST", "/broadcast", |event| {
        let value = json!({ "Message": event.data.get("message") });
        let sent = event.signals().send(value);
        Ok(WebResponse::json(json!({ "sent": sent.is_ok() })))
    });
}

fn start_full() -> Running {
    serve(config(), Folder::new(), full_app)
}

/// `GET target` on an open connection (kept alive).
fn get_on(conn: &mut Conn, target: &str) -> support::http::Reply {
    conn.exchange(&raw_request("GET", target, &[], b""))
}

/// The names of this process's threads, sorted.
fn thread_names() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    let mut names: Vec<String> = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_owned())
        .collect();
    names.sort();
    names
}

/// The `sh-http-N` threads of this process, sorted.
fn http_worker_threads() -> Vec<String> {
    let mut names = thread_names();
    names.retain(|name| name.starts_with("sh-http-"));
    names
}

/// Set in the process [`in_own_process`] starts.
const ALONE: &str = "SIGNALHUB_HTTP_TEST_ALONE";

/// Runs the test `name` of this binary again in a process of its own, where no other test's
/// server has threads, and checks that it ran and passed: `true` here. `false` in that
/// process, which then runs the test itself.
fn in_own_process(name: &str) -> bool {
    if std::env::var_os(ALONE).is_some() {
        return false;
    }
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([name, "--exact", "--test-threads=1"])
        .env(ALONE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test alone");
    // The test bounds its own waits by WAIT; this bounds the whole run.
    let deadline = Instant::now() + 4 * WAIT;
    while child.try_wait().expect("child status").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} alone did not finish within {:?}", 4 * WAIT);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} alone: {}\n{stdout}\n{stderr}",
        output.status
    );
    true
}

#[test]
fn views_are_rendered_by_name_with_or_without_extension() {
    let server = start_full();
    for target in ["/page", "/page-ext"] {
        let reply = get(server.addr, target);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "<h1>the view</h1>");
        assert_eq!(
            reply.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
    }
    assert_eq!(get(server.addr, "/users").text(), "<p>users</p>");
}

#[test]
fn a_missing_view_is_a_500() {
    let server = start_full();
    let reply = get(server.addr, "/no-view");
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("not found"), "{}", reply.text());
}

#[test]
fn public_files_are_served_with_their_content_types() {
    let server = start_full();
    for (target, content_type, body) in [
        (
            "/app.js",
            "text/javascript; charset=utf-8",
            &b"console.log('hi');"[..],
        ),
        (
            "/style.css",
            "text/css; charset=utf-8",
            b"body { margin: 0 }",
        ),
        ("/data.json", "application/json", br#"{"a":1}"#),
        ("/image.png", "image/png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
        ("/notes.TXT", "text/plain; charset=utf-8", b"notes"),
        ("/blob.bin", "application/octet-stream", b"\0\x01\x02"),
        ("/sub/page.html", "text/html; charset=utf-8", b"<p>sub</p>"),
    ] {
        let reply = get(server.addr, target);
        assert_eq!(reply.status, 200, "{target}");
        assert_eq!(reply.header("Content-Type"), Some(content_type), "{target}");
        assert_eq!(reply.body, body, "{target}");
        assert_eq!(reply.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(reply.header("Server"), Some("signalhub"));
    }
}

#[test]
fn the_root_is_index_html_and_query_strings_are_ignored_for_files() {
    let server = start_full();
    let reply = get(server.addr, "/");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "<h1>home</h1>")
    );
    assert_eq!(
        reply.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(get(server.addr, "/app.js?v=3").status, 200);
}

#[test]
fn missing_files_directories_and_hidden_files_are_404() {
    let server = start_full();
    for target in ["/nope.js", "/sub", "/sub/", "/.hidden", "/index.html/x"] {
        let reply = get(server.addr, target);
        assert_eq!(reply.status, 404, "{target}");
        assert_eq!(reply.text(), "Not Found");
    }
}

#[test]
fn without_public_files_the_root_is_404() {
    let server = serve(config(), Folder::new(), |_, _| {});
    assert_eq!(get(server.addr, "/").status, 404);
}

#[test]
fn every_kind_of_path_traversal_is_404() {
    let server = start_full();
    for target in [
        "/../secret.txt",
        "/../Cargo.toml",
        "/a/../../secret.txt",
        "/sub/../index.html",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/..%2Fpublic2%2Fother.txt",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/%00",
        "/index.html%00.png",
        "/%2e/index.html",
    ] {
        let reply = get(server.addr, target);
        assert_eq!(reply.status, 404, "{target}: {}", reply.text());
        assert!(!reply.text().contains(SECRET), "{target}");
    }
}

#[test]
fn a_bad_percent_escape_is_400() {
    let server = start_full();
    assert_eq!(get(server.addr, "/%zz").status, 400);
    assert_eq!(get(server.addr, "/%ff").status, 400);
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_only_inside_the_public_folder() {
    use std::os::unix::fs::symlink;
    let folder = Folder::new();
    let public = folder.path("public");
    symlink(folder.path("secret.txt"), public.join("link.txt")).expect("symlink");
    symlink(&folder.dir, public.join("up")).expect("symlink");
    symlink(folder.path("public2/other.txt"), public.join("sibling.txt")).expect("symlink");
    symlink(folder.path("public2"), public.join("sibling")).expect("symlink");
    symlink(public.join("app.js"), public.join("alias.js")).expect("symlink");
    symlink("/etc/passwd", public.join("passwd")).expect("symlink");
    let server = serve(config(), folder, full_app);
    for target in [
        "/link.txt",
        "/up/secret.txt",
        "/sibling.txt",
        "/sibling/other.txt",
        "/passwd",
    ] {
        let reply = get(server.addr, target);
        assert_eq!(reply.status, 404, "{target}");
        assert!(!reply.text().contains(SECRET), "{target}");
    }
    let alias = get(server.addr, "/alias.js");
    assert_eq!(
        (alias.status, alias.text().as_str()),
        (200, "console.log('hi');")
    );
}

#[test]
fn a_symlinked_public_root_is_resolved_first() {
    let folder = Folder::new();
    let linked_root = folder.path("public-link");
    #[cfg(unix)]
    std::os::unix::fs::symlink(folder.path("public"), &linked_root).expect("symlink");
    #[cfg(not(unix))]
    let linked_root = folder.path("public");
    let server = serve(config(), folder, move |server, _| {
        server.public(Assets::Folder(linked_root));
    });
    assert_eq!(get(server.addr, "/app.js").status, 200);
    assert_eq!(get(server.addr, "/../secret.txt").status, 404);
}

#[test]
fn embedded_public_files_are_served() {
    static FILES: &[(&str, &[u8])] = &[("index.html", b"<p>built in</p>"), ("a.css", b"a{}")];
    let server = serve(config(), Folder::new(), |server, _| {
        server.public(Assets::Embedded(FILES));
        server.views(Assets::Embedded(FILES));
        route(server, "GET", "/v", |_| Ok(WebResponse::view("index")));
    });
    assert_eq!(get(server.addr, "/").text(), "<p>built in</p>");
    assert_eq!(get(server.addr, "/v").text(), "<p>built in</p>");
    let css = get(server.addr, "/a.css");
    assert_eq!(css.header("Content-Type"), Some("text/css; charset=utf-8"));
    assert_eq!(get(server.addr, "/../a.css").status, 404);
}

#[test]
fn routes_get_json_bodies() {
    let server = start_full();
    let reply = post(
        server.addr,
        "/echo",
        "application/json",
        r#"{"message":"hi","n":[1,2]}"#,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    let seen = reply.json();
    assert_eq!(seen["method"], "POST");
    assert_eq!(
        seen["data"],
        json!({"json": {"message": "hi", "n": [1, 2]}})
    );
    assert_eq!(seen["message"], "hi");
}

#[test]
fn routes_get_form_bodies() {
    let server = start_full();
    let form = "application/x-www-form-urlencoded";
    let reply = post(server.addr, "/echo", form, "message=hello+there&x=%26");
    let seen = reply.json();
    assert_eq!(
        seen["data"],
        json!({"form": [["message", "hello there"], ["x", "&"]]})
    );
    assert_eq!(seen["message"], "hello there");
}

#[test]
fn routes_get_text_and_ignore_other_bodies() {
    let server = start_full();
    let text = post(
        server.addr,
        "/echo",
        "text/plain; charset=utf-8",
        "plain words",
    );
    assert_eq!(text.json()["data"], json!({"text": "plain words"}));
    let other = post(
        server.addr,
        "/echo",
        "application/octet-stream",
        "\u{1}\u{2}",
    );
    assert_eq!(other.json()["data"], json!(null));
    let empty = post(server.addr, "/echo", "application/json", "");
    assert_eq!(empty.json()["data"], json!(null));
}

#[test]
fn routes_get_the_query_headers_path_and_peer() {
    let server = start_full();
    let mut conn = Conn::open(server.addr);
    let own = conn.stream.local_addr().expect("local address");
    let reply = conn.exchange(&raw_request(
        "GET",
        "/ECHO?q=a+b&q=second&empty&x=%2F",
        &[("X-Test", "present")],
        b"",
    ));
    assert_eq!(reply.status, 200);
    let seen = reply.json();
    assert_eq!(seen["path"], "/ECHO");
    assert_eq!(seen["q"], "a b");
    assert_eq!(
        seen["query"],
        json!([["q", "a b"], ["q", "second"], ["empty", ""], ["x", "/"]])
    );
    assert_eq!(seen["x_test"], "present");
    let remote: SocketAddr = seen["remote"].as_str().expect("remote").parse().unwrap();
    assert_eq!(remote, own, "the peer is the client's own socket");
}

#[test]
fn the_old_peer_header_is_an_ordinary_header_and_the_peer_is_the_socket() {
    let server = start_full();
    let mut conn = Conn::open(server.addr);
    let own = conn.stream.local_addr().expect("local address").to_string();
    let mut echo = |headers: &[(&str, &str)]| {
        let reply = conn.exchange(&raw_request("GET", "/echo", headers, b""));
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    };
    let seen = echo(&[(OLD_PEER_HEADER, "203.0.113.7:4567")]);
    assert_eq!(seen["peer_header"], "203.0.113.7:4567");
    assert_eq!(seen["remote"], own.as_str());
    let spoofed = [
        (OLD_PEER_HEADER, "203.0.113.7:4567"),
        (OLD_PEER_HEADER, "10.0.0.1:1"),
    ];
    let seen = echo(&spoofed);
    assert_eq!(seen["peer_header"], "203.0.113.7:4567");
    assert_eq!(seen["remote"], own.as_str());
    let seen = echo(&[(OLD_PEER_HEADER, "not an address")]);
    assert_eq!(seen["peer_header"], "not an address");
    assert_eq!(seen["remote"], own.as_str());
}

#[test]
fn unknown_paths_are_404_and_other_methods_405_with_allow() {
    let server = start_full();
    assert_eq!(get(server.addr, "/nowhere").status, 404);
    assert_eq!(post(server.addr, "/nowhere", "text/plain", "x").status, 404);
    assert_eq!(post(server.addr, "/app.js", "text/plain", "x").status, 404);
    let reply = post(server.addr, "/hello", "text/plain", "x");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("GET, HEAD"));
    let reply = get(server.addr, "/items");
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("Allow"), Some("DELETE, PUT"));
    let deleted = request(server.addr, "DELETE", "/ITEMS", &[], b"");
    assert_eq!((deleted.status, deleted.body.len()), (204, 0));
}

#[test]
fn bad_bodies_are_400_with_a_short_reason() {
    let server = start_full();
    let reply = post(server.addr, "/echo", "application/json", "{not json");
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().starts_with("invalid json body: "),
        "{}",
        reply.text()
    );
    let form = "application/x-www-form-urlencoded";
    let reply = post(server.addr, "/echo", form, "message=%zz");
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (400, "invalid form body")
    );
}

#[test]
fn bodies_over_the_limit_are_413() {
    let mut config = config();
    config.max_http_body = 16;
    let server = serve(config, Folder::new(), full_app);
    let at_limit = post(server.addr, "/echo", "text/plain", "0123456789abcdef");
    assert_eq!(at_limit.status, 200);
    let over = post(server.addr, "/echo", "text/plain", "0123456789abcdefg");
    assert_eq!(over.status, 413);
    // Declared too long: answered at once, without the body ever being sent.
    let raw = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n";
    let declared = exchange(server.addr, raw.as_bytes());
    assert_eq!(declared.status, 413);
    assert!(declared.closes());
    // Chunked, so no declared length: the door wants a Content-Length (411) and never reads
    // such a body.
    let chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                   Transfer-Encoding: chunked\r\n\r\n20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n";
    assert_eq!(exchange(server.addr, chunked.as_bytes()).status, 411);
    assert_eq!(get(server.addr, "/hello").status, 200);
}

#[test]
fn head_is_answered_like_get_without_a_body() {
    let server = start_full();
    // On one kept-alive connection: a body after a HEAD answer would be read as the head of
    // the next answer.
    let mut conn = Conn::open(server.addr);
    let file = conn.exchange(&raw_request("HEAD", "/app.js", &[], b""));
    assert_eq!(file.status, 200);
    assert_eq!(file.header("Content-Length"), Some("18"));
    assert_eq!(
        file.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(file.body.is_empty());
    let routed = conn.exchange(&raw_request("HEAD", "/hello", &[], b""));
    assert_eq!(
        (routed.status, routed.header("Content-Length")),
        (200, Some("5"))
    );
    assert!(routed.body.is_empty());
    let hello = get_on(&mut conn, "/hello");
    assert_eq!((hello.status, hello.text().as_str()), (200, "hello"));
}

#[test]
fn handler_errors_and_panics_are_500_and_the_worker_carries_on() {
    let server = start_full();
    let failed = get(server.addr, "/fails");
    assert_eq!(failed.status, 500);
    assert_eq!(failed.text(), "invalid configuration: database down");
    // More panics than there are workers, each followed by a normal request.
    for _ in 0..8 {
        let panicked = get(server.addr, "/panics");
        assert_eq!(panicked.status, 500);
        assert_eq!(panicked.text(), "Internal Server Error");
        assert_eq!(get(server.addr, "/hello").text(), "hello");
    }
}

#[test]
fn statuses_and_headers_from_handlers_are_sent() {
    let server = start_full();
    let mut conn = Conn::open(server.addr);
    let reply = get_on(&mut conn, "/teapot");
    // The reason phrase is tiny_http's: not checked.
    assert_eq!(reply.status, 418);
    assert_eq!(reply.header("X-Extra"), Some("yes"));
    assert_eq!(reply.header("Server"), Some("signalhub"));
    // Framing headers are the server's own: the handler's are dropped.
    assert_eq!(reply.header("Content-Length"), Some("10"));
    assert_eq!(reply.header("Transfer-Encoding"), None);
    assert_eq!(reply.header("Connection"), None);
    assert_eq!(reply.text(), "<b>tea</b>");
    // The handler's `Connection: close` did not close the connection.
    assert_eq!(get_on(&mut conn, "/hello").text(), "hello");
    assert_eq!(get(server.addr, "/bad-header").status, 500);
    assert_eq!(get(server.addr, "/bad-status").status, 500);
}

#[test]
fn a_websocket_upgrade_is_400() {
    let server = start_full();
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    for target in ["/", "/hello", "/nowhere"] {
        let reply = request(server.addr, "GET", target, &upgrade, b"");
        assert_eq!(reply.status, 400, "{target}");
        assert_eq!(
            reply.text().trim_end(),
            "this endpoint does not accept websocket connections"
        );
    }
}

#[test]
fn signals_sent_from_a_route_reach_websocket_clients() {
    let server = start_full();
    let mut client =
        try_connect(&format!("ws://{}/feed", server.ws), &[]).expect("websocket connects");
    let reply = post(
        server.addr,
        "/broadcast",
        "application/json",
        r#"{"message":"hi"}"#,
    );
    assert_eq!(reply.json(), json!({ "sent": true }));
    assert_eq!(client.recv(), r#"{"Message":"hi"}"#);
}

#[test]
fn concurrent_requests_are_all_answered() {
    let server = start_full();
    let addr = server.addr;
    let clients: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                (0..20)
                    .map(|_| get(addr, "/hello"))
                    .filter(|r| r.status == 200 && r.text() == "hello")
                    .count()
            })
        })
        .collect();
    let answered: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(answered, 200);
}

#[test]
fn keep_alive_connections_get_several_answers() {
    let server = start_full();
    let mut conn = Conn::open(server.addr);
    for _ in 0..3 {
        let reply = conn.exchange(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(reply.text(), "hello");
        assert!(!reply.closes());
    }
}

#[test]
fn connection_close_on_the_last_request_ends_the_connection_after_its_answer() {
    let server = start_full();
    let mut conn = Conn::open(server.addr);
    for _ in 0..2 {
        let reply = get_on(&mut conn, "/hello");
        assert_eq!(reply.text(), "hello");
        assert!(!reply.closes());
    }
    let last = conn.exchange(&raw_request(
        "GET",
        "/hello",
        &[("Connection", "close")],
        b"",
    ));
    assert_eq!((last.status, last.text().as_str()), (200, "hello"));
    assert!(last.closes(), "{:?}", last.headers);
    assert!(conn.is_closed());
}

#[test]
fn stopping_the_workers_is_prompt() {
    let server = start_full();
    assert_eq!(get(server.addr, "/hello").status, 200);
    // A kept-alive connection, idle between requests, does not hold the shutdown up.
    let mut idle = Conn::open(server.addr);
    assert_eq!(get_on(&mut idle, "/hello").text(), "hello");
    let handle = server.handle.clone();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        handle.shutdown();
        let _ = done.send(());
    });
    finished
        .recv_timeout(WAIT)
        .unwrap_or_else(|e| panic!("shutdown did not return within {WAIT:?}: {e}"));
    assert!(idle.is_closed());
}

#[test]
fn worker_threads_are_named() {
    // Other tests' servers have `sh-http-N` threads too: look in a process of its own.
    if in_own_process("worker_threads_are_named") {
        return;
    }
    assert_eq!(http_worker_threads(), Vec::<String>::new());
    // A new thread carries this thread's name until it has set its own.
    let me = std::fs::read_to_string("/proc/thread-self/comm").expect("own thread name");
    let me = me.trim_end();
    let named_like_me = || thread_names().iter().filter(|n| *n == me).count();
    assert_eq!(named_like_me(), 1, "{:?}", thread_names());
    let server = start_full();
    wait_until("the server's threads to take their names", || {
        named_like_me() == 1
    });
    let names = http_worker_threads();
    assert!(!names.is_empty(), "no sh-http-N threads");
    let mut expected: Vec<String> = (0..names.len()).map(|n| format!("sh-http-{n}")).collect();
    expected.sort();
    assert_eq!(names, expected);
    server.handle.shutdown();
    // A joined thread's task can outlive the join by a moment.
    wait_until("the http workers to end", || {
        http_worker_threads().is_empty()
    });
}

#[test]
fn routes_are_checked_when_added() {
    let mut server = Server::with_config(config());
    let ok = |_: &WebEvent| Ok(WebResponse::text("ok"));
    server.http_route("get", "/x", ok).expect("GET /x");
    server.http_route("POST", "/x", ok).expect("POST /x");
    let again = server.http_route("GET", "/X", ok).map(|_| ());
    assert!(
        matches!(again, Err(Error::DuplicateRoute(ref r)) if r == "GET /X"),
        "{again:?}"
    );
    let relative = server.http_route("GET", "x", ok).map(|_| ());
    assert!(
        matches!(relative, Err(Error::InvalidConfig(_))),
        "{relative:?}"
    );
    let bad_method = server.http_route("GE T", "/y", ok).map(|_| ());
    assert!(
        matches!(bad_method, Err(Error::InvalidConfig(_))),
        "{bad_method:?}"
    );
}
