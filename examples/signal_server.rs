//! The smallest signal server: one Ws (or Wss) endpoint, no routes, so every message a client
//! sends is re-sent where it asked (everyone, a path, one client, or back to itself).
//!
//! ```sh
//! cargo run --release --example signal_server -- 127.0.0.1:8091
//! cargo run --release --example signal_server -- 127.0.0.1:8443 --tls cert.pem key.pem
//! ```
//! It prints `listening on ws://ADDR` (`wss://` with `--tls`, a PEM chain and key) once ready
//! (port 0 picks a free port) and stops on Ctrl-C or end of standard input.

use signalhub::tls::Certificate;
use signalhub::{Endpoint, Server};

const USAGE: &str = "usage: signal_server [ADDR] [--tls CERT.pem KEY.pem]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level = std::env::var("SIGNALHUB_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Warn);
    simplelog::SimpleLogger::init(level, simplelog::Config::default())?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let endpoint = match &args[..] {
        [] => Endpoint::ws("127.0.0.1:8091"),
        [address] => Endpoint::ws(address),
        [address, flag, cert, key] if flag == "--tls" => {
            Endpoint::wss(address, Certificate::pem(cert, key))
        }
        _ => return Err(USAGE.into()),
    };
    let mut server = Server::new();
    server.endpoint(endpoint)?;
    let handle = server.start()?;
    println!("listening on {}", handle.endpoints()[0].url());
    // Runs until killed (the bench scripts send SIGTERM) or standard input closes.
    if std::env::var_os("SIGNALHUB_STDIN_STOP").is_some() {
        std::io::stdin().read_line(&mut String::new())?;
        handle.shutdown();
    } else {
        handle.join()?;
    }
    Ok(())
}
