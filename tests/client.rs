//! Outbound clients (SPEC 11) end to end, against the project's own server and against a
//! small independent tungstenite server written here ([`Peer`]). Everything runs on
//! 127.0.0.1, every wait is bounded, and every test ends by checking that its connections'
//! threads (`sh-out-<name>`) are gone.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signalhub::http::WebResponse;
use signalhub::outbound::{
    ConnectEvent, ConnectOptions, ConnectionState, Connections, DisconnectEvent, DisconnectReason,
    ReconnectPolicy, WsData, WsEvent,
};
use signalhub::tls::Certificate;
use signalhub::{Endpoint, Error, Server};
use support::certs::TestCerts;
use support::{threads, wait_until, within_wait, QUIET, WAIT};
use tungstenite::handshake::server::{Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

// ---------------------------------------------------------------------------------------
// An independent WebSocket server: plain tungstenite, one thread per connection.

/// What a [`Peer`] script gets besides its WebSocket.
struct Ctx {
    stop: Arc<AtomicBool>,
    /// Every text or binary message the peer received, from every connection.
    seen: Sender<Message>,
    /// This connection's number, from 0.
    index: usize,
}

type Script = dyn Fn(&mut WebSocket<TcpStream>, &Ctx) + Send + Sync;

/// Each upgrade request's headers, in the order connections came.
type Headers = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A tungstenite server on 127.0.0.1 running `script` on each connection. It answers the
/// first subprotocol offered and records each upgrade request's headers.
struct Peer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    seen: Receiver<Message>,
    headers: Headers,
}

impl Peer {
    fn start(script: impl Fn(&mut WebSocket<TcpStream>, &Ctx) + Send + Sync + 'static) -> Peer {
        Peer::on(
            TcpListener::bind("127.0.0.1:0").expect("bind"),
            Arc::new(script),
        )
    }

    /// A peer on a port used before (to bring a server "back").
    fn restart(addr: SocketAddr, script: Arc<Script>) -> Peer {
        Peer::on(
            TcpListener::bind(addr).expect("rebind the same port"),
            script,
        )
    }

