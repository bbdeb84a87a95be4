//! Replies to the sender alone skip the fan-out thread when nothing of the sender's waits
//! there; they must never overtake what the sender sent before them.

mod support;

use serde_json::json;
use signalhub::{Mode, SendOptions};
use support::*;

#[test]
fn a_direct_reply_never_overtakes_the_senders_earlier_broadcast() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut other = connect(&server, "/b");
    // Pipelined: each broadcast (which reaches the sender too) then a direct message.
    for n in 0..300 {
        sender.send_json(json!({ "message": format!("b{n}") }));
        sender.send_json(json!({ "message": format!("d{n}"), "direct": true }));
    }
    for n in 0..300 {
        assert_eq!(sender.recv(), format!("b{n}"));
        assert_eq!(sender.recv(), format!("d{n}"));
        assert_eq!(other.recv(), format!("b{n}"));
    }
    other.expect_nothing();
    server.shutdown();
}

#[test]
fn a_routes_reply_never_overtakes_what_its_handler_sent_before() {
    let server = start_with(config(), |s| {
        s.route("/r", |event| {
            let n = event.data.message.as_u64().unwrap_or_default();
            // Through the Signals handle: to everyone, the sender included...
            event.signals().send(format!("all {n}"))?;
            // ...then to the sender alone, which must come after it.
            event.send_with(format!("you {n}"), &SendOptions::new().mode(Mode::Direct))
        })
        .unwrap();
    });
    let mut sender = connect(&server, "/r");
    for n in 0..300 {
        sender.send_json(json!({ "message": n }));
    }
    for n in 0..300 {
        assert_eq!(sender.recv(), format!("all {n}"));
        assert_eq!(sender.recv(), format!("you {n}"));
    }
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.signals_sent, 600);
    server.shutdown();
}

#[test]
fn direct_round_trips_are_counted_like_any_signal() {
    let server = start();
    let mut client = connect(&server, "/");
    for n in 0..50 {
        client.send_json(json!({ "message": n, "direct": true }));
        assert_eq!(client.recv(), n.to_string());
    }
    // The count follows the write, so the last reply can be read before it is counted.
    wait_until("all 50 replies counted as delivered", || {
        server.metrics().snapshot().frames_delivered >= 50
    });
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.signals_sent, 50);
    assert_eq!(metrics.frames_delivered, 50);
    server.shutdown();
}

#[test]
fn with_writer_threads_sharing_big_passes_the_order_holds_too() {
    let mut config = config();
    config.tuning.fanout_writers = 2;
    let server = start_with(config, |_| {});
    // Enough receivers that each broadcast's pass is shared with the writer thread; the
    // sender is among them, written by whichever thread it was given to.
    let mut others: Vec<Client> = (0..300).map(|_| connect(&server, "/")).collect();
    let mut sender = connect(&server, "/");
    for n in 0..100 {
        sender.send_json(json!({ "message": format!("b{n}") }));
        sender.send_json(json!({ "message": format!("d{n}"), "direct": true }));
    }
    for n in 0..100 {
        assert_eq!(sender.recv(), format!("b{n}"));
        assert_eq!(sender.recv(), format!("d{n}"));
    }
    for other in others.iter_mut().step_by(50) {
        assert_eq!(other.recv(), "b0");
    }
    server.shutdown();
}
