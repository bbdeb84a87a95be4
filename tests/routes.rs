//! Signal routes and `SignalEvent` (SPEC 7), sending from code with the `Signals` handle
//! (SPEC 8), and connect/disconnect hooks.
//!
//! "Nothing else arrived" is proven with a fence rather than a quiet period: after what is
//! under test, a marker is broadcast from the same thread (a route handler or the test's
//! `Signals` handle). Per receiver, signals keep their order, so anything sent before the
//! marker reaches a client before it.

mod support;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde_json::{json, Value};
use signalhub::{
    ClientInfo, Endpoint, Error, Mode, Protocol, SendOptions, Server, ServerHandle, SignalEvent,
    Signals,
};
use support::*;

const FENCE: &str = "--fence--";

/// The clients leave first (their sockets close), then the server shuts down: a client that
/// is not reading would not answer the server's close frame and hold shutdown up for the
/// close timeout.
fn shut_down(server: ServerHandle, clients: impl IntoIterator<Item = Client>) {
    drop(clients.into_iter().collect::<Vec<_>>());
    server.shutdown();
}

/// Broadcasts a marker with `signals`; it must be the next message of every client.
fn fence(signals: &Signals, clients: &mut [&mut Client]) {
    signals.send(FENCE).expect("fence sent");
    for (i, client) in clients.iter_mut().enumerate() {
        assert_eq!(
            client.recv(),
            FENCE,
            "client #{i} got something before the fence"
        );
    }
}

/// A channel whose ends can be captured by route handlers and hooks.
fn channel<T>() -> (Sender<T>, Receiver<T>) {
    crossbeam_channel::unbounded()
}

/// The next value from a handler or hook, within [`WAIT`].
fn next<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Replies to the sender only with `label`, so a test sees which handler ran.
fn reply_with(label: &'static str) -> impl Fn(&SignalEvent) -> signalhub::Result<()> {
    move |event| event.send_with(label, &SendOptions::new().mode(Mode::Direct))
}

/// `/path` on the named endpoint of a server.
fn url_on(server: &ServerHandle, endpoint: &str, path: &str) -> String {
    let info = server
        .endpoints()
        .iter()
        .find(|e| e.name == endpoint)
        .expect("endpoint");
    format!("{}{path}", info.url())
}

/// A time as `YYYY-MM-DDTHH:MM:SSZ` (UTC); such strings sort in time order.
fn utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

// --- SPEC 7: matching routes ---

#[test]
fn route_is_matched_on_the_connection_path_not_the_message_path() {
    let (ran, ran_rx) = channel();
    let server = start_with(config(), |s| {
        s.route("/routed", move |event| {
            ran.send(event.client_id()).unwrap();
            Ok(())
        })
        .expect("route");
    });
    let mut plain = connect(&server, "/plain");
    let mut routed = connect(&server, "/routed");
    // From an unrouted connection, a message *addressed* to /routed is re-sent as usual.
    plain.send_json(json!({ "message": "to routed", "path": "/routed" }));
    assert_eq!(routed.recv(), "to routed");
    // From the routed connection, the route runs whatever the message's path says.
    routed.send_json(json!({ "message": "to plain", "path": "/plain" }));
    assert_eq!(next(&ran_rx, "the route"), routed.id);
    fence(&server.signals(), &mut [&mut plain, &mut routed]);
    assert!(
        ran_rx.try_recv().is_err(),
        "the route ran for the other client"
    );
    shut_down(server, [plain, routed]);
}

#[test]
fn matched_route_re_sends_nothing_by_itself() {
    let server = start_with(config(), |s| {
        s.route("/quiet", |event| {
            if event.data.message == FENCE {
                return event.send_with(FENCE, &SendOptions::new().mode(Mode::Broadcast));
            }
            Ok(()) // sends nothing
        })
        .expect("route");
    });
    let mut sender = connect(&server, "/quiet");
    let mut same_path = connect(&server, "/quiet");
    let mut other = connect(&server, "/other");
    sender.send_json(json!({ "message": "swallowed" }));
    sender.send_json(json!({ "message": "direct swallowed", "direct": true }));
    sender.send_json(json!({ "message": FENCE }));
    for client in [&mut sender, &mut same_path, &mut other] {
        assert_eq!(client.recv(), FENCE, "a message was re-sent automatically");
    }
    shut_down(server, [sender, same_path, other]);
}

/// Pode's seed route: `[date]` (any case) becomes the date, everything goes where the
/// message asked (`Send-PodeSignal -Path $Data.Path -ClientId $Data.ClientId`).
fn date_route(server: &mut Server) {
    server
        .route("/messages", |event| {
            let mut message = event.data.message.clone();
            if message
                .as_str()
                .is_some_and(|m| m.eq_ignore_ascii_case("[date]"))
            {
                message = utc(SystemTime::now()).into();
            }
            event.send(message)
        })
        .expect("route");
}

