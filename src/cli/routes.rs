//! The HTTP routes `signalhub serve` adds to its Http endpoints: the page, `GET /ws-config`,
//! `POST /broadcast` and `GET /metrics`. With an API token, `POST /broadcast` (like the
//! control routes of [`super::control`]) needs `Authorization: Bearer <token>`; the page,
//! `/ws-config` and `/metrics` stay open.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};
use signalhub::http::{ApiToken, WebData, WebEvent, WebResponse};
use signalhub::{ClientId, Protocol, Result, SendOptions, Server, ServerHandle};

/// The WebSocket path the page connects to.
pub const PAGE_WS_PATH: &str = "/messages";

/// The Prometheus text exposition format's content type (its text is UTF-8: paths are).
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The value `GET /ws-config` answers, set once the server has started.
pub type WsConfig = Arc<OnceLock<Value>>;

/// Adds the routes. `ws_config` is `None` when there is no Ws endpoint: then there is no
/// `GET /ws-config` (it is a 404). `api_token`, when given, guards `POST /broadcast`.
pub fn add(
    server: &mut Server,
    ws_config: Option<WsConfig>,
    api_token: Option<&ApiToken>,
) -> Result<()> {
    server.http_route("GET", "/", |_| Ok(WebResponse::view("index")))?;
    // The page's [date] (Pode's seed signal route); everything else goes where it asked.
    server.route("/messages", |event| {
        let message = &event.data.message;
        if message
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case("[date]"))
        {
            return event.send(pode_now());
        }
        event.send(message)
    })?;
    if let Some(ws_config) = ws_config {
        server.http_route("GET", "/ws-config", move |_| {
            Ok(match ws_config.get() {
                Some(value) => WebResponse::json(value),
                None => WebResponse::status(503),
            })
        })?;
    }
    match api_token {
        Some(token) => server.http_route("POST", "/broadcast", token.guard(broadcast))?,
        None => server.http_route("POST", "/broadcast", broadcast)?,
    };
    let metrics = server.metrics();
    server.http_route("GET", "/metrics", move |_| {
        let text = metrics.snapshot().to_prometheus();
        Ok(WebResponse::text(text).with_header("Content-Type", PROMETHEUS))
    })?;
    Ok(())
}

/// Now, in this machine's time zone, as Pode's `[datetime]::Now.ToString()` writes it with
/// the default en-US culture: `M/d/yyyy h:mm:ss tt`, e.g. `12/4/2026 9:30:05 PM`. The zone
/// is `TZ`, else /etc/localtime (UTC when neither says).
pub fn pode_now() -> String {
    pode_date(&jiff::Zoned::now())
}

/// `time` as `M/d/yyyy h:mm:ss tt` (en-US). Written out field by field: jiff's strftime
/// (`%-m/%-d/%Y %-I:%M:%S %p`) brought its formatter and its error messages, 26 KiB of the
/// binary (docs/PERFORMANCE.md).
fn pode_date(time: &jiff::Zoned) -> String {
    let hour = match time.hour() % 12 {
        0 => 12,
        hour => hour,
    };
    let meridiem = if time.hour() < 12 { "AM" } else { "PM" };
    format!(
        "{}/{}/{:04} {hour}:{:02}:{:02} {meridiem}",
        time.month(),
        time.day(),
        time.year(),
        time.minute(),
        time.second()
    )
}

/// What `GET /ws-config` says for the started server: the port of the Ws endpoint `ws_name`,
/// or `null` when it shares its port with an Http endpoint (the page then uses its own
/// origin).
pub fn ws_config(handle: &ServerHandle, ws_name: &str) -> Value {
    let port = handle.local_addr(ws_name).and_then(|ws| {
        let shared = handle
            .endpoints()
            .iter()
            .any(|e| matches!(e.protocol, Protocol::Http | Protocol::Https) && e.address == ws);
        (!shared).then_some(ws.port())
    });
    let scheme = handle
        .endpoints()
        .iter()
        .find(|e| e.name == ws_name)
        .map_or("ws", |e| e.protocol.as_str());
    json!({ "port": port, "path": PAGE_WS_PATH, "scheme": scheme })
}

/// `POST /broadcast`: sends `{"Message": <message>}` (Pode's seed), to the body's `clientId`,
/// `userId`, `group` or `path` (the first given, in that order), else to everyone. Answers `{"sent": true}`, or 400 with the reason.
fn broadcast(event: &WebEvent) -> Result<WebResponse> {
    let request = match Broadcast::from_data(&event.data) {
        Ok(request) => request,
        Err(reason) => return Ok(WebResponse::text(reason).with_status(400)),
    };
    let value = json!({ "Message": request.message });
    event.signals().send_with(value, &request.options)?;
    Ok(WebResponse::json(json!({ "sent": true })))
}

