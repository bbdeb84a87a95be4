//! Who may connect, and who hears what: an authorize hook that checks a token, groups that
//! clients join and leave, messages to a group, and a presence list.
//!
//! ```sh
//! cargo run --example auth_groups                  # ws://127.0.0.1:8091, http://127.0.0.1:8090
//! signalhub connect 'ws://127.0.0.1:8091/chat?token=alice-token'
//! signalhub connect 'ws://127.0.0.1:8091/chat' -H 'Authorization: Bearer bob-token'
//! #   {"message": {"join": "ops"}}                   -> {"joined":"ops"}
//! #   {"message": "deploy at 5", "group": "ops"}     -> every member of ops (members only)
//! #   {"message": {"who": "ops"}}                    -> the members of ops
//! curl http://127.0.0.1:8090/presence              # everyone connected, as JSON
//! ```
//!
//! A connection without a known token gets `401` before any upgrade. Alice starts in `ops`;
//! everyone else joins groups by asking. Real programs would look tokens up in a database
//! or verify signed ones ([`signalhub::auth::Jwt`]); the hook runs on the new connection's
//! own thread, so a slow lookup delays only that client.

use serde_json::json;
use signalhub::auth::{Accepted, Refused, UpgradeRequest};
use signalhub::http::WebResponse;
use signalhub::{Endpoint, Presence, PresenceFilter, SendOptions, Server};

/// The demo's users: token, user id, groups they start in.
const USERS: [(&str, &str, &[&str]); 3] = [
    ("alice-token", "alice", &["ops"]),
    ("bob-token", "bob", &[]),
    ("carol-token", "carol", &[]),
];

/// What the authorize hook attaches to each connection: how it logged in.
struct Login {
    via: &'static str,
}

/// Accepts a known token (`?token=` or `Authorization: Bearer`), refuses anything else.
fn authorize(request: &UpgradeRequest<'_>) -> Result<Accepted, Refused> {
    let Some(token) = request.bearer_token() else {
        return Err(Refused::unauthorized("a token is required"));
    };
    let via = match request.header("authorization") {
        Some(_) => "header",
        None => "query",
    };
    let (_, user, groups) = USERS
        .iter()
        .find(|(known, _, _)| *known == token)
        .ok_or_else(|| Refused::unauthorized("unknown token"))?;
    Ok(Accepted::user(*user)
        .groups(groups.iter().copied())
        .data(Login { via }))
}

/// One presence entry as JSON.
fn entry(client: &Presence) -> serde_json::Value {
    json!({
        "clientId": client.client_id.to_string(),
        "path": client.path,
        "userId": client.user,
        "groups": client.groups,
    })
}

/// The example's server on these addresses: WebSockets on `ws`, `GET /presence` on `http`.
pub fn server(ws: &str, http: &str) -> signalhub::Result<Server> {
    let mut server = Server::new();
    server.endpoint(Endpoint::ws(ws))?;
    server.endpoint(Endpoint::http(http))?;
    server.authorize(authorize);
    server.on_connect("*", |client| {
        let via = client.data::<Login>().map_or("?", |login| login.via);
        log::info!("{:?} connected (token in the {via})", client.user);
    });
    server.route("/chat", |event| {
        let signals = event.signals();
        let me = event.client_id();
        let to_me = SendOptions::new().client_id(me);
        let ask = &event.data.message;
        if let Some(group) = ask["join"].as_str() {
            signals.join(me, group)?;
            return event.send_with(json!({ "joined": group }), &to_me);
        }
        if let Some(group) = ask["leave"].as_str() {
            signals.leave(me, group)?;
            return event.send_with(json!({ "left": group }), &to_me);
        }
        if let Some(group) = ask["who"].as_str() {
            let members = signals.presence(&PresenceFilter::new().group(group))?;
            let members: Vec<_> = members.iter().map(entry).collect();
            return event.send_with(json!({ "members": members }), &to_me);
        }
        // Anything else goes where the client asked: a group it is in, a path, a client.
        event.send(ask)
    })?;
    let signals = server.signals();
    server.http_route("GET", "/presence", move |_| {
        let everyone = signals.presence(&PresenceFilter::new())?;
        Ok(WebResponse::json(
            everyone.iter().map(entry).collect::<Vec<_>>(),
        ))
    })?;
    Ok(server)
}

#[allow(dead_code)] // the integration test includes this file for `server` alone
fn main() -> Result<(), Box<dyn std::error::Error>> {
    simplelog::SimpleLogger::init(log::LevelFilter::Info, simplelog::Config::default())?;
    let mut args = std::env::args().skip(1);
    let ws = args.next().unwrap_or_else(|| "127.0.0.1:8091".to_owned());
    let http = args.next().unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    let handle = server(&ws, &http)?.start()?;
    for endpoint in handle.endpoints() {
        println!("listening on {}", endpoint.url());
    }
    println!("tokens: alice-token (in ops), bob-token, carol-token");
    handle.join()?;
    Ok(())
}