#[test]
fn date_route_answers_date_requests_with_the_date() {
    let server = start_with(config(), date_route);
    let mut sender = connect(&server, "/messages");
    let mut other = connect(&server, "/elsewhere");
    let before = utc(SystemTime::now() - Duration::from_secs(1));
    sender.send_json(json!({ "message": "[DATE]" }));
    let reply = sender.recv();
    let after = utc(SystemTime::now() + Duration::from_secs(1));
    assert!(
        reply.len() == 20 && before <= reply && reply <= after,
        "{reply:?} is not a date between {before} and {after}"
    );
    assert_eq!(other.recv(), reply, "the date goes to everyone");
    shut_down(server, [sender, other]);
}

#[test]
fn date_route_passes_other_messages_through_to_everyone() {
    let server = start_with(config(), date_route);
    let mut sender = connect(&server, "/messages");
    let mut same_path = connect(&server, "/messages");
    let mut other = connect(&server, "/elsewhere");
    sender.send_json(json!({ "message": "what is the [date]?" }));
    for client in [&mut sender, &mut same_path, &mut other] {
        assert_eq!(client.recv(), "what is the [date]?");
    }
    // And a path in the message is honoured through event.send.
    sender.send_json(json!({ "message": "here only", "path": "/elsewhere" }));
    assert_eq!(other.recv(), "here only");
    fence(
        &server.signals(),
        &mut [&mut sender, &mut same_path, &mut other],
    );
    shut_down(server, [sender, same_path, other]);
}

#[test]
fn exact_route_wins_over_a_wildcard() {
    let server = start_with(config(), |s| {
        s.route("/chat/*", reply_with("wildcard")).expect("route");
        s.route("/chat/lobby", reply_with("exact")).expect("route");
    });
    let mut lobby = connect(&server, "/chat/lobby");
    let mut room = connect(&server, "/chat/room");
    lobby.send_json(json!({ "message": "x" }));
    assert_eq!(lobby.recv(), "exact");
    room.send_json(json!({ "message": "x" }));
    assert_eq!(room.recv(), "wildcard");
    shut_down(server, [lobby, room]);
}

#[test]
fn first_matching_pattern_wins_in_registration_order() {
    let server = start_with(config(), |s| {
        s.route("/x/*", reply_with("x-star")).expect("route");
        s.route("/*/y", reply_with("star-y")).expect("route");
        s.route("/*/z", reply_with("star-z")).expect("route");
        s.route("/w/*", reply_with("w-star")).expect("route");
    });
    let mut xy = connect(&server, "/x/y");
    let mut wz = connect(&server, "/w/z");
    let mut wy = connect(&server, "/w/y");
    xy.send_json(json!({ "message": "x" }));
    assert_eq!(xy.recv(), "x-star");
    wz.send_json(json!({ "message": "x" }));
    assert_eq!(wz.recv(), "star-z");
    wy.send_json(json!({ "message": "x" }));
    assert_eq!(wy.recv(), "star-y");
    shut_down(server, [xy, wz, wy]);
}

#[test]
fn wildcard_route_matches_paths_below_it_only() {
    let server = start_with(config(), |s| {
        s.route("/chat/*", reply_with("chat")).expect("route");
    });
    let mut room = connect(&server, "/chat/room1");
    let mut deep = connect(&server, "/chat/a/b");
    let mut bare = connect(&server, "/chat");
    let mut other = connect(&server, "/news/room1");
    room.send_json(json!({ "message": "x" }));
    assert_eq!(room.recv(), "chat");
    deep.send_json(json!({ "message": "x" }));
    assert_eq!(deep.recv(), "chat");
    // No route: the message comes back as sent.
    bare.send_json(json!({ "message": "unrouted", "direct": true }));
    assert_eq!(bare.recv(), "unrouted");
    other.send_json(json!({ "message": "unrouted", "direct": true }));
    assert_eq!(other.recv(), "unrouted");
    shut_down(server, [room, deep, bare, other]);
}

#[test]
fn route_matching_ignores_case() {
    let server = start_with(config(), |s| {
        s.route("/Chat/Room", reply_with("exact")).expect("route");
        s.route("/News/*", reply_with("pattern")).expect("route");
    });
    let mut exact = connect(&server, "/cHAT/rOOM");
    let mut pattern = connect(&server, "/NEWS/today");
    exact.send_json(json!({ "message": "x" }));
    assert_eq!(exact.recv(), "exact");
    pattern.send_json(json!({ "message": "x" }));
    assert_eq!(pattern.recv(), "pattern");
    shut_down(server, [exact, pattern]);
}