    fn on(listener: TcpListener, script: Arc<Script>) -> Peer {
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let (seen_tx, seen) = mpsc::channel();
        let headers = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, headers) = (stop.clone(), headers.clone());
            thread::spawn(move || accept_loop(listener, script, stop, seen_tx, headers))
        };
        Peer {
            addr,
            stop,
            accept: Some(accept),
            seen,
            headers,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The next message the peer received.
    fn next(&self) -> Message {
        self.seen
            .recv_timeout(WAIT)
            .expect("the peer received a message")
    }

    fn next_text(&self) -> String {
        match self.next() {
            Message::Text(text) => text.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    /// Stops accepting and drops every connection without a close frame (a killed server).
    fn kill(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            accept.join().expect("peer threads end cleanly");
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn accept_loop(
    listener: TcpListener,
    script: Arc<Script>,
    stop: Arc<AtomicBool>,
    seen: Sender<Message>,
    headers: Headers,
) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let Ok((socket, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        let ctx = Ctx {
            stop: stop.clone(),
            seen: seen.clone(),
            index: connections.len(),
        };
        let (script, headers) = (script.clone(), headers.clone());
        connections.push(thread::spawn(move || {
            socket.set_nonblocking(false).expect("blocking");
            socket.set_read_timeout(Some(WAIT)).expect("timeout");
            // tungstenite's callback type: its error is an HTTP response, large by nature.
            #[allow(clippy::result_large_err)]
            let record = |request: &Request, response: Response| {
                Ok(upgrade_answer(&headers, request, response))
            };
            if let Ok(mut ws) = tungstenite::accept_hdr(socket, record) {
                script(&mut ws, &ctx);
            }
        }));
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Records the request's headers and picks the first subprotocol offered, if any.
fn upgrade_answer(headers: &Headers, request: &Request, mut response: Response) -> Response {
    let list = request.headers().iter();
    let text = |v: &tungstenite::http::HeaderValue| v.to_str().unwrap_or("").to_owned();
    let list = list.map(|(k, v)| (k.to_string(), text(v)));
    headers.lock().unwrap().push(list.collect());
    if let Some(offered) = request.headers().get("Sec-WebSocket-Protocol") {
        let offered = text(offered);
        let first = offered.split(',').next().unwrap_or("").trim();
        let value = first.parse().expect("protocol header");
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
    }
    response
}

/// The next text or binary message (pings are answered by tungstenite), or `None` once the
/// client has gone or the peer is stopping. Reads in short slices to notice `stop`.
fn next_message(ws: &mut WebSocket<TcpStream>, ctx: &Ctx) -> Option<Message> {
    let _ = ws
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(20)));
    while !ctx.stop.load(Ordering::SeqCst) {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                let _ = ctx.seen.send(message.clone());
                return Some(message);
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Echoes every message back.
fn echo(ws: &mut WebSocket<TcpStream>, ctx: &Ctx) {
    while let Some(message) = next_message(ws, ctx) {
        if ws.send(message).is_err() {
            return;
        }
    }
}

/// Records what arrives and never answers (pings still are, by tungstenite).
fn sink(ws: &mut WebSocket<TcpStream>, ctx: &Ctx) {
    while next_message(ws, ctx).is_some() {}
}

/// Never reads (so never answers pings) until the peer stops: a hung server.
fn silent(_: &mut WebSocket<TcpStream>, ctx: &Ctx) {
    while !ctx.stop.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------------------
// Client-side helpers.

/// A handler that passes every event's data on, and the channel it goes to.
fn collector() -> (
    impl Fn(&WsEvent) -> signalhub::Result<()> + Send + Sync + 'static,
    Receiver<WsData>,
) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let handler = move |event: &WsEvent| {
        let _ = tx.lock().unwrap().send(event.data.clone());
        Ok(())
    };
    (handler, rx)
}

fn recv(rx: &Receiver<WsData>) -> WsData {
    rx.recv_timeout(WAIT).expect("the handler got a message")
}

/// The close timeout of [`quick`].
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Options for tests: quick closes, no keepalive noise unless asked for.
fn quick() -> ConnectOptions {
    ConnectOptions::new()
        .close_timeout(CLOSE_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .ping_interval(None)
}

/// Connect and disconnect events, as they come.
#[derive(Debug)]
enum Change {
    Up(ConnectEvent),
    Down(DisconnectEvent),
}

fn watch(options: ConnectOptions) -> (ConnectOptions, Receiver<Change>) {
    let (tx, rx) = mpsc::channel();
    let (up, down) = (Mutex::new(tx.clone()), Mutex::new(tx));
    let options = options
        .on_connect(move |e| {
            let _ = up.lock().unwrap().send(Change::Up(e.clone()));
        })
        .on_disconnect(move |e| {
            let _ = down.lock().unwrap().send(Change::Down(e.clone()));
        });
    (options, rx)
}

fn next_change(rx: &Receiver<Change>) -> Change {
    rx.recv_timeout(WAIT)
        .expect("a connect or disconnect event")
}

fn expect_up(rx: &Receiver<Change>) -> ConnectEvent {
    match next_change(rx) {
        Change::Up(event) => event,
        other => panic!("expected a connect, got {other:?}"),
    }
}

fn expect_down(rx: &Receiver<Change>) -> DisconnectEvent {
    match next_change(rx) {
        Change::Down(event) => event,
        other => panic!("expected a disconnect, got {other:?}"),
    }
}

/// Whether a thread of this process has this name (Linux: `/proc/self/task/*/comm`).
fn thread_named(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
    })
}

/// Checks (within a moment: a joined thread leaves `/proc` right after) that connection
/// `name`'s thread is gone.
fn assert_thread_gone(name: &str) {
    let thread: String = format!("sh-out-{name}").chars().take(15).collect();
    wait_until(&format!("thread {thread} to end"), || {
        !thread_named(&thread)
    });
}

/// Shuts the registry down and checks that the connections' threads are gone.
fn shut(clients: &Connections, names: &[&str]) {
    clients.shutdown();
    assert!(clients.names().is_empty());
    for name in names {
        assert_thread_gone(name);
    }
}

fn wait_state(clients: &Connections, name: &str, state: ConnectionState) {
    wait_until(&format!("{name} to be {state:?}"), || {
        clients.state(name) == Some(state)
    });
}

/// A server of the project's own with one Ws endpoint (no keepalive).
fn hub() -> signalhub::ServerHandle {
    support::start()
}

fn wait_clients(server: &signalhub::ServerHandle, n: u64) {
    wait_until("the server to register the client", || {
        server.metrics().snapshot().clients_connected == n
    });
}

// ---------------------------------------------------------------------------------------
// Receiving

#[test]
fn json_from_the_projects_server_reaches_the_handler() {
    let server = hub();
    let clients = Connections::new();
    let (handler, rx) = collector();
    let url = support::url(&server, "/feed");
    clients
        .connect("hubjson", &url, quick(), handler)
        .expect("connects");
    assert_eq!(clients.state("hubjson"), Some(ConnectionState::Connected));
    wait_clients(&server, 1);
    server
        .signals()
        .send(json!({"ResponseTimes": [1, 2]}))
        .unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!({"ResponseTimes": [1, 2]})));
    // A raw string is not JSON: logged, skipped, and the connection carries on.
    server.signals().send("not json").unwrap();
    server.signals().send(json!(42)).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!(42)));
    shut(&clients, &["hubjson"]);
    server.shutdown();
}

#[test]
fn text_form_and_binary_content_types() {
    let peer = Peer::start(|ws, ctx| {
        for message in [
            Message::text("a=1&b=two+words&c=%26"),
            Message::text("plain words"),
            Message::binary(vec![0u8, 159, 255]),
        ] {
            ws.send(message).expect("peer sends");
        }
        sink(ws, ctx);
    });
    let clients = Connections::new();
    let (form, form_rx) = collector();
    let form_options = quick().content_type("application/x-www-form-urlencoded");
    clients
        .connect("ctform", &peer.url("/"), form_options, form)
        .unwrap();
    let WsData::Form(fields) = recv(&form_rx) else {
        panic!("not form data")
    };
    assert_eq!(
        fields,
        [("a", "1"), ("b", "two words"), ("c", "&")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    // "plain words" is no form field list... it is: one field with an empty value.
    assert_eq!(
        form_rx.recv_timeout(WAIT).unwrap().field("plain words"),
        Some("")
    );
    assert_eq!(recv(&form_rx), WsData::Bytes(vec![0, 159, 255]));

    let (text, text_rx) = collector();
    let text_options = quick().content_type("text/plain; charset=utf-8");
    clients
        .connect("cttext", &peer.url("/"), text_options, text)
        .unwrap();
    assert_eq!(recv(&text_rx), WsData::Text("a=1&b=two+words&c=%26".into()));
    assert_eq!(recv(&text_rx), WsData::Text("plain words".into()));
    assert_eq!(recv(&text_rx), WsData::Bytes(vec![0, 159, 255]));

    // Default JSON: neither text parses, so only the binary frame arrives.
    let (json, json_rx) = collector();
    clients
        .connect("ctjson", &peer.url("/"), quick(), json)
        .unwrap();
    assert_eq!(recv(&json_rx), WsData::Bytes(vec![0, 159, 255]));
    assert_eq!(clients.state("ctjson"), Some(ConnectionState::Connected));
    shut(&clients, &["ctform", "cttext", "ctjson"]);
}

#[test]
fn the_event_carries_name_url_body_and_time() {
    let peer = Peer::start(|ws, ctx| {
        ws.send(Message::text(r#"{"n":1}"#)).unwrap();
        sink(ws, ctx);
    });
    let clients = Connections::new();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let before = std::time::SystemTime::now();
    let url = peer.url("/events?x=1");
    clients
        .connect("evfields", &url, quick(), move |event| {
            let fields = (
                event.name.clone(),
                event.url.clone(),
                event.body.clone(),
                event.text().map(str::to_owned),
                event.timestamp,
            );
            tx.lock().unwrap().send(fields).unwrap();
            Ok(())
        })
        .unwrap();
    let (name, event_url, body, text, timestamp) = rx.recv_timeout(WAIT).unwrap();
    assert_eq!((name.as_str(), event_url), ("evfields", url));
    assert_eq!(
        (body, text.as_deref()),
        (br#"{"n":1}"#.to_vec(), Some(r#"{"n":1}"#))
    );
    assert!(timestamp >= before);
    shut(&clients, &["evfields"]);
}

// ---------------------------------------------------------------------------------------
// Sending

#[test]
fn strings_json_form_and_binary_go_out_as_they_should() {
    let peer = Peer::start(sink);
    let clients = Connections::new();
    let nothing = |_: &WsEvent| Ok(());
    clients
        .connect("sendjson", &peer.url("/"), quick(), nothing)
        .unwrap();
    clients.send("sendjson", "raw {not json}").unwrap();
    assert_eq!(peer.next_text(), "raw {not json}");
    clients
        .send("sendjson", json!({"message": "hi", "n": [1]}))
        .unwrap();
    assert_eq!(peer.next_text(), r#"{"message":"hi","n":[1]}"#);
    clients.send_binary("sendjson", [1u8, 2, 3]).unwrap();
    assert_eq!(peer.next(), Message::binary(vec![1, 2, 3]));

    let form = quick().content_type("application/x-www-form-urlencoded");
    clients
        .connect("sendform", &peer.url("/"), form, nothing)
        .unwrap();
    clients
        .send("sendform", json!({"a": "b c", "d": 1}))
        .unwrap();
    assert_eq!(peer.next_text(), "a=b+c&d=1");
    let err = clients.send("sendform", json!([1, 2])).unwrap_err();
    assert!(matches!(err, Error::Encode(_)), "{err}");
    shut(&clients, &["sendjson", "sendform"]);
}

#[test]
fn the_handler_replies_on_its_own_connection() {
    let server = hub();
    let clients = Connections::new();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let url = support::url(&server, "/chat");
    clients
        .connect("replier", &url, quick(), move |event| {
            tx.lock().unwrap().send(event.data.clone()).unwrap();
            if event.data == WsData::Json(json!({"q": 1})) {
                // Back through the server's automatic re-send, to the sender only.
                event.reply(json!({"message": {"a": 2}, "direct": true}))?;
            }
            Ok(())
        })
        .unwrap();
    wait_clients(&server, 1);
    server.signals().send(json!({"q": 1})).unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        WsData::Json(json!({"q": 1}))
    );
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        WsData::Json(json!({"a": 2}))
    );
    shut(&clients, &["replier"]);
    server.shutdown();
}

/// Sends `count` messages `{"n": i}` on connection `name` from another thread; panics unless
/// they have all gone out within [`WAIT`].
fn send_numbers(clients: &Connections, name: &'static str, count: u64, direct: bool) {
    let clients = clients.clone();
    within_wait(&format!("{count} sends on {name}"), move || {
        for n in 0..count {
            let message = match direct {
                true => json!({ "message": n, "direct": true }),
                false => json!({ "n": n }),
            };
            clients.send(name, message).expect("send");
        }
    });
}

#[test]
fn sending_does_not_wait_for_the_blocked_reader() {
    let peer = Peer::start(sink);
    let clients = Connections::new();
    let (options, changes) = watch(quick());
    clients
        .connect("prompt", &peer.url("/"), options, |_| Ok(()))
        .unwrap();
    expect_up(&changes);
    // Nothing comes in (the peer never sends; no pings): the connection's thread blocks in
    // its read and stays there. A send that waited for that read would never finish.
    threads::only("sh-out-prompt").wait_blocked();
    send_numbers(&clients, "prompt", 200, false);
    for n in 0..200 {
        assert_eq!(peer.next_text(), format!(r#"{{"n":{n}}}"#));
    }
    assert!(changes.try_recv().is_err(), "the connection changed state");
    shut(&clients, &["prompt"]);
}

#[test]
fn sending_to_unknown_or_closed_connections_errors() {
    let peer = Peer::start(|ws, ctx| {
        next_message(ws, ctx); // one message, then a normal close
        let _ = ws.close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        }));
        while ws.read().is_ok() {}
    });
    let clients = Connections::new();
    let (options, changes) = watch(quick());
    clients
        .connect("closing", &peer.url("/"), options, |_| Ok(()))
        .unwrap();
    expect_up(&changes);
    assert!(matches!(
        clients.send("nobody", "x"),
        Err(Error::UnknownConnection(name)) if name == "nobody"
    ));
    clients.send("closing", "bye").unwrap();
    let down = expect_down(&changes);
    assert_eq!(
        down.reason,
        DisconnectReason::Closed {
            code: Some(1000),
            reason: "done".into()
        }
    );
    assert!(!down.reconnecting);
    wait_state(&clients, "closing", ConnectionState::Disconnected);
    let err = clients.send("closing", "too late").unwrap_err();
    assert!(
        matches!(&err, Error::NotConnected(n) if n == "closing"),
        "{err}"
    );
    assert_eq!(err.to_string(), r#"connection "closing" is not connected"#);
    assert_eq!(clients.names(), ["closing"], "the entry stays");
    shut(&clients, &["closing"]);
}

// ---------------------------------------------------------------------------------------
// Disconnect, reset, remove

#[test]
fn disconnect_then_reset_connects_again() {
    let peer = Peer::start(echo);
    let clients = Connections::new();
    let (handler, rx) = collector();
    let (options, changes) = watch(quick());
    clients
        .connect("discreset", &peer.url("/"), options, handler)
        .unwrap();
    expect_up(&changes);
    clients.disconnect("discreset").unwrap();
    assert_eq!(
        clients.state("discreset"),
        Some(ConnectionState::Disconnected)
    );
    let down = expect_down(&changes);
    assert_eq!(
        (down.reason, down.reconnecting),
        (DisconnectReason::Requested, false)
    );
    assert_thread_gone("discreset");
    assert!(matches!(
        clients.send("discreset", json!(1)),
        Err(Error::NotConnected(_))
    ));
    clients
        .disconnect("discreset")
        .expect("a second disconnect does nothing");

    clients.reset("discreset", None).unwrap();
    assert_eq!(clients.state("discreset"), Some(ConnectionState::Connected));
    expect_up(&changes);
    clients.send("discreset", json!({"again": true})).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!({"again": true})));

    // Reset while connected: closed, then connected again on the same URL.
    clients.reset("discreset", None).unwrap();
    let down = expect_down(&changes);
    assert_eq!(
        (down.reason, down.reconnecting),
        (DisconnectReason::Reset, true)
    );
    expect_up(&changes);
    clients.send("discreset", json!(3)).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!(3)));
    assert!(matches!(
        clients.reset("nobody", None),
        Err(Error::UnknownConnection(_))
    ));
    shut(&clients, &["discreset"]);
}

#[test]
fn reset_moves_to_a_new_url() {
    let first = Peer::start(echo);
    let second = Peer::start(echo);
    let clients = Connections::new();
    let (handler, rx) = collector();
    clients
        .connect("moving", &first.url("/a"), quick(), handler)
        .unwrap();
    let err = clients.reset("moving", Some("http://nope/")).unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
    assert_eq!(clients.url("moving"), Some(first.url("/a")), "unchanged");

    clients.reset("moving", Some(&second.url("/b"))).unwrap();
    assert_eq!(clients.url("moving"), Some(second.url("/b")));
    clients.send("moving", json!({"to": "b"})).unwrap();
    assert_eq!(second.next_text(), r#"{"to":"b"}"#);
    assert_eq!(recv(&rx), WsData::Json(json!({"to": "b"})));
    shut(&clients, &["moving"]);
}

#[test]
fn a_handler_resets_to_a_url_from_a_message_slack_style() {
    let second = Peer::start(|ws, ctx| {
        ws.send(Message::text(r#"{"hello":"from b"}"#)).unwrap();
        echo(ws, ctx);
    });
    let next_url = second.url("/rtm2");
    let first = Peer::start(move |ws, ctx| {
        ws.send(Message::text(json!({ "url": next_url }).to_string()))
            .unwrap();
        sink(ws, ctx);
    });
    let clients = Connections::new();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let (options, changes) = watch(quick());
    clients
        .connect("slack", &first.url("/rtm"), options, move |event| {
            if let Some(url) = event.data.json().and_then(|v| v["url"].as_str()) {
                return event.reset(Some(url));
            }
            tx.lock().unwrap().send(event.data.clone()).unwrap();
            Ok(())
        })
        .unwrap();
    assert_eq!(expect_up(&changes).url, first.url("/rtm"));
    let down = expect_down(&changes);
    assert_eq!(
        (down.reason, down.reconnecting),
        (DisconnectReason::Reset, true)
    );
    assert_eq!(expect_up(&changes).url, second.url("/rtm2"));
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        WsData::Json(json!({"hello": "from b"}))
    );
    assert_eq!(clients.url("slack"), Some(second.url("/rtm2")));
    shut(&clients, &["slack"]);
}

#[test]
fn a_handler_disconnects_its_own_connection() {
    let peer = Peer::start(|ws, ctx| {
        ws.send(Message::text(r#""stop""#)).unwrap();
        sink(ws, ctx);
    });
    let clients = Connections::new();
    let (options, changes) = watch(quick());
    clients
        .connect("selfstop", &peer.url("/"), options, |event| {
            event.reply("stopping")?;
            event.disconnect()
        })
        .unwrap();
    expect_up(&changes);
    assert_eq!(peer.next_text(), "stopping");
    assert_eq!(expect_down(&changes).reason, DisconnectReason::Requested);
    wait_state(&clients, "selfstop", ConnectionState::Disconnected);
    shut(&clients, &["selfstop"]);
}

#[test]
fn remove_forgets_and_frees_the_name() {
    let peer = Peer::start(echo);
    let clients = Connections::new();
    clients
        .connect("gone", &peer.url("/"), quick(), |_| Ok(()))
        .unwrap();
    assert_eq!(clients.names(), ["gone"]);
    clients.remove("gone").unwrap();
    assert!(clients.names().is_empty());
    assert_eq!(clients.state("gone"), None);
    assert_thread_gone("gone");
    assert!(matches!(
        clients.send("gone", "x"),
        Err(Error::UnknownConnection(_))
    ));
    assert!(matches!(
        clients.remove("gone"),
        Err(Error::UnknownConnection(_))
    ));
    let (handler, rx) = collector();
    clients
        .connect("gone", &peer.url("/"), quick(), handler)
        .unwrap();
    clients.send("gone", json!(["back"])).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!(["back"])));
    shut(&clients, &["gone"]);
}

// ---------------------------------------------------------------------------------------
// Connect errors

#[test]
fn a_duplicate_name_is_an_error_and_leaves_the_first_alone() {
    let peer = Peer::start(echo);
    let clients = Connections::new();
    let (handler, rx) = collector();
    clients
        .connect("twice", &peer.url("/"), quick(), handler)
        .unwrap();
    let err = clients
        .connect("twice", &peer.url("/"), quick(), |_| Ok(()))
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateConnection(n) if n == "twice"),
        "{err}"
    );
    clients.send("twice", json!({"still": 1})).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!({"still": 1})));
    assert_eq!(clients.names(), ["twice"]);
    shut(&clients, &["twice"]);
}

