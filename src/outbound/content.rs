//! Content types: how a connection's incoming text is parsed into [`WsData`] and how values
//! sent on it are written (SPEC 11).

use serde_json::Value;

use crate::protocol::url::parse_urlencoded;
use crate::{Error, Result};

/// A received message, parsed by the connection's content type.
///
/// | Frame and content type | Data |
/// |---|---|
/// | text, `application/json` (the default) or `application/*+json` | [`WsData::Json`] |
/// | text, `application/x-www-form-urlencoded` | [`WsData::Form`] |
/// | text, `text/*` or any other type | [`WsData::Text`] |
/// | binary, any type | [`WsData::Bytes`] |
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WsData {
    /// A JSON value.
    Json(Value),
    /// Text, as received.
    Text(String),
    /// Form fields, decoded (`+` is a space), in order.
    Form(Vec<(String, String)>),
    /// A binary frame's bytes.
    Bytes(Vec<u8>),
}

impl WsData {
    /// The JSON value, if the data is JSON.
    pub fn json(&self) -> Option<&Value> {
        match self {
            WsData::Json(value) => Some(value),
            _ => None,
        }
    }

    /// The text, if the data is text.
    pub fn text(&self) -> Option<&str> {
        match self {
            WsData::Text(text) => Some(text),
            _ => None,
        }
    }

    /// The first form field named `name`, if the data is a form.
    pub fn field(&self, name: &str) -> Option<&str> {
        match self {
            WsData::Form(fields) => fields
                .iter()
                .find_map(|(k, v)| (k == name).then_some(v.as_str())),
            _ => None,
        }
    }
}

/// What a connection's content type makes of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    Json,
    Form,
    Text,
}

impl Content {
    /// The kind of a `Content-Type` value such as `application/json; charset=utf-8`.
    pub(crate) fn of(content_type: &str) -> Content {
        let essence = content_type.split(';').next().unwrap_or_default();
        let essence = essence.trim().to_ascii_lowercase();
        if essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
        {
            Content::Json
        } else if essence == "application/x-www-form-urlencoded" {
            Content::Form
        } else {
            Content::Text
        }
    }

    /// Parses a text message; the reason when it does not parse.
    pub(crate) fn parse(self, text: &str) -> Result<WsData, String> {
        match self {
            Content::Json => serde_json::from_str(text)
                .map(WsData::Json)
                .map_err(|e| format!("invalid json: {e}")),
            Content::Form => parse_urlencoded(text)
                .map(WsData::Form)
                .ok_or_else(|| "invalid form data".to_owned()),
            Content::Text => Ok(WsData::Text(text.to_owned())),
        }
    }

    /// The text to send for `value`: a string as it is; anything else as compact JSON, or as
    /// form fields for a form (an object's values: strings as they are, `null` empty, the
    /// rest as JSON).
    pub(crate) fn encode(self, value: &Value) -> Result<String> {
        match (self, value) {
            (_, Value::String(text)) => Ok(text.clone()),
            (Content::Form, Value::Object(fields)) => Ok(encode_form(fields)),
            (Content::Form, other) => Err(Error::Encode(format!(
                "a json {} cannot be sent as form fields; send an object or a string",
                kind(other)
            ))),
            (Content::Json | Content::Text, other) => Ok(other.to_string()),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn encode_form(fields: &serde_json::Map<String, Value>) -> String {
    let mut out = String::new();
    for (name, value) in fields {
        if !out.is_empty() {
            out.push('&');
        }
        form_escape(name, &mut out);
        out.push('=');
        match value {
            Value::String(text) => form_escape(text, &mut out),
            Value::Null => {}
            other => form_escape(&other.to_string(), &mut out),
        }
    }
    out
}

/// The `application/x-www-form-urlencoded` byte serializer (WHATWG URL standard).
fn form_escape(text: &str, out: &mut String) {
    for byte in text.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_are_recognised_by_their_essence() {
        assert_eq!(Content::of("application/json"), Content::Json);
        assert_eq!(
            Content::of(" Application/JSON; charset=utf-8"),
            Content::Json
        );
        assert_eq!(Content::of("application/vnd.api+json"), Content::Json);
        assert_eq!(
            Content::of("application/x-www-form-urlencoded"),
            Content::Form
        );
        assert_eq!(Content::of("text/plain"), Content::Text);
        assert_eq!(Content::of("application/xml"), Content::Text);
    }

    #[test]
    fn incoming_text_is_parsed_or_refused_with_a_reason() {
        assert_eq!(
            Content::Json.parse(r#"{"a":[1,2]}"#),
            Ok(WsData::Json(json!({"a": [1, 2]})))
        );
        assert!(Content::Json
            .parse("not json")
            .unwrap_err()
            .starts_with("invalid json"));
        assert_eq!(
            Content::Form.parse("a=1&b=two+words&c=%26&&d"),
            Ok(WsData::Form(vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "&".into()),
                ("d".into(), "".into()),
            ]))
        );
        assert!(Content::Form.parse("a=%zz").is_err());
        assert_eq!(Content::Text.parse("hi"), Ok(WsData::Text("hi".into())));
    }

    #[test]
    fn outgoing_values_follow_the_content_type_and_strings_go_raw() {
        for content in [Content::Json, Content::Text, Content::Form] {
            assert_eq!(content.encode(&json!("raw {text}")).unwrap(), "raw {text}");
        }
        let value = json!({"message": "a b", "n": 1});
        assert_eq!(
            Content::Json.encode(&value).unwrap(),
            r#"{"message":"a b","n":1}"#
        );
        assert_eq!(Content::Text.encode(&json!([1, 2])).unwrap(), "[1,2]");
        let form = json!({"message": "a b&c=é", "n": 1, "none": null, "list": [1]});
        assert_eq!(
            Content::Form.encode(&form).unwrap(),
            "list=%5B1%5D&message=a+b%26c%3D%C3%A9&n=1&none="
        );
        let err = Content::Form.encode(&json!([1])).unwrap_err();
        assert!(err.to_string().contains("array"), "{err}");
    }

    #[test]
    fn a_form_round_trips() {
        let value = json!({"k y": "v=1&2", "x": "+%"});
        let text = Content::Form.encode(&value).unwrap();
        assert_eq!(
            Content::Form.parse(&text),
            Ok(WsData::Form(vec![
                ("k y".into(), "v=1&2".into()),
                ("x".into(), "+%".into()),
            ]))
        );
    }

    #[test]
    fn accessors_pick_their_kind() {
        let form = WsData::Form(vec![("a".into(), "1".into())]);
        assert_eq!(form.field("a"), Some("1"));
        assert_eq!(form.text(), None);
        assert_eq!(WsData::Text("t".into()).text(), Some("t"));
        assert_eq!(WsData::Json(json!(1)).json(), Some(&json!(1)));
    }
}
