//! The HTTP side: routes (Pode's `Add-PodeRoute`), views and public files, served by
//! tiny_http on worker threads.
//!
//! A request is answered in this order: a route for its path (exact, case-insensitive) and
//! method runs its handler; a path that has routes, but not for this method, is `405` with an
//! `Allow` header; otherwise `GET` and `HEAD` look for a public file (`/` is `index.html`);
//! anything else is `404`. `HEAD` is answered like `GET`, without the body (a `GET` route
//! answers `HEAD` too, and its handler sees the method `HEAD`).

mod body;
mod files;
mod router;
mod token;

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::{Error, Result, Signals};

pub use body::WebData;
pub use files::Assets;
pub(crate) use router::HttpApp;
pub use token::ApiToken;

/// The default largest request body a route accepts: 1 MiB.
pub(crate) const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The header the shared-port front door uses to pass on the real peer's address
/// (`ip:port`); it is only believed with [`HttpApp::set_trust_peer_header`].
pub(crate) const PEER_HEADER: &str = "X-Signalhub-Peer";

/// An HTTP route's handler: gets the request, answers with a [`WebResponse`]. An `Err` is
/// answered with `500` and the error's text; a panic with `500` (and is logged).
pub type HttpHandler = dyn Fn(&WebEvent) -> Result<WebResponse> + Send + Sync;

/// One HTTP request, as a route's handler sees it: Pode's `$WebEvent`.
#[derive(Debug, Clone)]
pub struct WebEvent {
    /// The method, uppercase (`"POST"`).
    pub method: String,
    /// The path, percent-decoded, without the query string (case as sent).
    pub path: String,
    /// The query string's parameters, decoded (`+` is a space), in order.
    pub query: Vec<(String, String)>,
    /// The request's headers, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The parsed body; see [`WebData`] for which content types are parsed.
    pub data: WebData,
    /// The peer's address, when known.
    pub remote_addr: Option<SocketAddr>,
    /// When the request was read.
    pub timestamp: SystemTime,
    pub(crate) signals: Signals,
}

impl WebEvent {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut headers = self.headers.iter();
        let found = headers.find(|(k, _)| k.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    /// The first query parameter with this name (case-sensitive, as in URLs).
    pub fn query(&self, name: &str) -> Option<&str> {
        let found = self.query.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.as_str())
    }

    /// The server's [`Signals`] handle, to send signals to WebSocket clients (Pode's
    /// `Send-PodeSignal` inside a route).
    pub fn signals(&self) -> &Signals {
        &self.signals
    }
}

/// What a body holds: bytes with their content type, or a view resolved when sending.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Bytes(Vec<u8>, String),
    View(String),
}

/// A route's answer: a status, a body with its content type, and extra headers.
///
/// `Content-Length` is always set by the server; `Content-Length` and `Transfer-Encoding`
/// given with [`with_header`](WebResponse::with_header) are ignored. A status outside
/// `200..=599` or a header that is not printable ASCII turns the answer into a `500`.
///
/// ```
/// use serde_json::json;
/// use signalhub::WebResponse;
///
/// let sent = WebResponse::json(json!({ "sent": true }));
/// assert_eq!((sent.status_code(), sent.body()), (200, &br#"{"sent":true}"#[..]));
///
/// let missing = WebResponse::status(404);
/// assert_eq!(missing.body(), b"Not Found");
///
/// let created = WebResponse::text("made it")
///     .with_status(201)
///     .with_header("Location", "/things/1");
/// assert_eq!(created.status_code(), 201);
///
/// let page = WebResponse::view("index"); // views/index.html, read when it is sent
/// # let _ = page;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    status: u16,
    body: Body,
    headers: Vec<(String, String)>,
}

impl WebResponse {
    fn bytes(bytes: impl Into<Vec<u8>>, content_type: &str) -> WebResponse {
        WebResponse {
            status: 200,
            body: Body::Bytes(bytes.into(), content_type.to_owned()),
            headers: Vec::new(),
        }
    }

