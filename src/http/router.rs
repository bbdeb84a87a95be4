//! The HTTP application: routes, views and public files, and answering one request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::body::{self, BodyError};
use super::cross_site::is_cross_site;
use super::files::{self, AssetBody, Assets};
use super::reply::{self, is_token_byte, HttpRequest, Parts, Reply, ReplyBody};
use super::{Body, HttpHandler, WebEvent, WebResponse};
use crate::protocol::url::split_target;
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

/// What answers a request: a handler's (or the app's own) response, or a public file.
enum Answer {
    Web(WebResponse),
    File(files::Asset),
}

/// Routes, views and public files, answering requests one at a time from any number of
/// threads.
pub(crate) struct HttpApp {
    routes: Vec<Route>,
    views: Option<Assets>,
    public: Option<Assets>,
    signals: Signals,
    allowed_origins: Option<Vec<String>>,
}

impl HttpApp {
    /// An app with no routes, views or public files; handlers get `signals`.
    pub(crate) fn new(signals: Signals) -> HttpApp {
        HttpApp {
            routes: Vec::new(),
            views: None,
            public: None,
            signals,
            allowed_origins: None,
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

    /// Origins besides a request's own that may send state-changing requests (the server's
    /// `allowed_origins`).
    pub(crate) fn set_allowed_origins(&mut self, origins: Option<Vec<String>>) {
        self.allowed_origins = origins;
    }

    /// Answers one complete request. Never panics on peer input; a handler that panics gets
    /// the client a `500` and is logged.
    pub(crate) fn respond(&self, request: HttpRequest) -> Reply {
        let started = Instant::now();
        let method = request.method.to_ascii_uppercase();
        let answer = self.answer(&request, &method);
        let reply = self.render(answer, &request, method == "HEAD");
        log::debug!(
            "{method} {} from {} -> {} in {:?}",
            request.target,
            request.peer,
            reply.status,
            started.elapsed()
        );
        reply
    }

    /// The reply for a failure of the app itself (a bug): `500`, and the connection closes.
    pub(crate) fn internal_error() -> Reply {
        Reply {
            status: 500,
            head: b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_vec(),
            body: ReplyBody::None,
            keep_alive: false,
        }
    }

    fn answer(&self, request: &HttpRequest, method: &str) -> Answer {
        let Some((path, query)) = split_target(&request.target) else {
            return Answer::Web(WebResponse::text("bad request target").with_status(400));
        };
        if is_cross_site(request, method, self.allowed_origins.as_deref()) {
            log::debug!("{method} {path} from {}: cross-site, refused", request.peer);
            return Answer::Web(WebResponse::text("cross-site request refused").with_status(403));
        }
        match self.lookup(method, &path) {
            Lookup::Route(route) => Answer::Web(self.run(route, request, method, path, query)),
            Lookup::OtherMethods(allow) => {
                Answer::Web(WebResponse::status(405).with_header("Allow", allow.join(", ")))
            }
            Lookup::Nothing if method == "GET" || method == "HEAD" => {
                let asset = (self.public.as_ref()).and_then(|a| files::public_file(a, &path));
                match asset {
                    Some(asset) => Answer::File(asset),
                    None => Answer::Web(WebResponse::status(404)),
                }
            }
            Lookup::Nothing => Answer::Web(WebResponse::status(404)),
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

    fn run(
        &self,
        route: &Route,
        request: &HttpRequest,
        method: &str,
        path: String,
        query: Vec<(String, String)>,
    ) -> WebResponse {
        let data = match body::parse(request.header("Content-Type"), &request.body) {
            Ok(data) => data,
            Err(BodyError::Invalid(reason)) => {
                log::debug!("{method} {path}: {reason}");
                return WebResponse::text(reason).with_status(400);
            }
        };
        let event = WebEvent {
            method: method.to_owned(),
            path,
            query: query.into_iter().collect(),
            headers: request.headers.iter().map(|(k, v)| (k, v)).collect(),
            data,
            remote_addr: Some(request.peer),
            timestamp: SystemTime::now(),
            signals: self.signals.clone(),
        };
        call(route, &event)
    }

    /// Turns an answer into what the door sends, resolving a view.
    fn render(&self, answer: Answer, request: &HttpRequest, head_only: bool) -> Reply {
        let parts = match answer {
            Answer::File(asset) => file_parts(asset),
            Answer::Web(response) => self.web_parts(response),
        };
        match reply::render(parts, request, head_only) {
            Ok(reply) => reply,
            Err(reason) => {
                log::error!("cannot send a handler's response: {reason}");
                let fallback = self.web_parts(WebResponse::status(500));
                reply::render(fallback, request, head_only)
                    .unwrap_or_else(|_| Self::internal_error())
            }
        }
    }

    fn web_parts(&self, response: WebResponse) -> Parts {
        let WebResponse {
            status,
            body,
            headers,
        } = response;
        let (bytes, content_type) = match body {
            Body::Bytes(bytes, content_type) => (bytes, content_type),
            Body::View(name) => match files::view(self.views.as_ref(), &name) {
                Ok((bytes, content_type)) => (bytes, content_type.to_owned()),
                Err(reason) => {
                    log::error!("{reason}");
                    return self.web_parts(WebResponse::text(reason).with_status(500));
                }
            },
        };
        // A handler's Content-Type header replaces the default one.
        let custom_type = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Type"))
            .map(|(_, v)| v.clone());
        let headers = headers
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("Content-Type"))
            .collect();
        Parts {
            status,
            content_type: custom_type.unwrap_or(content_type),
            headers,
            length: bytes.len() as u64,
            body: ReplyBody::Bytes(bytes),
        }
    }
}

/// A public file's reply: streamed from disk, or from the program's own bytes.
fn file_parts(asset: files::Asset) -> Parts {
    let (body, length) = match asset.body {
        AssetBody::Static(bytes) => (ReplyBody::Static(bytes), bytes.len() as u64),
        AssetBody::File(file, length) => (ReplyBody::File(file), length),
    };
    Parts {
        status: 200,
        content_type: asset.content_type.to_owned(),
        headers: vec![("X-Content-Type-Options".into(), "nosniff".into())],
        body,
        length,
    }
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

fn allowed_methods<'a>(routes: &[&'a Route]) -> Vec<&'a str> {
    let mut methods: Vec<&str> = routes.iter().map(|r| r.method.as_str()).collect();
    if methods.contains(&"GET") && !methods.contains(&"HEAD") {
        methods.push("HEAD");
    }
    methods.sort_unstable();
    methods
}