#[test]
fn a_failed_connect_leaves_nothing_behind() {
    let clients = Connections::new();
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let err = clients
        .connect(
            "fail1",
            &format!("ws://{closed_port}/"),
            quick(),
            |_| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("cannot connect to ws://127.0.0.1:"),
        "{err}"
    );

    let err = clients
        .connect("fail2", "http://127.0.0.1:1/", quick(), |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");

    // An HTTP-only server refuses the upgrade with 400.
    let mut server = Server::with_config(support::config());
    server.endpoint(Endpoint::http("127.0.0.1:0")).unwrap();
    let http = server.start().unwrap();
    let url = format!("ws://{}/", http.endpoints()[0].address);
    let err = clients
        .connect("fail3", &url, quick(), |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, Error::Refused { status: 400, .. }), "{err}");

    // A server that accepts and says nothing: the connect timeout ends the wait (bounded
    // here by WAIT), and not before its time.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", mute.local_addr().unwrap());
    let connect_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let options = quick().connect_timeout(connect_timeout);
    let err = within_wait("a connect to a mute server", {
        let (clients, url) = (clients.clone(), url.clone());
        move || clients.connect("fail4", &url, options, |_| Ok(()))
    })
    .unwrap_err();
    assert!(
        matches!(&err, Error::Connect { source, .. } if matches!(**source, Error::Timeout(_))),
        "{err:?}"
    );
    assert!(started.elapsed() >= connect_timeout, "timed out early");

    let err = clients
        .connect("fail5", &url, quick().header("bad name", "x"), |_| Ok(()))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    assert!(clients.names().is_empty(), "{:?}", clients.names());
    shut(&clients, &["fail1", "fail2", "fail3", "fail4", "fail5"]);
    http.shutdown();
}

