//! The smallest signal server: one Ws endpoint, no routes, so every message a client sends is
//! re-sent where it asked (everyone, a path, one client, or back to itself).
//!
//! ```sh
//! cargo run --release --example signal_server -- 127.0.0.1:8091
//! ```
//! It prints `listening on ws://ADDR` once ready (port 0 picks a free port) and stops on
//! Ctrl-C or end of standard input.

use signalhub::{Endpoint, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level = std::env::var("SIGNALHUB_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    simplelog::SimpleLogger::init(level, simplelog::Config::default())?;
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8091".to_owned());
    let mut server = Server::new();
    server.endpoint(Endpoint::ws(address))?;
    let handle = server.start()?;
    println!("listening on {}", handle.endpoints()[0].url());
    // Runs until killed (the bench scripts send SIGTERM) or standard input closes.
    if std::env::var_os("SIGNALHUB_STDIN_STOP").is_some() {
        std::io::stdin().read_line(&mut String::new())?;
        handle.shutdown();
    } else {
        handle.join();
    }
    Ok(())
}
