//! End-to-end property tests through real connections: the client-message router (SPEC 3-6)
//! and request-head classification (SPEC 1), on a running server.
//!
//! The parsers' own properties live in the crate, next to the parsers, and run thousands of
//! cases in microseconds each without sockets: `src/protocol/properties/` (what
//! `parse_client_message` accepts, and the targets and payloads it leads to) and
//! `src/server/properties/` (`parse_head` and the door's rules, against a model of the RFCs).
//! This file reuses their generators and model (`model.rs` and `heads.rs` there, included
//! below) to check, with fewer cases, that the server wires those parsers up as the model
//! says: frames in, frames out to the right clients; a status or a close for any head, in
//! time, and the server still serving.
//!
//! The long run (`make fuzz`) raises the counts through proptest's own environment variable:
//!
//! ```text
//! PROPTEST_CASES=2000 cargo test --release --test properties
//! ```

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::Value;
use signalhub::{ClientId, ServerHandle};
use support::*;
use tungstenite::Message;

/// The runner: each property's default number of cases, or `PROPTEST_CASES`.
#[path = "../src/proptest_runner.rs"]
mod proptest_runner;

/// Client messages and the spec's model of them (uses `ClientId` from here).
#[path = "../src/protocol/properties/model.rs"]
mod model;

/// Request heads from parts, mutated, and random.
#[path = "../src/server/properties/heads.rs"]
mod heads;

use model::{Ids, Input};
use proptest_runner::{full, runner};

/// Cases of the router property unless `PROPTEST_CASES` says otherwise (each one a frame
/// sent and a marker awaited on two clients).
const ROUTER_CASES: u32 = 60;
/// Cases of the head property unless `PROPTEST_CASES` says otherwise (each one a connection,
/// and a head that stops short waits out the handshake timeout).
const HEAD_CASES: u32 = 40;

// --- (a) Client messages ---

/// The two clients of the router property: the sender on `/a`, the other on `/b`.
struct Pair {
    sender: Client,
    other: Client,
    unknown: ClientId,
}

impl Pair {
    fn ids(&self) -> Ids {
        Ids {
            sender: self.sender.id,
            other: self.other.id,
            unknown: self.unknown,
        }
    }
}

/// Everything `client` receives before `marker`.
fn received_before(client: &mut Client, marker: &str) -> Result<Vec<String>, String> {
    let mut got = Vec::new();
    loop {
        let text = client.try_recv(WAIT)?;
        if text == marker {
            return Ok(got);
        }
        got.push(text);
    }
}

#[test]
fn the_router_matches_the_spec_and_never_closes_for_a_text_message() {
    // The model's groups, given at connect by an authorize hook.
    let server = start_with(config(), |server| {
        server.authorize(|request| {
            let groups = request.query("groups").unwrap_or_default().split(',');
            Ok(signalhub::auth::Accepted::anonymous().groups(groups.filter(|g| !g.is_empty())))
        });
    });
    let mut pair = Pair {
        sender: connect(
            &server,
            &format!("/a?groups={}", model::SENDER_GROUPS.join(",")),
        ),
        other: connect(
            &server,
            &format!("/b?groups={}", model::OTHER_GROUPS.join(",")),
        ),
        unknown: ClientId::random(),
    };
    let case = std::cell::Cell::new(0u64);
    // (cases with an exact expectation, frames the sender got, frames the other got)
    let tally = std::cell::Cell::new((0u64, 0u64, 0u64));
    let pair_cell = std::cell::RefCell::new(&mut pair);
    runner(ROUTER_CASES)
        .run(&(model::input(), any::<bool>()), |(input, binary)| {
            let mut pair = pair_cell.borrow_mut();
            case.set(case.get() + 1);
            let (message, expect) = match &input {
                Input::Text(text) => {
                    // Any text that happens to be a valid signal: no exact expectation.
                    let maybe_signal = serde_json::from_str::<Value>(text)
                        .is_ok_and(|v| v.get("message").is_some() || v.is_object());
                    (
                        Message::text(text.clone()),
                        (!maybe_signal).then_some((None, None)),
                    )
                }
                Input::NotObject(value) => (Message::text(value.to_string()), Some((None, None))),
                Input::Object { entries, pretty } => {
                    let text = model::render(&pair.ids(), entries, *pretty);
                    let expect = model::expected(&pair.ids(), entries);
                    // A binary frame is decoded as UTF-8 and read like text (SPEC 3).
                    let message = if binary {
                        Message::binary(text.into_bytes())
                    } else {
                        Message::text(text)
                    };
                    (message, Some(expect))
                }
            };
            let sent = message.to_string();
            pair.sender.ws.send(message).map_err(|e| {
                TestCaseError::fail(format!("the connection broke sending {sent:?}: {e}"))
            })?;
            let marker = format!("marker {} {}", case.get(), pair.unknown);
            pair.sender
                .send_json(serde_json::json!({ "message": marker }));
            let sender_got = received_before(&mut pair.sender, &marker)
                .map_err(|e| TestCaseError::fail(format!("sender after {sent:?}: {e}")))?;
            let other_got = received_before(&mut pair.other, &marker)
                .map_err(|e| TestCaseError::fail(format!("other after {sent:?}: {e}")))?;
            if let Some((to_sender, to_other)) = expect {
                let (exact, a, b) = tally.get();
                tally.set((
                    exact + 1,
                    a + sender_got.len() as u64,
                    b + other_got.len() as u64,
                ));
                prop_assert_eq!(
                    sender_got,
                    to_sender.into_iter().collect::<Vec<_>>(),
                    "sender, for {:?}",
                    sent
                );
                prop_assert_eq!(
                    other_got,
                    to_other.into_iter().collect::<Vec<_>>(),
                    "other, for {:?}",
                    sent
                );
            } else {
                prop_assert!(sender_got.len() <= 1 && other_got.len() <= 1);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let (exact, to_sender, to_other) = tally.get();
    eprintln!(
        "{} cases, {exact} checked exactly; {to_sender} deliveries to the sender, {to_other} to the other",
        case.get()
    );
    assert!(
        (to_sender > 0 && to_other > 0) || !full(ROUTER_CASES),
        "the generator never routed anything"
    );
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.clients_connected, 2);
    drop(pair);
    server.shutdown();
}

// --- (b) Request heads ---

/// Every status a head can get from the door (`101` included), or from its deadlines and caps.
const STATUSES: [u16; 9] = [101, 400, 403, 408, 411, 413, 426, 431, 503];

/// Reads a response head (or the end of the connection) within `limit`.
fn read_head(stream: &mut TcpStream, limit: Duration) -> Result<(Vec<u8>, bool), String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if seen.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok((seen, false));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no answer and no close within {limit:?}: {seen:?}"));
        }
        stream.set_read_timeout(Some(left)).expect("timeout");
        match stream.read(&mut buf) {
            Ok(0) => return Ok((seen, true)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer and no close within {limit:?}: {seen:?}"))
            }
            Err(_) => return Ok((seen, true)),
        }
    }
}

