//! Client frames written from outside tungstenite: messages, pings and close frames sent by
//! other threads than the reader. A client's frames are masked (RFC 6455, section 5.3) with
//! a fresh random key each.

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// A final, masked frame holding `payload`.
pub(crate) fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut mask = [0u8; 4];
    random_bytes(&mut mask);
    masked_with(opcode, payload, mask)
}

/// A text message.
pub(crate) fn text(text: &str) -> Vec<u8> {
    masked(OpCode::Data(Data::Text), text.as_bytes())
}

/// A binary message.
pub(crate) fn binary(bytes: &[u8]) -> Vec<u8> {
    masked(OpCode::Data(Data::Binary), bytes)
}

/// A keepalive ping (empty payload).
pub(crate) fn ping() -> Vec<u8> {
    masked(OpCode::Control(Control::Ping), &[])
}

/// A close frame with `code` and `reason` (cut to fit the 125 bytes a control frame holds).
pub(crate) fn close(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    masked(OpCode::Control(Control::Close), &payload)
}

fn masked_with(opcode: OpCode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let header = FrameHeader {
        opcode,
        mask: Some(mask),
        ..FrameHeader::default()
    };
    let mut frame = Vec::with_capacity(14 + payload.len());
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, &mut frame);
    let masked = payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]);
    frame.extend(masked);
    frame
}

/// Fills `bytes` from the kernel's random source (or, on kernels without `getrandom(2)`, a
/// randomly keyed hash of the time and a counter).
pub(crate) fn random_bytes(bytes: &mut [u8]) {
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return fallback_random(&mut bytes[filled..]),
        }
    }
}

fn fallback_random(bytes: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in bytes.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.as_nanos()));
        chunk.copy_from_slice(&h.finish().to_be_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use tungstenite::protocol::{Role, WebSocket};
    use tungstenite::Message;

    /// What a server reads from `bytes`.
    fn server_reads(bytes: Vec<u8>) -> Message {
        let mut ws = WebSocket::from_raw_socket(Cursor::new(bytes), Role::Server, None);
        ws.read().expect("a valid client frame")
    }

    #[test]
    fn the_wire_format_is_pinned() {
        let frame = masked_with(OpCode::Data(Data::Text), b"Hi", [1, 2, 3, 4]);
        assert_eq!(frame, [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
        let ping = masked_with(OpCode::Control(Control::Ping), b"", [9, 9, 9, 9]);
        assert_eq!(ping, [0x89, 0x80, 9, 9, 9, 9]);
    }

    #[test]
    fn lengths_use_the_16_and_64_bit_forms() {
        let medium = masked(OpCode::Data(Data::Binary), &[7; 300]);
        assert_eq!(&medium[..4], &[0x82, 0x80 | 126, 1, 44]);
        assert_eq!(medium.len(), 4 + 4 + 300);
        let large = masked(OpCode::Data(Data::Binary), &vec![7; 70_000]);
        assert_eq!(&large[..2], &[0x82, 0x80 | 127]);
        assert_eq!(&large[2..10], &70_000u64.to_be_bytes());
    }

    #[test]
    fn a_server_reads_each_kind() {
        assert_eq!(server_reads(text("héllo")), Message::text("héllo"));
        assert_eq!(
            server_reads(binary(&[0, 255])),
            Message::binary(vec![0, 255])
        );
        assert!(matches!(server_reads(ping()), Message::Ping(p) if p.is_empty()));
        let Message::Close(Some(close)) = server_reads(close(1000, "bye")) else {
            panic!("not a close frame")
        };
        assert_eq!(
            (u16::from(close.code), close.reason.as_str()),
            (1000, "bye")
        );
        let large = vec![3u8; 100_000];
        assert_eq!(server_reads(binary(&large)), Message::binary(large));
    }

    #[test]
    fn masks_differ_and_long_reasons_are_cut_on_a_char_boundary() {
        let (a, b) = (text("same"), text("same"));
        assert_ne!(a[2..6], b[2..6], "two frames with the same mask");
        let frame = close(1000, &"é".repeat(100));
        assert_eq!(frame[1] & 0x7f, 2 + 122);
    }
}
