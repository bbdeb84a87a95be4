//! Groups, users, lists of ids, presence and disconnect through real clients.

mod support;

use serde_json::json;
use signalhub::auth::{Accepted, Refused, UpgradeRequest};
use signalhub::{ClientId, Error, PresenceFilter, SendOptions, ServerHandle};
use support::*;
use tungstenite::protocol::frame::coding::CloseCode;

/// Accepts `?user=U&groups=a,b` (both optional).
fn by_query(request: &UpgradeRequest<'_>) -> Result<Accepted, Refused> {
    let groups = request.query("groups").unwrap_or_default().split(',');
    let accepted = match request.query("user") {
        Some(user) => Accepted::user(user),
        None => Accepted::anonymous(),
    };
    Ok(accepted.groups(groups.filter(|g| !g.is_empty())))
}

fn server() -> ServerHandle {
    start_with(config(), |s| {
        s.authorize(by_query);
        // Joins and leaves asked for by clients: {"message": {"join": "g"}} / {"leave": "g"}.
        s.route("/rooms", |event| {
            let signals = event.signals();
            let me = event.client_id();
            if let Some(group) = event.data.message["join"].as_str() {
                signals.join(me, group)?;
            } else if let Some(group) = event.data.message["leave"].as_str() {
                signals.leave(me, group)?;
            } else {
                return event.send(&event.data.message);
            }
            // In order after the join or leave: the groups as the handler sees them now.
            let groups = signals.presence(&PresenceFilter::new())?;
            let mine = groups
                .iter()
                .find(|p| p.client_id == me)
                .map(|p| p.groups.clone());
            event.send_with(json!({ "groups": mine }), &SendOptions::new().client_id(me))
        })
        .unwrap();
    })
}

#[test]
fn sends_to_a_group_reach_its_members_only() {
    let server = server();
    let mut ops1 = connect(&server, "/a?groups=ops,eu");
    let mut ops2 = connect(&server, "/b?groups=ops");
    let mut eu = connect(&server, "/a?groups=eu");
    let mut nobody = connect(&server, "/a");
    let signals = server.signals();
    signals
        .send_with("to ops", &SendOptions::new().group("ops"))
        .unwrap();
    assert_eq!(ops1.recv(), "to ops");
    assert_eq!(ops2.recv(), "to ops");
    signals
        .send_with("to eu", &SendOptions::new().group("eu"))
        .unwrap();
    assert_eq!(ops1.recv(), "to eu");
    assert_eq!(eu.recv(), "to eu");
    // Exact names: another case is another group.
    signals
        .send_with("to OPS", &SendOptions::new().group("OPS"))
        .unwrap();
    signals
        .send_with("to none", &SendOptions::new().group("none"))
        .unwrap();
    // A group beats a path; a user beats a group.
    signals
        .send_with("ops not /a", &SendOptions::new().group("ops").path("/a"))
        .unwrap();
    assert_eq!(ops1.recv(), "ops not /a");
    assert_eq!(ops2.recv(), "ops not /a");
    signals.send("marker").unwrap();
    for client in [&mut ops1, &mut ops2, &mut eu, &mut nobody] {
        assert_eq!(client.recv(), "marker");
    }
    server.shutdown();
}

#[test]
fn a_send_to_a_user_reaches_every_connection_of_theirs() {
    let server = server();
    let mut phone = connect(&server, "/a?user=alice");
    let mut laptop = connect(&server, "/b?user=alice");
    let mut bob = connect(&server, "/a?user=bob");
    let mut anonymous = connect(&server, "/a");
    let signals = server.signals();
    signals
        .send_with("hi alice", &SendOptions::new().user("alice").group("x"))
        .unwrap();
    assert_eq!(phone.recv(), "hi alice");
    assert_eq!(laptop.recv(), "hi alice");
    signals
        .send_with("hi Alice", &SendOptions::new().user("Alice"))
        .unwrap();
    signals.send("marker").unwrap();
    for client in [&mut phone, &mut laptop, &mut bob, &mut anonymous] {
        assert_eq!(client.recv(), "marker");
    }
    // Once one of her connections has gone, the others still get her signals.
    drop(phone);
    wait_until("the phone is gone", || {
        server
            .presence(&PresenceFilter::new().user("alice"))
            .unwrap()
            .len()
            == 1
    });
    signals
        .send_with("still you", &SendOptions::new().user("alice"))
        .unwrap();
    assert_eq!(laptop.recv(), "still you");
    server.shutdown();
}

