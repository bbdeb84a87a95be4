//! The HTTP application: routes, views and public files, and answering one request.

use std::io::Cursor;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tiny_http::{Header, Request, Response};

use super::body::{self, BodyError};
use super::files::{self, Assets};
use super::{Body, HttpHandler, WebEvent, WebResponse, DEFAULT_MAX_BODY, PEER_HEADER};
use crate::server::handshake::split_target;
use crate::{Error, Result, Signals};

struct Route {
    method: String,
    path: String,
    handler: Arc<HttpHandler>,
}

/// What a request's method and path lead to.
enum Lookup<'a> {
    Route(&'a Route),
    /// The path has routes, but not for this method: these are the methods it has.
    OtherMethods(Vec<&'a str>),
    Nothing,
}

/// Routes, views and public files, answering requests one at a time from any number of
/// threads.
pub(crate) struct HttpApp {
    routes: Vec<Route>,
    views: Option<Assets>,
    public: Option<Assets>,
    signals: Signals,
    max_body: usize,
    trust_peer_header: bool,
}

impl HttpApp {
    /// An app with no routes, views or public files; handlers get `signals`.
    pub(crate) fn new(signals: Signals) -> HttpApp {
        HttpApp {
            routes: Vec::new(),
            views: None,
            public: None,
            signals,
            max_body: DEFAULT_MAX_BODY,
            trust_peer_header: false,
        }
    }

    /// Adds a route. The method is case-insensitive and must be an HTTP token; the path must
    /// start with `/` and is matched exactly, ignoring case. The same method and path twice is
    /// [`Error::DuplicateRoute`].
    pub(crate) fn add_route(
        &mut self,
        method: &str,
        path: &str,
        handler: Arc<HttpHandler>,
    ) -> Result<()> {
        let method = method.to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(is_token_byte) {
            return Err(Error::InvalidConfig(format!("bad http method {method:?}")));
        }
        if !path.starts_with('/') {
            return Err(Error::InvalidConfig(format!(
                "http route path {path:?} must start with '/'"
            )));
        }
        let taken = |r: &Route| r.method == method && r.path.eq_ignore_ascii_case(path);
        if self.routes.iter().any(taken) {
            return Err(Error::DuplicateRoute(format!("{method} {path}")));
        }
        self.routes.push(Route {
            method,
            path: path.to_owned(),
            handler,
        });
        Ok(())
    }

    /// Where [`WebResponse::view`] finds views.
    pub(crate) fn set_views(&mut self, assets: Assets) {
        self.views = Some(assets);
    }

    /// What `GET` and `HEAD` serve when no route matches.
    pub(crate) fn set_public(&mut self, assets: Assets) {
        self.public = Some(assets);
    }

    /// The largest request body a route accepts; longer ones get `413`.
    pub(crate) fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Whether to take the peer's address from the `X-Signalhub-Peer` header (only for
    /// requests replayed by the shared-port front door). Either way the header is not shown to
    /// handlers.
    pub(crate) fn set_trust_peer_header(&mut self, on: bool) {
        self.trust_peer_header = on;
    }

    /// Answers one request completely. Never panics on peer input; a handler that panics gets
    /// the client a `500` and is logged.
    pub(crate) fn handle(&self, mut request: Request) {
        let started = Instant::now();
        let method = request.method().as_str().to_ascii_uppercase();
        let url = request.url().to_owned();
        let reply = self.answer(&mut request, &method);
        let (status, response) = self.finish(reply);
        if let Err(e) = request.respond(response) {
            log::debug!("{method} {url}: cannot send the response: {e}");
        }
        log::debug!("{method} {url} -> {status} in {:?}", started.elapsed());
    }

    fn answer(&self, request: &mut Request, method: &str) -> WebResponse {
        let Some((path, query)) = split_target(request.url()) else {
            return WebResponse::text("bad request target").with_status(400);
        };
        if asks_for_websocket(request) {
            return WebResponse::text("this endpoint does not accept websocket connections")
                .with_status(400);
        }
        match self.lookup(method, &path) {
            Lookup::Route(route) => {
                let target = Target {
                    method,
                    path,
                    query,
                };
                self.run(route, request, target)
            }
            Lookup::OtherMethods(allow) => {
                WebResponse::status(405).with_header("Allow", allow.join(", "))
            }
            Lookup::Nothing if method == "GET" || method == "HEAD" => self.public_file(&path),
            Lookup::Nothing => WebResponse::status(404),
        }
    }

    /// The route for `method` on `path`; `HEAD` falls back to `GET`.
    fn lookup(&self, method: &str, path: &str) -> Lookup<'_> {
        let on_path: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| r.path.eq_ignore_ascii_case(path))
            .collect();
        let with = |m: &str| on_path.iter().copied().find(|r| r.method == m);
        let found = with(method).or_else(|| (method == "HEAD").then(|| with("GET")).flatten());
        match found {
            Some(route) => Lookup::Route(route),
            None if on_path.is_empty() => Lookup::Nothing,
            None => Lookup::OtherMethods(allowed_methods(&on_path)),
        }
    }

    fn public_file(&self, path: &str) -> WebResponse {
        let asset = self
            .public
            .as_ref()
            .and_then(|a| files::public_file(a, path));
        match asset {
            Some(asset) => WebResponse::bytes(asset.bytes, asset.content_type)
                .with_header("X-Content-Type-Options", "nosniff"),
            None => WebResponse::status(404),
        }
    }

    fn run(&self, route: &Route, request: &mut Request, target: Target<'_>) -> WebResponse {
        // Checked before touching the body, so no `100 Continue` goes out for it.
        if request
            .body_length()
            .is_some_and(|length| length > self.max_body)
        {
            return WebResponse::status(413);
        }
        let data = body::read_limited(request.as_reader(), self.max_body)
            .and_then(|bytes| body::parse(header(request, "Content-Type"), &bytes));
        let data = match data {
            Ok(data) => data,
            Err(BodyError::TooLarge) => return WebResponse::status(413),
            Err(BodyError::Invalid(reason)) => {
                log::debug!("{} {}: {reason}", target.method, target.path);
                return WebResponse::text(reason).with_status(400);
            }
        };
        let (headers, remote_addr) = self.headers_and_peer(request);
        let event = WebEvent {
            method: target.method.to_owned(),
            path: target.path,
            query: target.query,
            headers,
            data,
            remote_addr,
            timestamp: SystemTime::now(),
            signals: self.signals.clone(),
        };
        call(route, &event)
    }

    /// The request's headers without `X-Signalhub-Peer`, and the peer's address (from the
    /// first such header when trusted and valid, else the socket's).
    fn headers_and_peer(&self, request: &Request) -> (Vec<(String, String)>, Option<SocketAddr>) {
        let mut peer_header = None;
        let mut headers = Vec::with_capacity(request.headers().len());
        for h in request.headers() {
            let (name, value) = (h.field.as_str().as_str(), h.value.as_str());
            if name.eq_ignore_ascii_case(PEER_HEADER) {
                // The front door puts its own first, before any the client sent.
                peer_header = peer_header.or(Some(value));
            } else {
                headers.push((name.to_owned(), value.to_owned()));
            }
        }
        let own = request.remote_addr().copied();
        let remote_addr = match peer_header {
            Some(value) if self.trust_peer_header => value.trim().parse().ok().or(own),
            _ => own,
        };
        (headers, remote_addr)
    }

    /// Turns a reply into what tiny_http sends, resolving a view. Returns the final status.
    fn finish(&self, reply: WebResponse) -> (u16, Response<Cursor<Vec<u8>>>) {
        let reply = match reply.body {
            Body::View(name) => match files::view(self.views.as_ref(), &name) {
                Ok(asset) => WebResponse {
                    body: Body::Bytes(asset.bytes, asset.content_type.into()),
                    ..reply
                },
                Err(reason) => {
                    log::error!("{reason}");
                    WebResponse::text(reason).with_status(500)
                }
            },
            body @ Body::Bytes(..) => WebResponse { body, ..reply },
        };
        let status = reply.status;
        match to_tiny(reply) {
            Ok(response) => (status, response),
            Err(reason) => {
                log::error!("cannot send a handler's response: {reason}");
                let fallback = Response::from_data("Internal Server Error")
                    .with_status_code(500)
                    .with_chunked_threshold(usize::MAX);
                (500, fallback)
            }
        }
    }
}

