//! Pode's `[date]` signal route (from the Web Sockets page): on `/messages`, a client that
//! sends `[date]` gets the server's local date and time back, as `[datetime]::Now` prints
//! them; anything else is passed on where the client asked (its `path`, its `clientId`, or
//! everyone). Other paths re-send automatically.
//!
//! ```sh
//! cargo run --example date_route -- 127.0.0.1:8091
//! # then, from any WebSocket client connected to ws://127.0.0.1:8091/messages:
//! #   {"message": "[date]"}     -> 11/23/2026 4:20:00 PM
//! ```

use signalhub::{Endpoint, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default())?;
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8091".to_owned());
    let mut server = Server::new();
    server.endpoint(Endpoint::ws(address))?;
    server.route("/messages", |event| {
        let mut message = event.data.message.clone();
        if message
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("[date]"))
        {
            message = pode_now().into();
        }
        // With no options, path and clientId default to the event's own, as in the seed.
        event.send(message)
    })?;
    let handle = server.start()?;
    println!("listening on {}/messages", handle.endpoints()[0].url());
    handle.join()?;
    Ok(())
}

/// Now, in this machine's time zone, as Pode's `[datetime]::Now.ToString()` writes it with
/// the default en-US culture (`M/d/yyyy h:mm:ss tt`): `12/4/2026 9:30:05 PM`.
fn pode_now() -> String {
    let now = jiff::Zoned::now();
    now.strftime("%-m/%-d/%Y %-I:%M:%S %p").to_string()
}
