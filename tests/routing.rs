//! Who receives what a client sends when no signal route is on its path (SPEC 4), what
//! receivers get (SPEC 5), and the connections themselves: client ids and paths (SPEC 2).
//!
//! "Nothing else arrived" is proven with a fence rather than a quiet period: after the
//! message under test, the same sender broadcasts a marker. A connection handles its
//! messages in order and, per receiver, signals keep their order, so anything the first
//! message caused reaches a client before the marker does.

mod support;

use std::collections::HashSet;
use std::net::TcpStream;
use std::thread;

use serde_json::json;
use signalhub::{ClientId, ServerHandle};
use support::*;
use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

const FENCE: &str = "--fence--";

/// `sender` broadcasts a marker; it must be the next message of the sender and of `others`.
fn fence(sender: &mut Client, others: &mut [&mut Client]) {
    sender.send_json(json!({ "message": FENCE }));
    assert_eq!(
        sender.recv(),
        FENCE,
        "the sender got something before the fence"
    );
    for (i, other) in others.iter_mut().enumerate() {
        assert_eq!(
            other.recv(),
            FENCE,
            "client #{i} got something before the fence"
        );
    }
}

/// The next data frame, which must be a text frame (pings and pongs are skipped).
fn recv_text_frame(client: &mut Client) -> String {
    loop {
        match client.ws.read().expect("a frame") {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Connects with a bounded handshake and returns the raw `X-Signal-ClientId` header too.
fn connect_with_id_header(server: &ServerHandle, path: &str) -> (Client, String) {
    let request = url(server, path).into_client_request().expect("request");
    let stream = TcpStream::connect(server.endpoints()[0].address).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let (ws, response) = tungstenite::client(request, stream).expect("handshake");
    let header = response
        .headers()
        .get("X-Signal-ClientId")
        .expect("101 response carries X-Signal-ClientId")
        .to_str()
        .expect("ascii header")
        .to_owned();
    let id = header.parse().expect("a GUID");
    (Client { ws, id }, header)
}

/// The clients leave first (their sockets close), then the server shuts down: a client that
/// is not reading would not answer the server's close frame and hold shutdown up for the
/// close timeout.
fn shut_down(server: ServerHandle, clients: impl IntoIterator<Item = Client>) {
    drop(clients.into_iter().collect::<Vec<_>>());
    server.shutdown();
}

/// Closes a client with the close handshake and waits for the server's reply.
fn close(mut client: Client) {
    let _ = client.ws.close(None);
    while client.ws.read().is_ok() {}
}

// --- SPEC 4: who receives the message ---

#[test]
fn direct_true_goes_to_the_sender_only() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut same_path = connect(&server, "/a");
    let mut other_path = connect(&server, "/b");
    sender.send_json(json!({ "message": "just me", "direct": true }));
    assert_eq!(sender.recv(), "just me");
    fence(&mut sender, &mut [&mut same_path, &mut other_path]);
    shut_down(server, [sender, same_path, other_path]);
}

#[test]
fn client_id_of_the_sender_itself_goes_to_the_sender_only() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut other = connect(&server, "/a");
    let own_id = sender.id.to_string();
    sender.send_json(json!({ "message": "to myself", "clientId": own_id }));
    assert_eq!(sender.recv(), "to myself");
    fence(&mut sender, &mut [&mut other]);
    shut_down(server, [sender, other]);
}

#[test]
fn another_client_id_goes_to_that_client_only() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut target = connect(&server, "/b");
    let mut bystander = connect(&server, "/b");
    sender.send_json(json!({ "message": "psst", "clientId": target.id.to_string() }));
    assert_eq!(target.recv(), "psst");
    fence(&mut sender, &mut [&mut target, &mut bystander]);
    shut_down(server, [sender, target, bystander]);
}

#[test]
fn unknown_guid_client_id_reaches_nobody_and_the_sender_carries_on() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut other = connect(&server, "/a");
    let nobody = ClientId::random().to_string();
    sender.send_json(json!({ "message": "lost", "clientId": nobody }));
    // Nobody got "lost" nor an error, and the sender can still send: its next message arrives.
    fence(&mut sender, &mut [&mut other]);
    shut_down(server, [sender, other]);
}

#[test]
fn non_guid_client_id_reaches_nobody_and_the_sender_carries_on() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut other = connect(&server, "/b");
    sender.send_json(json!({ "message": "lost", "clientId": "not-a-guid" }));
    fence(&mut sender, &mut [&mut other]);
    shut_down(server, [sender, other]);
}

