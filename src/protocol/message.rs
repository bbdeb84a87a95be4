//! What a client sends, and what its receivers get (SPEC 3, 5).
//!
//! A client sends a text frame holding a JSON object such as
//! `{"message": ..., "path": "/x", "clientId": "...", "group": "ops", "direct": true}`; keys
//! match ASCII case-insensitively and only `message` is required. Receivers get
//! a string message as its unescaped text and any other value as compact JSON;
//! `null` and `""` send nothing.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

// --- Parsing what a client sends ---

/// A signal as sent by a client, borrowing its message from the frame text.
#[derive(Debug, Clone)]
pub(crate) struct ClientMessage<'a> {
    /// The message value, exactly as the client wrote it (any JSON value).
    pub(crate) message: &'a RawValue,
    /// The path to broadcast on, if given.
    pub(crate) path: Option<String>,
    /// The client id to send to, if given.
    pub(crate) client_id: Option<String>,
    /// The group to send to, if given (reached only when the sender is a member).
    pub(crate) group: Option<String>,
    /// Whether the signal goes straight back to the sender only.
    pub(crate) direct: bool,
}

/// Parses a client's text frame into a signal, or says why it is not one.
pub(crate) fn parse_client_message(text: &str) -> Result<ClientMessage<'_>, BadMessage> {
    let fields = serde_json::from_str::<RawFields<'_>>(text)
        .map_err(|error| not_an_object_or_json(text, error))?;
    fields.into_client_message()
}

/// Why a client's text was not a valid signal; `Display` gives a short lowercase reason.
#[derive(Debug)]
pub(crate) struct BadMessage(Reason);

/// The reasons a client's text can be rejected.
#[derive(Debug)]
enum Reason {
    /// Not JSON at all (or trailing characters after the object).
    NotJson(serde_json::Error),
    /// Valid JSON, but not an object.
    NotObject,
    /// The object has no `message` key.
    MissingMessage,
    /// A known key appears twice (compared case-insensitively).
    DuplicateKey(Field),
    /// A known key has a value of the wrong JSON type.
    WrongType(Field),
}

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Reason::NotJson(error) => write!(f, "not json: {error}"),
            Reason::NotObject => f.write_str("not a json object"),
            Reason::MissingMessage => f.write_str("missing \"message\""),
            Reason::DuplicateKey(field) => write!(f, "duplicate key \"{}\"", field.name()),
            Reason::WrongType(Field::Direct) => f.write_str("\"direct\" must be a boolean"),
            Reason::WrongType(field) => write!(f, "\"{}\" must be a string", field.name()),
        }
    }
}

impl std::error::Error for BadMessage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            Reason::NotJson(error) => Some(error),
            _ => None,
        }
    }
}

/// Tells a JSON non-object (a type error from `serde_json`) from text that is not JSON.
fn not_an_object_or_json(text: &str, error: serde_json::Error) -> BadMessage {
    if error.classify() != serde_json::error::Category::Data {
        return BadMessage(Reason::NotJson(error));
    }
    match serde_json::from_str::<IgnoredAny>(text) {
        Ok(_) => BadMessage(Reason::NotObject),
        Err(syntax_error) => BadMessage(Reason::NotJson(syntax_error)),
    }
}

/// The keys a signal understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// `message`
    Message,
    /// `path`
    Path,
    /// `clientId`
    ClientId,
    /// `group`
    Group,
    /// `direct`
    Direct,
}

impl Field {
    /// Every known field, for key lookup.
    const ALL: [Field; 5] = [
        Field::Message,
        Field::Path,
        Field::ClientId,
        Field::Group,
        Field::Direct,
    ];

    /// The canonical spelling of the key.
    fn name(self) -> &'static str {
        match self {
            Field::Message => "message",
            Field::Path => "path",
            Field::ClientId => "clientId",
            Field::Group => "group",
            Field::Direct => "direct",
        }
    }

    /// The field a key names, compared ASCII case-insensitively.
    fn from_key(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(key))
    }
}

/// A key of the client's object: a known field, or one to skip.
struct Key(Option<Field>);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Classifies a key without allocating, whether or not it was escaped.
struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(Key(Field::from_key(key)))
    }
}

/// The known fields as raw JSON, collected before their types are checked.
#[derive(Default)]
struct RawFields<'a> {
    /// Raw `message` value.
    message: Option<&'a RawValue>,
    /// Raw `path` value.
    path: Option<&'a RawValue>,
    /// Raw `clientId` value.
    client_id: Option<&'a RawValue>,
    /// Raw `group` value.
    group: Option<&'a RawValue>,
    /// Raw `direct` value.
    direct: Option<&'a RawValue>,
    /// The first known key seen twice, if any.
    duplicate: Option<Field>,
}