/// The decoded method, path and query of a request.
struct Target<'a> {
    method: &'a str,
    path: String,
    query: Vec<(String, String)>,
}

/// Runs a handler: its error becomes a `500` with the error's text, its panic a `500`.
fn call(route: &Route, event: &WebEvent) -> WebResponse {
    match catch_unwind(AssertUnwindSafe(|| (route.handler)(event))) {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            log::error!("http route {} {}: {e}", route.method, route.path);
            WebResponse::text(e.to_string()).with_status(500)
        }
        Err(_) => {
            log::error!("http route {} {} panicked", route.method, route.path);
            WebResponse::status(500)
        }
    }
}

fn to_tiny(reply: WebResponse) -> std::result::Result<Response<Cursor<Vec<u8>>>, String> {
    if !(200..=599).contains(&reply.status) {
        return Err(format!("status {} is not a final status", reply.status));
    }
    let Body::Bytes(bytes, content_type) = reply.body else {
        return Err("a view was not resolved".into());
    };
    // These statuses have no body; tiny_http would still count it in `Content-Length`.
    let bytes = match reply.status {
        204 | 304 => Vec::new(),
        _ => bytes,
    };
    let has = |name: &str| {
        reply
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut response = Response::from_data(bytes)
        .with_status_code(reply.status)
        .with_chunked_threshold(usize::MAX)
        .with_header(make_header("Content-Type", &content_type)?);
    if !has("Server") {
        response.add_header(make_header("Server", "signalhub")?);
    }
    for (name, value) in &reply.headers {
        let framing = ["Content-Length", "Transfer-Encoding"];
        if !framing.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            response.add_header(make_header(name, value)?);
        }
    }
    Ok(response)
}

fn make_header(name: &str, value: &str) -> std::result::Result<Header, String> {
    let valid_name = !name.is_empty() && name.bytes().all(is_token_byte);
    let valid_value = value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    if !valid_name || !valid_value {
        return Err(format!("invalid header {name:?}: {value:?}"));
    }
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .map_err(|()| format!("invalid header {name:?}"))
}

/// `tchar` from RFC 9110.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn allowed_methods<'a>(routes: &[&'a Route]) -> Vec<&'a str> {
    let mut methods: Vec<&str> = routes.iter().map(|r| r.method.as_str()).collect();
    if methods.contains(&"GET") && !methods.contains(&"HEAD") {
        methods.push("HEAD");
    }
    methods.sort_unstable();
    methods
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn asks_for_websocket(request: &Request) -> bool {
    header(request, "Upgrade").is_some_and(|value| {
        value
            .split(',')
            .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
    })
}
