//! What one client can make the server log (issue 15): nothing at the default level (info).
//! Its own mistakes and departures are counted in the metrics and logged at debug only, so a
//! client cannot flood the log. This file's own logger records everything the library logs.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde_json::json;
use support::{connect, raw_upgrade, start, wait_until};

/// Every record at info or above, as `LEVEL target: message`.
static LOUD: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl Log for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() <= Level::Info {
            let line = format!("{} {}: {}", record.level(), record.target(), record.args());
            LOUD.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

fn loud() -> Vec<String> {
    std::mem::take(&mut *LOUD.lock().unwrap_or_else(|p| p.into_inner()))
}

#[test]
fn a_flood_of_bad_messages_and_abrupt_departures_logs_nothing_at_info() {
    log::set_logger(&Recorder).expect("the only logger of this test binary");
    log::set_max_level(LevelFilter::Trace);
    let server = start();
    let _started = loud(); // "listening on ..." is the server's own news
    let mut steady = connect(&server, "/steady");
    let mut flooder = connect(&server, "/flood");
    for i in 0..500 {
        match i % 4 {
            0 => flooder.send_text("not json"),
            1 => flooder.send_text("[1, 2, 3]"),
            2 => flooder.send_json(json!({ "no message": true })),
            _ => flooder.send_json(json!({ "message": "x", "direct": "yes" })),
        }
    }
    // Gone without a close frame: half just vanish, half reset.
    for i in 0..100 {
        let stream = raw_upgrade(&server, "/abrupt");
        if i % 2 == 0 {
            rustix::net::sockopt::set_socket_linger(&stream, Some(Duration::ZERO))
                .expect("SO_LINGER");
        }
        drop(stream);
    }
    // And one that breaks the protocol (an unmasked frame), and one that leaves properly.
    let mut breaker = connect(&server, "/breaker");
    std::io::Write::write_all(breaker.ws.get_mut(), &[0x81, 0x01, b'x']).expect("write");
    let _ = breaker.recv_close();
    let mut polite = connect(&server, "/polite");
    polite.ws.close(None).expect("close");
    while polite.ws.read().is_ok() {}
    wait_until("every message and departure to be counted", || {
        let metrics = server.metrics().snapshot();
        metrics.messages_ignored == 500
            && metrics.disconnects.abrupt == 100
            && metrics.disconnects.protocol_error == 1
            && metrics.disconnects.normal == 1
    });
    // The flooder is still connected and served.
    flooder.send_json(json!({ "message": "still here" }));
    assert_eq!(steady.recv(), "still here");
    assert_eq!(loud(), Vec::<String>::new(), "nothing at info or above");
    let text = server.metrics().snapshot().to_prometheus();
    assert!(
        text.contains("signalhub_messages_ignored_total 500\n"),
        "{text}"
    );
    assert!(text.contains("signalhub_disconnects_total{reason=\"abrupt\"} 100\n"));
    drop((steady, flooder, breaker, polite));
    server.shutdown();
}
