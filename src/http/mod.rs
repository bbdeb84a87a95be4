//! The HTTP side: routes (Pode's `Add-PodeRoute`), views and public files, answered on a
//! fixed pool of worker threads.
//!
//! The server's front door (`crate::server::door`) owns every HTTP connection: it reads each
//! request whole and sends each reply without blocking; the workers only ever see complete
//! requests and hand back replies (heads written by tiny_http, bodies the door streams).
//!
//! Before routing, a state-changing request from another site's page is refused with `403`
//! (see `cross_site`). Then a request is answered in this order: a route for its path (exact, case-insensitive) and
//! method runs its handler; a path that has routes, but not for this method, is `405` with an
//! `Allow` header; otherwise `GET` and `HEAD` look for a public file (`/` is `index.html`);
//! anything else is `404`. `HEAD` is answered like `GET`, without the body (a `GET` route
//! answers `HEAD` too, and its handler sees the method `HEAD`).

mod body;
mod cross_site;
mod files;
mod reply;
mod router;
mod token;
mod workers;

use std::net::SocketAddr;
use std::time::SystemTime;

use serde::Serialize;

use crate::{Error, Pairs, Result, Signals};

pub use body::WebData;
pub use files::Assets;
pub(crate) use reply::{HttpRequest, Reply, ReplyBody};
pub(crate) use router::HttpApp;
pub use token::ApiToken;
pub(crate) use workers::{HttpWorkers, Job, ReplyTo};

/// An HTTP route's handler: gets the request, answers with a [`WebResponse`]. An `Err` is
/// answered with `500` and the error's text; a panic with `500` (and is logged).
pub(crate) type HttpHandler = dyn Fn(&WebEvent) -> Result<WebResponse> + Send + Sync;

/// One HTTP request, as a route's handler sees it: Pode's `$WebEvent`.
#[derive(Debug, Clone)]
pub struct WebEvent {
    /// The method, uppercase (`"POST"`).
    pub method: String,
    /// The path, percent-decoded, without the query string (case as sent).
    pub path: String,
    /// The query string's parameters, decoded (`+` is a space), in order.
    pub query: Pairs,
    /// The request's headers, in order, names as sent.
    pub headers: Pairs,
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
        self.headers.get_ignore_case(name)
    }

    /// The first query parameter with this name (case-sensitive, as in URLs).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name)
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
/// use signalhub::http::WebResponse;
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
