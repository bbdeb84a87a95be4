//! Properties of the client-message parser and of the targets it leads to (SPEC 3-6), on
//! generated messages, without sockets: [`parse_client_message`] must accept exactly what the
//! spec's model ([`model`]) accepts, and for what it accepts, [`resolve_target`] and the
//! payload must reach whom, with what, the model says. Each case takes microseconds, so the
//! counts are high; `PROPTEST_CASES` raises them (`make fuzz`). `tests/properties.rs` checks
//! the same model end to end through real connections, with fewer cases.

use std::cell::Cell;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

use crate::proptest_runner::{full, runner};
use crate::protocol::message::payload_from_raw;
use crate::protocol::{parse_client_message, resolve_target, ClientMessage, EventTargets, Target};
use crate::signals::SendOptions;
use crate::ClientId;

mod model;
mod near_json;

use model::{Ids, Input, Signal};
use near_json::oracle;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2000;

/// Fixed ids with hex letters, so an uppercased id differs from the original text.
fn ids() -> Ids {
    let id = |text: &str| text.parse::<ClientId>().expect("an id");
    Ids {
        sender: id("5e7d3a1b-9c2f-4e6a-8b0d-1f2e3c4d5a6b"),
        other: id("0a1b2c3d-4e5f-4a6b-9c8d-7e6f5a4b3c2d"),
        unknown: id("fedcba98-7654-4321-8fed-cba987654321"),
    }
}

/// What the model expects of one text.
#[derive(Debug)]
enum Expect {
    /// SPEC 6: ignored.
    Reject,
    /// This signal; `exact` when the text is serde_json's own rendering, so the payload of
    /// a non-string message must be exactly its compact form.
    Accept { signal: Signal, exact: bool },
    /// Nothing to say (valid JSON a `Value` cannot hold, such as `1e400`): it must not panic.
    Unknown,
}

/// Checks one text against the model: acceptance, then fields, payload and receivers.
fn check(ids: &Ids, text: &str, expect: Expect) -> Result<(), TestCaseError> {
    let (signal, exact, message) = match (expect, parse_client_message(text)) {
        (Expect::Unknown, _) | (Expect::Reject, Err(_)) => return Ok(()),
        (Expect::Reject, Ok(message)) => {
            let why = format!("accepted what the spec ignores: {text:?} -> {message:?}");
            return Err(TestCaseError::fail(why));
        }
        (Expect::Accept { signal, .. }, Err(e)) => {
            let why = format!("rejected ({e}) what the spec accepts: {text:?}, as {signal:?}");
            return Err(TestCaseError::fail(why));
        }
        (Expect::Accept { signal, exact }, Ok(message)) => (signal, exact, message),
    };
    prop_assert_eq!(&message.path, &signal.path, "path of {:?}", text);
    prop_assert_eq!(
        &message.client_id,
        &signal.client_id,
        "clientId of {:?}",
        text
    );
    prop_assert_eq!(message.direct, signal.direct, "direct of {:?}", text);
    let payload = payload_text(&message);
    let want = model::payload(&signal.message);
    if exact || want.is_none() || signal.message.is_string() {
        prop_assert_eq!(&payload, &want, "payload of {:?}", text);
    } else {
        // Numbers are sent as written (`1e3`, not `1000.0`): compare values.
        let value = payload.as_deref().map(serde_json::from_str::<Value>);
        prop_assert!(
            matches!(value, Some(Ok(ref v)) if *v == signal.message),
            "payload {:?} of {:?}",
            payload,
            text
        );
    }
    let target = target(ids, &message)?;
    prop_assert_eq!(
        reach(ids, target.as_ref()),
        model::receivers(ids, &signal),
        "receivers of {:?} (target {:?})",
        text,
        target
    );
    Ok(())
}

/// The payload receivers get, as text.
fn payload_text(message: &ClientMessage<'_>) -> Option<String> {
    payload_from_raw(message.message).map(|bytes| String::from_utf8(bytes).expect("utf-8"))
}

/// Where the server re-sends a message from the sender (`resend` in
/// `src/server/connection.rs`: default options, the message as the event).
fn target(ids: &Ids, message: &ClientMessage<'_>) -> Result<Option<Target>, TestCaseError> {
    let event = EventTargets {
        sender: ids.sender,
        path: message.path.as_deref(),
        client_id: message.client_id.as_deref(),
        group: message.group.as_deref(),
        direct: message.direct,
    };
    resolve_target(&SendOptions::default(), Some(event))
        .map_err(|e| TestCaseError::fail(format!("resolve_target failed: {e}")))
}

/// What (the sender, the other client) receive when the sender sends `text`.
fn deliveries(ids: &Ids, text: &str) -> Result<(Option<String>, Option<String>), TestCaseError> {
    let Ok(message) = parse_client_message(text) else {
        return Ok((None, None));
    };
    let (Some(payload), target) = (payload_text(&message), target(ids, &message)?) else {
        return Ok((None, None));
    };
    let (to_sender, to_other) = reach(ids, target.as_ref());
    Ok((
        to_sender.then(|| payload.clone()),
        to_other.then_some(payload),
    ))
}

