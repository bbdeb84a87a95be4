//! An outbound client (Pode's `Connect-PodeWebSocket`): connects to the web-signal example's
//! WebSocket and echoes every message it hears back to everyone, as `echo: <message>`.
//!
//! ```sh
//! cargo run --features schedules --example web_signal   # one terminal: page 8090, ws 8091
//! cargo run --example client              # another one (or: -- ws://HOST:PORT/PATH)
//! # chat in http://127.0.0.1:8090/ in a browser and watch the echoes arrive
//! ```
//!
//! It reconnects when the server restarts (a few tries, with backoff) and ends when it
//! gives up, or on Ctrl-C.

use std::sync::mpsc;
use std::sync::Mutex;

use serde_json::json;
use signalhub::outbound::{ConnectOptions, Connections, ReconnectPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default())?;
    let url = (std::env::args().nth(1)).unwrap_or_else(|| "ws://127.0.0.1:8091/messages".into());

    let (ended, end) = mpsc::channel();
    let ended = Mutex::new(ended);
    let options = ConnectOptions::new()
        // The web-signal server sends raw text as well as JSON: take everything as text.
        .content_type("text/plain")
        .reconnect(ReconnectPolicy::default())
        .on_connect(|event| println!("connected to {}", event.url))
        .on_disconnect(move |event| {
            let again = if event.reconnecting {
                " (reconnecting)"
            } else {
                ""
            };
            println!("disconnected: {}{again}", event.reason);
            if !event.reconnecting {
                let _ = ended.lock().map(|tx| tx.send(()));
            }
        });

    let clients = Connections::new();
    clients.connect("web-signal", &url, options, |event| {
        let text = event.text().unwrap_or_default();
        println!("received: {text}");
        if text.starts_with("echo: ") {
            return Ok(()); // our own echo, back from the server: do not echo it again
        }
        // The server re-sends {"message": ...} to every client, us included.
        event.reply(json!({ "message": format!("echo: {text}") }))
    })?;

    let _ = end.recv();
    clients.shutdown();
    Ok(())
}
