//! Property tests of the client-message router (SPEC 3-6) and the request-head classifier,
//! driven through real connections since both parsers are private.
//!
//! Case counts are small so `cargo test` stays quick. The long run (`make fuzz`-style) raises
//! them through proptest's own environment variable:
//!
//! ```text
//! PROPTEST_CASES=20000 cargo test --release --test properties
//! ```

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Number, Value};
use signalhub::{ClientId, ServerHandle};
use support::*;
use tungstenite::Message;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        failure_persistence: None,
        ..Config::default()
    })
}

// --- (a) Client messages ---

/// Any JSON value, nested a little.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-z ]{0,3}".prop_map(Value::String),
        Just(Value::String(String::new())),
        Just(Value::String(
            "\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}\u{2028}é😀".into()
        )),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..4)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Who a `clientId` names, made concrete once the clients exist.
#[derive(Debug, Clone)]
enum IdChoice {
    Sender,
    SenderUppercase,
    Other,
    Unknown,
    Text(String),
}

/// The value of a key in a generated message.
#[derive(Debug, Clone)]
enum Field {
    Json(Value),
    Id(IdChoice),
    /// A path: "/a" (the sender's), "/b" (the other's), any other.
    Path(String),
}

/// One key of a generated object: a spelling and a value.
#[derive(Debug, Clone)]
struct Entry {
    key: String,
    /// Write the key with `\u` escapes (it must still be recognised).
    escape_key: bool,
    value: Field,
}

#[derive(Debug, Clone)]
enum Input {
    /// Any text at all.
    Text(String),
    /// An object with these entries (duplicates allowed), compact or pretty, text or binary.
    Object {
        entries: Vec<Entry>,
        pretty: bool,
        binary: bool,
    },
    /// A JSON value that is not an object.
    NotObject(Value),
}