/// Whether (the sender on `/a`, the other client on `/b`) are among a target's receivers,
/// by the registry's rule (connection paths kept lowercased; `Path` targets are lowercased).
fn reach(ids: &Ids, target: Option<&Target>) -> (bool, bool) {
    match target {
        None => (false, false),
        Some(Target::All) => (true, true),
        Some(Target::Path(path)) => (path == "/a", path == "/b"),
        Some(Target::Client(id)) => (*id == ids.sender, *id == ids.other),
        Some(Target::GroupOfSender { group, sender }) => {
            let member = *sender == ids.sender && model::SENDER_GROUPS.contains(&group.as_str());
            (
                member,
                member && model::OTHER_GROUPS.contains(&group.as_str()),
            )
        }
        Some(other) => panic!("a client's message never targets {other:?}"),
    }
}

/// How a rendered object reaches the parser.
#[derive(Debug, Clone)]
enum Framing {
    AsIs,
    /// Between these: JSON's own whitespace changes nothing, anything else makes it not JSON.
    Padded(&'static str, &'static str),
    /// Cut somewhere before its closing brace: not JSON.
    Cut(Index),
    /// Followed by something that is not whitespace: not JSON.
    Trailing(String),
}

fn framing() -> impl Strategy<Value = Framing> {
    let pad = prop::sample::select(vec![
        "", " ", "\t", "\n", "\r\n ", "\u{b}", "\u{c}", "\u{a0}", "\u{feff}", "\u{0}",
    ]);
    prop_oneof![
        8 => Just(Framing::AsIs),
        2 => (pad.clone(), pad).prop_map(|(a, b)| Framing::Padded(a, b)),
        1 => any::<Index>().prop_map(Framing::Cut),
        1 => "[^ \t\r\n][ -~]{0,4}".prop_map(Framing::Trailing),
    ]
}

/// The framed text, and whether the model's reading of the object still holds.
fn frame(text: String, framing: &Framing) -> (String, bool) {
    let is_json_space = |s: &str| s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    match framing {
        Framing::AsIs => (text, true),
        Framing::Padded(a, b) => (
            format!("{a}{text}{b}"),
            is_json_space(a) && is_json_space(b),
        ),
        Framing::Cut(at) => {
            let end = text.rfind('}').expect("an object");
            let mut cut = at.index(end);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            (text[..cut].to_owned(), false)
        }
        Framing::Trailing(tail) => (text + tail, false),
    }
}

/// SPEC 3-6 on generated objects (known keys in any ASCII case, escaped keys, duplicates,
/// nulls, wrong types, every kind of `clientId`), on JSON that is not an object, on any text,
/// and on objects cut short, padded or followed by more.
#[test]
fn client_messages_are_accepted_and_routed_as_the_spec_says() {
    let ids = ids();
    let tally = Tally::default();
    runner(CASES)
        .run(&(model::input(), framing()), |(input, framing)| {
            let (text, expect) = match input {
                Input::Text(text) => {
                    let expect = oracle(&ids, &text);
                    (text, expect)
                }
                Input::NotObject(value) => (value.to_string(), Expect::Reject),
                Input::Object { entries, pretty } => {
                    let (text, intact) = frame(model::render(&ids, &entries, pretty), &framing);
                    if intact {
                        // Who gets what, as tests/properties.rs checks it through sockets.
                        prop_assert_eq!(
                            deliveries(&ids, &text)?,
                            model::expected(&ids, &entries),
                            "deliveries for {:?}",
                            text
                        );
                    }
                    let expect = match model::accepted(&ids, &entries) {
                        Some(signal) if intact => Expect::Accept {
                            signal,
                            exact: true,
                        },
                        _ => Expect::Reject,
                    };
                    (text, expect)
                }
            };
            tally.count(&ids, &expect);
            check(&ids, &text, expect)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    tally.report(false);
}

/// How many cases the model rejected, accepted, and accepted with a delivery to someone.
#[derive(Default)]
struct Tally {
    rejected: Cell<u32>,
    accepted: Cell<u32>,
    delivered: Cell<u32>,
}

impl Tally {
    fn count(&self, ids: &Ids, expect: &Expect) {
        let add = |cell: &Cell<u32>| cell.set(cell.get() + 1);
        match expect {
            Expect::Reject => add(&self.rejected),
            Expect::Accept { signal, .. } => {
                add(&self.accepted);
                let (sender, other) = model::receivers(ids, signal);
                if model::payload(&signal.message).is_some() && (sender || other) {
                    add(&self.delivered);
                }
            }
            Expect::Unknown => {}
        }
    }

    /// Prints the counts, and fails if the generator never reached a kind of case (with at
    /// least the default number of cases).
    fn report(&self, with_non_delivered: bool) {
        let (rejected, accepted, delivered) = (
            self.rejected.get(),
            self.accepted.get(),
            self.delivered.get(),
        );
        eprintln!("{rejected} rejected, {accepted} accepted, {delivered} of them delivered");
        let mut reached = rejected > 0 && delivered > 0;
        if with_non_delivered {
            reached &= accepted > delivered;
        }
        assert!(reached || !full(CASES), "the generator is lopsided");
    }
}