#[test]
fn headers_and_subprotocols_are_sent() {
    let peer = Peer::start(sink);
    let clients = Connections::new();
    let (options, changes) = watch(
        quick()
            .header("X-Token", "abc")
            .protocol("chat.v2")
            .protocol("chat.v1"),
    );
    clients
        .connect("hdrs", &peer.url("/"), options, |_| Ok(()))
        .unwrap();
    assert_eq!(expect_up(&changes).protocol.as_deref(), Some("chat.v2"));
    let headers = peer.headers.lock().unwrap()[0].clone();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("x-token").as_deref(), Some("abc"));
    assert_eq!(
        get("sec-websocket-protocol").as_deref(),
        Some("chat.v2, chat.v1")
    );
    shut(&clients, &["hdrs"]);
}

// ---------------------------------------------------------------------------------------
// Keepalive and reconnecting

#[test]
fn a_dead_peer_is_detected_and_reconnecting_brings_the_connection_back() {
    // Connection 0 hangs (never reads, so never answers a ping); the next ones echo.
    let script: Arc<Script> = Arc::new(|ws: &mut WebSocket<TcpStream>, ctx: &Ctx| {
        if ctx.index == 0 {
            silent(ws, ctx)
        } else {
            echo(ws, ctx)
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = Peer::on(listener, script);
    let ping = Duration::from_millis(100);
    let policy = ReconnectPolicy::new()
        .initial(Duration::from_millis(50))
        .max(Duration::from_millis(200))
        .jitter(0.0)
        .max_tries(None);
    let (options, changes) = watch(quick().ping_interval(Some(ping)).reconnect(policy));
    let clients = Connections::new();
    let (handler, rx) = collector();
    let started = Instant::now();
    clients
        .connect("alive", &peer.url("/"), options, handler)
        .unwrap();
    expect_up(&changes);

    // Detected (within WAIT), by its pings going unanswered: not before the first ping.
    let down = expect_down(&changes);
    assert_eq!(
        (down.reason, down.reconnecting),
        (DisconnectReason::DeadPeer, true)
    );
    assert!(started.elapsed() >= ping, "a dead peer before any ping");
    expect_up(&changes);
    clients.send("alive", json!(["echoed"])).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!(["echoed"])));

    // The server is killed: reconnect tries fail until it comes back on the same port.
    peer.kill();
    let down = expect_down(&changes);
    assert!(
        matches!(down.reason, DisconnectReason::Failed(_)),
        "{:?}",
        down.reason
    );
    wait_state(&clients, "alive", ConnectionState::Connecting);
    // Time for a few refused tries (not a wait for anything): it keeps trying meanwhile.
    thread::sleep(QUIET);
    assert_eq!(clients.state("alive"), Some(ConnectionState::Connecting));
    assert!(matches!(
        clients.send("alive", "x"),
        Err(Error::NotConnected(_))
    ));
    // Back (within WAIT) once the server is. (That the waits between tries stop growing at
    // the policy's max is src/client/reconnect.rs's unit test.)
    let back = Peer::restart(addr, Arc::new(echo));
    expect_up(&changes);
    clients.send("alive", json!(["back"])).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!(["back"])));
    shut(&clients, &["alive"]);
    drop(back);
}

