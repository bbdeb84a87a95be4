//! Pode's web-signal example (the Web Sockets page's "Full Example"): a page where whatever
//! one browser broadcasts shows up in every open browser.
//!
//! ```sh
//! cargo run --example web_signal                       # http on 8090, ws on 8091 (seed 000)
//! cargo run --example web_signal -- --http 127.0.0.1:8091 --ws 127.0.0.1:8091   # one port (seed 001)
//! # then open the printed URL in two browsers and chat; or, from a shell:
//! curl -H 'Content-Type: application/json' -d '{"message":"hi"}' http://127.0.0.1:8090/broadcast
//! ```
//!
//! - `GET /`: the page (`web_signal/views/index.html`, with `web_signal/public/script.js`).
//! - `GET /ws-config`: where the page's WebSocket goes, `{"port": 8091, "path": "/messages"}`;
//!   `"port": null` means "the page's own origin" (shared port).
//! - `POST /broadcast`: sends `{"Message": <the body's message>}` to every client (seed 000);
//!   optional `path` and `clientId` in the body narrow it down.
//! - The `[date]` signal route on `/messages`: `[date]` (any case) is answered with the
//!   server's local date and time as Pode's `[datetime]::Now` prints them
//!   (`12/4/2026 9:30:05 PM`); anything else is passed on where the client asked.
//!
//! Addresses: `--http ADDR` / `--ws ADDR`, else `SIGNALHUB_HTTP` / `SIGNALHUB_WS`, else
//! `127.0.0.1:8090` / `127.0.0.1:8091` (`*:PORT` or `:PORT` listens on every interface). The same
//! address for both shares one port (port 0 included). `--tls CERT.pem KEY.pem` serves the
//! page over Https and the WebSockets over TLS (Wss), on one port or two as above; the page
//! then connects with `wss:`. Runs until killed.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use signalhub::http::{Assets, WebResponse};
use signalhub::tls::Certificate;
use signalhub::{ClientId, Endpoint, SendOptions, Server};

const USAGE: &str = "usage: web_signal [--http ADDR] [--ws ADDR] [--tls CERT.pem KEY.pem]
  --http ADDR  the page and HTTP routes (default $SIGNALHUB_HTTP or 127.0.0.1:8090)
  --ws ADDR    WebSocket connections (default $SIGNALHUB_WS or 127.0.0.1:8091)
  --tls CERT KEY  the page (https) and WebSockets (wss) over TLS with this PEM chain and key
  The same ADDR for both serves them on one port.";