    /// `200` with `value` as JSON (`application/json`). A value that cannot be serialized
    /// gives a `500` (and is logged).
    pub fn json(value: impl Serialize) -> WebResponse {
        match serde_json::to_vec(&value) {
            Ok(bytes) => WebResponse::bytes(bytes, "application/json"),
            Err(e) => {
                log::error!("cannot serialize a json response: {e}");
                WebResponse::text(Error::Json(e).to_string()).with_status(500)
            }
        }
    }

    /// `200` with plain text (`text/plain; charset=utf-8`).
    pub fn text(text: impl Into<String>) -> WebResponse {
        WebResponse::bytes(text.into(), "text/plain; charset=utf-8")
    }

    /// `200` with an HTML page (`text/html; charset=utf-8`).
    pub fn html(html: impl Into<String>) -> WebResponse {
        WebResponse::bytes(html.into(), "text/html; charset=utf-8")
    }

    /// `200` with the view `name` from the configured views: `"index"` is `index.html`, a
    /// name with an extension is used as is, and `"admin/users"` names a subfolder. The view
    /// is read when the response is sent; a missing one is a `500` (and is logged).
    pub fn view(name: &str) -> WebResponse {
        WebResponse {
            status: 200,
            body: Body::View(name.to_owned()),
            headers: Vec::new(),
        }
    }

    /// `code` with its reason phrase as the text body (`404` says `Not Found`); `204` and
    /// `304` have an empty body.
    pub fn status(code: u16) -> WebResponse {
        let reason = match code {
            204 | 304 => "",
            _ => tiny_http::StatusCode(code).default_reason_phrase(),
        };
        WebResponse::text(reason).with_status(code)
    }

    /// The same response with another status code.
    pub fn with_status(mut self, code: u16) -> WebResponse {
        self.status = code;
        self
    }

    /// The same response with one more header. A `Content-Type` header replaces the default
    /// one.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The body (empty for a view, which is read only when sent).
    pub fn body(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(bytes, _) => bytes,
            Body::View(_) => &[],
        }
    }
}

/// How long [`HttpWorkers::stop`] waits for busy workers before leaving them behind.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Pause after an error from tiny_http's accept loop, so a persistent one cannot spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Named threads (`sh-http-N`) that take requests from a tiny_http server and answer them
/// with an [`HttpApp`] until stopped. Dropping it stops it too.
pub(crate) struct HttpWorkers {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpWorkers {
    /// Starts `workers` threads (at least one).
    pub(crate) fn start(
        server: Arc<tiny_http::Server>,
        app: Arc<HttpApp>,
        workers: usize,
    ) -> Result<HttpWorkers> {
        let mut started = HttpWorkers {
            server,
            stopping: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        for n in 0..workers.max(1) {
            let (server, app) = (started.server.clone(), app.clone());
            let stopping = started.stopping.clone();
            let thread = thread::Builder::new()
                .name(format!("sh-http-{n}"))
                .spawn(move || work(&server, &app, &stopping))
                .map_err(Error::Spawn)?;
            started.threads.push(thread);
        }
        Ok(started)
    }

    /// Lets the workers answer what is already queued, then ends them; waits at most a few
    /// seconds for workers still busy with a request, and leaves those behind (logged).
    pub(crate) fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        for _ in &self.threads {
            self.server.unblock();
        }
        let deadline = Instant::now() + STOP_GRACE;
        for thread in std::mem::take(&mut self.threads) {
            while !thread.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                log::warn!("an http worker is still busy after {STOP_GRACE:?}; leaving it");
            }
        }
    }
}

impl Drop for HttpWorkers {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shut_down();
        }
    }
}

