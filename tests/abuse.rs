//! Abuse that must not hurt anyone else (issue #7): silent and slowloris connections by the
//! thousand, garbage instead of HTTP, protocol violations, fragments that never end, close
//! handshakes never answered, resets mid-frame, and connection churn by the ten thousand.
//!
//! Every test runs alone (one lock for the file): several of them count the process's
//! connection threads, and the big ones want the machine's two cores to themselves.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use signalhub::{SendOptions, ServerHandle};
use support::*;
use tungstenite::protocol::frame::coding::CloseCode;

const TEXT: u8 = 0x1;
const CONTINUATION: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs the calling test alone in this file.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Threads of this process named like connection threads.
fn connection_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == "sh-conn")
        .count()
}

/// Waits (at most `limit`) until `condition` holds.
fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the server counts `clients` connections and runs as many connection threads.
fn settles_at(server: &ServerHandle, clients: u64) {
    wait_for("clients_connected to settle", WAIT, || {
        server.metrics().snapshot().clients_connected == clients
    });
    wait_for("connection threads to end", WAIT, || {
        connection_threads() == clients as usize
    });
}

/// A broadcast from the server reaches every client (each read bounded by [`WAIT`]).
fn broadcast_reaches(server: &ServerHandle, clients: &mut [Client], text: &str) {
    server.signals().send(text).expect("send");
    for client in clients.iter_mut() {
        assert_eq!(client.recv(), text);
    }
}

/// Keeps `steady` reading (so it answers the server's pings, as a live client does) until
/// `watcher` has finished, at most 2 * [`WAIT`]. Panics on a message, since nobody sends
/// `steady` any, and on any error but a read timing out.
fn answer_pings_until_finished<T>(steady: &mut Client, watcher: &std::thread::JoinHandle<T>) {
    let deadline = Instant::now() + 2 * WAIT;
    (steady.ws.get_mut())
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("read timeout");
    while !watcher.is_finished() {
        assert!(Instant::now() < deadline, "the watcher never returned");
        steady.ws.flush().expect("pongs out");
        match steady.ws.read() {
            Ok(tungstenite::Message::Text(text)) => panic!("unexpected message {text:?}"),
            Ok(tungstenite::Message::Binary(data)) => panic!("unexpected message {data:?}"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the steady client: {e}"),
        }
    }
    (steady.ws.get_mut())
        .set_read_timeout(Some(WAIT))
        .expect("read timeout");
}

/// Makes the next drop of `stream` reset the connection (RST) instead of closing it.
fn reset_on_drop(stream: &TcpStream) {
    rustix::net::sockopt::set_socket_linger(stream, Some(Duration::ZERO)).expect("SO_LINGER");
}

/// Raises the soft open-file limit to the hard one when it is below `needed`.
fn ensure_open_files(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|n| n < needed) {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit).expect("raise the open-file limit");
    }
    let now = getrlimit(Resource::Nofile).current;
    assert!(
        now.is_none_or(|n| n >= needed),
        "need {needed} open files, have {now:?}"
    );
}

/// Reads one server frame from a raw socket: (first byte, payload).
fn read_server_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    support::read_frame(stream)
}