#[test]
fn duplicate_route_is_an_error_at_registration() {
    let mut server = Server::with_config(config());
    server.route("/dup", |_| Ok(())).expect("first route");
    match server.route("/dup", |_| Ok(())) {
        Err(Error::DuplicateRoute(path)) => assert_eq!(path, "/dup"),
        other => panic!("expected DuplicateRoute, got {:?}", other.map(|_| ())),
    }
    match server.route("/DUP", |_| Ok(())) {
        Err(Error::DuplicateRoute(path)) => assert_eq!(path, "/DUP"),
        other => panic!("expected DuplicateRoute, got {:?}", other.map(|_| ())),
    }
    server.route("/dup/*", |_| Ok(())).expect("a pattern route");
    assert!(matches!(
        server.route("/Dup/*", |_| Ok(())),
        Err(Error::DuplicateRoute(_))
    ));
    server
        .route_on("a", "/only-a", |_| Ok(()))
        .expect("route on a");
    assert!(matches!(
        server.route_on("a", "/ONLY-A", |_| Ok(())),
        Err(Error::DuplicateRoute(_))
    ));
}

#[test]
fn route_on_applies_to_its_named_endpoint_only() {
    let mut server = Server::with_config(config());
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("a"))
        .expect("endpoint a");
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("b"))
        .expect("endpoint b");
    server
        .route_on("a", "/x", reply_with("routed on a"))
        .expect("route");
    let server = server.start().expect("server starts");
    let mut on_a = try_connect(&url_on(&server, "a", "/x"), &[]).expect("connect a");
    let mut on_b = try_connect(&url_on(&server, "b", "/x"), &[]).expect("connect b");
    on_a.send_json(json!({ "message": "hi" }));
    assert_eq!(on_a.recv(), "routed on a");
    // On b the message is re-sent automatically, to everyone on both endpoints.
    on_b.send_json(json!({ "message": "hi from b" }));
    assert_eq!(on_b.recv(), "hi from b");
    assert_eq!(on_a.recv(), "hi from b");
    fence(&server.signals(), &mut [&mut on_a, &mut on_b]);
    shut_down(server, [on_a, on_b]);
}

#[test]
fn route_on_an_unknown_endpoint_fails_start() {
    let mut server = Server::with_config(config());
    server
        .endpoint(Endpoint::ws("127.0.0.1:0").name("a"))
        .expect("endpoint");
    server
        .route_on("nope", "/x", |_| Ok(()))
        .expect("checked at start");
    match server.start() {
        Err(Error::UnknownEndpoint(name)) => assert_eq!(name, "nope"),
        Err(other) => panic!("expected UnknownEndpoint, got {other:?}"),
        Ok(handle) => {
            handle.shutdown();
            panic!("the server started");
        }
    }
}

// --- SPEC 7: SignalEvent ---

/// A server whose `/events/*` route hands every event to the test.
fn capturing_server() -> (ServerHandle, Receiver<SignalEvent>) {
    let (events, events_rx) = channel();
    let server = start_with(config(), |s| {
        s.route("/events/*", move |event| {
            events.send(event.clone()).unwrap();
            Ok(())
        })
        .expect("route");
    });
    (server, events_rx)
}

#[test]
fn signal_event_carries_the_parsed_data() {
    let (server, events) = capturing_server();
    let mut client = connect(&server, "/events/room");
    client.send_json(json!({
        "Message": { "k": [1, "two"] },
        "path": "/target",
        "CLIENTID": "someone",
        "direct": true,
    }));
    let event = next(&events, "the event");
    assert_eq!(event.data.message, json!({ "k": [1, "two"] }));
    assert_eq!(event.data.path.as_deref(), Some("/target"));
    assert_eq!(event.data.client_id.as_deref(), Some("someone"));
    assert!(event.data.direct);
    client.send_json(json!({ "message": "bare" }));
    let event = next(&events, "the second event");
    assert_eq!(event.data.message, json!("bare"));
    assert_eq!(event.data.path, None);
    assert_eq!(event.data.client_id, None);
    assert!(!event.data.direct);
    shut_down(server, [client]);
}