#[test]
fn a_live_idle_peer_is_kept() {
    let peer = Peer::start(sink);
    let clients = Connections::new();
    let (options, changes) = watch(quick().ping_interval(Some(Duration::from_millis(200))));
    clients
        .connect("idle", &peer.url("/"), options, |_| Ok(()))
        .unwrap();
    expect_up(&changes);
    // Many intervals of silence: the pings are answered, nothing ends.
    assert!(
        changes.recv_timeout(QUIET * 3).is_err(),
        "the connection ended"
    );
    assert_eq!(clients.state("idle"), Some(ConnectionState::Connected));
    shut(&clients, &["idle"]);
}

#[test]
fn reconnecting_gives_up_after_max_tries() {
    let peer = Peer::start(echo);
    let policy = ReconnectPolicy::new()
        .initial(Duration::from_millis(20))
        .max(Duration::from_millis(40))
        .max_tries(Some(3));
    let (options, changes) = watch(quick().reconnect(policy));
    let clients = Connections::new();
    clients
        .connect("giveup", &peer.url("/"), options, |_| Ok(()))
        .unwrap();
    expect_up(&changes);
    peer.kill();
    let down = expect_down(&changes);
    assert!(down.reconnecting);
    let down = expect_down(&changes);
    let DisconnectReason::ReconnectFailed { tries, error } = &down.reason else {
        panic!("{:?}", down.reason)
    };
    assert_eq!(*tries, 3);
    assert!(error.starts_with("cannot connect to "), "{error}");
    assert!(!down.reconnecting);
    wait_state(&clients, "giveup", ConnectionState::Disconnected);
    assert_eq!(clients.names(), ["giveup"]);
    shut(&clients, &["giveup"]);
}