#[test]
fn a_send_to_a_list_of_ids_reaches_each_once() {
    let server = server();
    let mut a = connect(&server, "/a");
    let mut b = connect(&server, "/b");
    let mut c = connect(&server, "/c");
    let signals = server.signals();
    let options = SendOptions::new()
        .client_ids([a.id, b.id, a.id, ClientId::random()])
        .path("/c");
    signals.send_with("listed", &options).unwrap();
    signals.send("marker").unwrap();
    for client in [&mut a, &mut b] {
        assert_eq!(client.recv(), "listed");
        assert_eq!(client.recv(), "marker");
    }
    assert_eq!(c.recv(), "marker");
    server.shutdown();
}

#[test]
fn a_clients_group_message_reaches_the_group_only_when_it_is_a_member() {
    let server = server();
    let mut member = connect(&server, "/a?groups=ops");
    let mut other_member = connect(&server, "/b?groups=ops");
    let mut outsider = connect(&server, "/a?groups=dev");
    member.send_json(json!({ "message": "from inside", "group": "ops" }));
    assert_eq!(member.recv(), "from inside");
    assert_eq!(other_member.recv(), "from inside");
    outsider.send_json(json!({ "message": "from outside", "group": "ops" }));
    outsider.send_json(json!({ "message": "nowhere", "group": "nobody" }));
    // Dropped, counted, and the outsider stays connected.
    wait_until("two refusals counted", || {
        server.metrics().snapshot().group_messages_refused == 2
    });
    outsider.send_json(json!({ "message": "still here", "direct": true }));
    assert_eq!(outsider.recv(), "still here");
    server.signals().send("marker").unwrap();
    for client in [&mut member, &mut other_member, &mut outsider] {
        assert_eq!(client.recv(), "marker");
    }
    // A group that is not a string is a message not understood.
    member.send_text(r#"{"message": "x", "group": 5}"#);
    wait_until("ignored", || {
        server.metrics().snapshot().messages_ignored == 1
    });
    server.shutdown();
}

#[test]
fn joins_and_leaves_take_effect_in_order_from_routes_and_from_anywhere() {
    let server = server();
    let mut alice = connect(&server, "/rooms");
    let mut bob = connect(&server, "/rooms");
    alice.send_json(json!({ "message": { "join": "lobby" } }));
    assert_eq!(alice.recv(), r#"{"groups":["lobby"]}"#);
    // Joined from outside any handler.
    let signals = server.signals();
    signals.join(bob.id, "lobby").unwrap();
    signals.join(bob.id, "lobby").unwrap(); // twice: no change
    signals.join(ClientId::random(), "lobby").unwrap(); // nobody: ignored
    signals
        .send_with("welcome", &SendOptions::new().group("lobby"))
        .unwrap();
    assert_eq!(alice.recv(), "welcome");
    assert_eq!(bob.recv(), "welcome");
    // Members may now speak to the group from their own messages.
    bob.send_json(json!({ "message": "hello lobby", "group": "lobby" }));
    assert_eq!(alice.recv(), "hello lobby");
    assert_eq!(bob.recv(), "hello lobby");
    alice.send_json(json!({ "message": { "leave": "lobby" } }));
    assert_eq!(alice.recv(), r#"{"groups":[]}"#);
    signals
        .send_with("after", &SendOptions::new().group("lobby"))
        .unwrap();
    assert_eq!(bob.recv(), "after");
    signals.leave(bob.id, "lobby").unwrap();
    signals.leave(bob.id, "never-joined").unwrap();
    signals
        .send_with("empty room", &SendOptions::new().group("lobby"))
        .unwrap();
    signals.send("marker").unwrap();
    assert_eq!(alice.recv(), "marker");
    assert_eq!(bob.recv(), "marker");
    server.shutdown();
}

#[test]
fn presence_lists_who_is_connected_filtered_by_path_group_or_user() {
    let server = server();
    let before = std::time::SystemTime::now();
    let a = connect(&server, "/Chat?user=alice&groups=ops,eu");
    let b = connect(&server, "/chat?user=bob&groups=ops");
    let c = connect(&server, "/news");
    let everyone = server.presence(&PresenceFilter::new()).unwrap();
    assert_eq!(everyone.len(), 3);
    let alice = everyone
        .iter()
        .find(|p| p.client_id == a.id)
        .expect("alice");
    assert_eq!(alice.path, "/Chat");
    assert_eq!(alice.user.as_deref(), Some("alice"));
    assert_eq!(alice.groups, ["ops", "eu"]);
    assert!(alice.remote_addr.ip().is_loopback());
    assert_eq!(alice.endpoint, "ws-0");
    assert!(alice.connected_at >= before);
    let ids = |filter: PresenceFilter| {
        let mut ids: Vec<ClientId> = (server.presence(&filter).unwrap().into_iter())
            .map(|p| p.client_id)
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<ClientId>| {
        v.sort();
        v
    };
    assert_eq!(
        ids(PresenceFilter::new().path("/CHAT")),
        sorted(vec![a.id, b.id])
    );
    assert_eq!(
        ids(PresenceFilter::new().group("ops")),
        sorted(vec![a.id, b.id])
    );
    assert_eq!(ids(PresenceFilter::new().group("eu")), [a.id]);
    assert_eq!(ids(PresenceFilter::new().user("bob")), [b.id]);
    assert_eq!(ids(PresenceFilter::new().path("/news").group("ops")), []);
    assert_eq!(ids(PresenceFilter::new().path("/news")), [c.id]);
    drop(c);
    wait_until("c has left", || {
        ids(PresenceFilter::new().path("/news")).is_empty()
    });
    server.shutdown();
    assert!(matches!(
        server.presence(&PresenceFilter::new()),
        Err(Error::NotRunning)
    ));
}

#[test]
fn disconnect_closes_one_client_with_its_code_after_what_was_sent_before() {
    let server = server();
    let mut target = connect(&server, "/a");
    let mut bystander = connect(&server, "/a");
    let signals = server.signals();
    signals.send("before").unwrap();
    let found = signals
        .disconnect(target.id, 4001, "kicked by the admin")
        .unwrap();
    assert!(found);
    assert_eq!(target.recv(), "before");
    match target.ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::from(4001));
            assert_eq!(frame.reason, "kicked by the admin");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // Unknown ids are told apart; codes a server may not send are refused.
    assert!(!signals.disconnect(ClientId::random(), 1008, "").unwrap());
    for code in [999, 1005, 1006, 1015, 2000, 5000] {
        assert!(matches!(
            signals.disconnect(bystander.id, code, ""),
            Err(Error::InvalidCloseCode(c)) if c == code
        ));
    }
    // A reason longer than a close frame holds is cut at a character boundary.
    let long = "é".repeat(100);
    assert!(signals.disconnect(bystander.id, 1008, &long).unwrap());
    assert_eq!(bystander.recv(), "before");
    match bystander.ws.read() {
        Ok(tungstenite::Message::Close(Some(frame))) => {
            assert_eq!(frame.code, CloseCode::Policy);
            assert_eq!(frame.reason.len(), 122);
        }
        other => panic!("expected a close, got {other:?}"),
    }
    wait_until("both counted and gone", || {
        let metrics = server.metrics().snapshot();
        metrics.disconnects.server == 2 && metrics.clients_connected == 0
    });
    server.shutdown();
}
