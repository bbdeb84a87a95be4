//! The auth_groups example, run as its README comment says: tokens, groups, group messages
//! and presence, through real connections.

mod support;

#[allow(dead_code)]
#[path = "../examples/auth_groups.rs"]
mod example;

use serde_json::{json, Value};
use support::*;

#[test]
fn tokens_groups_group_messages_and_presence_work_as_the_example_says() {
    let server = example::server("127.0.0.1:0", "127.0.0.1:0")
        .and_then(|s| s.start())
        .expect("the example starts");
    let ws = server.endpoints()[0].url();
    let http_addr = server.endpoints()[1].address;
    // No token, or an unknown one: 401 before any upgrade.
    for url in [format!("{ws}/chat"), format!("{ws}/chat?token=eve")] {
        let error = try_connect(&url, &[]).err().expect("refused");
        assert_eq!(refused_status(&error), Some(401), "{url}");
    }
    let mut alice = try_connect(&format!("{ws}/chat?token=alice-token"), &[]).expect("alice");
    let mut bob = try_connect(
        &format!("{ws}/chat"),
        &[("Authorization", "Bearer bob-token")],
    )
    .expect("bob");
    let mut carol = try_connect(&format!("{ws}/chat?token=carol-token"), &[]).expect("carol");
    bob.send_json(json!({ "message": { "join": "ops" } }));
    assert_eq!(bob.recv(), r#"{"joined":"ops"}"#);
    alice.send_json(json!({ "message": "deploy at 5", "group": "ops" }));
    assert_eq!(alice.recv(), "deploy at 5");
    assert_eq!(bob.recv(), "deploy at 5");
    // Carol is not in ops: her group message goes nowhere.
    carol.send_json(json!({ "message": "let me in", "group": "ops" }));
    carol.send_json(json!({ "message": { "who": "ops" } }));
    let members: Value = serde_json::from_str(&carol.recv()).expect("json");
    let mut users: Vec<&str> = (members["members"].as_array().expect("members").iter())
        .map(|m| m["userId"].as_str().expect("user"))
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob"]);
    alice.expect_nothing();
    let reply = support::http::get(http_addr, "/presence");
    assert_eq!(reply.status, 200);
    let everyone: Value = serde_json::from_slice(&reply.body).expect("json");
    let everyone = everyone.as_array().expect("a list");
    assert_eq!(everyone.len(), 3);
    let alice_entry = everyone
        .iter()
        .find(|e| e["userId"] == "alice")
        .expect("alice");
    assert_eq!(alice_entry["groups"], json!(["ops"]));
    assert_eq!(alice_entry["path"], "/chat");
    assert_eq!(alice_entry["clientId"], alice.id.to_string());
    server.shutdown();
}