#[test]
fn disconnect_interrupts_the_wait_between_tries() {
    let peer = Peer::start(echo);
    let policy = ReconnectPolicy::new()
        .initial(Duration::from_secs(30))
        .max(Duration::from_secs(30));
    let (options, changes) = watch(quick().reconnect(policy));
    let clients = Connections::new();
    clients
        .connect("patient", &peer.url("/"), options, |_| Ok(()))
        .unwrap();
    expect_up(&changes);
    peer.kill();
    expect_down(&changes);
    wait_state(&clients, "patient", ConnectionState::Connecting);
    // The wait between tries is 30 s, far beyond WAIT: returning at all means it was cut short.
    let handle = clients.clone();
    within_wait("disconnect", move || handle.disconnect("patient")).unwrap();
    assert_eq!(
        clients.state("patient"),
        Some(ConnectionState::Disconnected)
    );
    shut(&clients, &["patient"]);
}

// ---------------------------------------------------------------------------------------
// Robustness, TLS, use from a server

#[test]
fn a_panicking_handler_is_survived() {
    let server = hub();
    let clients = Connections::new();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    clients
        .connect(
            "panicky",
            &support::url(&server, "/"),
            quick(),
            move |event| {
                if event.text() == Some("boom") {
                    panic!("a handler bug");
                }
                tx.lock().unwrap().send(event.data.clone()).unwrap();
                Ok(())
            },
        )
        .unwrap();
    wait_clients(&server, 1);
    server.signals().send(json!("boom")).unwrap();
    server
        .signals()
        .send(json!({"after": "the panic"}))
        .unwrap();
    assert_eq!(
        rx.recv_timeout(WAIT).unwrap(),
        WsData::Json(json!({"after": "the panic"}))
    );
    assert_eq!(clients.state("panicky"), Some(ConnectionState::Connected));
    shut(&clients, &["panicky"]);
    server.shutdown();
}

