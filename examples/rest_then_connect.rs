//! Getting a WebSocket URL from a REST call first, then connecting to it (Pode's docs:
//! `Invoke-RestMethod`, then `Connect-PodeWebSocket -Url $response.url`).
//!
//! ```sh
//! cargo run --example rest_then_connect
//! ```
//!
//! Runs offline: it starts its own small signalhub server, with `GET /ws-url` answering
//! `{"url": "ws://127.0.0.1:PORT/feed"}` and a signal route on `/feed` that answers each
//! message. It asks for the URL with ureq, connects, sends three messages, prints the
//! replies and stops.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use signalhub::http::WebResponse;
use signalhub::outbound::{ConnectOptions, Connections, WsData};
use signalhub::{Endpoint, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The server: a REST endpoint that tells where the WebSocket is, and the WebSocket.
    let mut server = Server::new();
    server.endpoint(Endpoint::http("127.0.0.1:0").name("http"))?;
    server.endpoint(Endpoint::ws("127.0.0.1:0").name("ws"))?;
    let ws_url: Arc<OnceLock<String>> = Arc::default();
    let known = ws_url.clone();
    server.http_route("GET", "/ws-url", move |_| {
        Ok(match known.get() {
            Some(url) => WebResponse::json(json!({ "url": url })),
            None => WebResponse::status(503),
        })
    })?;
    server.route("/feed", |event| {
        // Sent back to the sender alone: it asked with "direct".
        event.send(json!({ "reply": event.data.message }))
    })?;
    let handle = server.start()?;
    let ws = handle.local_addr("ws").ok_or("no ws endpoint")?;
    let _ = ws_url.set(format!("ws://{ws}/feed"));
    let http = handle.local_addr("http").ok_or("no http endpoint")?;

    // The client: the URL from the REST call, then the connection.
    let body: Value = ureq::get(&format!("http://{http}/ws-url"))
        .call()?
        .body_mut()
        .read_json()?;
    let url = body["url"].as_str().ok_or("no url in the answer")?;
    println!("GET /ws-url said {url}");

    let clients = Connections::new();
    let (tx, replies) = mpsc::channel();
    let tx = Mutex::new(tx);
    clients.connect("feed", url, ConnectOptions::new(), move |event| {
        if let WsData::Json(value) = &event.data {
            let _ = tx.lock().map(|tx| tx.send(value.clone()));
        }
        Ok(())
    })?;
    for n in 1..=3 {
        clients.send("feed", json!({ "message": { "n": n }, "direct": true }))?;
        let reply = replies.recv_timeout(Duration::from_secs(5))?;
        println!("sent {{\"n\":{n}}}, got {reply}");
    }

    clients.shutdown();
    handle.shutdown();
    Ok(())
}