fn check_head(server: &ServerHandle, bytes: &[u8], limit: Duration) -> Result<(), TestCaseError> {
    let mut stream = TcpStream::connect(server.endpoints()[0].address).expect("tcp connect");
    let _ = stream.write_all(bytes);
    let (head, closed) = read_head(&mut stream, limit).map_err(TestCaseError::fail)?;
    if head.is_empty() {
        prop_assert!(closed);
        return Ok(());
    }
    let text = String::from_utf8_lossy(&head);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    prop_assert!(
        status.is_some_and(|s| STATUSES.contains(&s)),
        "bad status line {:?} for {:?}",
        text,
        String::from_utf8_lossy(bytes)
    );
    if status != Some(101) {
        // A refusal ends the connection (after its short body).
        let rest = read_head(&mut stream, limit);
        prop_assert!(
            matches!(rest, Ok((_, true))),
            "refusal not followed by a close: {:?}",
            rest
        );
    }
    Ok(())
}

#[test]
fn every_request_head_gets_a_status_or_a_close_in_time_and_the_server_survives() {
    let mut config = config();
    config.handshake_timeout = Duration::from_millis(300);
    config.allowed_origins = Some(vec![heads::ORIGIN.into()]);
    let server = start_with(config, |_| {});
    // Handshake timeout, plus the 1 s a refusal lingers, plus slack.
    let limit = Duration::from_secs(3);
    let address = server.endpoints()[0].address;
    let url = format!("ws://{address}/after");
    check_head(
        &server,
        upgrade_request("/x", "Origin: http://o\r\n").as_bytes(),
        limit,
    )
    .expect("the unmutated request is fine");
    runner(HEAD_CASES)
        .run(&heads::head_input(), |heads::Bytes(bytes)| {
            check_head(&server, &bytes, limit)?;
            // The server still serves a normal client.
            let client = try_connect(&url, &[("Origin", "http://o")])
                .map_err(|e| TestCaseError::fail(format!("a normal client failed: {e}")))?;
            drop(client);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut client = try_connect(&url, &[("Origin", "http://o")]).expect("connects");
    wait_until("upgraded probes to leave", || {
        server.metrics().snapshot().clients_connected == 1
    });
    client.send_json(serde_json::json!({"message": "alive"}));
    assert_eq!(client.recv(), "alive");
    drop(client);
    server.shutdown();
}

// --- Examples the properties turned up ---

/// SPEC 4: `direct: true` sends to the sender only, whatever else the message says, even with
/// a `clientId` that is not a client id (once a bug: `resolve_target` gave up on the id
/// before it looked at `direct`). The model says so too.
#[test]
fn direct_beats_a_client_id_that_is_not_an_id() {
    let server = start();
    let mut sender = connect(&server, "/a");
    sender.send_json(serde_json::json!({"message": "me", "direct": true, "clientId": "nope"}));
    sender.send_json(serde_json::json!({"message": "marker"}));
    assert_eq!(sender.recv(), "me");
    drop(sender);
    server.shutdown();
}
