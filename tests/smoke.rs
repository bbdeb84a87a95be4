mod support;
use serde_json::json;
use support::*;

#[test]
fn smoke_broadcast_reaches_everyone() {
    let server = start();
    let mut a = connect(&server, "/a");
    let mut b = connect(&server, "/b");
    a.send_json(json!({"message": "hi"}));
    assert_eq!(a.recv(), "hi");
    assert_eq!(b.recv(), "hi");
    server.shutdown();
}