#[test]
fn wss_with_a_custom_ca() {
    let certs = TestCerts::new();
    let mut server = Server::with_config(support::config());
    let certificate = Certificate::pem(certs.path("cert.pem"), certs.path("key.pem"));
    server
        .endpoint(Endpoint::wss("127.0.0.1:0", certificate))
        .unwrap();
    let server = server.start().expect("wss server starts");
    let url = format!(
        "wss://127.0.0.1:{}/secure",
        server.endpoints()[0].address.port()
    );

    let clients = Connections::new();
    // The built-in web roots do not know our CA.
    let err = clients
        .connect("tlsnoca", &url, quick(), |_| Ok(()))
        .unwrap_err();
    #[cfg(feature = "webpki-roots")]
    assert!(
        matches!(&err, Error::Connect { source, .. } if matches!(**source, Error::Tls(_))),
        "{err:?}"
    );
    #[cfg(not(feature = "webpki-roots"))]
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    let err = clients
        .connect(
            "tlsbadca",
            &url,
            quick().ca_file("/nonexistent/ca.pem"),
            |_| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Certificate { .. }), "{err}");
    assert!(clients.names().is_empty());

    let (handler, rx) = collector();
    let options = quick().ca_file(certs.ca_file());
    clients
        .connect("tlsca", &url, options, handler)
        .expect("wss connects");
    wait_clients(&server, 1);
    server.signals().send(json!({"over": "tls"})).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!({"over": "tls"})));
    // A big message both ways, and a reply through the server.
    let big = "t".repeat(1 << 20);
    clients
        .send("tlsca", json!({"message": {"big": big}, "direct": true}))
        .unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!({"big": big})));
    // Sending does not wait for the reader blocked on TLS either (nothing comes in until the
    // first of these is back).
    threads::only("sh-out-tlsca").wait_blocked();
    send_numbers(&clients, "tlsca", 50, true);
    for n in 0..50 {
        assert_eq!(recv(&rx), WsData::Json(json!(n)));
    }
    clients.reset("tlsca", None).expect("wss reconnects");
    wait_clients(&server, 1);
    shut(&clients, &["tlsnoca", "tlsbadca", "tlsca"]);
    server.shutdown();
}

