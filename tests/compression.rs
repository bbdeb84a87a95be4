//! permessage-deflate (RFC 7692) through real connections: negotiation, receivers with and
//! without it side by side, compressed client messages, a decompression bomb, and a Python
//! `websockets` client (which offers the extension by default).
#![cfg(feature = "compression")]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::json;
use signalhub::{ServerConfig, ServerHandle};
use support::*;

/// A client speaking frames by hand, so that it sees RSV1 and can send compressed frames.
struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The `Sec-WebSocket-Extensions` the server answered with, if any.
    extensions: Option<String>,
}

/// A frame as received: RSV1, opcode, payload (inflated when RSV1 was set).
#[derive(Debug)]
struct Received {
    compressed: bool,
    opcode: u8,
    payload: Vec<u8>,
}

impl RawClient {
    fn connect(server: &ServerHandle, path: &str, offer: Option<&str>) -> RawClient {
        let mut stream = TcpStream::connect(server.endpoints()[0].address).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("timeout");
        let extra = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        stream
            .write_all(upgrade_request(path, &extra).as_bytes())
            .expect("write the upgrade");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).expect("the 101");
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let extensions = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        buf.drain(..end);
        RawClient {
            stream,
            buf,
            extensions,
        }
    }

    fn fill(&mut self, at_least: usize) {
        let mut chunk = [0u8; 65536];
        while self.buf.len() < at_least {
            let n = self
                .stream
                .read(&mut chunk)
                .expect("a frame within the wait");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next frame (pings skipped).
    fn recv(&mut self) -> Received {
        loop {
            self.fill(2);
            let (first, second) = (self.buf[0], self.buf[1]);
            assert_eq!(second & 0x80, 0, "a server frame is never masked");
            let (len, header) = match second & 0x7f {
                126 => {
                    self.fill(4);
                    (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                }
                127 => {
                    self.fill(10);
                    let bytes: [u8; 8] = self.buf[2..10].try_into().unwrap();
                    (u64::from_be_bytes(bytes) as usize, 10)
                }
                n => (n as usize, 2),
            };
            self.fill(header + len);
            let payload: Vec<u8> = self.buf.drain(..header + len).skip(header).collect();
            assert_eq!(first & 0x80, 0x80, "the server never fragments");
            let compressed = first & 0x40 != 0;
            let opcode = first & 0x0f;
            if opcode == 0x9 {
                continue;
            }
            let payload = if compressed {
                inflate(&payload)
            } else {
                payload
            };
            return Received {
                compressed,
                opcode,
                payload,
            };
        }
    }

    fn recv_text(&mut self) -> (bool, String) {
        let frame = self.recv();
        assert_eq!(frame.opcode, 0x1, "{frame:?}");
        (
            frame.compressed,
            String::from_utf8(frame.payload).expect("utf-8"),
        )
    }

    /// Sends one masked frame; `compress` deflates the payload and sets RSV1.
    fn send(&mut self, opcode: u8, payload: &[u8], compress: bool) {
        let payload = if compress {
            deflate(payload)
        } else {
            payload.to_vec()
        };
        let mut frame = masked_frame(true, opcode, &payload);
        if compress {
            frame[0] |= 0x40; // RSV1: the payload is deflated
        }
        self.stream.write_all(&frame).expect("send");
    }

    /// The close code the server sends next (frames before it are skipped).
    fn close_code(&mut self) -> u16 {
        loop {
            let frame = self.recv();
            if frame.opcode == 0x8 {
                return u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            }
        }
    }
}

/// Raw deflate of a whole message, sync-flushed, the 00 00 ff ff tail removed.
fn deflate(payload: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(payload.len() + 64);
    compress
        .compress_vec(payload, &mut out, FlushCompress::Sync)
        .expect("deflate");
    while out.capacity() == out.len() {
        out.reserve(1024);
        compress
            .compress_vec(&[], &mut out, FlushCompress::Sync)
            .expect("deflate");
    }
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
    out.truncate(out.len() - 4);
    out
}

/// Inflates a message's payload (the tail appended), as a client with a 15-bit window does.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 8 + 64);
    loop {
        let before = decompress.total_in() as usize;
        decompress
            .decompress_vec(&input[before..], &mut out, FlushDecompress::Sync)
            .expect("inflate");
        if decompress.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

fn compressing_server(config: ServerConfig) -> ServerHandle {
    let mut config = config;
    config.compression = true;
    start_with(config, |_| {})
}

/// A JSON-like message long enough to be compressed.
fn long_message(n: usize) -> String {
    let rows: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"id":{i},"name":"sensor-{i}","value":{}}}"#, i * n))
        .collect();
    format!("[{}]", rows.join(","))
}

#[test]
fn receivers_with_and_without_the_extension_get_every_signal_intact_and_in_order() {
    let server = compressing_server(config());
    let mut deflating = RawClient::connect(&server, "/", Some("permessage-deflate"));
    let mut browser_like = RawClient::connect(
        &server,
        "/",
        Some("permessage-deflate; client_max_window_bits"),
    );
    let mut small_window = RawClient::connect(
        &server,
        "/",
        Some("permessage-deflate; server_max_window_bits=10, permessage-deflate"),
    );
    let mut plain = RawClient::connect(&server, "/", None);
    let mut declined = RawClient::connect(&server, "/", Some("x-webkit-deflate-frame"));
    assert_eq!(
        deflating.extensions.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert_eq!(browser_like.extensions, deflating.extensions);
    let small = small_window.extensions.clone().expect("agreed");
    assert!(small.ends_with("; server_max_window_bits=10"), "{small}");
    assert_eq!(plain.extensions, None);
    assert_eq!(declined.extensions, None);

    let signals = server.signals();
    let messages: Vec<String> = (0..20)
        .map(|n| match n % 3 {
            0 => format!("short {n}"),
            _ => long_message(n),
        })
        .collect();
    for message in &messages {
        signals.send(message.as_str()).unwrap();
    }
    for client in [&mut deflating, &mut browser_like, &mut small_window] {
        for message in &messages {
            let (compressed, text) = client.recv_text();
            assert_eq!(&text, message);
            // Short signals go as they are; long ones compressed.
            assert_eq!(compressed, message.len() > 100, "{message}");
        }
    }
    for client in [&mut plain, &mut declined] {
        for message in &messages {
            let (compressed, text) = client.recv_text();
            assert!(!compressed);
            assert_eq!(&text, message);
        }
    }
    server.shutdown();
}

#[test]
fn compressed_client_messages_are_inflated_and_routed() {
    let server = compressing_server(config());
    let mut sender = RawClient::connect(&server, "/", Some("permessage-deflate"));
    let mut other = connect(&server, "/");
    let long = long_message(7);
    let signal = json!({ "message": long }).to_string();
    sender.send(0x1, signal.as_bytes(), true);
    assert_eq!(other.recv(), long);
    assert_eq!(sender.recv_text(), (true, long));
    // A compressed message may be fragmented: RSV1 on the first frame only.
    let compressed = deflate(json!({ "message": "in two parts" }).to_string().as_bytes());
    let (first, second) = compressed.split_at(compressed.len() / 2);
    send_fragment(&mut sender, 0x1, first, true, false);
    send_fragment(&mut sender, 0x0, second, false, true);
    assert_eq!(other.recv(), "in two parts");
    server.shutdown();
}

/// Sends one fragment as it is (already compressed when `rsv1`).
fn send_fragment(client: &mut RawClient, opcode: u8, payload: &[u8], rsv1: bool, fin: bool) {
    let first = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode;
    let mask = [0, 0, 0, 0];
    let mut frame = vec![first, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(payload);
    client.stream.write_all(&frame).expect("send");
}

#[test]
fn a_decompression_bomb_is_closed_with_1009_and_nobody_else_notices() {
    let mut config = config();
    config.max_message_size = 1 << 20;
    let server = compressing_server(config);
    let mut bomber = RawClient::connect(&server, "/", Some("permessage-deflate"));
    let mut bystander = RawClient::connect(&server, "/", Some("permessage-deflate"));
    // 64 MiB of zeros deflates to about 64 KiB: over the limit only once inflated.
    let zeros = vec![0u8; 64 << 20];
    let bomb = deflate(&zeros);
    assert!(bomb.len() < 1 << 17, "{}", bomb.len());
    bomber.send(0x2, &zeros, true);
    assert_eq!(bomber.close_code(), 1009);
    server.signals().send(long_message(1)).unwrap();
    assert_eq!(bystander.recv_text(), (true, long_message(1)));
    wait_until("the bomber counted", || {
        server.metrics().snapshot().disconnects.message_too_big == 1
    });
    server.shutdown();
}

#[test]
fn compressed_frames_need_the_extension_and_rsv1_only_on_a_first_frame() {
    let server = compressing_server(config());
    // Not agreed: RSV1 is a protocol error (1002).
    let mut plain = RawClient::connect(&server, "/", None);
    plain.send(0x1, br#"{"message":"x"}"#, true);
    assert_eq!(plain.close_code(), 1002);
    // Agreed, but RSV1 on a continuation frame.
    let mut agreed = RawClient::connect(&server, "/", Some("permessage-deflate"));
    let compressed = deflate(br#"{"message":"x"}"#);
    send_fragment(&mut agreed, 0x1, &compressed[..2], true, false);
    send_fragment(&mut agreed, 0x0, &compressed[2..], true, true);
    assert_eq!(agreed.close_code(), 1002);
    // Garbage that is not deflate data.
    let mut garbage = RawClient::connect(&server, "/", Some("permessage-deflate"));
    send_fragment(&mut garbage, 0x1, &[0xff; 20], true, true);
    assert_eq!(garbage.close_code(), 1002);
    server.shutdown();
}

#[test]
fn without_compression_on_offers_are_not_answered() {
    let server = start();
    let client = RawClient::connect(&server, "/", Some("permessage-deflate"));
    assert_eq!(client.extensions, None);
    server.shutdown();
}

/// The Python interpreter with `websockets` (`make test` makes one in .venv-test).
fn python_with_websockets() -> Option<String> {
    let candidates = [
        std::env::var("SIGNALHUB_TEST_PYTHON").ok(),
        Some(format!(
            "{}/.venv-test/bin/python",
            env!("CARGO_MANIFEST_DIR")
        )),
        Some("python3".to_owned()),
    ];
    candidates.into_iter().flatten().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import websockets"])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

#[test]
fn a_python_websockets_client_negotiates_it_by_default_and_round_trips() {
    let Some(python) = python_with_websockets() else {
        eprintln!(
            "!!! SKIPPING: no Python with `websockets` (make test installs it in .venv-test) !!!"
        );
        return;
    };
    let server = compressing_server(config());
    let url = url(&server, "/py");
    let script = r#"
import asyncio, json, sys
from websockets.asyncio.client import connect

async def main(url):
    async with connect(url, open_timeout=5, close_timeout=2) as ws:
        print(ws.response.headers.get("Sec-WebSocket-Extensions"), flush=True)
        long = "x" + ",".join(str(i) for i in range(200))
        await ws.send(json.dumps({"message": long}))
        echoed = await asyncio.wait_for(ws.recv(), 5)
        print("echo ok" if echoed == long else "echo differs", flush=True)

asyncio.run(main(sys.argv[1]))
"#;
    let output = within_wait("the Python client", move || {
        std::process::Command::new(python)
            .args(["-c", script, &url])
            .output()
            .expect("python runs")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let extensions = lines.next().unwrap_or_default();
    assert!(
        extensions.starts_with("permessage-deflate; server_no_context_takeover"),
        "{extensions}"
    );
    assert_eq!(lines.next(), Some("echo ok"));
    server.shutdown();
}