/// The WebSocket path the page connects to (where the `[date]` route is).
const WS_PATH: &str = "/messages";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default())?;
    let (http, ws, tls) = match addresses(std::env::args().skip(1)) {
        Ok(addresses) => addresses,
        Err(message) => {
            eprintln!("{message}\n{USAGE}");
            std::process::exit(2);
        }
    };

    let mut server = Server::new();
    // permessage-deflate for the browsers (they all offer it), where this build has it.
    server.config_mut().compression = cfg!(feature = "compression");
    let (page_endpoint, ws_endpoint) = match &tls {
        Some((cert, key)) => {
            let certificate = Certificate::pem(cert, key);
            (
                Endpoint::https(http.as_str(), certificate.clone()),
                Endpoint::wss(ws.as_str(), certificate),
            )
        }
        None => (Endpoint::http(http.as_str()), Endpoint::ws(ws.as_str())),
    };
    server.endpoint(page_endpoint.name("http"))?;
    let mut ws_endpoint = ws_endpoint.name("ws");
    if ws == http {
        ws_endpoint = ws_endpoint.share_port_with("http");
    }
    server.endpoint(ws_endpoint)?;

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/web_signal");
    server.views(Assets::Folder(examples.join("views")));
    server.public(Assets::Folder(examples.join("public")));

    server.http_route("GET", "/", |_| Ok(WebResponse::view("index")))?;

    // Known only once the ports are bound; until then the page is told to wait (503).
    let ws_config: Arc<OnceLock<Value>> = Arc::default();
    let config = ws_config.clone();
    server.http_route("GET", "/ws-config", move |_| {
        Ok(match config.get() {
            Some(value) => WebResponse::json(value).with_header("Cache-Control", "no-store"),
            None => WebResponse::status(503),
        })
    })?;

    // Seed 000: Send-PodeSignal -Value @{ Message = $WebEvent.Data['message'] }
    server.http_route("POST", "/broadcast", |event| {
        let message = event.data.get("message").unwrap_or(Value::Null);
        if message.is_null() || message == "" {
            return Ok(bad_request("the body needs a message"));
        }
        let mut options = SendOptions::new();
        match event.data.get("path") {
            None | Some(Value::Null) => {}
            Some(Value::String(path)) => options = options.path(path),
            Some(_) => return Ok(bad_request("path must be a string")),
        }
        match event.data.get("clientId") {
            None | Some(Value::Null) => {}
            Some(Value::String(id)) => match id.parse::<ClientId>() {
                Ok(id) => options = options.client_id(id),
                Err(_) => return Ok(bad_request("clientId is not a client id")),
            },
            Some(_) => return Ok(bad_request("clientId must be a string")),
        }
        event
            .signals()
            .send_with(json!({ "Message": message }), &options)?;
        Ok(WebResponse::json(json!({ "sent": true })))
    })?;

    // The seed's Add-PodeSignalRoute: [date] gets the server's time, the rest is passed on.
    server.route(WS_PATH, |event| {
        let mut message = event.data.message.clone();
        if message
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("[date]"))
        {
            message = pode_now().into();
        }
        // No options: path and clientId default to the event's, as in the seed.
        event.send(message)
    })?;

    // A schedule: every 10 seconds, the server's time to the clients on /time.
    server.schedule("time", "*/10 * * * * *", |event| {
        let time = httpdate::fmt_http_date(event.scheduled_for);
        let to_time = SendOptions::new().path("/time");
        event.signals().send_with(json!({ "Time": time }), &to_time)
    })?;

    let handle = server.start()?;
    let http_addr = handle.local_addr("http").ok_or("no http endpoint")?;
    let ws_addr = handle.local_addr("ws").ok_or("no ws endpoint")?;
    let shared = http_addr == ws_addr;
    let port = if shared {
        Value::Null
    } else {
        ws_addr.port().into()
    };
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let _ = ws_config.set(json!({ "port": port, "path": WS_PATH, "scheme": scheme }));

    // The server has logged a `listening on URL` line per endpoint.
    let page = handle
        .endpoints()
        .iter()
        .find(|e| e.name == "http")
        .map(|e| e.url())
        .ok_or("no http endpoint")?;
    println!("open {page}/ in two browsers and chat");
    handle.join()?;
    Ok(())
}

fn bad_request(reason: &str) -> WebResponse {
    WebResponse::json(json!({ "sent": false, "error": reason })).with_status(400)
}

/// The Http and Ws addresses: flags first, then the environment, then seed 000's ports.
/// The Http and Ws addresses, and the TLS certificate and key files with `--tls`.
type Args = (String, String, Option<(String, String)>);

fn addresses(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut http = std::env::var("SIGNALHUB_HTTP").ok();
    let mut ws = std::env::var("SIGNALHUB_WS").ok();
    let mut tls = None;
    while let Some(arg) = args.next() {
        if arg == "--tls" {
            let mut file = || args.next().ok_or("--tls needs CERT.pem and KEY.pem");
            tls = Some((file()?, file()?));
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let slot = match flag.as_str() {
            "--http" => &mut http,
            "--ws" => &mut ws,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        };
        let value = inline.or_else(|| args.next());
        *slot = Some(value.ok_or_else(|| format!("{flag} needs an address (host:port)"))?);
    }
    Ok((
        every_interface(http.unwrap_or_else(|| "127.0.0.1:8090".to_owned())),
        every_interface(ws.unwrap_or_else(|| "127.0.0.1:8091".to_owned())),
        tls,
    ))
}

/// `:PORT` (no host) as `*:PORT`: every interface.
fn every_interface(address: String) -> String {
    match address.strip_prefix(':') {
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            format!("*{address}")
        }
        _ => address,
    }
}

/// Now, in this machine's time zone, as Pode's `[datetime]::Now.ToString()` writes it with
/// the default en-US culture (`M/d/yyyy h:mm:ss tt`): `12/4/2026 9:30:05 PM`.
fn pode_now() -> String {
    let now = jiff::Zoned::now();
    now.strftime("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}