#[test]
fn signal_event_carries_the_connection_endpoint_route_and_time() {
    let (server, events) = capturing_server();
    let mut client = connect(&server, "/events/Room%201?room=5");
    let before = SystemTime::now();
    client.send_json(json!({ "message": "x", "path": "/not/the/connection" }));
    let event = next(&events, "the event");
    let after = SystemTime::now();
    assert_eq!(event.path(), "/events/Room 1");
    assert_eq!(event.client.path, "/events/Room 1");
    assert_eq!(event.client_id(), client.id);
    assert_eq!(event.client.id, client.id);
    assert_eq!(event.route, "/events/*");
    let endpoint = event.endpoint();
    assert_eq!(endpoint.name, server.endpoints()[0].name);
    assert_eq!(endpoint.name, "ws-0");
    assert_eq!(endpoint.address, server.endpoints()[0].address);
    assert_eq!(endpoint.protocol, Protocol::Ws);
    assert_eq!(endpoint.protocol.as_str(), "ws");
    let local = client.ws.get_ref().local_addr().expect("local addr");
    assert_eq!(event.client.remote_addr, local);
    // Bracketed by readings taken around the send (a second of slack for clock steps).
    let slack = Duration::from_secs(1);
    assert!(
        before - slack <= event.timestamp && event.timestamp <= after + slack,
        "{:?} is not between {before:?} and {after:?}",
        event.timestamp
    );
    shut_down(server, [client]);
}

#[test]
fn signal_event_carries_the_upgrade_headers_and_query() {
    let (server, events) = capturing_server();
    let url = url(&server, "/events/q?room=5&x=a%20b&room=6");
    let mut client = try_connect(&url, &[("X-Custom-Thing", "forty two")]).expect("connect");
    client.send_json(json!({ "message": "x" }));
    let event = next(&events, "the event");
    assert_eq!(event.client.header("x-custom-thing"), Some("forty two"));
    assert_eq!(event.client.header("X-CUSTOM-THING"), Some("forty two"));
    assert!(event
        .client
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("x-custom-thing") && v == "forty two"));
    assert!(event.client.header("sec-websocket-key").is_some());
    assert_eq!(
        event.client.query.iter().collect::<Vec<_>>(),
        [("room", "5"), ("x", "a b"), ("room", "6")]
    );
    assert_eq!(event.client.query("room"), Some("5"));
    assert_eq!(event.client.query("x"), Some("a b"));
    assert_eq!(event.client.query("missing"), None);
    shut_down(server, [client]);
}

// --- SPEC 8: event.send and its defaults inside a route ---

/// Clients on `/r` (routed), `/p` and `/q`. The route reads an `op` from the message and
/// replies with the op's name, targeted as the op says.
struct Targets {
    server: ServerHandle,
    sender: Client,
    p: Client,
    q: Client,
}

impl Targets {
    fn start() -> Targets {
        let server = start_with(config(), |s| {
            s.route("/r", |event| {
                let op = event.data.message["op"].as_str().unwrap_or("").to_owned();
                let options = match op.as_str() {
                    "auto" => SendOptions::new(),
                    "to-q" => SendOptions::new().path("/q"),
                    "broadcast" => SendOptions::new().mode(Mode::Broadcast),
                    "ignore-event" => SendOptions::new().ignore_event(),
                    "direct" => SendOptions::new().mode(Mode::Direct),
                    "fence" => {
                        let everyone = SendOptions::new().mode(Mode::Broadcast);
                        return event.send_with(FENCE, &everyone);
                    }
                    other => panic!("unknown op {other:?}"),
                };
                event.send_with(op, &options)
            })
            .expect("route");
        });
        let sender = connect(&server, "/r");
        let p = connect(&server, "/p");
        let q = connect(&server, "/q");
        Targets {
            server,
            sender,
            p,
            q,
        }
    }

