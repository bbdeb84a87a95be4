//! Pode's `[date]` signal route (from the Web Sockets page): on `/messages`, a client that
//! sends `[date]` gets the server's date and time back; anything else is passed on where the
//! client asked (its `path`, its `clientId`, or everyone). Other paths re-send automatically.
//!
//! ```sh
//! cargo run --example date_route -- 127.0.0.1:8091
//! # then, from any WebSocket client connected to ws://127.0.0.1:8091/messages:
//! #   {"message": "[date]"}     -> 2026-11-23 16:20:00 UTC
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

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
            message = now_utc().into();
        }
        // With no options, path and clientId default to the event's own, as in the seed.
        event.send(message)
    })?;
    let handle = server.start()?;
    println!("listening on {}/messages", handle.endpoints()[0].url());
    handle.join();
    Ok(())
}

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
fn now_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}
