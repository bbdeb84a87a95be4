//! Request bodies, parsed by content type (the door has read them whole, within the limit).

use serde_json::Value;

use crate::protocol::url::parse_urlencoded;

/// The parsed body of an HTTP request: Pode's `$WebEvent.Data`.
///
/// Which variant a body becomes depends on its `Content-Type`:
///
/// | Content type | Data |
/// |---|---|
/// | (empty body, any type) | [`WebData::None`] |
/// | `application/json`, `application/*+json` | [`WebData::Json`]; a body that does not parse is a `400` |
/// | `application/x-www-form-urlencoded` | [`WebData::Form`]; bad `%` escapes or non-UTF-8 are a `400` |
/// | `text/*` | [`WebData::Text`]; non-UTF-8 is a `400` |
/// | anything else, or none | [`WebData::None`]: the body is read (and size-checked) but not kept |
///
/// Bodies are assumed to be UTF-8 whatever `charset` says.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum WebData {
    /// No body, or one of a type that is not parsed.
    #[default]
    None,
    /// A JSON body, any JSON value.
    Json(Value),
    /// Form fields, decoded, in order (a name may repeat).
    Form(Vec<(String, String)>),
    /// A `text/*` body.
    Text(String),
}

impl WebData {
    /// The field `key` of a JSON object body or of a form body (as a JSON string): Pode's
    /// `$WebEvent.Data['message']`. An exact match wins, else the first field whose name
    /// matches ignoring ASCII case. `None` for other bodies and missing fields; for a form
    /// field that repeats, the first one.
    ///
    /// ```
    /// use serde_json::json;
    /// use signalhub::http::WebData;
    ///
    /// let json = WebData::Json(json!({ "message": "hi", "count": 2 }));
    /// assert_eq!(json.get("message"), Some(json!("hi")));
    /// assert_eq!(json.get("Count"), Some(json!(2)));
    ///
    /// let form = WebData::Form(vec![("message".into(), "hello there".into())]);
    /// assert_eq!(form.get("message"), Some(json!("hello there")));
    /// assert_eq!(form.get("missing"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            WebData::Json(Value::Object(map)) => map
                .get(key)
                .or_else(|| {
                    let mut fields = map.iter();
                    fields
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                        .map(|(_, v)| v)
                })
                .cloned(),
            WebData::Form(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .or_else(|| fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)))
                .map(|(_, v)| Value::String(v.clone())),
            _ => None,
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Unparseable: `400` with this short reason.
    Invalid(String),
}

/// Parses `body` by its `Content-Type` (see [`WebData`]).
pub(crate) fn parse(content_type: Option<&str>, body: &[u8]) -> Result<WebData, BodyError> {
    if body.is_empty() {
        return Ok(WebData::None);
    }
    let essence = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let invalid = BodyError::Invalid;
    if essence == "application/json" || is_json_suffix(&essence) {
        serde_json::from_slice(body)
            .map(WebData::Json)
            .map_err(|e| invalid(format!("invalid json body: {e}")))
    } else if essence == "application/x-www-form-urlencoded" {
        parse_form(body)
            .map(WebData::Form)
            .ok_or_else(|| invalid("invalid form body".into()))
    } else if essence.starts_with("text/") {
        String::from_utf8(body.to_vec())
            .map(WebData::Text)
            .map_err(|_| invalid("text body is not valid utf-8".into()))
    } else {
        Ok(WebData::None)
    }
}

fn is_json_suffix(essence: &str) -> bool {
    essence.starts_with("application/") && essence.ends_with("+json")
}

/// A form body: `None` for a bad escape or non-UTF-8.
fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    parse_urlencoded(std::str::from_utf8(body).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_bodies_parse_or_are_refused() {
        let data = parse(Some("application/json; charset=utf-8"), br#"{"a":1}"#).unwrap();
        assert_eq!(data, WebData::Json(json!({"a": 1})));
        let patch = parse(Some("application/merge-patch+json"), b"[1]").unwrap();
        assert_eq!(patch, WebData::Json(json!([1])));
        let Err(BodyError::Invalid(reason)) = parse(Some("application/json"), b"{oops") else {
            panic!("bad json accepted");
        };
        assert!(reason.starts_with("invalid json body: "), "{reason}");
    }

    #[test]
    fn form_bodies_decode_escapes_and_plus() {
        let data = parse(
            Some("Application/X-WWW-Form-Urlencoded"),
            b"message=hello+there&x=%26%3D&flag&&e=",
        )
        .unwrap();
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            data,
            WebData::Form(pairs(&[
                ("message", "hello there"),
                ("x", "&="),
                ("flag", ""),
                ("e", "")
            ]))
        );
        for bad in [&b"a=%zz"[..], b"a=%", b"a=%ff", b"\xff=1"] {
            assert_eq!(
                parse(Some("application/x-www-form-urlencoded"), bad),
                Err(BodyError::Invalid("invalid form body".into()))
            );
        }
    }

    #[test]
    fn text_empty_and_other_bodies() {
        assert_eq!(
            parse(Some("text/plain"), b"hi").unwrap(),
            WebData::Text("hi".into())
        );
        assert!(parse(Some("text/plain"), b"\xff").is_err());
        assert_eq!(parse(Some("application/json"), b"").unwrap(), WebData::None);
        assert_eq!(parse(None, b"hi").unwrap(), WebData::None);
        assert_eq!(
            parse(Some("application/octet-stream"), b"\x00\x01").unwrap(),
            WebData::None
        );
    }

    #[test]
    fn get_reads_json_and_form_fields() {
        let json = WebData::Json(json!({"Message": "a", "message": "b"}));
        assert_eq!(json.get("message"), Some(json!("b")));
        assert_eq!(json.get("MESSAGE"), Some(json!("a")));
        assert_eq!(WebData::Json(json!([1])).get("0"), None);
        assert_eq!(WebData::Text("x".into()).get("x"), None);
        assert_eq!(WebData::None.get("x"), None);
    }
}