/// One worker: answers requests until [`HttpWorkers::stop`] unblocks it.
fn work(server: &tiny_http::Server, app: &HttpApp, stopping: &AtomicBool) {
    loop {
        match server.recv() {
            Ok(request) => {
                if catch_unwind(AssertUnwindSafe(|| app.handle(request))).is_err() {
                    log::error!("answering an http request panicked");
                }
            }
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                log::warn!("http server: {e}");
                thread::sleep(ERROR_PAUSE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Real requests over real sockets on 127.0.0.1, written by hand so that paths reach the
    //! server exactly as sent (HTTP clients normalize `..`).

    use super::*;
    use serde_json::{json, Value};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::path::PathBuf;
    use std::sync::atomic::AtomicUsize;

    const SECRET: &str = "top secret, outside public";

    /// A temp folder with `views/`, `public/`, a secret file beside them and a `public2/`
    /// sibling; removed on drop.
    struct Fixture {
        dir: PathBuf,
    }

    impl Fixture {
        fn new() -> Fixture {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir()
                .join(format!("signalhub-http-{}-{unique}", std::process::id()));
            let fixture = Fixture { dir };
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
                fixture.write(path, contents);
            }
            fixture
        }

        fn write(&self, relative: &str, contents: &[u8]) {
            let path = self.dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.dir.join(relative)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// An app serving on 127.0.0.1 with its own workers; stopped on drop.
    struct Running {
        addr: SocketAddr,
        workers: Option<HttpWorkers>,
        _fixture: Fixture,
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(workers) = self.workers.take() {
                workers.stop();
            }
        }
    }

    fn serve(app: HttpApp, fixture: Fixture, workers: usize) -> Running {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap();
        let workers = HttpWorkers::start(Arc::new(server), Arc::new(app), workers).unwrap();
        Running {
            addr,
            workers: Some(workers),
            _fixture: fixture,
        }
    }

    fn route(
        app: &mut HttpApp,
        method: &str,
        path: &str,
        handler: impl Fn(&WebEvent) -> Result<WebResponse> + Send + Sync + 'static,
    ) {
        app.add_route(method, path, Arc::new(handler)).unwrap();
    }

    fn describe(event: &WebEvent) -> Value {
        let data = match &event.data {
            WebData::None => json!(null),
            WebData::Json(value) => json!({ "json": value }),
            WebData::Form(fields) => json!({ "form": fields }),
            WebData::Text(text) => json!({ "text": text }),
        };
        json!({
            "method": event.method,
            "path": event.path,
            "query": event.query,
            "q": event.query("q"),
            "x_test": event.header("X-TEST"),
            "peer_header": event.header(PEER_HEADER),
            "remote": event.remote_addr.map(|a| a.to_string()),
            "data": data,
            "message": event.data.get("message"),
        })
    }

    /// The app most tests use: routes of every kind, views and public files.
    fn full_app(fixture: &Fixture) -> HttpApp {
        let mut app = HttpApp::new(Signals::default());
        app.set_views(Assets::Folder(fixture.path("views")));
        app.set_public(Assets::Folder(fixture.path("public")));
        route(&mut app, "GET", "/hello", |_| {
            Ok(WebResponse::text("hello"))
        });
        route(&mut app, "post", "/Echo", |e| {
            Ok(WebResponse::json(describe(e)))
        });
        route(&mut app, "GET", "/echo", |e| {
            Ok(WebResponse::json(describe(e)))
        });
        route(&mut app, "DELETE", "/items", |_| {
            Ok(WebResponse::status(204))
        });
        route(&mut app, "PUT", "/items", |_| Ok(WebResponse::status(204)));
        route(&mut app, "GET", "/page", |_| Ok(WebResponse::view("index")));
        route(&mut app, "GET", "/page-ext", |_| {
            Ok(WebResponse::view("index.html"))
        });
        route(&mut app, "GET", "/users", |_| {
            Ok(WebResponse::view("admin/users"))
        });
        route(&mut app, "GET", "/no-view", |_| {
            Ok(WebResponse::view("nope"))
        });
        route(&mut app, "GET", "/fails", |_| {
            Err(Error::InvalidConfig("database down".into()))
        });
        route(&mut app, "GET", "/panics", |_| panic!("handler bug"));
        route(&mut app, "GET", "/teapot", |_| {
            Ok(WebResponse::html("<b>tea</b>")
                .with_status(418)
                .with_header("X-Extra", "yes")
                .with_header("Content-Length", "9999"))
        });
        route(&mut app, "GET", "/bad-header", |_| {
            Ok(WebResponse::text("x").with_header("X-Bad", "line\r\nbreak"))
        });
        route(&mut app, "GET", "/bad-status", |_| {
            Ok(WebResponse::text("x").with_status(42))
        });
        route(&mut app, "POST", "/broadcast", |event| {
            let value = json!({ "Message": event.data.get("message") });
            let sent = event.signals().send(value);
            let not_running = matches!(sent, Err(Error::NotRunning));
            Ok(WebResponse::json(json!({ "not_running": not_running })))
        });
        app
    }

    fn start_full() -> Running {
        let fixture = Fixture::new();
        let app = full_app(&fixture);
        serve(app, fixture, 4)
    }

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            let mut headers = self.headers.iter();
            let found = headers.find(|(k, _)| k.eq_ignore_ascii_case(name));
            found.map(|(_, v)| v.as_str())
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
        }
    }

    /// Sends `raw` as is and reads one response (its head, then `Content-Length` bytes).
    fn exchange(addr: SocketAddr, raw: &[u8]) -> Reply {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(raw).unwrap();
        read_reply(&mut stream, raw.starts_with(b"HEAD "))
    }

    fn read_reply(stream: &mut TcpStream, head_only: bool) -> Reply {
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            read_more(stream, &mut buf);
        };
        let head = String::from_utf8(buf[..head_end - 4].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| line.split_once(':').unwrap())
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut reply = Reply {
            status: status.parse().unwrap(),
            headers,
            body: Vec::new(),
        };
        let length: usize = reply.header("Content-Length").unwrap().parse().unwrap();
        let wanted = if head_only { 0 } else { length };
        while buf.len() < head_end + wanted {
            read_more(stream, &mut buf);
        }
        reply.body = buf[head_end..head_end + wanted].to_vec();
        reply
    }

    fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "connection closed early after {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }

    fn request(
        addr: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut raw = raw.into_bytes();
        raw.extend_from_slice(body);
        exchange(addr, &raw)
    }

    fn get(addr: SocketAddr, target: &str) -> Reply {
        request(addr, "GET", target, &[], b"")
    }

    fn post(addr: SocketAddr, target: &str, content_type: &str, body: &str) -> Reply {
        request(
            addr,
            "POST",
            target,
            &[("Content-Type", content_type)],
            body.as_bytes(),
        )
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
        let app = HttpApp::new(Signals::default());
        let server = serve(app, Fixture::new(), 1);
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
        let fixture = Fixture::new();
        let public = fixture.path("public");
        symlink(fixture.path("secret.txt"), public.join("link.txt")).unwrap();
        symlink(&fixture.dir, public.join("up")).unwrap();
        symlink(
            fixture.path("public2/other.txt"),
            public.join("sibling.txt"),
        )
        .unwrap();
        symlink(fixture.path("public2"), public.join("sibling")).unwrap();
        symlink(public.join("app.js"), public.join("alias.js")).unwrap();
        symlink("/etc/passwd", public.join("passwd")).unwrap();
        let app = full_app(&fixture);
        let server = serve(app, fixture, 2);
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
        let fixture = Fixture::new();
        let linked_root = fixture.path("public-link");
        #[cfg(unix)]
        std::os::unix::fs::symlink(fixture.path("public"), &linked_root).unwrap();
        #[cfg(not(unix))]
        let linked_root = fixture.path("public");
        let mut app = HttpApp::new(Signals::default());
        app.set_public(Assets::Folder(linked_root));
        let server = serve(app, fixture, 1);
        assert_eq!(get(server.addr, "/app.js").status, 200);
        assert_eq!(get(server.addr, "/../secret.txt").status, 404);
    }

    #[test]
    fn embedded_public_files_are_served() {
        static FILES: &[(&str, &[u8])] = &[("index.html", b"<p>built in</p>"), ("a.css", b"a{}")];
        let mut app = HttpApp::new(Signals::default());
        app.set_public(Assets::Embedded(FILES));
        app.set_views(Assets::Embedded(FILES));
        route(&mut app, "GET", "/v", |_| Ok(WebResponse::view("index")));
        let server = serve(app, Fixture::new(), 1);
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
        let reply = request(
            server.addr,
            "GET",
            "/ECHO?q=a+b&q=second&empty&x=%2F",
            &[("X-Test", "present")],
            b"",
        );
        assert_eq!(reply.status, 200);
        let seen = reply.json();
        assert_eq!(seen["path"], "/ECHO");
        assert_eq!(seen["q"], "a b");
        assert_eq!(
            seen["query"],
            json!([["q", "a b"], ["q", "second"], ["empty", ""], ["x", "/"]])
        );
        assert_eq!(seen["x_test"], "present");
        let remote: SocketAddr = seen["remote"].as_str().unwrap().parse().unwrap();
        assert!(remote.ip().is_loopback());
    }

    #[test]
    fn the_peer_header_is_believed_only_when_trusted_and_never_shown() {
        let peer = [(PEER_HEADER, "203.0.113.7:4567")];
        let untrusted = start_full();
        let seen = request(untrusted.addr, "GET", "/echo", &peer, b"").json();
        assert_eq!(seen["peer_header"], json!(null));
        assert_ne!(seen["remote"], "203.0.113.7:4567");

        let fixture = Fixture::new();
        let mut app = full_app(&fixture);
        app.set_trust_peer_header(true);
        let trusted = serve(app, fixture, 1);
        let seen = request(trusted.addr, "GET", "/echo", &peer, b"").json();
        assert_eq!(seen["peer_header"], json!(null));
        assert_eq!(seen["remote"], "203.0.113.7:4567");
        let spoofed = [
            (PEER_HEADER, "203.0.113.7:4567"),
            (PEER_HEADER, "10.0.0.1:1"),
        ];
        let seen = request(trusted.addr, "GET", "/echo", &spoofed, b"").json();
        assert_eq!(seen["remote"], "203.0.113.7:4567");
        let garbage = [(PEER_HEADER, "not an address")];
        let seen = request(trusted.addr, "GET", "/echo", &garbage, b"").json();
        let remote: SocketAddr = seen["remote"].as_str().unwrap().parse().unwrap();
        assert!(remote.ip().is_loopback());
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
        let fixture = Fixture::new();
        let mut app = full_app(&fixture);
        app.set_max_body(16);
        let server = serve(app, fixture, 2);
        let at_limit = post(server.addr, "/echo", "text/plain", "0123456789abcdef");
        assert_eq!(at_limit.status, 200);
        let over = post(server.addr, "/echo", "text/plain", "0123456789abcdefg");
        assert_eq!(over.status, 413);
        // Declared too long: answered at once, without waiting for the body.
        let raw = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n";
        assert_eq!(exchange(server.addr, raw.as_bytes()).status, 413);
        // Chunked, so no declared length: refused after reading 17 bytes.
        let chunked = "POST /echo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
                       Transfer-Encoding: chunked\r\n\r\n20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n";
        assert_eq!(exchange(server.addr, chunked.as_bytes()).status, 413);
        assert_eq!(get(server.addr, "/hello").status, 200);
    }

    #[test]
    fn head_is_answered_like_get_without_a_body() {
        let server = start_full();
        let file = request(server.addr, "HEAD", "/app.js", &[], b"");
        assert_eq!(file.status, 200);
        assert_eq!(file.header("Content-Length"), Some("18"));
        assert_eq!(
            file.header("Content-Type"),
            Some("text/javascript; charset=utf-8")
        );
        assert!(file.body.is_empty());
        let routed = request(server.addr, "HEAD", "/hello", &[], b"");
        assert_eq!(
            (routed.status, routed.header("Content-Length")),
            (200, Some("5"))
        );
    }

    #[test]
    fn handler_errors_and_panics_are_500_and_the_worker_carries_on() {
        let fixture = Fixture::new();
        let app = full_app(&fixture);
        let server = serve(app, fixture, 1);
        let failed = get(server.addr, "/fails");
        assert_eq!(failed.status, 500);
        assert_eq!(failed.text(), "invalid configuration: database down");
        for _ in 0..3 {
            let panicked = get(server.addr, "/panics");
            assert_eq!(panicked.status, 500);
            assert_eq!(panicked.text(), "Internal Server Error");
            assert_eq!(get(server.addr, "/hello").text(), "hello");
        }
    }

    #[test]
    fn statuses_and_headers_from_handlers_are_sent() {
        let server = start_full();
        let reply = get(server.addr, "/teapot");
        assert_eq!(reply.status, 418);
        assert_eq!(reply.header("X-Extra"), Some("yes"));
        assert_eq!(reply.header("Content-Length"), Some("10"));
        assert_eq!(reply.text(), "<b>tea</b>");
        assert_eq!(get(server.addr, "/bad-header").status, 500);
        assert_eq!(get(server.addr, "/bad-status").status, 500);
    }

    #[test]
    fn a_websocket_upgrade_is_400() {
        let server = start_full();
        let upgrade = [
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ];
        for target in ["/", "/hello", "/nowhere"] {
            let reply = request(server.addr, "GET", target, &upgrade, b"");
            assert_eq!(reply.status, 400, "{target}");
            assert_eq!(
                reply.text(),
                "this endpoint does not accept websocket connections"
            );
        }
    }

    #[test]
    fn signals_sent_from_a_route_need_a_running_server() {
        let server = start_full();
        let reply = post(
            server.addr,
            "/broadcast",
            "application/json",
            r#"{"message":"hi"}"#,
        );
        assert_eq!(reply.json(), json!({ "not_running": true }));
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
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        for _ in 0..3 {
            stream
                .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            assert_eq!(read_reply(&mut stream, false).text(), "hello");
        }
    }

    #[test]
    fn stopping_the_workers_is_prompt() {
        let mut server = start_full();
        assert_eq!(get(server.addr, "/hello").status, 200);
        let started = Instant::now();
        server.workers.take().unwrap().stop();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn worker_threads_are_named() {
        let app = Arc::new(HttpApp::new(Signals::default()));
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let workers = HttpWorkers::start(server, app, 3).unwrap();
        let names: Vec<_> = workers
            .threads
            .iter()
            .map(|t| t.thread().name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["sh-http-0", "sh-http-1", "sh-http-2"]);
        workers.stop();
    }

    #[test]
    fn routes_are_checked_when_added() {
        let mut app = HttpApp::new(Signals::default());
        let ok = |_: &WebEvent| Ok(WebResponse::text("ok"));
        app.add_route("get", "/x", Arc::new(ok)).unwrap();
        app.add_route("POST", "/x", Arc::new(ok)).unwrap();
        let again = app.add_route("GET", "/X", Arc::new(ok));
        assert!(
            matches!(again, Err(Error::DuplicateRoute(ref r)) if r == "GET /X"),
            "{again:?}"
        );
        let relative = app.add_route("GET", "x", Arc::new(ok));
        assert!(matches!(relative, Err(Error::InvalidConfig(_))));
        let bad_method = app.add_route("GE T", "/y", Arc::new(ok));
        assert!(matches!(bad_method, Err(Error::InvalidConfig(_))));
    }
}