#[test]
fn path_reaches_every_client_on_that_path_including_the_sender() {
    let server = start();
    let mut sender = connect(&server, "/room");
    let mut same = connect(&server, "/room");
    let mut other = connect(&server, "/elsewhere");
    sender.send_json(json!({ "message": "room news", "path": "/room" }));
    assert_eq!(sender.recv(), "room news");
    assert_eq!(same.recv(), "room news");
    fence(&mut sender, &mut [&mut same, &mut other]);
    shut_down(server, [sender, same, other]);
}

#[test]
fn path_of_another_path_excludes_the_sender_and_other_paths() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut on_b = connect(&server, "/b");
    let mut on_c = connect(&server, "/c");
    sender.send_json(json!({ "message": "for b", "path": "/b" }));
    assert_eq!(on_b.recv(), "for b");
    fence(&mut sender, &mut [&mut on_b, &mut on_c]);
    shut_down(server, [sender, on_b, on_c]);
}

#[test]
fn path_with_nobody_on_it_reaches_nobody() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut other = connect(&server, "/b");
    sender.send_json(json!({ "message": "echo?", "path": "/empty" }));
    fence(&mut sender, &mut [&mut other]);
    shut_down(server, [sender, other]);
}

#[test]
fn no_target_reaches_every_client_on_every_path_including_the_sender() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut same = connect(&server, "/a");
    let mut other = connect(&server, "/b");
    let mut root = connect(&server, "/");
    sender.send_json(json!({ "message": "hello all" }));
    for client in [&mut sender, &mut same, &mut other, &mut root] {
        assert_eq!(client.recv(), "hello all");
    }
    fence(&mut sender, &mut [&mut same, &mut other, &mut root]);
    shut_down(server, [sender, same, other, root]);
}

#[test]
fn direct_wins_over_path_and_client_id() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut named = connect(&server, "/b");
    let mut on_path = connect(&server, "/b");
    sender.send_json(json!({
        "message": "back to me",
        "direct": true,
        "path": "/b",
        "clientId": named.id.to_string(),
    }));
    assert_eq!(sender.recv(), "back to me");
    fence(&mut sender, &mut [&mut named, &mut on_path]);
    shut_down(server, [sender, named, on_path]);
}

#[test]
fn client_id_wins_over_path() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut named = connect(&server, "/c");
    let mut on_path = connect(&server, "/b");
    sender.send_json(json!({
        "message": "only you",
        "path": "/b",
        "clientId": named.id.to_string(),
    }));
    assert_eq!(named.recv(), "only you");
    fence(&mut sender, &mut [&mut named, &mut on_path]);
    shut_down(server, [sender, named, on_path]);
}

// --- SPEC 5: what receivers get ---

#[test]
fn string_message_is_sent_as_its_raw_text() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_json(json!({ "message": "hi" }));
    assert_eq!(receiver.recv(), "hi");
    sender.send_text(r#"{"message":"line\nnext \"quoted\" \u00e9"}"#);
    assert_eq!(receiver.recv(), "line\nnext \"quoted\" \u{e9}");
    shut_down(server, [sender, receiver]);
}