/// A `POST /broadcast` body, checked.
#[derive(Debug, PartialEq)]
struct Broadcast {
    message: Value,
    options: SendOptions,
}

impl Broadcast {
    /// Reads `message` (required, not null), `path`, `group`, `userId` and `clientId`
    /// (optional strings; empty means absent, as an empty form field does) from a JSON or
    /// form body.
    fn from_data(data: &WebData) -> std::result::Result<Broadcast, String> {
        let message = data
            .get("message")
            .filter(|m| !m.is_null())
            .ok_or("missing message")?;
        let mut options = SendOptions::new();
        if let Some(path) = optional_string(data, "path")? {
            options = options.path(path);
        }
        if let Some(group) = optional_string(data, "group")? {
            options = options.group(group);
        }
        if let Some(user) = optional_string(data, "userId")? {
            options = options.user(user);
        }
        if let Some(id) = optional_string(data, "clientId")? {
            let id: ClientId = id.parse().map_err(|e| format!("invalid clientId: {e}"))?;
            options = options.client_id(id);
        }
        Ok(Broadcast { message, options })
    }
}

/// The field `key` as a non-empty string; `None` when absent, null or empty.
fn optional_string(data: &WebData, key: &str) -> std::result::Result<Option<String>, String> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123abcd-0000-4000-8000-00000000cafe";

    fn json_body(value: Value) -> std::result::Result<Broadcast, String> {
        Broadcast::from_data(&WebData::Json(value))
    }

    #[test]
    fn dates_are_written_as_pode_writes_them_in_en_us() {
        for (time, expected) in [
            (
                "2026-12-04T21:30:05[America/New_York]",
                "12/4/2026 9:30:05 PM",
            ),
            ("2026-01-09T00:00:00[UTC]", "1/9/2026 12:00:00 AM"),
            (
                "2026-07-10T12:05:09+02:00[Europe/Paris]",
                "7/10/2026 12:05:09 PM",
            ),
            ("0999-10-31T11:59:59.9[UTC]", "10/31/0999 11:59:59 AM"),
        ] {
            let time: jiff::Zoned = time.parse().unwrap();
            assert_eq!(pode_date(&time), expected);
        }
    }

    #[test]
    fn now_has_the_same_form() {
        // The zone it is in: tests/cli.rs runs the binary with TZ set.
        let now = pode_now();
        assert!(now.ends_with(" AM") || now.ends_with(" PM"), "{now}");
        assert_eq!(now.split(['/', ' ', ':']).count(), 7, "{now}");
    }

    #[test]
    fn a_message_alone_goes_to_everyone() {
        let request = json_body(json!({ "message": "hi" })).unwrap();
        assert_eq!(request.message, json!("hi"));
        assert_eq!(request.options, SendOptions::new());
    }

    #[test]
    fn path_and_client_id_target_the_signal() {
        let request = json_body(json!({ "Message": [1], "path": "/a", "clientId": ID })).unwrap();
        assert_eq!(request.message, json!([1]));
        let expected = SendOptions::new().path("/a").client_id(ID.parse().unwrap());
        assert_eq!(request.options, expected);
    }

    #[test]
    fn group_and_user_id_target_the_signal_too() {
        let request = json_body(json!({ "message": 1, "group": "ops", "userId": "ann" })).unwrap();
        assert_eq!(request.options, SendOptions::new().group("ops").user("ann"));
        let err = json_body(json!({ "message": 1, "group": ["ops"] })).unwrap_err();
        assert_eq!(err, "group must be a string");
    }

    #[test]
    fn form_fields_work_and_empty_ones_are_absent() {
        let form = WebData::Form(vec![
            ("message".into(), "hello there".into()),
            ("path".into(), String::new()),
            ("clientId".into(), String::new()),
        ]);
        let request = Broadcast::from_data(&form).unwrap();
        assert_eq!(request.message, json!("hello there"));
        assert_eq!(request.options, SendOptions::new());
    }

    #[test]
    fn bad_bodies_say_why() {
        for (body, reason) in [
            (json!({}), "missing message"),
            (json!({ "message": null }), "missing message"),
            (json!(["message"]), "missing message"),
            (
                json!({ "message": "x", "path": 3 }),
                "path must be a string",
            ),
            (
                json!({ "message": "x", "clientId": "nope" }),
                "invalid clientId",
            ),
        ] {
            let err = json_body(body.clone()).unwrap_err();
            assert!(err.starts_with(reason), "{body}: {err}");
        }
        let err = Broadcast::from_data(&WebData::None).unwrap_err();
        assert_eq!(err, "missing message");
    }
}