fn read_close_code(stream: &mut TcpStream) -> u16 {
    loop {
        let (first, payload) = read_server_frame(stream);
        if first & 0x0f == CLOSE {
            assert!(payload.len() >= 2, "close frame without a code");
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

// --- Thousands of connections that never finish their request ---

#[test]
fn a_thousand_silent_and_slowloris_connections_do_not_hold_up_new_clients() {
    let _serial = serial();
    ensure_open_files(4096);
    let mut config = config();
    config.handshake_timeout = Duration::from_secs(30);
    let server = start_with(config, |_| {});
    let address = server.endpoints()[0].address;

    let silent: Vec<TcpStream> = (0..500)
        .map(|_| TcpStream::connect(address).expect("tcp connect"))
        .collect();
    let mut slow: Vec<TcpStream> = (0..500)
        .map(|i| {
            let mut stream = TcpStream::connect(address).expect("tcp connect");
            stream
                .write_all(format!("GET /slow{i} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes())
                .expect("write");
            stream
        })
        .collect();
    // Slowloris: one more byte on each every 200 ms, until told to stop; `trickled` counts
    // the rounds.
    let stop = Arc::new(AtomicBool::new(false));
    let trickled = Arc::new(AtomicUsize::new(0));
    let trickle = {
        let (stop, trickled) = (stop.clone(), trickled.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for stream in &mut slow {
                    stream.write_all(b"a").expect("trickle");
                }
                trickled.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
            slow
        })
    };

    // Every client gets in: each handshake's read is bounded by WAIT, far inside the
    // abusers' 30 s, so a door that waited on them would fail here.
    let mut clients: Vec<Client> = (0..20)
        .map(|i| connect(&server, &format!("/real{}", i % 3)))
        .collect();
    for round in 0..5 {
        broadcast_reaches(&server, &mut clients, &format!("round {round}"));
        // The slowloris connections send more between rounds.
        let seen = trickled.load(Ordering::SeqCst);
        wait_until("another trickle round", || {
            trickled.load(Ordering::SeqCst) > seen
        });
    }
    clients[0].send_json(json!({"message": "from a client"}));
    for client in &mut clients {
        assert_eq!(client.recv(), "from a client");
    }
    assert_eq!(server.metrics().snapshot().clients_connected, 20);

    stop.store(true, Ordering::Relaxed);
    let mut slow = trickle.join().expect("trickle thread");
    // The abusers were held, not closed: they are still well inside their 30 s.
    for stream in silent.iter().chain(&slow).step_by(50) {
        stream.set_nonblocking(true).expect("nonblocking");
        let err = (&*stream).read(&mut [0u8; 1]).expect_err("nothing to read");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        stream.set_nonblocking(false).expect("blocking");
    }
    drop(clients);
    server.shutdown();
    for stream in &mut slow {
        read_until_closed(stream);
    }
}

// --- Garbage instead of an HTTP request ---

/// A real TLS ClientHello, as a browser would send to a wss:// URL on a plain port.
fn tls_client_hello() -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut session = rustls::ClientConnection::new(Arc::new(config), name).expect("session");
    let mut hello = Vec::new();
    while session.wants_write() {
        session.write_tls(&mut hello).expect("write hello");
    }
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    hello
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `bytes` on a fresh connection and returns the whole response, once the server has
/// ended the connection (bounded by [`WAIT`]).
fn response_to(server: &ServerHandle, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.endpoints()[0].address).expect("tcp connect");
    // The peer may have closed already; a failed write is fine.
    let _ = stream.write_all(bytes);
    String::from_utf8_lossy(&read_until_closed(&mut stream)).into_owned()
}

/// Sends `bytes` to a server whose handshake timeout is longer than [`WAIT`]: the server must
/// end the connection within the wait (so not by the timeout), with a 400 or 431 or nothing.
fn refused_or_closed(server: &ServerHandle, bytes: &[u8]) -> String {
    let response = response_to(server, bytes);
    assert!(
        response.is_empty()
            || response.starts_with("HTTP/1.1 400 ")
            || response.starts_with("HTTP/1.1 431 "),
        "{response:?}"
    );
    response
}

#[test]
fn garbage_instead_of_a_request_gets_400_or_a_close_and_others_carry_on() {
    let _serial = serial();
    let mut config = config();
    // Longer than any wait here: whatever ends within one was refused for what it is.
    config.handshake_timeout = Duration::from_secs(60);
    let server = start_with(config, |_| {});
    let mut client = connect(&server, "/");

    let response = refused_or_closed(&server, &tls_client_hello());
    assert!(response.starts_with("HTTP/1.1 400 "), "{response:?}");
    for seed in 1..=20 {
        refused_or_closed(&server, &noise(seed, 64 << (seed % 8)));
    }
    refused_or_closed(&server, &[0u8; 1000]);
    refused_or_closed(&server, b"GET / HTTP/1.1\r\n\x00\x01\x02: x\r\n\r\n");
    refused_or_closed(&server, b"GET / HTTP/9.9\r\n\r\n");
    refused_or_closed(&server, b"SSH-2.0-OpenSSH_9.6\r\n");
    // No line end at all, bigger than the head limit: refused as soon as it is too big.
    let response = refused_or_closed(&server, &vec![b'A'; 20_000]);
    assert!(!response.is_empty(), "an over-long head gets an answer");

    // Empty lines before a request line are skipped (RFC 9112 2.2): it waits for more, up to
    // the handshake timeout (a short one, on a server of its own), then gets a 408.
    let mut config = support::config();
    config.handshake_timeout = Duration::from_millis(300);
    let patient = start_with(config, |_| {});
    let sent = Instant::now();
    let response = response_to(&patient, b"\r\n\r\n\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 408 "), "{response:?}");
    // Not before: the timeout ended it, not the blank lines.
    assert!(sent.elapsed() >= Duration::from_millis(300));
    patient.shutdown();

    server.signals().send("unaffected").expect("send");
    assert_eq!(client.recv(), "unaffected");
    client.send_json(json!({"message": "still talking"}));
    assert_eq!(client.recv(), "still talking");
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.connections_total, 1);
    assert_eq!(metrics.clients_connected, 1);
    drop(client);
    server.shutdown();
}

// --- Protocol violations in frames ---

#[test]
fn protocol_violations_close_with_1002_and_others_carry_on() {
    let _serial = serial();
    let server = start();
    let mut steady = connect(&server, "/steady");
    let mut text_then_text = masked_frame(false, TEXT, b"a");
    text_then_text.extend(masked_frame(true, TEXT, b"b"));
    let mut rsv1 = masked_frame(true, TEXT, b"{}");
    rsv1[0] |= 0x40;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("an unmasked text frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        (
            "an unmasked frame after a masked one",
            [masked_frame(true, TEXT, b"{}"), vec![0x81, 0x00]].concat(),
            1002,
        ),
        ("a reserved bit set", rsv1, 1002),
        (
            "a reserved data opcode",
            masked_frame(true, 0x3, b"x"),
            1002,
        ),
        (
            "a reserved control opcode",
            masked_frame(true, 0xb, b""),
            1002,
        ),
        ("a fragmented ping", masked_frame(false, PING, b"x"), 1002),
        ("a 126-byte ping", masked_frame(true, PING, &[7; 126]), 1002),
        (
            "a continuation with nothing to continue",
            masked_frame(true, CONTINUATION, b"x"),
            1002,
        ),
        (
            "a new message inside a fragmented one",
            text_then_text,
            1002,
        ),
        (
            "a close frame with one byte",
            masked_frame(true, CLOSE, &[3]),
            1002,
        ),
        (
            "a close frame with code 1005",
            masked_frame(true, CLOSE, &1005u16.to_be_bytes()),
            1002,
        ),
        (
            "a close frame with code 999",
            masked_frame(true, CLOSE, &999u16.to_be_bytes()),
            1002,
        ),
    ];
    for (what, bytes, code) in cases {
        let mut abuser = connect(&server, "/abuse");
        abuser.ws.get_mut().write_all(&bytes).expect("write");
        let got = abuser.recv_close();
        assert_eq!(got, Some(CloseCode::from(code)), "{what}");
        drop(abuser);
        server.signals().send(what).expect("send");
        assert_eq!(steady.recv(), what, "after {what}");
    }
    settles_at(&server, 1);
    drop(steady);
    server.shutdown();
}