#[test]
fn object_and_array_messages_are_sent_as_compact_json() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_text(r#"{"message": { "a" : [1, 2] } }"#);
    assert_eq!(receiver.recv(), r#"{"a":[1,2]}"#);
    sender.send_text("{\"message\":\t[ 1 ,\n \"x y\" , { } ] }");
    assert_eq!(receiver.recv(), r#"[1,"x y",{}]"#);
    shut_down(server, [sender, receiver]);
}

#[test]
fn number_messages_are_sent_as_written() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_text(r#"{"message": 1.50}"#);
    assert_eq!(receiver.recv(), "1.50");
    sender.send_text(r#"{"message": -42}"#);
    assert_eq!(receiver.recv(), "-42");
    shut_down(server, [sender, receiver]);
}

#[test]
fn bool_messages_are_sent_as_json() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_text(r#"{"message": true}"#);
    assert_eq!(receiver.recv(), "true");
    sender.send_text(r#"{"message": false}"#);
    assert_eq!(receiver.recv(), "false");
    shut_down(server, [sender, receiver]);
}

#[test]
fn null_message_sends_nothing() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_text(r#"{"message": null}"#);
    fence(&mut sender, &mut [&mut receiver]);
    shut_down(server, [sender, receiver]);
}

#[test]
fn missing_message_sends_nothing_and_the_connection_stays_open() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_text(r#"{"path": "/", "direct": true}"#);
    fence(&mut sender, &mut [&mut receiver]);
    shut_down(server, [sender, receiver]);
}

#[test]
fn empty_string_message_sends_nothing() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender.send_text(r#"{"message": ""}"#);
    fence(&mut sender, &mut [&mut receiver]);
    shut_down(server, [sender, receiver]);
}

#[test]
fn binary_frame_with_json_is_treated_like_text() {
    let server = start();
    let mut sender = connect(&server, "/");
    let mut receiver = connect(&server, "/");
    sender
        .ws
        .send(Message::binary(
            br#"{"message": {"via": "binary"}}"#.to_vec(),
        ))
        .expect("send binary");
    assert_eq!(recv_text_frame(&mut receiver), r#"{"via":"binary"}"#);
    assert_eq!(recv_text_frame(&mut sender), r#"{"via":"binary"}"#);
    shut_down(server, [sender, receiver]);
}

#[test]
fn keys_match_case_insensitively() {
    let server = start();
    let mut sender = connect(&server, "/a");
    let mut on_b = connect(&server, "/b");
    let mut on_c = connect(&server, "/c");
    sender.send_json(json!({ "Message": "capital m" }));
    for client in [&mut sender, &mut on_b, &mut on_c] {
        assert_eq!(client.recv(), "capital m");
    }
    sender.send_json(json!({ "MESSAGE": "to b", "PATH": "/b" }));
    assert_eq!(on_b.recv(), "to b");
    sender.send_json(json!({ "message": "to c", "ClientId": on_c.id.to_string() }));
    assert_eq!(on_c.recv(), "to c");
    sender.send_json(json!({ "mEsSaGe": "to me", "DIRECT": true }));
    assert_eq!(sender.recv(), "to me");
    fence(&mut sender, &mut [&mut on_b, &mut on_c]);
    shut_down(server, [sender, on_b, on_c]);
}

// --- SPEC 5: order per receiver ---

#[test]
fn one_senders_signals_arrive_in_order_at_every_receiver() {
    const COUNT: usize = 500;
    let server = start();
    let mut sender = connect(&server, "/feed");
    let mut receivers: Vec<Client> = (0..5).map(|_| connect(&server, "/feed")).collect();
    for n in 0..COUNT {
        sender.send_json(json!({ "message": n }));
    }
    for client in receivers.iter_mut().chain([&mut sender]) {
        for n in 0..COUNT {
            assert_eq!(client.recv(), n.to_string(), "out of order or lost");
        }
    }
    receivers.push(sender);
    shut_down(server, receivers);
}

#[test]
fn concurrent_senders_keep_their_own_order_at_every_receiver() {
    const SENDERS: usize = 4;
    const EACH: usize = 200;
    let server = start();
    let mut receivers: Vec<Client> = (0..5).map(|_| connect(&server, "/recv")).collect();
    let senders: Vec<Client> = (0..SENDERS).map(|_| connect(&server, "/send")).collect();
    let threads: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(s, mut sender)| {
            thread::spawn(move || {
                for n in 0..EACH {
                    sender.send_json(json!({ "message": format!("{s}:{n}"), "path": "/recv" }));
                }
                sender
            })
        })
        .collect();
    let senders: Vec<Client> = threads
        .into_iter()
        .map(|t| t.join().expect("sender thread"))
        .collect();
    for (r, receiver) in receivers.iter_mut().enumerate() {
        let mut next = [0usize; SENDERS];
        for _ in 0..SENDERS * EACH {
            let text = receiver.recv();
            let (s, n) = text.split_once(':').expect("a tagged message");
            let (s, n): (usize, usize) = (s.parse().unwrap(), n.parse().unwrap());
            assert_eq!(n, next[s], "receiver {r}: sender {s} out of order");
            next[s] += 1;
        }
        assert_eq!(next, [EACH; SENDERS], "receiver {r} lost messages");
    }
    shut_down(server, receivers.into_iter().chain(senders));
}

/// Broadcasts reaching 256 receivers or more are written by the fan-out thread and writer
/// threads together (`ServerConfig::fanout_writers`); each receiver still gets every signal,
/// in order, with direct replies in their place among them.
#[test]
fn shared_writes_keep_every_receivers_order() {
    const RECEIVERS: usize = 300;
    const COUNT: usize = 200;
    let mut config = config();
    config.tuning.fanout_writers = 3;
    let server = start_with(config, |_| {});
    let mut receivers: Vec<Client> = (0..RECEIVERS).map(|_| connect(&server, "/wide")).collect();
    let mut sender = connect(&server, "/wide");
    for n in 0..COUNT {
        sender.send_json(json!({ "message": n }));
        if n % 50 == 0 {
            sender.send_json(json!({ "message": format!("direct {n}"), "direct": true }));
        }
    }
    for n in 0..COUNT {
        assert_eq!(sender.recv(), n.to_string(), "the sender's copy");
        if n % 50 == 0 {
            assert_eq!(
                sender.recv(),
                format!("direct {n}"),
                "direct among broadcasts"
            );
        }
    }
    for (r, client) in receivers.iter_mut().enumerate() {
        for n in 0..COUNT {
            assert_eq!(
                client.recv(),
                n.to_string(),
                "receiver {r}: out of order or lost"
            );
        }
    }
    let expected = (RECEIVERS + 1) * COUNT + COUNT / 50;
    wait_until("every delivery counted", || {
        server.metrics().snapshot().frames_delivered >= expected as u64
    });
    receivers.push(sender);
    shut_down(server, receivers);
}

// --- SPEC 2: connections ---

#[test]
fn client_ids_are_unique_lowercase_guids() {
    let server = start();
    let mut seen = HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..20 {
        let (client, header) = connect_with_id_header(&server, "/");
        let groups: Vec<usize> = header.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{header}");
        assert!(
            header
                .chars()
                .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
            "not lowercase hex: {header}"
        );
        assert_eq!(client.id.to_string(), header);
        assert!(seen.insert(header.clone()), "duplicate id {header}");
        clients.push(client);
    }
    shut_down(server, clients);
}

#[test]
fn connection_path_excludes_the_query_string() {
    let server = start();
    let mut sender = connect(&server, "/other");
    let mut with_query = connect(&server, "/messages?x=1&y=2");
    let mut plain = connect(&server, "/messages");
    sender.send_json(json!({ "message": "m", "path": "/messages" }));
    assert_eq!(with_query.recv(), "m");
    assert_eq!(plain.recv(), "m");
    fence(&mut sender, &mut [&mut with_query, &mut plain]);
    shut_down(server, [sender, with_query, plain]);
}

#[test]
fn connection_path_is_percent_decoded() {
    let server = start();
    let mut sender = connect(&server, "/other");
    let mut spaced = connect(&server, "/a%20b");
    sender.send_json(json!({ "message": "decoded", "path": "/a b" }));
    assert_eq!(spaced.recv(), "decoded");
    fence(&mut sender, &mut [&mut spaced]);
    shut_down(server, [sender, spaced]);
}

#[test]
fn path_comparisons_ignore_case() {
    let server = start();
    let mut sender = connect(&server, "/other");
    let mut upper = connect(&server, "/Chat");
    let mut lower = connect(&server, "/chat");
    let mut longer = connect(&server, "/chatter");
    sender.send_json(json!({ "message": "hey", "path": "/CHAT" }));
    assert_eq!(upper.recv(), "hey");
    assert_eq!(lower.recv(), "hey");
    fence(&mut sender, &mut [&mut upper, &mut lower, &mut longer]);
    shut_down(server, [sender, upper, lower, longer]);
}

#[test]
fn broadcasts_flow_while_other_clients_join_and_leave() {
    const ROUNDS: usize = 20;
    const PER_ROUND: usize = 10;
    let server = start();
    let mut watcher = connect(&server, "/watch");
    let mut sender = connect(&server, "/send");
    for round in 0..ROUNDS {
        let mut passerby = connect(&server, "/churn");
        for k in 0..PER_ROUND {
            let n = round * PER_ROUND + k;
            sender.send_json(json!({ "message": n }));
            assert_eq!(sender.recv(), n.to_string(), "the sender's own broadcast");
        }
        assert_eq!(passerby.recv(), (round * PER_ROUND).to_string());
        if round % 2 == 0 {
            close(passerby);
        } else {
            drop(passerby); // the socket just goes away
        }
    }
    for n in 0..ROUNDS * PER_ROUND {
        assert_eq!(
            watcher.recv(),
            n.to_string(),
            "the watcher lost or reordered"
        );
    }
    fence(&mut sender, &mut [&mut watcher]);
    shut_down(server, [watcher, sender]);
}
