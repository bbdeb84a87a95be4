//! Near-JSON texts (objects with a token missing, added or changed, and token soup), and
//! an oracle for any text: serde_json's own parser reads it, keys in order with their
//! duplicates, and the spec's model says what becomes of it.

use proptest::prelude::*;
use proptest::sample::Index;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use super::model::{self, Entry, Field, Ids};
use super::{check, ids, Expect, Tally, CASES};
use crate::proptest_runner::runner;

/// The top level of a JSON text, keeping an object's keys in order with their duplicates.
enum TopLevel {
    Object(Vec<(String, Value)>),
    Other,
}

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopLevelVisitor)
    }
}

struct TopLevelVisitor;

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any json value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = map.next_entry::<String, Value>()? {
            pairs.push(pair);
        }
        Ok(TopLevel::Object(pairs))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopLevel, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(TopLevel::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
    fn visit_unit<E>(self) -> Result<TopLevel, E> {
        Ok(TopLevel::Other)
    }
}

/// What the model expects of any text: not JSON or not an object is ignored; an object is
/// read by the model, key by key, duplicates included.
pub(super) fn oracle(ids: &Ids, text: &str) -> Expect {
    if serde_json::from_str::<IgnoredAny>(text).is_err() {
        return Expect::Reject;
    }
    match serde_json::from_str::<TopLevel>(text) {
        Ok(TopLevel::Other) => Expect::Reject,
        Ok(TopLevel::Object(pairs)) => {
            let entries: Vec<Entry> = pairs
                .into_iter()
                .map(|(key, value)| Entry {
                    key,
                    escape_key: false,
                    value: Field::Json(value),
                })
                .collect();
            match model::accepted(ids, &entries) {
                Some(signal) => Expect::Accept {
                    signal,
                    exact: false,
                },
                None => Expect::Reject,
            }
        }
        Err(_) => Expect::Unknown,
    }
}

/// A token of near-JSON text.
#[derive(Debug, Clone)]
enum Token {
    Lit(&'static str),
    /// The sender's id, or the other client's, as a JSON string.
    Id(bool),
}

const KEYS: [&str; 12] = [
    "\"message\"",
    "\"Message\"",
    "\"MESSAGE\"",
    "\"mess\\u0061ge\"",
    "\"path\"",
    "\"Path\"",
    "\"clientId\"",
    "\"CLIENTID\"",
    "\"direct\"",
    "\"Direct\"",
    "\"x\"",
    "\"messages\"",
];

const VALUES: [&str; 14] = [
    "null",
    "true",
    "false",
    "0",
    "-1.50e3",
    "1e400",
    "\"\"",
    "\"hi\"",
    "\"/a\"",
    "\"/B\"",
    "\"\\ud83d\\ude00 \\\"\"",
    "[1, {\"a\" : null}]",
    "{}",
    "\"not an id\"",
];

const PUNCTUATION: [&str; 9] = ["{", "}", "[", "]", ":", ",", " ", "\n", "\""];

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        2 => prop::sample::select(KEYS.to_vec()).prop_map(Token::Lit),
        2 => prop::sample::select(VALUES.to_vec()).prop_map(Token::Lit),
        2 => prop::sample::select(PUNCTUATION.to_vec()).prop_map(Token::Lit),
        1 => any::<bool>().prop_map(Token::Id),
    ]
}

/// An edit of a token sequence.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Insert(Index, Token),
    Replace(Index, Token),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), token()).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<Index>(), token()).prop_map(|(i, t)| Edit::Replace(i, t)),
    ]
}

/// Objects built from the tokens above, then edited a little; or tokens in any order.
fn soup() -> impl Strategy<Value = Vec<Token>> {
    let value = prop_oneof![
        4 => prop::sample::select(VALUES.to_vec()).prop_map(Token::Lit),
        1 => any::<bool>().prop_map(Token::Id),
    ];
    let pair = (prop::sample::select(KEYS.to_vec()), value);
    let edits = prop_oneof![
        2 => Just(Vec::new()),
        1 => prop::collection::vec(edit(), 1..3),
    ];
    let object = (
        prop::option::weighted(0.8, prop::sample::select(VALUES.to_vec())),
        prop::collection::vec(pair, 0..4),
        edits,
    )
        .prop_map(|(message, mut pairs, edits)| {
            if let Some(message) = message {
                pairs.insert(0, ("\"message\"", Token::Lit(message)));
            }
            let mut tokens = vec![Token::Lit("{")];
            for (i, (key, value)) in pairs.into_iter().enumerate() {
                if i > 0 {
                    tokens.push(Token::Lit(","));
                }
                tokens.extend([Token::Lit(key), Token::Lit(":"), value]);
            }
            tokens.push(Token::Lit("}"));
            for edit in &edits {
                apply(&mut tokens, edit);
            }
            tokens
        });
    prop_oneof![3 => object, 1 => prop::collection::vec(token(), 0..12)]
}

fn apply(tokens: &mut Vec<Token>, edit: &Edit) {
    match edit {
        Edit::Delete(at) if !tokens.is_empty() => {
            tokens.remove(at.index(tokens.len()));
        }
        Edit::Insert(at, token) => tokens.insert(at.index(tokens.len() + 1), token.clone()),
        Edit::Replace(at, token) if !tokens.is_empty() => {
            let at = at.index(tokens.len());
            tokens[at] = token.clone();
        }
        _ => {}
    }
}

/// Near-JSON made of keys, values and punctuation: objects with a token missing, added or
/// changed. The oracle reads each text with serde_json and the model.
#[test]
fn near_json_is_accepted_exactly_when_the_spec_model_says() {
    let ids = ids();
    let tally = Tally::default();
    runner(CASES)
        .run(&soup(), |tokens| {
            let text: String = tokens
                .iter()
                .map(|token| match token {
                    Token::Lit(text) => (*text).to_owned(),
                    Token::Id(true) => format!("\"{}\"", ids.sender),
                    Token::Id(false) => format!("\"{}\"", ids.other),
                })
                .collect();
            let expect = oracle(&ids, &text);
            tally.count(&ids, &expect);
            check(&ids, &text, expect)
        })
        .unwrap_or_else(|e| panic!("{e}"));
    tally.report(true);
}
