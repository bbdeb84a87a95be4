//! The echo server `make conformance` runs the Autobahn test suite against (kosoku's
//! `fuzzingclient` mode): a Ws endpoint on the project's own server, whose raw message hook
//! ([`Server::on_message`]) sends every message back to its sender as it came, text as text
//! and binary as binary, with no JSON protocol in the way.
//!
//! ```sh
//! cargo run --release --example autobahn_server -- 127.0.0.1:9001 [--compression]
//! ```
//! With `--compression` it accepts permessage-deflate (the Autobahn 12.* and 13.* cases).
//! It prints `listening on ws://ADDR` once ready (port 0 picks a free port) and runs until
//! killed, or until standard input closes when `SIGNALHUB_STDIN_STOP` is set.
//! `SIGNALHUB_LOG=debug` shows why connections were failed.

use signalhub::{Endpoint, RawMessage, Server, ServerConfig};

const USAGE: &str = "usage: autobahn_server ADDR [--compression]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level = std::env::var("SIGNALHUB_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Error);
    simplelog::SimpleLogger::init(level, simplelog::Config::default())?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (address, compression) = match &args[..] {
        [address] => (address, false),
        [address, flag] if flag == "--compression" => (address, true),
        _ => return Err(USAGE.into()),
    };

    let mut config = ServerConfig::default();
    // Autobahn's 9.* cases send messages of up to 16 MiB (the default limit, kept as it is);
    // echoing one must not count as a client too slow to read.
    config.max_message_size = 16 << 20;
    config.max_queue_bytes = 64 << 20;
    // No pings of our own: they would show up in the cases' expected frame sequences.
    config.ping_interval = None;
    config.idle_timeout = None;
    config.compression = compression;
    let mut server = Server::with_config(config);
    server.endpoint(Endpoint::ws(address.as_str()))?;
    server.on_message("*", |event| match event.message {
        RawMessage::Text(text) => event.reply_text(text),
        RawMessage::Binary(bytes) => event.reply_binary(bytes),
    });
    let handle = server.start()?;
    println!("listening on {}", handle.endpoints()[0].url());
    if std::env::var_os("SIGNALHUB_STDIN_STOP").is_some() {
        std::io::stdin().read_line(&mut String::new())?;
        handle.shutdown();
    } else {
        handle.join()?;
    }
    Ok(())
}
