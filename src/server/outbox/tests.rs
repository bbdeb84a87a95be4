//! The outbox on real socket pairs over loopback: the peer reads, or does not.

use super::*;
use crate::server::drain;
use std::io::Read;
use std::net::TcpListener;

/// A connected pair: our side (for the outbox) and the peer's, whose receive buffer is
/// kept small so that it fills up quickly when the peer does not read.
fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    use rustix::net::{sockopt, AddressFamily, SocketType};
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    sockopt::set_socket_recv_buffer_size(&socket, 4096).unwrap();
    rustix::net::connect(&socket, &listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    (ours, TcpStream::from(socket))
}

struct Setup {
    listener: TcpListener,
    drain: DrainHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Setup {
    fn new() -> Setup {
        let (drain, thread) = drain::spawn().unwrap();
        Setup {
            listener: TcpListener::bind("127.0.0.1:0").unwrap(),
            drain,
            thread: Some(thread),
        }
    }

    /// An open outbox with `limit`, and the peer's end of its socket.
    fn outbox(&self, limit: usize) -> (Arc<Outbox>, TcpStream) {
        let (ours, peer) = pair(&self.listener);
        let outbox = Outbox::new(
            ours,
            None,
            Vec::new(),
            Vec::new(),
            Terms {
                limit,
                close_grace: Duration::from_secs(5),
                drain: self.drain.clone(),
                deflate: None,
            },
        );
        outbox.open();
        (outbox, peer)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.drain.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Outbox {
    fn shares(&self, frame: &Frame) -> bool {
        let inner = self.lock();
        let mut queued = inner.queue.iter();
        queued.any(|c| matches!(c, Chunk::Shared(f) if f.shares_bytes_with(frame)))
    }
}

/// Reads `n` bytes from the peer's side.
fn read_exactly(peer: &mut TcpStream, n: usize) -> Vec<u8> {
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut bytes = vec![0u8; n];
    peer.read_exact(&mut bytes).unwrap();
    bytes
}

#[test]
fn one_broadcast_to_twenty_readers_that_do_not_read_is_one_copy() {
    let setup = Setup::new();
    let big = Frame::binary(&vec![7u8; 8 << 20]);
    let outboxes: Vec<_> = (0..20).map(|_| setup.outbox(16 << 20)).collect();
    for (outbox, _) in &outboxes {
        assert_eq!(outbox.send_frames(&[&big]), Delivery::Queued);
    }
    for (outbox, _) in &outboxes {
        assert!(
            outbox.shares(&big),
            "the waiting frame is the broadcast's own bytes"
        );
        assert!(outbox.lock().backlog() > 0);
    }
}

#[test]
fn the_limit_counts_what_waits_and_what_would_be_added() {
    let setup = Setup::new();
    let (outbox, _peer) = setup.outbox(1 << 20);
    // One frame bigger than the limit is taken when nothing waits...
    let huge = Frame::binary(&vec![1u8; 4 << 20]);
    assert_eq!(outbox.send_frames(&[&huge]), Delivery::Queued);
    // ...but nothing more while it waits.
    let small = Frame::text(b"x");
    assert_eq!(outbox.send_frames(&[&small]), Delivery::Overflowed);
    assert!(outbox.is_closing());
    assert_eq!(outbox.send_frames(&[&small]), Delivery::Closed);

    // A batch over the limit does not fit in an empty queue either.
    let (outbox, _peer) = setup.outbox(1 << 20);
    let piece = Frame::binary(&vec![2u8; 1 << 20]);
    let batch = [&piece; 16];
    assert_eq!(outbox.send_frames(&batch), Delivery::Overflowed);
}

#[test]
fn a_requested_close_goes_out_after_what_was_routed_before_it() {
    let setup = Setup::new();
    let (outbox, mut peer) = setup.outbox(1 << 20);
    outbox.request_close();
    assert!(outbox.is_closing());
    // tungstenite's own close reply is dropped; signals routed before the close still go.
    outbox.write_control(&[0x88, 0x00]).unwrap();
    let reply = Frame::text(b"reply");
    assert_eq!(outbox.send_frames(&[&reply]), Delivery::Written);
    outbox.close(Some(1000), "");
    let expected = [reply.as_bytes(), Frame::close(1000, "").as_bytes()].concat();
    assert_eq!(read_exactly(&mut peer, expected.len()), expected);
    assert_eq!(outbox.send_frames(&[&reply]), Delivery::Closed);
}

#[test]
fn what_waits_goes_out_in_order_once_the_peer_reads() {
    let setup = Setup::new();
    let (outbox, mut peer) = setup.outbox(64 << 20);
    let frames: Vec<Frame> = (0..64u8)
        .map(|i| Frame::binary(&vec![i; 100_000]))
        .collect();
    for frame in &frames {
        let delivery = outbox.send_frames(&[frame]);
        assert!(matches!(delivery, Delivery::Written | Delivery::Queued));
    }
    for (i, frame) in frames.iter().enumerate() {
        let got = read_exactly(&mut peer, frame.len());
        assert!(
            got == frame.as_bytes(),
            "frame {i} arrived whole and in order"
        );
    }
}

#[test]
fn a_reader_done_with_nothing_waiting_cuts_at_once_and_a_close_waits_for_its_frame() {
    let setup = Setup::new();
    let (outbox, mut peer) = setup.outbox(1 << 20);
    outbox.reader_done();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(peer.read(&mut [0u8; 16]).unwrap(), 0);

    let (outbox, mut peer) = setup.outbox(1 << 20);
    outbox.request_close();
    outbox.reader_done(); // the reader ends before the fan-out sends the close
    outbox.close(Some(1002), "protocol error");
    let close = Frame::close(1002, "protocol error");
    assert_eq!(read_exactly(&mut peer, close.len()), close.as_bytes());
    assert_eq!(
        peer.read(&mut [0u8; 16]).unwrap(),
        0,
        "then the socket is cut"
    );
}

#[test]
fn a_refusal_takes_back_the_greeting_and_what_was_routed_behind_it() {
    let setup = Setup::new();
    let (ours, mut peer) = pair(&setup.listener);
    let outbox = Outbox::new(
        ours,
        None,
        b"first ".to_vec(),
        b"greeting".to_vec(),
        Terms {
            limit: 1 << 20,
            close_grace: Duration::from_secs(5),
            drain: setup.drain.clone(),
            deflate: None,
        },
    );
    // Registered before its thread could start: a signal waits behind the greeting.
    assert_eq!(
        outbox.send_frames(&[&Frame::text(b"signal")]),
        Delivery::Queued
    );
    outbox.refuse(b"refused");
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"first refused");
}