// --- Fragments that never finish ---

#[test]
fn a_message_that_never_finishes_is_dropped_by_the_idle_timeout_alone() {
    let _serial = serial();
    let mut config = config();
    config.ping_interval = Some(Duration::from_millis(100));
    config.idle_timeout = Some(Duration::from_millis(400));
    let server = start_with(config, |_| {});
    let mut steady = connect(&server, "/steady");

    // One starts a message and goes silent; another sends empty continuations forever (its
    // message never grows, so only the idle timeout can end it). Neither answers pings.
    let mut silent = raw_upgrade(&server, "/silent");
    silent
        .write_all(&masked_frame(false, TEXT, b"{\"message\":"))
        .expect("write");
    let mut endless = raw_upgrade(&server, "/endless");
    endless
        .write_all(&masked_frame(false, TEXT, b"{\"mess"))
        .expect("write");
    let endless_done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let mut endless = endless.try_clone().expect("clone");
        let done = endless_done.clone();
        std::thread::spawn(move || {
            let frame = masked_frame(false, CONTINUATION, b"");
            while !done.load(Ordering::Relaxed) && endless.write_all(&frame).is_ok() {
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    wait_for("both to connect", WAIT, || {
        server.metrics().snapshot().clients_connected == 3
    });

    // The steady client keeps answering pings while the other two are dropped (each
    // read_until_closed is bounded by WAIT).
    let watcher = std::thread::spawn(move || {
        read_until_closed(&mut silent);
        read_until_closed(&mut endless);
    });
    answer_pings_until_finished(&mut steady, &watcher);
    endless_done.store(true, Ordering::Relaxed);
    feeder.join().expect("feeder");
    watcher.join().expect("both were dropped");

    settles_at(&server, 1);
    // Both by the idle timeout, and nothing else. (`idle` is at least 2, not exactly: the
    // fan-out thread counts an idle client again on every keepalive tick until its
    // connection has ended.)
    let d = server.metrics().snapshot().disconnects;
    let others = [
        d.normal,
        d.abrupt,
        d.protocol_error,
        d.invalid_utf8,
        d.message_too_big,
        d.slow,
    ];
    assert!(d.idle >= 2 && others == [0; 6], "{d:?}");
    steady.send_json(json!({"message": "still here"}));
    assert_eq!(steady.recv(), "still here");
    drop(steady);
    server.shutdown();
}

#[test]
fn thousands_of_tiny_fragments_over_the_maximum_close_with_1009() {
    let _serial = serial();
    let mut config = config();
    config.max_message_size = 4096;
    let server = start_with(config, |_| {});
    let mut steady = connect(&server, "/steady");
    let mut abuser = raw_upgrade(&server, "/abuse");
    let mut frames = masked_frame(false, TEXT, b"{\"message\":\"");
    for _ in 0..5000 {
        frames.extend(masked_frame(false, CONTINUATION, b"x"));
    }
    // The server may close before it has read everything; a failed write is fine.
    let _ = abuser.write_all(&frames);
    assert_eq!(read_close_code(&mut abuser), 1009);
    drop(abuser);
    server.signals().send("unaffected").expect("send");
    assert_eq!(steady.recv(), "unaffected");
    settles_at(&server, 1);
    drop(steady);
    server.shutdown();
}

// --- Close handshakes the peer never answers ---

#[test]
fn half_a_close_frame_is_dropped_by_the_idle_timeout_and_others_carry_on() {
    let _serial = serial();
    let mut config = config();
    config.ping_interval = Some(Duration::from_millis(100));
    config.idle_timeout = Some(Duration::from_millis(400));
    let server = start_with(config, |_| {});
    let mut steady = connect(&server, "/steady");
    let mut stalled = raw_upgrade(&server, "/stalled");
    // A close frame's head announcing a 2-byte code, half of its mask, and nothing more.
    let close = masked_frame(true, CLOSE, &1000u16.to_be_bytes());
    stalled.write_all(&close[..4]).expect("write");
    wait_for("both to connect", WAIT, || {
        server.metrics().snapshot().clients_connected == 2
    });
    // The steady client answers pings meanwhile; the stalled one is dropped (bounded by WAIT).
    let watcher = std::thread::spawn(move || read_until_closed(&mut stalled));
    answer_pings_until_finished(&mut steady, &watcher);
    watcher.join().expect("the stalled client was closed");
    settles_at(&server, 1);
    steady.send_json(json!({"message": "carried on"}));
    assert_eq!(steady.recv(), "carried on");
    drop(steady);
    server.shutdown();
}

#[test]
fn a_client_that_closes_and_never_reads_is_cut_at_the_close_timeout_and_costs_nobody() {
    let _serial = serial();
    let mut config = config();
    // Room for everything queued below: the client is cut by the close timeout, not for
    // overflowing its queue.
    config.max_queue_bytes = 64 << 20;
    let server = start_with(config, |_| {});
    let mut steady = connect(&server, "/steady");
    let mut deaf = raw_upgrade(&server, "/deaf");
    wait_for("both to connect", WAIT, || {
        server.metrics().snapshot().clients_connected == 2
    });
    // More than the socket buffers on both sides hold, so the echo of its close waits behind it.
    let padding = "x".repeat(64 << 10);
    let to_deaf = SendOptions::new().path("/deaf");
    for _ in 0..256 {
        server
            .signals()
            .send_with(&padding, &to_deaf)
            .expect("send");
    }
    wait_until("the fan-out thread took them", || {
        server.metrics().snapshot().signals_sent == 256
    });
    deaf.write_all(&masked_frame(true, CLOSE, &1000u16.to_be_bytes()))
        .expect("write close");
    // close_timeout is 500 ms; the deaf client never reads a byte.
    settles_at(&server, 1);
    steady.send_json(json!({"message": "carried on"}));
    assert_eq!(steady.recv(), "carried on");
    drop((steady, deaf));
    server.shutdown();
}

#[test]
fn a_close_the_peer_never_answers_is_cut_after_the_close_timeout() {
    let _serial = serial();
    let mut config = config();
    config.max_message_size = 1024;
    let close_timeout = Duration::from_millis(500);
    config.close_timeout = close_timeout;
    let server = start_with(config, |_| {});
    let mut steady = connect(&server, "/steady");

    // One reads the close and stays silent; the other keeps sending anything but a close reply.
    for chatty in [false, true] {
        let mut abuser = raw_upgrade(&server, "/abuse");
        // A frame head announcing 2000 bytes: over the maximum at once.
        let head = masked_frame(true, TEXT, &[b'x'; 2000]);
        // Before the server can have sent its close (and started waiting for the reply).
        let sent = Instant::now();
        abuser.write_all(&head[..20]).expect("write");
        assert_eq!(read_close_code(&mut abuser), 1009);
        let stop = Arc::new(AtomicBool::new(false));
        let chatter = chatty.then(|| {
            let mut stream = abuser.try_clone().expect("clone");
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && stream.write_all(&[0u8; 64]).is_ok() {
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        });
        // Cut: the server ends the connection (bounded by WAIT)...
        let rest = read_until_closed(&mut abuser);
        let waited = sent.elapsed();
        stop.store(true, Ordering::Relaxed);
        if let Some(chatter) = chatter {
            chatter.join().expect("chatter");
        }
        assert!(rest.is_empty(), "nothing after the close frame: {rest:?}");
        // ...and not before the close timeout: it waited for the reply first.
        assert!(
            waited >= close_timeout,
            "chatty={chatty}: cut after {waited:?}, before the close timeout"
        );
        settles_at(&server, 1);
    }
    server.signals().send("unaffected").expect("send");
    assert_eq!(steady.recv(), "unaffected");
    drop(steady);
    server.shutdown();
}

// --- Resets ---

#[test]
fn a_reset_mid_frame_or_mid_handshake_ends_only_that_connection() {
    let _serial = serial();
    let server = start();
    let mut steady = connect(&server, "/steady");
    for round in 0..20 {
        // Half a frame: a 100-byte text frame of which 10 bytes arrive, then a reset.
        let mut abuser = raw_upgrade(&server, "/abuse");
        let frame = masked_frame(true, TEXT, &[b'x'; 100]);
        abuser.write_all(&frame[..10]).expect("write");
        wait_for("the abuser to connect", WAIT, || {
            server.metrics().snapshot().clients_connected == 2
        });
        reset_on_drop(&abuser);
        drop(abuser);
        // Half a request head, then a reset.
        let mut half = TcpStream::connect(server.endpoints()[0].address).expect("tcp");
        half.write_all(b"GET /half HTTP/1.1\r\nHost: x\r\nSec-WebSocket-")
            .expect("write");
        reset_on_drop(&half);
        drop(half);
        settles_at(&server, 1);
        server
            .signals()
            .send(format!("round {round}"))
            .expect("send");
        assert_eq!(steady.recv(), format!("round {round}"));
    }
    // A reset between the 101 and the first frame, many at once.
    let abusers: Vec<TcpStream> = (0..50).map(|_| raw_upgrade(&server, "/abuse")).collect();
    for abuser in &abusers {
        reset_on_drop(abuser);
    }
    drop(abusers);
    settles_at(&server, 1);
    steady.send_json(json!({"message": "carried on"}));
    assert_eq!(steady.recv(), "carried on");
    drop(steady);
    server.shutdown();
}

// --- Churn ---

/// How a churning client leaves.
fn churn_once(server: &ServerHandle, how: usize) {
    match how % 3 {
        // A well-behaved client: full close handshake.
        0 => {
            let mut client = connect(server, "/churn");
            client.ws.close(None).expect("close");
            loop {
                match client.ws.read() {
                    Ok(_) => continue,
                    Err(tungstenite::Error::ConnectionClosed) => break,
                    Err(e) => panic!("closing: {e}"),
                }
            }
        }
        // Upgraded, then gone without a word (FIN).
        1 => drop(raw_upgrade(server, "/churn")),
        // Upgraded, then reset.
        _ => {
            let stream = raw_upgrade(server, "/churn");
            reset_on_drop(&stream);
            drop(stream);
        }
    }
}

#[test]
fn ten_thousand_clients_churning_do_not_disturb_a_steady_one() {
    const TARGET: usize = 10_000;
    const WORKERS: usize = 4;
    /// One broadcast each time this many more clients have started churning.
    const BROADCAST_EVERY: usize = 50;
    let _serial = serial();
    ensure_open_files(4096);
    let server = Arc::new(start());
    let mut steady = connect(&server, "/steady");
    // The thread names itself as it starts, which may be just after the 101 is out.
    wait_for("the steady client's thread", WAIT, || {
        connection_threads() == 1
    });
    let threads_before = 1;

    // Clients that have started churning (each worker takes the next number).
    let begun = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let server = server.clone();
            let begun = begun.clone();
            std::thread::spawn(move || {
                let mut i = w;
                while begun.fetch_add(1, Ordering::SeqCst) < TARGET {
                    churn_once(&server, i);
                    i += 1;
                }
            })
        })
        .collect();
    // Broadcasts while the churn goes on, paced by it (not by the clock); the steady client
    // reads them afterwards.
    let mut sent = 0;
    for mark in (0..TARGET).step_by(BROADCAST_EVERY) {
        wait_until("the churn to go on", || {
            begun.load(Ordering::SeqCst) >= mark
        });
        server.signals().send(format!("b{sent}")).expect("send");
        sent += 1;
    }
    for worker in workers {
        worker.join().expect("churn worker");
    }
    for i in 0..sent {
        assert_eq!(steady.recv(), format!("b{i}"), "broadcast {i} of {sent}");
    }
    assert_eq!(sent, TARGET / BROADCAST_EVERY);

    wait_for("the churned clients to leave", 2 * WAIT, || {
        server.metrics().snapshot().clients_connected == 1
    });
    wait_for("their threads to end", WAIT, || {
        connection_threads() == threads_before
    });
    let metrics = server.metrics().snapshot();
    assert_eq!(metrics.connections_total, TARGET as u64 + 1);
    assert_eq!(metrics.clients_by_path.get("/steady"), Some(&1));
    steady.send_json(json!({"message": "after the storm"}));
    assert_eq!(steady.recv(), "after the storm");
    drop(steady);
    server.shutdown();
    assert_eq!(connection_threads(), 0);
}

/// Whether nothing has come on `stream` and it is still open (a read would block).
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let read = (&*stream).read(&mut [0u8; 1]);
    stream.set_nonblocking(false).expect("blocking");
    matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// Connections still sending their request head are handshakes in progress: bounded by
/// `max_pending_handshakes` (1024 by default), not counted against `max_connections`, which
/// counts connections in use (src/server/door/mod.rs). So silent connections as many as
/// `max_connections` take no place from real clients: the next real client is upgraded
/// (`101`), and only real connections fill the cap.
#[test]
fn silent_connections_up_to_the_cap_do_not_lock_out_real_clients() {
    let _serial = serial();
    let mut config = config();
    config.max_connections = 10;
    config.handshake_timeout = Duration::from_secs(30);
    let server = start_with(config, |_| {});
    let address = server.endpoints()[0].address;
    // The accept queue is first in, first out: the door takes all ten before the real client.
    let silent: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(address).expect("tcp connect"))
        .collect();
    let mut real = vec![connect(&server, "/real")]; // panics unless it gets a 101
    server.signals().send("served").expect("send");
    assert_eq!(real[0].recv(), "served");
    // The silent ones are held, not dropped to make room (their 30 s are far from over).
    assert!(
        silent.iter().all(still_open),
        "a silent connection was dropped"
    );

    // The cap: nine more real clients fill it, and the eleventh gets a 503.
    real.extend((0..9).map(|_| connect(&server, "/real")));
    let Err(refused) = try_connect(&url(&server, "/real"), &[]) else {
        panic!("an eleventh real client got in over the cap of ten");
    };
    assert_eq!(refused_status(&refused), Some(503), "{refused}");
    assert_eq!(server.metrics().snapshot().connections_refused, 1);
    wait_until("ten clients", || {
        server.metrics().snapshot().clients_connected == 10
    });
    assert!(
        silent.iter().all(still_open),
        "a silent connection was dropped"
    );
    drop((real, silent));
    server.shutdown();
}

#[test]
fn at_the_pending_bound_the_oldest_silent_handshake_makes_room() {
    let _serial = serial();
    let mut config = config();
    config.max_pending_handshakes = 5;
    config.handshake_timeout = Duration::from_secs(30);
    let server = start_with(config, |_| {});
    let address = server.endpoints()[0].address;
    let mut silent: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(address).expect("tcp connect"))
        .collect();
    // The accept queue is first in, first out: the five are taken before the real client.
    let mut client = connect(&server, "/real");
    server.signals().send("served").expect("send");
    assert_eq!(client.recv(), "served");
    // The oldest was closed without a word, within WAIT: long before its 30 s were up.
    let said = read_until_closed(&mut silent[0]);
    assert!(said.is_empty(), "{said:?}");
    drop((client, silent));
    server.shutdown();
}

#[test]
fn a_burst_of_real_clients_larger_than_the_pending_bound_all_get_in() {
    let _serial = serial();
    let mut config = config();
    config.max_pending_handshakes = 5;
    let server = start_with(config, |_| {});
    let url = url(&server, "/burst");
    let clients: Vec<Client> = std::thread::scope(|scope| {
        let joins: Vec<_> = (0..40)
            .map(|_| {
                scope.spawn(|| try_connect(&url, &[]).expect("every client of the burst gets in"))
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().expect("client thread"))
            .collect()
    });
    wait_until("all 40 connected", || {
        server.metrics().snapshot().clients_connected == 40
    });
    drop(clients);
    server.shutdown();
}