impl<'a> RawFields<'a> {
    /// The slot a field's raw value is kept in.
    fn slot(&mut self, field: Field) -> &mut Option<&'a RawValue> {
        match field {
            Field::Message => &mut self.message,
            Field::Path => &mut self.path,
            Field::ClientId => &mut self.client_id,
            Field::Group => &mut self.group,
            Field::Direct => &mut self.direct,
        }
    }

    /// Keeps a field's value, or notes the field as duplicated.
    fn record(&mut self, field: Field, value: &'a RawValue) {
        let slot = self.slot(field);
        if slot.is_some() {
            self.duplicate.get_or_insert(field);
        } else {
            *slot = Some(value);
        }
    }

    /// Checks the collected fields and turns them into a signal.
    fn into_client_message(self) -> Result<ClientMessage<'a>, BadMessage> {
        if let Some(field) = self.duplicate {
            return Err(BadMessage(Reason::DuplicateKey(field)));
        }
        let message = self.message.ok_or(BadMessage(Reason::MissingMessage))?;
        Ok(ClientMessage {
            message,
            path: optional_typed(self.path, Field::Path)?,
            client_id: optional_typed(self.client_id, Field::ClientId)?,
            group: optional_typed(self.group, Field::Group)?,
            direct: optional_typed(self.direct, Field::Direct)?.unwrap_or(false),
        })
    }
}

/// Reads an optional raw value as `T`, where JSON `null` counts as absent.
fn optional_typed<T: for<'de> Deserialize<'de>>(
    raw: Option<&RawValue>,
    field: Field,
) -> Result<Option<T>, BadMessage> {
    match raw {
        None => Ok(None),
        Some(raw) => serde_json::from_str::<Option<T>>(raw.get())
            .map_err(|_| BadMessage(Reason::WrongType(field))),
    }
}

impl<'de> Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawFieldsVisitor)
    }
}

/// Walks the client's object, keeping known values raw and skipping the rest.
struct RawFieldsVisitor;

impl<'de> Visitor<'de> for RawFieldsVisitor {
    type Value = RawFields<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields<'de>, A::Error> {
        let mut fields = RawFields::default();
        while let Some(Key(field)) = map.next_key::<Key>()? {
            match field {
                Some(field) => fields.record(field, map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(fields)
    }
}

// --- Payloads: what receivers get ---

/// Payload bytes for a message given as raw JSON, or None when nothing is to be sent.
#[cfg(test)]
pub(crate) fn payload_from_raw(raw: &RawValue) -> Option<Vec<u8>> {
    let mut payload = Vec::with_capacity(raw.get().len());
    append_raw_payload(raw, &mut payload).then_some(payload)
}

/// Payload bytes for a `serde_json::Value`, by the same rules as [`payload_from_raw`].
#[cfg(test)]
pub(crate) fn payload_from_value(value: &Value) -> Option<Vec<u8>> {
    let mut payload = Vec::new();
    append_value_payload(value, &mut payload).then_some(payload)
}

/// Appends the payload for a raw JSON message; false (and nothing appended) when there is none.
pub(super) fn append_raw_payload(raw: &RawValue, out: &mut Vec<u8>) -> bool {
    let json = raw.get().trim_matches(is_json_whitespace_char);
    let before = out.len();
    if json.starts_with('"') {
        if append_unescaped_string(json, out).is_err() {
            out.truncate(before);
        }
    } else if json != "null" {
        append_compact_json(json, out);
    }
    out.len() > before
}

/// Appends the payload for a `Value`; false (and nothing appended) when there is none.
pub(super) fn append_value_payload(value: &Value, out: &mut Vec<u8>) -> bool {
    let before = out.len();
    let written = match value {
        Value::Null => return false,
        Value::String(text) => {
            out.extend_from_slice(text.as_bytes());
            Ok(())
        }
        other => serde_json::to_writer(&mut *out, other),
    };
    if written.is_err() {
        out.truncate(before);
    }
    out.len() > before
}

/// Appends the unescaped contents of a JSON string literal, without an intermediate `String`.
fn append_unescaped_string(json: &str, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    AppendStr(out).deserialize(&mut deserializer)?;
    deserializer.end()
}

/// A deserializer seed that appends a JSON string's text to a buffer.
struct AppendStr<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for AppendStr<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for AppendStr<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.extend_from_slice(text.as_bytes());
        Ok(())
    }
}

