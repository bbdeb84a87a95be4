//! Generated client messages and what SPEC 3-6 says becomes of them, written from the spec
//! alone. Shared by the in-crate properties (`super`) and the end-to-end ones in
//! `tests/properties.rs` (which includes this file with `#[path]`), so both check one model.
//!
//! The includer provides `ClientId` in its own scope.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use super::ClientId;

/// Any JSON value, nested a little.
pub fn json_value() -> impl Strategy<Value = Value> {
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

/// Who a `clientId` names, made concrete by [`Ids`].
#[derive(Debug, Clone)]
pub enum IdChoice {
    Sender,
    SenderUppercase,
    Other,
    Unknown,
    Text(String),
}

/// The value of a key in a generated message.
#[derive(Debug, Clone)]
pub enum Field {
    Json(Value),
    Id(IdChoice),
    /// A path: "/a" (the sender's), "/b" (the other's), any other.
    Path(String),
    /// A group: see [`SENDER_GROUPS`] and [`OTHER_GROUPS`].
    Group(String),
}

/// The groups the sender is in.
pub const SENDER_GROUPS: [&str; 2] = ["both", "mine"];
/// The groups the other client is in.
pub const OTHER_GROUPS: [&str; 2] = ["both", "theirs"];

/// One key of a generated object: a spelling and a value.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    /// Write the key with `\u` escapes (it must still be recognised).
    pub escape_key: bool,
    pub value: Field,
}

#[derive(Debug, Clone)]
pub enum Input {
    /// Any text at all.
    Text(String),
    /// An object with these entries (duplicates allowed), compact or pretty.
    Object { entries: Vec<Entry>, pretty: bool },
    /// A JSON value that is not an object.
    NotObject(Value),
}

/// A known key in random ASCII case, or a near miss, or any key.
fn key() -> impl Strategy<Value = String> {
    let known = prop::sample::select(vec!["message", "path", "clientId", "group", "direct"]);
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
        2 => prop::sample::select(vec!["both", "mine", "theirs", "nobody", "Both", ""])
            .prop_map(|g| Field::Group(g.to_owned())),
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

/// Entries of an object; most carry a message, so the routing is what gets exercised.
pub fn entries() -> impl Strategy<Value = Vec<Entry>> {
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
    prop_oneof![4 => with_message, 1 => prop::collection::vec(entry(), 0..5)]
}

pub fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        1 => any::<String>().prop_map(Input::Text),
        1 => json_value().prop_filter_map("not an object", |v| {
            (!v.is_object()).then_some(Input::NotObject(v))
        }),
        6 => (entries(), any::<bool>())
            .prop_map(|(entries, pretty)| Input::Object { entries, pretty }),
    ]
}

/// The clients a generated message can name: the sender (on `/a`), the other client (on
/// `/b`), and an id nobody has.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub sender: ClientId,
    pub other: ClientId,
    pub unknown: ClientId,
}

impl Ids {
    pub fn id_text(&self, choice: &IdChoice) -> String {
        match choice {
            IdChoice::Sender => self.sender.to_string(),
            IdChoice::SenderUppercase => self.sender.to_string().to_uppercase(),
            IdChoice::Other => self.other.to_string(),
            IdChoice::Unknown => self.unknown.to_string(),
            IdChoice::Text(text) => text.clone(),
        }
    }

    pub fn value(&self, field: &Field) -> Value {
        match field {
            Field::Json(value) => value.clone(),
            Field::Id(choice) => Value::String(self.id_text(choice)),
            Field::Path(path) | Field::Group(path) => Value::String(path.clone()),
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
pub fn render(ids: &Ids, entries: &[Entry], pretty: bool) -> String {
    let (sep, colon) = if pretty { (",\n  ", " : ") } else { (",", ":") };
    let body: Vec<String> = entries
        .iter()
        .map(|e| {
            let value = ids.value(&e.value);
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

/// A client's object as SPEC 3 and 6 read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub message: Value,
    pub path: Option<String>,
    pub client_id: Option<String>,
    pub group: Option<String>,
    pub direct: bool,
}

/// The signal an object with these entries is, or `None` when SPEC 6 says to ignore it: no
/// `message`, a known key twice (ASCII case-insensitively), `direct` not a bool, `path`,
/// `clientId` or `group` not a string. A `null` counts as absent, except for `message`, whose `null` is
/// a valid message that sends nothing (SPEC 5).
pub fn accepted(ids: &Ids, entries: &[Entry]) -> Option<Signal> {
    let mut known: [Option<Value>; 5] = Default::default();
    for entry in entries {
        let slot = ["message", "path", "clientId", "group", "direct"]
            .iter()
            .position(|name| name.eq_ignore_ascii_case(&entry.key));
        if let Some(slot) = slot {
            if known[slot].is_some() {
                return None; // a known key twice
            }
            known[slot] = Some(ids.value(&entry.value));
        }
    }
    let [message, path, client_id, group, direct] = known;
    let as_string = |v: Option<Value>| match v {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => None,
    };
    Some(Signal {
        message: message?,
        path: as_string(path)?,
        client_id: as_string(client_id)?,
        group: as_string(group)?,
        direct: match direct {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return None,
        },
    })
}

/// What receivers get for a message (SPEC 5): a string as its text, any other value as
/// compact JSON, nothing for `null` or `""`.
pub fn payload(message: &Value) -> Option<String> {
    match message {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(serde_json::to_string(other).expect("payload")),
    }
}

/// Whether (the sender, the other client) receive a signal (SPEC 4; groups: the protocol
/// document's "Groups").
pub fn receivers(ids: &Ids, signal: &Signal) -> (bool, bool) {
    let client_id = match signal.client_id.as_deref().map(str::parse::<ClientId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        // A clientId that is no client id names nobody, unless direct says the sender.
        Some(Err(_)) if !signal.direct => return (false, false),
        Some(Err(_)) => None,
    };
    if signal.direct || client_id == Some(ids.sender) {
        (true, false)
    } else if let Some(id) = client_id {
        (false, id == ids.other)
    } else if let Some(group) = &signal.group {
        // A group reaches its members only when the sender is one of them (exact names).
        let member = SENDER_GROUPS.contains(&group.as_str());
        (member, member && OTHER_GROUPS.contains(&group.as_str()))
    } else if let Some(path) = &signal.path {
        let path = path.to_lowercase();
        (path == "/a", path == "/b")
    } else {
        (true, true)
    }
}

/// What the sender and the other client should get for an object with these entries.
pub fn expected(ids: &Ids, entries: &[Entry]) -> (Option<String>, Option<String>) {
    let Some(signal) = accepted(ids, entries) else {
        return (None, None);
    };
    let Some(payload) = payload(&signal.message) else {
        return (None, None);
    };
    let (to_sender, to_other) = receivers(ids, &signal);
    (
        to_sender.then(|| payload.clone()),
        to_other.then_some(payload),
    )
}