    /// Sends `{"message": {"op": op}}` plus `extra` fields from the routed client.
    fn send(&mut self, op: &str, extra: Value) {
        let mut message = json!({ "message": { "op": op } });
        if let (Some(m), Some(extra)) = (message.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        self.sender.send_json(message);
    }

    /// Asserts which clients got `expected` (in order: sender, p, q), then fences all three.
    fn assert_received(mut self, expected: &str, who: [bool; 3]) {
        let clients = [&mut self.sender, &mut self.p, &mut self.q];
        for (client, gets) in clients.into_iter().zip(who) {
            if gets {
                assert_eq!(client.recv(), expected);
            }
        }
        self.send("fence", json!({}));
        for (i, client) in [&mut self.sender, &mut self.p, &mut self.q]
            .into_iter()
            .enumerate()
        {
            assert_eq!(client.recv(), FENCE, "client #{i} got more than expected");
        }
        shut_down(self.server, [self.sender, self.p, self.q]);
    }
}

#[test]
fn event_send_defaults_to_the_event_path() {
    let mut t = Targets::start();
    t.send("auto", json!({ "path": "/p" }));
    t.assert_received("auto", [false, true, false]);
}

#[test]
fn event_send_defaults_to_the_event_client_id() {
    let mut t = Targets::start();
    let q = t.q.id.to_string();
    t.send("auto", json!({ "clientId": q, "path": "/p" }));
    t.assert_received("auto", [false, false, true]);
}

#[test]
fn event_send_goes_to_the_sender_only_when_the_event_is_direct() {
    let mut t = Targets::start();
    t.send("auto", json!({ "direct": true, "path": "/p" }));
    t.assert_received("auto", [true, false, false]);
}

#[test]
fn event_send_goes_to_the_sender_only_when_the_event_names_the_sender() {
    let mut t = Targets::start();
    let me = t.sender.id.to_string();
    t.send("auto", json!({ "clientId": me, "path": "/p" }));
    t.assert_received("auto", [true, false, false]);
}

#[test]
fn event_send_without_targets_goes_to_everyone() {
    let mut t = Targets::start();
    t.send("auto", json!({}));
    t.assert_received("auto", [true, true, true]);
}

#[test]
fn explicit_path_overrides_the_event_path() {
    let mut t = Targets::start();
    t.send("to-q", json!({ "path": "/p" }));
    t.assert_received("to-q", [false, false, true]);
}

#[test]
fn broadcast_mode_takes_nothing_from_the_event() {
    let mut t = Targets::start();
    t.send("broadcast", json!({ "direct": true, "path": "/p" }));
    t.assert_received("broadcast", [true, true, true]);
}

#[test]
fn ignore_event_takes_nothing_from_the_event() {
    let mut t = Targets::start();
    let p = t.p.id.to_string();
    t.send("ignore-event", json!({ "clientId": p, "direct": true }));
    t.assert_received("ignore-event", [true, true, true]);
}

#[test]
fn direct_mode_in_a_route_goes_to_the_sender_only() {
    let mut t = Targets::start();
    let q = t.q.id.to_string();
    t.send("direct", json!({ "path": "/p", "clientId": q }));
    t.assert_received("direct", [true, false, false]);
}

// --- SPEC 8: the Signals handle ---

#[test]
fn signals_handle_is_clone_send_sync() {
    fn assert_handle<T: Clone + Send + Sync + 'static>() {}
    assert_handle::<Signals>();
}

#[test]
fn signals_broadcast_from_another_thread_reaches_everyone() {
    let server = start();
    let mut a = connect(&server, "/a");
    let mut b = connect(&server, "/b");
    let signals = server.signals();
    thread::spawn(move || signals.send("to all").expect("send"))
        .join()
        .expect("sender thread");
    assert_eq!(a.recv(), "to all");
    assert_eq!(b.recv(), "to all");
    fence(&server.signals(), &mut [&mut a, &mut b]);
    shut_down(server, [a, b]);
}

#[test]
fn signals_path_reaches_only_that_path() {
    let server = start();
    let mut on_path = connect(&server, "/room");
    let mut other = connect(&server, "/lobby");
    let signals = server.signals();
    thread::spawn(move || {
        let to_room = SendOptions::new().path("/ROOM");
        signals.send_with("room only", &to_room).expect("send");
        signals.send(FENCE).expect("fence");
    })
    .join()
    .expect("sender thread");
    assert_eq!(on_path.recv(), "room only");
    assert_eq!(on_path.recv(), FENCE);
    assert_eq!(other.recv(), FENCE);
    shut_down(server, [on_path, other]);
}

#[test]
fn signals_client_id_reaches_only_that_client_and_ignores_path() {
    let server = start();
    let mut target = connect(&server, "/a");
    let mut on_path = connect(&server, "/b");
    let signals = server.signals();
    let id = target.id;
    thread::spawn(move || {
        let options = SendOptions::new().client_id(id).path("/b");
        signals.send_with("just you", &options).expect("send");
        signals.send(FENCE).expect("fence");
    })
    .join()
    .expect("sender thread");
    assert_eq!(target.recv(), "just you");
    assert_eq!(target.recv(), FENCE);
    assert_eq!(on_path.recv(), FENCE);
    shut_down(server, [target, on_path]);
}

#[test]
fn signals_plain_string_is_sent_raw() {
    let server = start();
    let mut client = connect(&server, "/");
    let signals = server.signals();
    signals.send("he said \"hi\"\n").expect("send");
    assert_eq!(client.recv(), "he said \"hi\"\n");
    signals.send(String::from("owned")).expect("send");
    assert_eq!(client.recv(), "owned");
    shut_down(server, [client]);
}

#[test]
fn signals_serialize_value_is_sent_as_compact_json() {
    #[derive(Serialize)]
    struct ResponseTimes {
        #[serde(rename = "ResponseTimes")]
        response_times: Vec<u32>,
        source: &'static str,
    }
    let server = start();
    let mut client = connect(&server, "/response-times");
    let signals = server.signals();
    let times = ResponseTimes {
        response_times: vec![123, 101, 104],
        source: "a b",
    };
    signals.send(&times).expect("send");
    assert_eq!(
        client.recv(),
        r#"{"ResponseTimes":[123,101,104],"source":"a b"}"#
    );
    signals.send(json!({ "Message": [1, true] })).expect("send");
    assert_eq!(client.recv(), r#"{"Message":[1,true]}"#);
    signals.send(7).expect("send");
    assert_eq!(client.recv(), "7");
    shut_down(server, [client]);
}

#[test]
fn signals_null_and_empty_string_send_nothing() {
    let server = start();
    let mut client = connect(&server, "/");
    let signals = server.signals();
    signals.send(Value::Null).expect("null is not an error");
    signals.send("").expect("empty is not an error");
    signals.send(None::<u32>).expect("None is null");
    fence(&signals, &mut [&mut client]);
    shut_down(server, [client]);
}

#[test]
fn signals_direct_mode_outside_a_route_is_an_error() {
    let server = start();
    let mut client = connect(&server, "/");
    let signals = server.signals();
    let direct = SendOptions::new().mode(Mode::Direct);
    assert!(matches!(
        signals.send_with("x", &direct),
        Err(Error::DirectOutsideRoute)
    ));
    let direct_to_someone = direct.client_id(client.id);
    assert!(matches!(
        signals.send_with("x", &direct_to_someone),
        Err(Error::DirectOutsideRoute)
    ));
    fence(&signals, &mut [&mut client]);
    shut_down(server, [client]);
}

#[test]
fn signals_before_start_are_taken_and_routed_at_start() {
    let mut server = Server::with_config(config());
    server
        .endpoint(Endpoint::ws("127.0.0.1:0"))
        .expect("endpoint");
    let signals = server.signals();
    signals.send("early").expect("taken before start");
    (signals.send_with("early", &SendOptions::new().path("/x"))).expect("taken before start");
    let handle = server.start().expect("server starts");
    let mut client = connect(&handle, "/");
    signals.send("now").expect("send after start");
    // The early ones were routed at start, to nobody: the client only gets what came after.
    assert_eq!(client.recv(), "now");
    shut_down(handle, [client]);
}

#[test]
fn signals_after_shutdown_is_not_running() {
    let server = start();
    let signals = server.signals();
    let copy = signals.clone();
    signals.send("nobody listens yet").expect("running");
    server.shutdown();
    assert!(matches!(signals.send("late"), Err(Error::NotRunning)));
    assert!(matches!(copy.send("late"), Err(Error::NotRunning)));
}

// --- Handlers that fail ---

#[test]
fn panicking_route_handler_drops_that_message_only() {
    let server = start_with(config(), |s| {
        s.route("/fragile", |event| {
            if event.data.message == "boom" {
                panic!("handler blew up (expected by this test)");
            }
            event.send(event.data.message.clone())
        })
        .expect("route");
    });
    let mut fragile = connect(&server, "/fragile");
    let mut other = connect(&server, "/other");
    fragile.send_json(json!({ "message": "boom" }));
    fragile.send_json(json!({ "message": "still here" }));
    assert_eq!(fragile.recv(), "still here");
    assert_eq!(other.recv(), "still here");
    // The server and other clients carry on.
    other.send_json(json!({ "message": "me too" }));
    assert_eq!(fragile.recv(), "me too");
    assert_eq!(other.recv(), "me too");
    let mut late = connect(&server, "/fragile");
    late.send_json(json!({ "message": "new client", "direct": true }));
    assert_eq!(late.recv(), "new client");
    shut_down(server, [fragile, other, late]);
}

#[test]
fn route_handler_error_is_logged_and_the_connection_carries_on() {
    let server = start_with(config(), |s| {
        s.route("/picky", |event| {
            if event.data.message == "bad" {
                return Err(Error::InvalidConfig("the handler refuses".into()));
            }
            event.send(event.data.message.clone())
        })
        .expect("route");
    });
    let mut picky = connect(&server, "/picky");
    let mut other = connect(&server, "/other");
    picky.send_json(json!({ "message": "bad" }));
    picky.send_json(json!({ "message": "good" }));
    assert_eq!(picky.recv(), "good");
    assert_eq!(other.recv(), "good");
    shut_down(server, [picky, other]);
}

#[test]
fn slow_route_handler_does_not_delay_other_clients() {
    let (entered, entered_rx) = channel::<()>();
    let (release, release_rx) = channel::<()>();
    let server = start_with(config(), |s| {
        s.route("/slow", move |event| {
            entered.send(()).unwrap();
            let reply = match release_rx.recv_timeout(WAIT) {
                Ok(()) => "released",
                Err(_) => "never released",
            };
            event.send_with(reply, &SendOptions::new().mode(Mode::Direct))
        })
        .expect("route");
    });
    let mut slow = connect(&server, "/slow");
    let mut fast_a = connect(&server, "/fast");
    let mut fast_b = connect(&server, "/fast");
    slow.send_json(json!({ "message": "take your time" }));
    next(&entered_rx, "the slow handler to start");
    // The handler is blocked until released; other clients exchange messages meanwhile.
    fast_a.send_json(json!({ "message": "quick", "path": "/fast" }));
    assert_eq!(fast_b.recv(), "quick");
    assert_eq!(fast_a.recv(), "quick");
    fast_b.send_json(json!({ "message": "to everyone" }));
    assert_eq!(fast_a.recv(), "to everyone");
    release.send(()).unwrap();
    assert_eq!(slow.recv(), "to everyone");
    assert_eq!(slow.recv(), "released");
    shut_down(server, [slow, fast_a, fast_b]);
}

// --- Connect and disconnect hooks ---

#[test]
fn connect_hook_runs_for_matching_paths_only_with_the_client_info() {
    let (infos, infos_rx) = channel::<ClientInfo>();
    let server = start_with(config(), |s| {
        s.on_connect("/lobby*", move |info| infos.send(info.clone()).unwrap());
    });
    let url = url(&server, "/Lobby/1?seat=9");
    let lobby = try_connect(&url, &[("X-Player", "ada")]).expect("connect");
    let info = next(&infos_rx, "the connect hook");
    assert_eq!(info.id, lobby.id);
    assert_eq!(info.path, "/Lobby/1");
    assert_eq!(info.header("x-player"), Some("ada"));
    assert_eq!(info.query("seat"), Some("9"));
    let other = connect(&server, "/other");
    let lobby2 = connect(&server, "/lobby");
    assert_eq!(next(&infos_rx, "the second connect hook").id, lobby2.id);
    // Once shut down every connection thread has finished: no hook ran for /other.
    shut_down(server, [lobby, other, lobby2]);
    let rest: Vec<_> = infos_rx.try_iter().map(|i| i.path).collect();
    assert!(rest.is_empty(), "hooks ran for {rest:?}");
}

#[test]
fn connect_hook_can_welcome_the_new_client_by_id() {
    let server = start_with(config(), |s| {
        let signals = s.signals();
        s.on_connect("*", move |info| {
            let welcome = json!({ "welcome": info.id.to_string() });
            let to_newcomer = SendOptions::new().client_id(info.id);
            signals.send_with(welcome, &to_newcomer).expect("welcome");
        });
    });
    let mut first = connect(&server, "/a");
    let welcome: Value = serde_json::from_str(&first.recv()).expect("json");
    assert_eq!(welcome, json!({ "welcome": first.id.to_string() }));
    let mut second = connect(&server, "/b");
    let welcome: Value = serde_json::from_str(&second.recv()).expect("json");
    assert_eq!(welcome, json!({ "welcome": second.id.to_string() }));
    // The first client did not get the second one's welcome.
    fence(&server.signals(), &mut [&mut first, &mut second]);
    shut_down(server, [first, second]);
}

#[test]
fn disconnect_hook_runs_once_the_client_is_gone() {
    let (gone, gone_rx) = channel::<ClientInfo>();
    let server = start_with(config(), |s| {
        let signals = s.signals();
        s.on_disconnect("/room*", move |info| {
            // Neither reaches the client that left: it no longer receives signals.
            let to_it = SendOptions::new().client_id(info.id);
            signals.send_with("too late", &to_it).expect("send");
            signals.send(format!("bye {}", info.id)).expect("send");
            gone.send(info.clone()).unwrap();
        });
    });
    let mut stays = connect(&server, "/lobby");
    let mut leaves = connect(&server, "/Room/7");
    let leaving_id = leaves.id;
    assert_eq!(server.metrics().snapshot().frames_delivered, 0);
    let _ = leaves.ws.close(None);
    while leaves.ws.read().is_ok() {} // until the server answered the close
    let info = next(&gone_rx, "the disconnect hook");
    assert_eq!(info.id, leaving_id);
    assert_eq!(info.path, "/Room/7");
    assert_eq!(stays.recv(), format!("bye {leaving_id}"));
    // Metrics catch up a moment later: the fan-out counts the departure after its batch.
    wait_until("the departure to be counted", || {
        server.metrics().snapshot().clients_connected == 1
    });
    // Count deliveries: "bye" and a fence to `stays` make 2. Had the gone client still been
    // registered, "too late" and its copy of "bye" would add 2 more. The fan-out thread counts
    // a batch after writing it, and batches run one after another, so once the fence arrived
    // the count is at least everything before the fence's batch: with the gone client it
    // could only ever read 1, 3 or 4, never 2.
    fence(&server.signals(), &mut [&mut stays]);
    wait_until("deliveries are counted", || {
        server.metrics().snapshot().frames_delivered >= 2
    });
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.frames_delivered, 2, "the gone client got frames");
    assert_eq!(metrics.signals_sent, 3);
    // `stays` is not on a matching path: no hook for it, even at shutdown.
    shut_down(server, [stays]);
    assert!(gone_rx.try_recv().is_err(), "the hook ran for /lobby");
}

#[test]
fn panicking_hooks_are_contained() {
    let (ran, ran_rx) = channel::<&'static str>();
    let server = start_with(config(), |s| {
        s.on_connect("*", |_| {
            panic!("connect hook blew up (expected by this test)")
        });
        let after_connect = ran.clone();
        s.on_connect("*", move |_| after_connect.send("connect").unwrap());
        s.on_disconnect("*", |_| {
            panic!("disconnect hook blew up (expected by this test)")
        });
        s.on_disconnect("*", move |_| ran.send("disconnect").unwrap());
    });
    let mut a = connect(&server, "/a");
    let mut b = connect(&server, "/b");
    assert_eq!(next(&ran_rx, "the second connect hook"), "connect");
    assert_eq!(next(&ran_rx, "the second connect hook"), "connect");
    a.send_json(json!({ "message": "still works" }));
    assert_eq!(a.recv(), "still works");
    assert_eq!(b.recv(), "still works");
    drop(b);
    assert_eq!(next(&ran_rx, "the second disconnect hook"), "disconnect");
    let mut c = connect(&server, "/c");
    c.send_json(json!({ "message": "server carries on" }));
    assert_eq!(a.recv(), "server carries on");
    assert_eq!(c.recv(), "server carries on");
    shut_down(server, [a, c]);
}

#[test]
fn connect_hook_runs_once_per_connection() {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let server = start_with(config(), |s| {
        s.on_connect("/counted", move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    });
    let clients: Vec<Client> = (0..3).map(|_| connect(&server, "/counted")).collect();
    shut_down(server, clients);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
}

// ---- on_message: raw messages, no JSON protocol ---------------------------------------------

fn start_echo() -> signalhub::ServerHandle {
    start_with(config(), |server| {
        server.on_message("/echo*", |event| match event.message {
            signalhub::RawMessage::Text(text) => event.reply_text(text),
            signalhub::RawMessage::Binary(bytes) => event.reply_binary(bytes),
        });
    })
}

#[test]
fn on_message_gets_text_as_sent_and_replies_to_the_sender_only() {
    let server = start_echo();
    let mut echo = connect(&server, "/echo");
    let mut other = connect(&server, "/echo");
    echo.send_text("not json at all");
    assert_eq!(echo.recv(), "not json at all");
    echo.send_text(r#"{"message":"json is not parsed here","path":"/x"}"#);
    assert_eq!(
        echo.recv(),
        r#"{"message":"json is not parsed here","path":"/x"}"#
    );
    server.signals().send("marker").expect("send");
    assert_eq!(other.recv(), "marker", "the echo went to the sender only");
    drop((echo, other));
    server.shutdown();
}

#[test]
fn on_message_gets_binary_bytes_unchecked_and_replies_binary() {
    let server = start_echo();
    let mut echo = connect(&server, "/echo/bin");
    let bytes = vec![0xff, 0x00, 0xfe, b'x'];
    echo.ws
        .send(tungstenite::Message::binary(bytes.clone()))
        .expect("send");
    loop {
        match echo.ws.read().expect("a reply") {
            tungstenite::Message::Binary(reply) => {
                assert_eq!(reply.as_ref(), &bytes[..]);
                break;
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected binary, got {other:?}"),
        }
    }
    drop(echo);
    server.shutdown();
}

#[test]
fn paths_without_on_message_keep_the_json_protocol() {
    let server = start_echo();
    let mut plain = connect(&server, "/chat");
    plain.send_json(serde_json::json!({"message": "still signals"}));
    assert_eq!(plain.recv(), "still signals");
    drop(plain);
    server.shutdown();
}