/// Whether a char is JSON insignificant whitespace.
fn is_json_whitespace_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Appends valid JSON with all whitespace outside string literals removed.
///
/// Copies runs of significant bytes at once; strings and numbers are kept verbatim.
fn append_compact_json(json: &str, out: &mut Vec<u8>) {
    let bytes = json.as_bytes();
    let mut run_start = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (index, &byte) in bytes.iter().enumerate() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&bytes[run_start..index]);
            run_start = index + 1;
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClientMessage<'_> {
        parse_client_message(text).unwrap()
    }

    fn reason(text: &str) -> String {
        parse_client_message(text).unwrap_err().to_string()
    }

    /// The payload for a message written as JSON inside a client's object.
    fn payload(message_json: &str) -> Option<String> {
        let text = format!("{{\"message\": {message_json} }}");
        let parsed = parse(&text);
        payload_from_raw(parsed.message).map(|bytes| String::from_utf8(bytes).unwrap())
    }

    fn value_payload(value: &Value) -> Option<String> {
        payload_from_value(value).map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn parses_minimal_message() {
        let message = parse(r#"{"message":"hi"}"#);
        assert_eq!(message.message.get(), r#""hi""#);
        assert_eq!(message.path, None);
        assert_eq!(message.client_id, None);
        assert!(!message.direct);
    }

    #[test]
    fn parses_all_four_keys() {
        let message =
            parse(r#"{"message": {"a": 1}, "path": "/x", "clientId": "c1", "direct": true}"#);
        assert_eq!(message.message.get(), r#"{"a": 1}"#);
        assert_eq!(message.path.as_deref(), Some("/x"));
        assert_eq!(message.client_id.as_deref(), Some("c1"));
        assert!(message.direct);
    }

    #[test]
    fn keys_match_case_insensitively() {
        let message = parse(r#"{"Message":1,"PATH":"/a","ClientId":"x","DIRECT":true}"#);
        assert_eq!(message.message.get(), "1");
        assert_eq!(message.path.as_deref(), Some("/a"));
        assert_eq!(message.client_id.as_deref(), Some("x"));
        assert!(message.direct);
        assert_eq!(
            parse(r#"{"message":1,"clientid":"y"}"#)
                .client_id
                .as_deref(),
            Some("y")
        );
    }

    #[test]
    fn escaped_keys_are_recognised() {
        assert_eq!(parse(r#"{"mess\u0061ge":2}"#).message.get(), "2");
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let message = parse(r#"{"x":[1,{"y":"z"}],"message":true,"other":null,"n":1.5e9}"#);
        assert_eq!(message.message.get(), "true");
        assert_eq!(message.path, None);
    }

    #[test]
    fn nulls_count_as_absent() {
        let message = parse(r#"{"message":null,"path":null,"clientId":null,"direct":null}"#);
        assert_eq!(message.message.get(), "null");
        assert_eq!(message.path, None);
        assert_eq!(message.client_id, None);
        assert!(!message.direct);
    }

    #[test]
    fn direct_false_is_false() {
        assert!(!parse(r#"{"message":1,"direct":false}"#).direct);
    }

    #[test]
    fn path_escapes_are_decoded() {
        assert_eq!(
            parse(r#"{"message":1,"path":"\/a"}"#).path.as_deref(),
            Some("/a")
        );
        assert_eq!(
            parse(r#"{"message":1,"path":"/\u00e9"}"#).path.as_deref(),
            Some("/é")
        );
    }

    #[test]
    fn rejects_text_that_is_not_json() {
        assert!(reason("not json").starts_with("not json: "));
        assert!(reason("").starts_with("not json: "));
        assert!(reason(r#"{"message":1"#).starts_with("not json: "));
        assert!(reason("[1").starts_with("not json: "));
    }

    #[test]
    fn rejects_trailing_characters() {
        assert!(reason(r#"{"message":1} x"#).starts_with("not json: "));
        assert!(parse_client_message("{\"message\":1} \n").is_ok());
    }

    #[test]
    fn rejects_json_that_is_not_an_object() {
        assert_eq!(reason("[1]"), "not a json object");
        assert_eq!(reason(r#""str""#), "not a json object");
        assert_eq!(reason("12"), "not a json object");
        assert_eq!(reason("null"), "not a json object");
    }

    #[test]
    fn rejects_missing_message() {
        assert_eq!(reason("{}"), "missing \"message\"");
        assert_eq!(reason(r#"{"path":"/a"}"#), "missing \"message\"");
    }

    #[test]
    fn rejects_non_boolean_direct() {
        assert_eq!(
            reason(r#"{"message":1,"direct":"yes"}"#),
            "\"direct\" must be a boolean"
        );
        assert_eq!(
            reason(r#"{"message":1,"direct":1}"#),
            "\"direct\" must be a boolean"
        );
        assert_eq!(
            reason(r#"{"message":1,"Direct":"true"}"#),
            "\"direct\" must be a boolean"
        );
    }

    #[test]
    fn rejects_non_string_path_and_client_id() {
        assert_eq!(
            reason(r#"{"message":1,"path":5}"#),
            "\"path\" must be a string"
        );
        assert_eq!(
            reason(r#"{"message":1,"path":["/a"]}"#),
            "\"path\" must be a string"
        );
        assert_eq!(
            reason(r#"{"message":1,"clientId":true}"#),
            "\"clientId\" must be a string"
        );
    }

    #[test]
    fn rejects_duplicate_keys() {
        assert_eq!(
            reason(r#"{"message":1,"Message":2}"#),
            "duplicate key \"message\""
        );
        assert_eq!(
            reason(r#"{"message":1,"path":"/a","PATH":"/b"}"#),
            "duplicate key \"path\""
        );
        assert_eq!(
            reason(r#"{"message":1,"clientId":null,"clientid":"x"}"#),
            "duplicate key \"clientId\""
        );
    }

    #[test]
    fn bad_message_exposes_json_error_as_source() {
        use std::error::Error;
        assert!(parse_client_message("nope").unwrap_err().source().is_some());
        assert!(parse_client_message("{}").unwrap_err().source().is_none());
    }

    // --- payloads ---

    #[test]
    fn string_payload_is_unescaped_text() {
        assert_eq!(payload(r#""hi""#).as_deref(), Some("hi"));
        assert_eq!(payload(r#""a\"b\u00e9""#).as_deref(), Some("a\"bé"));
        assert_eq!(
            payload(r#""line\nnext\\""#).as_deref(),
            Some("line\nnext\\")
        );
    }

    #[test]
    fn unicode_string_payloads() {
        assert_eq!(payload(r#""héllo ✓""#).as_deref(), Some("héllo ✓"));
        assert_eq!(payload(r#""\ud83d\ude00""#).as_deref(), Some("😀"));
    }

    #[test]
    fn null_and_empty_string_send_nothing() {
        assert_eq!(payload("null"), None);
        assert_eq!(payload(r#""""#), None);
        assert_eq!(payload(r#"" ""#).as_deref(), Some(" "));
    }

    #[test]
    fn numbers_are_copied_verbatim() {
        assert_eq!(payload("1.50").as_deref(), Some("1.50"));
        assert_eq!(payload("-0").as_deref(), Some("-0"));
        assert_eq!(payload("1e3").as_deref(), Some("1e3"));
        assert_eq!(payload("0").as_deref(), Some("0"));
    }

    #[test]
    fn booleans_are_json_text() {
        assert_eq!(payload("true").as_deref(), Some("true"));
        assert_eq!(payload("false").as_deref(), Some("false"));
    }

    #[test]
    fn objects_and_arrays_are_compacted() {
        assert_eq!(
            payload(r#"{ "a" : [1, 2] }"#).as_deref(),
            Some(r#"{"a":[1,2]}"#)
        );
        let spaced = "[ {\n\t\"k\" :\r\n 1.0 } ,\t[ ] , { } , null ]";
        assert_eq!(
            payload(spaced).as_deref(),
            Some(r#"[{"k":1.0},[],{},null]"#)
        );
        assert_eq!(payload("{}").as_deref(), Some("{}"));
    }

    #[test]
    fn compaction_keeps_whitespace_inside_strings() {
        assert_eq!(
            payload(r#"{"a b": " x "}"#).as_deref(),
            Some(r#"{"a b":" x "}"#)
        );
        assert_eq!(
            payload("[\"\\u00e9 \\t\" ]").as_deref(),
            Some("[\"\\u00e9 \\t\"]")
        );
    }

    #[test]
    fn compaction_handles_escaped_quotes_and_backslashes() {
        assert_eq!(
            payload(r#"[ "a\" b" , "c" ]"#).as_deref(),
            Some(r#"["a\" b","c"]"#)
        );
        assert_eq!(
            payload(r#"[ "a\\" , "b" ]"#).as_deref(),
            Some(r#"["a\\","b"]"#)
        );
        assert_eq!(
            payload(r#"{ "k\\\"" : "v\\" }"#).as_deref(),
            Some(r#"{"k\\\"":"v\\"}"#)
        );
    }

    #[test]
    fn raw_value_with_surrounding_whitespace() {
        let raw = RawValue::from_string(" { \"a\" : 1 } ".to_string()).unwrap();
        assert_eq!(payload_from_raw(&raw).unwrap(), br#"{"a":1}"#);
    }

    #[test]
    fn value_payloads_follow_the_same_rules() {
        assert_eq!(value_payload(&Value::Null), None);
        assert_eq!(value_payload(&serde_json::json!("")), None);
        assert_eq!(
            value_payload(&serde_json::json!("a\"b")).as_deref(),
            Some("a\"b")
        );
        assert_eq!(
            value_payload(&serde_json::json!({"a": [1, 2]})).as_deref(),
            Some(r#"{"a":[1,2]}"#)
        );
        assert_eq!(
            value_payload(&serde_json::json!(true)).as_deref(),
            Some("true")
        );
        assert_eq!(value_payload(&serde_json::json!(-3)).as_deref(), Some("-3"));
    }

    // --- frames ---
}