#[test]
fn an_http_route_of_a_running_server_sends_on_a_connection() {
    let peer = Peer::start(sink);
    let clients = Connections::new();
    clients
        .connect("relay", &peer.url("/"), quick(), |_| Ok(()))
        .unwrap();
    let mut server = Server::with_config(support::config());
    server.endpoint(Endpoint::http("127.0.0.1:0")).unwrap();
    let relay = clients.clone();
    server
        .http_route("POST", "/relay", move |event| {
            let message = event.data.get("message").unwrap_or(Value::Null);
            relay.send("relay", json!({ "relayed": message }))?;
            Ok(WebResponse::json(json!({"sent": true})))
        })
        .unwrap();
    let server = server.start().unwrap();
    let body = r#"{"message":"hi"}"#;
    let request = format!(
        "POST /relay HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let reply = support::raw_request(&server, &request);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(peer.next_text(), r#"{"relayed":"hi"}"#);
    server.shutdown();
    shut(&clients, &["relay"]);
}

#[test]
fn shutdown_closes_everything_at_once_and_stops_every_thread() {
    let server = hub();
    let peer = Peer::start(echo);
    let clients = Connections::new();
    let (options, changes) = watch(quick());
    for (name, url) in [
        ("allhub", support::url(&server, "/")),
        ("allpeer1", peer.url("/")),
        ("allpeer2", peer.url("/")),
    ] {
        clients
            .connect(name, &url, options.clone(), |_| Ok(()))
            .unwrap();
        expect_up(&changes);
    }
    let handle = clients.clone();
    within_wait("shutdown", move || handle.shutdown());
    for _ in 0..3 {
        assert_eq!(expect_down(&changes).reason, DisconnectReason::Requested);
    }
    wait_clients(&server, 0);
    shut(&clients, &["allhub", "allpeer1", "allpeer2"]);
    // Dropping the last clone does the same.
    let dropped = Connections::new();
    dropped
        .connect("dropme", &peer.url("/"), quick(), |_| Ok(()))
        .unwrap();
    drop(dropped);
    assert_thread_gone("dropme");
    server.shutdown();
}

#[test]
fn the_handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Connections>();
    check::<ConnectOptions>();
    check::<ReconnectPolicy>();
}

#[test]
fn reset_and_disconnect_cut_a_server_that_does_not_answer_the_close() {
    // Connection 0 never reads, so never answers our close; the next ones echo.
    let peer = Peer::start(|ws, ctx| {
        if ctx.index == 0 {
            silent(ws, ctx)
        } else {
            echo(ws, ctx)
        }
    });
    let clients = Connections::new();
    let (handler, rx) = collector();
    clients
        .connect("mute", &peer.url("/"), quick(), handler)
        .unwrap();
    // Cut after the close timeout (not before: it waited for the answer), then reconnected;
    // the wait for both is bounded by WAIT.
    let started = Instant::now();
    let handle = clients.clone();
    within_wait("reset", move || handle.reset("mute", None)).expect("reconnects after cutting");
    assert!(
        started.elapsed() >= CLOSE_TIMEOUT,
        "cut before the close timeout"
    );
    clients.send("mute", json!({"on": 1})).unwrap();
    assert_eq!(recv(&rx), WsData::Json(json!({"on": 1})));
    // The new connection answers the close.
    let handle = clients.clone();
    within_wait("disconnect", move || handle.disconnect("mute")).unwrap();
    shut(&clients, &["mute"]);
}