/// A known key in random ASCII case, or a near miss, or any key.
fn key() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec!["message", "path", "clientId", "direct"]);
    prop_oneof![
        4 => (known, any::<u64>()).prop_map(|(name, bits)| {
            name.chars()
                .enumerate()
                .map(|(i, c)| {
                    if bits >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        }),
        1 => prop::sample::select(vec![
            "messages", "mess age", "meſſage", "ＭESSAGE", "client_id", "Direct ", "", "PATH\u{0}",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        3 => json_value().prop_map(Field::Json),
        2 => prop_oneof![
            Just(IdChoice::Sender),
            Just(IdChoice::SenderUppercase),
            Just(IdChoice::Other),
            Just(IdChoice::Unknown),
            any::<String>().prop_map(IdChoice::Text),
        ]
        .prop_map(Field::Id),
        2 => prop::sample::select(vec!["/a", "/A", "/b", "/B", "/c", "", "a", "/a/"])
            .prop_map(|p| Field::Path(p.to_owned())),
        1 => any::<bool>().prop_map(|b| Field::Json(Value::Bool(b))),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (key(), any::<bool>(), field()).prop_map(|(key, escape_key, value)| Entry {
        key,
        escape_key,
        value,
    })
}

fn input() -> impl Strategy<Value = Input> {
    // Most objects carry a message, so the routing is what gets exercised.
    let with_message = (
        json_value(),
        prop::collection::vec(entry(), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(message, mut entries, at)| {
            let at = at.index(entries.len() + 1);
            let key = if at % 2 == 0 { "message" } else { "Message" };
            entries.insert(
                at,
                Entry {
                    key: key.into(),
                    escape_key: at % 3 == 0,
                    value: Field::Json(message),
                },
            );
            entries
        });
    let entries = prop_oneof![4 => with_message, 1 => prop::collection::vec(entry(), 0..5)];
    prop_oneof![
        1 => any::<String>().prop_map(Input::Text),
        1 => json_value().prop_filter_map("not an object", |v| {
            (!v.is_object()).then_some(Input::NotObject(v))
        }),
        6 => (entries, any::<bool>(), any::<bool>()).prop_map(|(entries, pretty, binary)| {
            Input::Object {
                entries,
                pretty,
                binary,
            }
        }),
    ]
}

/// The two clients of the router property: the sender on `/a`, the other on `/b`.
struct Pair {
    sender: Client,
    other: Client,
    unknown: ClientId,
}

impl Pair {
    fn id_text(&self, choice: &IdChoice) -> String {
        match choice {
            IdChoice::Sender => self.sender.id.to_string(),
            IdChoice::SenderUppercase => self.sender.id.to_string().to_uppercase(),
            IdChoice::Other => self.other.id.to_string(),
            IdChoice::Unknown => self.unknown.to_string(),
            IdChoice::Text(text) => text.clone(),
        }
    }

    fn value(&self, field: &Field) -> Value {
        match field {
            Field::Json(value) => value.clone(),
            Field::Id(choice) => Value::String(self.id_text(choice)),
            Field::Path(path) => Value::String(path.clone()),
        }
    }
}

/// A JSON string literal for `key`, every character escaped as `\uXXXX` when asked.
fn key_literal(key: &str, escape: bool) -> String {
    if !escape {
        return serde_json::to_string(key).expect("key");
    }
    let mut out = String::from("\"");
    for unit in key.encode_utf16() {
        out.push_str(&format!("\\u{unit:04x}"));
    }
    out.push('"');
    out
}

/// The text sent for an object input (keys written by hand, so duplicates survive).
fn render(pair: &Pair, entries: &[Entry], pretty: bool) -> String {
    let (sep, colon) = if pretty { (",\n  ", " : ") } else { (",", ":") };
    let body: Vec<String> = entries
        .iter()
        .map(|e| {
            let value = pair.value(&e.value);
            let value = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            }
            .expect("value");
            format!("{}{colon}{value}", key_literal(&e.key, e.escape_key))
        })
        .collect();
    if pretty {
        format!("{{\n  {}\n}}\n", body.join(sep))
    } else {
        format!("{{{}}}", body.join(sep))
    }
}

/// What the sender and the other client should get (SPEC 3-5), written from the spec alone.
fn expected(pair: &Pair, entries: &[Entry]) -> (Option<String>, Option<String>) {
    const NOBODY: (Option<String>, Option<String>) = (None, None);
    let mut known: [Option<Value>; 4] = Default::default();
    for entry in entries {
        let slot = ["message", "path", "clientId", "direct"]
            .iter()
            .position(|name| name.eq_ignore_ascii_case(&entry.key));
        if let Some(slot) = slot {
            if known[slot].is_some() {
                return NOBODY; // a known key twice
            }
            known[slot] = Some(pair.value(&entry.value));
        }
    }
    let [message, path, client_id, direct] = known;
    let Some(message) = message else {
        return NOBODY;
    };
    let as_string = |v: Option<Value>| match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(()),
    };
    let (Ok(path), Ok(client_id)) = (as_string(path), as_string(client_id)) else {
        return NOBODY;
    };
    let direct = match direct {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return NOBODY,
    };
    let payload = match message {
        Value::Null => return NOBODY,
        Value::String(s) if s.is_empty() => return NOBODY,
        Value::String(s) => s,
        other => serde_json::to_string(&other).expect("payload"),
    };
    // Receivers: (sender, other).
    let client_id = match client_id.map(|text| text.parse::<ClientId>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        // A clientId that is no client id names nobody, unless direct says the sender.
        Some(Err(_)) if !direct => return NOBODY,
        Some(Err(_)) => None,
    };
    let (to_sender, to_other) = if direct || client_id == Some(pair.sender.id) {
        (true, false)
    } else if let Some(id) = client_id {
        (false, id == pair.other.id)
    } else if let Some(path) = path {
        let path = path.to_lowercase();
        (path == "/a", path == "/b")
    } else {
        (true, true)
    };
    (
        to_sender.then(|| payload.clone()),
        to_other.then_some(payload),
    )
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
    let server = start();
    let mut pair = Pair {
        sender: connect(&server, "/a"),
        other: connect(&server, "/b"),
        unknown: ClientId::random(),
    };
    let case = std::cell::Cell::new(0u64);
    // (cases with an exact expectation, frames the sender got, frames the other got)
    let tally = std::cell::Cell::new((0u64, 0u64, 0u64));
    let pair_cell = std::cell::RefCell::new(&mut pair);
    runner(200)
        .run(&input(), |input| {
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
                Input::Object {
                    entries,
                    pretty,
                    binary,
                } => {
                    let text = render(&pair, entries, *pretty);
                    let expect = expected(&pair, entries);
                    let message = if *binary {
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
        to_sender > 0 && to_other > 0,
        "the generator never routed anything"
    );
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.clients_connected, 2);
    drop(pair);
    server.shutdown();
}

// --- (b) Request heads ---

const STATUSES: [u16; 10] = [101, 400, 403, 405, 408, 411, 413, 426, 431, 503];

/// A mutation of a valid upgrade request.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(prop::sample::Index, usize),
    Insert(prop::sample::Index, Vec<u8>),
    Replace(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    SwapCase(prop::sample::Index, usize),
    DuplicateLine(prop::sample::Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (at.clone(), 1..8usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            at.clone(),
            prop::collection::vec(
                prop_oneof![any::<u8>(), prop::sample::select(b"\r\n: \t\0".to_vec())],
                1..8
            )
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (at.clone(), any::<u8>()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        at.clone().prop_map(Mutation::Truncate),
        (at.clone(), 1..20usize).prop_map(|(i, n)| Mutation::SwapCase(i, n)),
        at.prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(request: &mut Vec<u8>, mutation: &Mutation) {
    let len = request.len();
    match mutation {
        Mutation::Delete(at, n) => {
            let start = at.index(len);
            request.drain(start..(start + n).min(len));
        }
        Mutation::Insert(at, bytes) => {
            let at = at.index(len + 1);
            request.splice(at..at, bytes.iter().copied());
        }
        Mutation::Replace(at, byte) => request[at.index(len)] = *byte,
        Mutation::Truncate(at) => request.truncate(at.index(len)),
        Mutation::SwapCase(at, n) => {
            let start = at.index(len);
            for b in &mut request[start..(start + n).min(len)] {
                *b = if b.is_ascii_lowercase() {
                    b.to_ascii_uppercase()
                } else {
                    b.to_ascii_lowercase()
                };
            }
        }
        Mutation::DuplicateLine(at) => {
            let text = request.clone();
            let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
            let line = lines[at.index(lines.len())].to_vec();
            let pos = at.index(len + 1);
            request.splice(pos..pos, line);
        }
    }
}

fn head_input() -> impl Strategy<Value = Vec<u8>> {
    let mutated = prop::collection::vec(mutation(), 0..4).prop_map(|mutations| {
        let mut request = upgrade_request("/x", "Origin: http://o\r\n").into_bytes();
        for mutation in &mutations {
            if !request.is_empty() {
                apply(&mut request, mutation);
            }
        }
        request
    });
    prop_oneof![
        3 => mutated,
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => "[ -~\r\n]{0,200}".prop_map(String::into_bytes),
    ]
}

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
    config.allowed_origins = Some(vec!["http://o".into()]);
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
    runner(150)
        .run(&head_input(), |bytes| {
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

/// SPEC 4: `direct: true` sends to the sender only, whatever else the message says. With a
/// `clientId` that is not a client id as well, the server sends to nobody (src/signals.rs
/// `resolve_target` returns `Ok(None)` on an unparsable id before it looks at `direct`). The
/// router property's model follows the server here, so this example alone tracks it.
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
