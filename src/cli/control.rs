//! Who may connect and who is connected, for `signalhub serve`: the JSON Web Token check of
//! `--jwt-secret-env`, and the control routes `GET /clients` and `POST /disconnect` (both
//! behind the API token of `--api-token-env`; without one they are not offered).

use std::time::SystemTime;

use serde_json::{json, Value};
use signalhub::auth::{Accepted, Jwt, Refused, UpgradeRequest};
use signalhub::http::{ApiToken, WebData, WebEvent, WebResponse};
use signalhub::{ClientId, Error, Presence, PresenceFilter, Result, Server};

/// The close code `POST /disconnect` uses when the body gives none: policy violation.
const DEFAULT_CLOSE_CODE: u16 = 1008;

/// Requires every WebSocket client to present a token `jwt` verifies, as `?token=` or an
/// `Authorization: Bearer` header: its `sub` is the user id, its `groups` the first groups.
pub fn require_tokens(server: &mut Server, jwt: Jwt) {
    server.authorize(move |request: &UpgradeRequest<'_>| {
        let Some(token) = request.bearer_token() else {
            return Err(Refused::unauthorized("a token is required"));
        };
        match jwt.verify(token) {
            Ok(claims) => Ok(Accepted::user(claims.subject).groups(claims.groups)),
            Err(e) => {
                log::debug!("refused a token from {}: {e}", request.remote_addr);
                Err(Refused::unauthorized(format!("invalid token: {e}")))
            }
        }
    });
}

/// Adds `GET /clients` and `POST /disconnect`, guarded by `token`.
pub fn add(server: &mut Server, token: &ApiToken) -> Result<()> {
    server.http_route("GET", "/clients", token.guard(clients))?;
    server.http_route("POST", "/disconnect", token.guard(disconnect))?;
    Ok(())
}

/// `GET /clients[?path=&group=&userId=]`: one object per connection.
fn clients(event: &WebEvent) -> Result<WebResponse> {
    let mut filter = PresenceFilter::new();
    if let Some(path) = event.query("path") {
        filter = filter.path(path);
    }
    if let Some(group) = event.query("group") {
        filter = filter.group(group);
    }
    if let Some(user) = event.query("userId") {
        filter = filter.user(user);
    }
    let clients = event.signals().presence(&filter)?;
    Ok(WebResponse::json(
        clients.iter().map(entry).collect::<Vec<_>>(),
    ))
}

/// One connection as `GET /clients` lists it.
fn entry(client: &Presence) -> Value {
    json!({
        "clientId": client.client_id.to_string(),
        "path": client.path,
        "userId": client.user,
        "groups": client.groups,
        "remoteAddr": client.remote_addr.to_string(),
        "endpoint": client.endpoint,
        "connectedAt": rfc3339(client.connected_at),
    })
}

/// A time as RFC 3339 in UTC, to the millisecond. Written out field by field, as
/// `pode_date` is, rather than through jiff's printer.
fn rfc3339(time: SystemTime) -> String {
    match jiff::Timestamp::try_from(time) {
        Ok(timestamp) => {
            let t = timestamp.to_zoned(jiff::tz::TimeZone::UTC);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        }
        Err(_) => String::new(),
    }
}

/// `POST /disconnect` with `{"clientId": ..., "code": 4001, "reason": "..."}`.
fn disconnect(event: &WebEvent) -> Result<WebResponse> {
    let request = match Disconnect::from_data(&event.data) {
        Ok(request) => request,
        Err(reason) => return Ok(WebResponse::text(reason).with_status(400)),
    };
    match (event.signals()).disconnect(request.client_id, request.code, &request.reason) {
        Ok(true) => Ok(WebResponse::json(json!({ "disconnected": true }))),
        Ok(false) => Ok(WebResponse::text("no such client").with_status(404)),
        Err(Error::InvalidCloseCode(code)) => Ok(WebResponse::text(format!(
            "code {code} is not one a server may send (1000-1003, 1007-1014, 3000-4999)"
        ))
        .with_status(400)),
        Err(e) => Err(e),
    }
}

/// A `POST /disconnect` body, checked.
#[derive(Debug, PartialEq)]
struct Disconnect {
    client_id: ClientId,
    code: u16,
    reason: String,
}

impl Disconnect {
    fn from_data(data: &WebData) -> std::result::Result<Disconnect, String> {
        if !matches!(data, WebData::Json(Value::Object(_))) {
            return Err("the body must be a JSON object".into());
        }
        let client_id = match data.get("clientId") {
            Some(Value::String(id)) => id.parse().map_err(|e| format!("invalid clientId: {e}"))?,
            _ => return Err("missing clientId".into()),
        };
        let code = match data.get("code") {
            None | Some(Value::Null) => DEFAULT_CLOSE_CODE,
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or("code must be a close code")?,
            Some(_) => return Err("code must be a number".into()),
        };
        let reason = match data.get("reason") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(reason)) => reason,
            Some(_) => return Err("reason must be a string".into()),
        };
        Ok(Disconnect {
            client_id,
            code,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123abcd-0000-4000-8000-00000000cafe";

    fn body(value: Value) -> std::result::Result<Disconnect, String> {
        Disconnect::from_data(&WebData::Json(value))
    }

    #[test]
    fn a_disconnect_needs_a_client_id_and_defaults_to_1008() {
        let request = body(json!({ "clientId": ID })).unwrap();
        assert_eq!(request.code, 1008);
        assert_eq!(request.reason, "");
        let request = body(json!({ "clientId": ID, "code": 4001, "reason": "bye" })).unwrap();
        assert_eq!((request.code, request.reason.as_str()), (4001, "bye"));
    }

    #[test]
    fn bad_disconnect_bodies_say_why() {
        for (value, reason) in [
            (json!({}), "missing clientId"),
            (json!({ "clientId": 5 }), "missing clientId"),
            (json!({ "clientId": "x" }), "invalid clientId"),
            (
                json!({ "clientId": ID, "code": "4001" }),
                "code must be a number",
            ),
            (
                json!({ "clientId": ID, "code": 70000 }),
                "code must be a close code",
            ),
            (
                json!({ "clientId": ID, "code": -1 }),
                "code must be a close code",
            ),
            (
                json!({ "clientId": ID, "reason": 1 }),
                "reason must be a string",
            ),
            (json!([ID]), "the body must be a JSON object"),
        ] {
            let err = body(value.clone()).unwrap_err();
            assert!(err.starts_with(reason), "{value}: {err}");
        }
        let form = WebData::Form(vec![("clientId".into(), ID.into())]);
        assert!(Disconnect::from_data(&form).is_err());
    }

    #[test]
    fn times_are_rfc_3339_in_utc() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_000_000_123);
        assert_eq!(rfc3339(time), "2026-11-30T00:53:20.123Z");
        let whole = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(whole), "2000-02-29T00:00:00.000Z");
        let before = SystemTime::UNIX_EPOCH - std::time::Duration::from_millis(1);
        assert_eq!(rfc3339(before), "1969-12-31T23:59:59.999Z");
    }
}
