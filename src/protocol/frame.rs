//! Server-to-client WebSocket frames (RFC 6455, unmasked), encoded once per signal so the
//! same bytes can be written to every receiver, and the masked frames an outbound client
//! sends.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use super::message::{append_raw_payload, append_value_payload};

/// The largest header of an unmasked frame: 2 bytes plus a 64-bit length.
const MAX_HEADER_LEN: usize = 10;
/// The largest payload of a control frame.
const MAX_CONTROL_PAYLOAD: usize = 125;
/// Opcode of a text frame.
pub(crate) const OPCODE_TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub(crate) const OPCODE_BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub(crate) const OPCODE_CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;
/// The FIN bit of the first header byte.
const FIN: u8 = 0x80;
/// The RSV1 bit of the first header byte: a compressed message (RFC 7692).
#[cfg(feature = "compression")]
const RSV1: u8 = 0x40;
/// The mask bit of the second header byte.
const MASKED: u8 = 0x80;

/// One complete WebSocket frame, ready to be written to any number of sockets.
///
/// Built in one allocation: the payload is written after room for the largest
/// header, then the real header is written just before it. Cloning shares it: every
/// receiver's queue holds the same bytes, however many receivers are slow.
#[derive(Clone)]
pub(crate) struct Frame {
    /// Reserved header room, then the payload.
    buf: Arc<Bytes>,
    /// Where the frame's header starts in `buf`.
    start: usize,
}

/// A frame's bytes, and its compressed forms once made.
struct Bytes {
    bytes: Vec<u8>,
    /// permessage-deflate: the frame compressed with a window of 9 to 15 bits (`None`: not
    /// worth compressing), made for the first receiver that needs it and shared by the rest.
    #[cfg(feature = "compression")]
    deflated: [std::sync::OnceLock<Option<Frame>>; 7],
}

impl std::ops::Deref for Bytes {
    type Target = Vec<u8>;

    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl Frame {
    /// The frame's bytes, header and payload.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The frame's length in bytes, header included.
    pub(crate) fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The frame's opcode (`OPCODE_TEXT`, `OPCODE_BINARY`, ...).
    #[cfg(any(test, feature = "redis", feature = "compression"))]
    pub(crate) fn opcode(&self) -> u8 {
        self.buf[self.start] & 0x0F
    }

    /// The frame's payload (the header is always written just before it).
    #[cfg(any(test, feature = "redis", feature = "compression"))]
    pub(crate) fn payload(&self) -> &[u8] {
        &self.buf[MAX_HEADER_LEN..]
    }

    /// Whether both share the same bytes (one encoding, not a copy).
    #[cfg(test)]
    pub(crate) fn shares_bytes_with(&self, other: &Frame) -> bool {
        Arc::ptr_eq(&self.buf, &other.buf)
    }

    /// A final text frame carrying `payload` (expected to be UTF-8).
    pub(crate) fn text(payload: &[u8]) -> Frame {
        Frame::with_payload(OPCODE_TEXT, payload)
    }

    /// A final binary frame carrying `payload`.
    pub(crate) fn binary(payload: &[u8]) -> Frame {
        Frame::with_payload(OPCODE_BINARY, payload)
    }

    /// A ping frame; a payload over 125 bytes is truncated.
    pub(crate) fn ping(payload: &[u8]) -> Frame {
        Frame::with_payload(
            OPCODE_PING,
            &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)],
        )
    }

    /// A pong echoing a ping's payload (at most 125 bytes, as a ping's is).
    pub(crate) fn pong(payload: &[u8]) -> Frame {
        Frame::with_payload(
            OPCODE_PONG,
            &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)],
        )
    }

    /// A close frame with a status code and a reason truncated to 123 bytes at a char boundary.
    pub(crate) fn close(code: u16, reason: &str) -> Frame {
        let reason = truncate_at_char_boundary(reason, MAX_CONTROL_PAYLOAD - 2);
        let mut buf = reserve_header(2 + reason.len());
        buf.extend_from_slice(&code.to_be_bytes());
        buf.extend_from_slice(reason.as_bytes());
        Frame::finish(OPCODE_CLOSE, buf)
    }

    /// A close frame without a status code (the echo of one that had none).
    pub(crate) fn close_without_code() -> Frame {
        Frame::finish(OPCODE_CLOSE, reserve_header(0))
    }

    /// Text frame for a raw JSON message, or None when nothing is to be sent (null / "").
    pub(crate) fn text_from_raw(raw: &RawValue) -> Option<Frame> {
        let mut buf = reserve_header(raw.get().len());
        append_raw_payload(raw, &mut buf).then(|| Frame::finish(OPCODE_TEXT, buf))
    }

    /// Text frame for a `serde_json::Value`, or None when nothing is to be sent (null / "").
    pub(crate) fn text_from_value(value: &Value) -> Option<Frame> {
        let mut buf = reserve_header(0);
        append_value_payload(value, &mut buf).then(|| Frame::finish(OPCODE_TEXT, buf))
    }

    /// A final frame with the given opcode, copying `payload` once.
    fn with_payload(opcode: u8, payload: &[u8]) -> Frame {
        let mut buf = reserve_header(payload.len());
        buf.extend_from_slice(payload);
        Frame::finish(opcode, buf)
    }

    /// Writes the header for the payload after the reserved room and makes the frame.
    fn finish(opcode: u8, mut buf: Vec<u8>) -> Frame {
        let (header, header_len) = encode_header(opcode, buf.len() - MAX_HEADER_LEN);
        let start = MAX_HEADER_LEN - header_len;
        buf[start..MAX_HEADER_LEN].copy_from_slice(&header[..header_len]);
        Frame {
            buf: Arc::new(Bytes {
                bytes: buf,
                #[cfg(feature = "compression")]
                deflated: Default::default(),
            }),
            start,
        }
    }

    /// Whether [`Frame::deflated`] would compress it: a text or binary frame of
    /// [`deflate::MIN_COMPRESSED`](super::deflate::MIN_COMPRESSED) bytes or more.
    #[cfg(feature = "compression")]
    pub(crate) fn is_worth_deflating(&self) -> bool {
        matches!(self.opcode(), OPCODE_TEXT | OPCODE_BINARY)
            && self.payload().len() >= super::deflate::MIN_COMPRESSED
    }

    /// The frame as a receiver that agreed on permessage-deflate with a window of
    /// `window_bits` gets it: a text or binary frame of [`deflate::MIN_COMPRESSED`] bytes or
    /// more compressed (RSV1 set), compressed once for every such receiver; any other frame,
    /// or one that does not get smaller, as it is.
    ///
    /// [`deflate::MIN_COMPRESSED`]: super::deflate::MIN_COMPRESSED
    #[cfg(feature = "compression")]
    pub(crate) fn deflated(&self, window_bits: u8) -> Frame {
        use super::deflate::compress;
        let slot = usize::from(window_bits.clamp(9, 15) - 9);
        if !self.is_worth_deflating() {
            return self.clone();
        }
        let compressed = self.buf.deflated[slot].get_or_init(|| {
            let payload = compress(self.payload(), window_bits);
            (payload.len() < self.payload().len()).then(|| {
                let mut frame = Frame::with_payload(self.opcode(), &payload);
                // Written once, before anyone else can see it: the frame is not shared yet.
                if let Some(bytes) = Arc::get_mut(&mut frame.buf) {
                    bytes.bytes[frame.start] |= RSV1;
                }
                frame
            })
        });
        compressed.clone().unwrap_or_else(|| self.clone())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.as_bytes();
        f.debug_struct("Frame")
            .field("len", &bytes.len())
            .field("head", &&bytes[..bytes.len().min(16)])
            .finish()
    }
}

/// A buffer with room for the largest header, able to take `payload_capacity` more bytes.
fn reserve_header(payload_capacity: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(MAX_HEADER_LEN + payload_capacity);
    buf.resize(MAX_HEADER_LEN, 0);
    buf
}

/// The header of a final, unmasked frame, and how many of its bytes are used (a masked
/// frame's header adds the mask bit and the four bytes of its key).
fn encode_header(opcode: u8, payload_len: usize) -> ([u8; MAX_HEADER_LEN], usize) {
    let mut header = [0u8; MAX_HEADER_LEN];
    header[0] = FIN | opcode;
    let used = match payload_len {
        0..=125 => {
            header[1] = payload_len as u8;
            2
        }
        126..=0xFFFF => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    (header, used)
}

/// The longest prefix of `text` of at most `max_len` bytes that ends on a char boundary.
fn truncate_at_char_boundary(text: &str, max_len: usize) -> &str {
    let mut end = text.len().min(max_len);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The frames an outbound client writes from outside tungstenite (messages, pings and close
/// frames sent by other threads than the reader): masked (RFC 6455 5.3), each with a fresh
/// random key.
pub(crate) mod masked {
    use super::*;

    /// A text message.
    pub(crate) fn text(text: &str) -> Vec<u8> {
        masked(OPCODE_TEXT, text.as_bytes())
    }

    /// A binary message.
    pub(crate) fn binary(bytes: &[u8]) -> Vec<u8> {
        masked(OPCODE_BINARY, bytes)
    }

    /// A keepalive ping (empty payload).
    pub(crate) fn ping() -> Vec<u8> {
        masked(OPCODE_PING, &[])
    }

    /// A close frame with `code` and `reason` (cut to fit the 125 bytes a control frame
    /// holds).
    pub(crate) fn close(code: u16, reason: &str) -> Vec<u8> {
        let reason = truncate_at_char_boundary(reason, MAX_CONTROL_PAYLOAD - 2);
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        masked(OPCODE_CLOSE, &payload)
    }

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut mask = [0u8; 4];
        crate::random::fill(&mut mask);
        masked_with(opcode, payload, mask)
    }

    pub(super) fn masked_with(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let (mut header, used) = encode_header(opcode, payload.len());
        header[1] |= MASKED;
        let mut frame = Vec::with_capacity(used + 4 + payload.len());
        frame.extend_from_slice(&header[..used]);
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::message::{parse_client_message, payload_from_raw, payload_from_value};
    use std::io::Cursor;
    use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
    use tungstenite::protocol::frame::FrameHeader;
    use tungstenite::protocol::{Role, WebSocket};
    use tungstenite::Message;

    fn parse(text: &str) -> crate::protocol::ClientMessage<'_> {
        parse_client_message(text).unwrap()
    }

    /// Reads one message from the frame's bytes as a tungstenite client would.
    fn read_with_tungstenite(frame: &Frame) -> Message {
        let stream = Cursor::new(frame.as_bytes().to_vec());
        WebSocket::from_raw_socket(stream, Role::Client, None)
            .read()
            .unwrap()
    }

    /// Parses the frame's header with tungstenite and returns it with the payload.
    fn split_with_tungstenite(frame: &Frame) -> (FrameHeader, &[u8]) {
        let mut cursor = Cursor::new(frame.as_bytes());
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        let start = cursor.position() as usize;
        assert_eq!(start + len as usize, frame.len());
        (header, &frame.as_bytes()[start..])
    }

    #[test]
    fn short_text_frame_bytes() {
        assert_eq!(Frame::text(b"hi").as_bytes(), [0x81, 0x02, b'h', b'i']);
        assert_eq!(Frame::text(b"").as_bytes(), [0x81, 0x00]);
        assert_eq!(Frame::text(b"hi").len(), 4);
    }

    #[test]
    fn binary_frame_bytes() {
        assert_eq!(Frame::binary(&[1, 2, 3]).as_bytes(), [0x82, 0x03, 1, 2, 3]);
    }

    #[test]
    fn length_boundaries_use_the_right_header() {
        let cases: [(usize, &[u8]); 5] = [
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0x00, 0x7E]),
            (65535, &[0x81, 126, 0xFF, 0xFF]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
            (70000, &[0x81, 127, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]),
        ];
        for (len, header) in cases {
            let payload = vec![b'x'; len];
            let frame = Frame::text(&payload);
            assert_eq!(&frame.as_bytes()[..header.len()], header, "len {len}");
            assert_eq!(&frame.as_bytes()[header.len()..], payload.as_slice());
            assert_eq!(frame.len(), header.len() + len);
            let (parsed, body) = split_with_tungstenite(&frame);
            assert_eq!(parsed.opcode, OpCode::Data(Data::Text));
            assert!(parsed.is_final && parsed.mask.is_none());
            assert_eq!(body, payload.as_slice());
        }
    }

    #[test]
    fn close_frame_bytes() {
        let frame = Frame::close(1008, "bad");
        assert_eq!(frame.as_bytes(), [0x88, 0x05, 0x03, 0xF0, b'b', b'a', b'd']);
        assert_eq!(Frame::close(1000, "").as_bytes(), [0x88, 0x02, 0x03, 0xE8]);
    }

    #[test]
    fn close_reason_is_truncated_at_a_char_boundary() {
        let reason = "é".repeat(70);
        let frame = Frame::close(1001, &reason);
        assert_eq!(frame.as_bytes()[1], 2 + 122);
        let (_, body) = split_with_tungstenite(&frame);
        assert_eq!(&body[2..], "é".repeat(61).as_bytes());
        assert_eq!(Frame::close(1001, &"a".repeat(200)).as_bytes()[1], 125);
    }

    #[test]
    fn ping_frame_bytes_and_truncation() {
        assert_eq!(Frame::ping(b"p").as_bytes(), [0x89, 0x01, b'p']);
        assert_eq!(Frame::ping(b"").as_bytes(), [0x89, 0x00]);
        let long = Frame::ping(&[7; 300]);
        assert_eq!(long.as_bytes()[..2], [0x89, 125]);
        assert_eq!(long.len(), 127);
    }

    #[test]
    fn tungstenite_reads_our_frames() {
        let text = Frame::text("héllo".as_bytes());
        assert_eq!(read_with_tungstenite(&text), Message::text("héllo"));
        let big = "y".repeat(70000);
        assert_eq!(
            read_with_tungstenite(&Frame::text(big.as_bytes())),
            Message::text(big)
        );
        let binary = Frame::binary(&[0, 255, 1]);
        assert_eq!(
            read_with_tungstenite(&binary),
            Message::binary(vec![0, 255, 1])
        );
        assert_eq!(
            read_with_tungstenite(&Frame::ping(b"abc")),
            Message::Ping(b"abc".to_vec().into())
        );
    }

    #[test]
    fn tungstenite_reads_our_close_frame() {
        let Message::Close(Some(close)) = read_with_tungstenite(&Frame::close(1008, "policy"))
        else {
            panic!("expected a close frame with a body");
        };
        assert_eq!(u16::from(close.code), 1008);
        assert_eq!(close.reason.as_str(), "policy");
        let (header, _) = split_with_tungstenite(&Frame::close(1008, "policy"));
        assert_eq!(header.opcode, OpCode::Control(Control::Close));
    }

    #[test]
    fn text_from_raw_matches_text_of_payload() {
        let messages = [
            r#""hi""#,
            r#""a\"b\u00e9\n""#,
            r#"{ "a b" : [ 1 , "x \" y" , { } ] }"#,
            "[ 1.50 , -0 , 1e3 , true , false , null ]",
            "42",
            "true",
            r#""\ud83d\ude00 ✓""#,
        ];
        for message in messages {
            let text = format!("{{\"message\":{message}}}");
            let raw = parse(&text).message;
            let frame = Frame::text_from_raw(raw).unwrap();
            assert_eq!(
                frame.as_bytes(),
                Frame::text(&payload_from_raw(raw).unwrap()).as_bytes()
            );
            assert_eq!(
                frame.buf.capacity(),
                MAX_HEADER_LEN + raw.get().len(),
                "one allocation"
            );
        }
        let long = format!("{{\"message\":\"{}\"}}", "z".repeat(300));
        let frame = Frame::text_from_raw(parse(&long).message).unwrap();
        assert_eq!(
            read_with_tungstenite(&frame),
            Message::text("z".repeat(300))
        );
    }

    #[test]
    fn text_from_raw_sends_nothing_for_null_and_empty() {
        assert!(Frame::text_from_raw(parse(r#"{"message":null}"#).message).is_none());
        assert!(Frame::text_from_raw(parse(r#"{"message":""}"#).message).is_none());
    }

    #[test]
    fn text_from_value_matches_text_of_payload() {
        let values = [
            serde_json::json!("hé\""),
            serde_json::json!({"a": [1, null]}),
            serde_json::json!(2.5),
        ];
        for value in values {
            let frame = Frame::text_from_value(&value).unwrap();
            assert_eq!(
                frame.as_bytes(),
                Frame::text(&payload_from_value(&value).unwrap()).as_bytes()
            );
        }
        assert!(Frame::text_from_value(&Value::Null).is_none());
        assert!(Frame::text_from_value(&serde_json::json!("")).is_none());
    }

    #[test]
    fn debug_shows_length_and_head() {
        let shown = format!("{:?}", Frame::text(b"hi"));
        assert_eq!(shown, "Frame { len: 4, head: [129, 2, 104, 105] }");
    }

    #[test]
    fn opcode_and_payload_are_read_back() {
        let frame = Frame::binary(&[1, 2, 3]);
        assert_eq!(
            (frame.opcode(), frame.payload()),
            (OPCODE_BINARY, &[1u8, 2, 3][..])
        );
        let long = Frame::text(&[b'x'; 70_000]);
        assert_eq!((long.opcode(), long.payload().len()), (OPCODE_TEXT, 70_000));
        assert_eq!(Frame::close(1000, "").opcode(), OPCODE_CLOSE);
        assert_eq!(Frame::close_without_code().as_bytes(), [0x88, 0x00]);
    }

    /// What a server reads from a client's `bytes`.
    fn server_reads(bytes: Vec<u8>) -> Message {
        let mut ws = WebSocket::from_raw_socket(Cursor::new(bytes), Role::Server, None);
        ws.read().expect("a valid client frame")
    }

    #[test]
    fn the_masked_wire_format_is_pinned() {
        let frame = masked::masked_with(OPCODE_TEXT, b"Hi", [1, 2, 3, 4]);
        assert_eq!(frame, [0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2]);
        let ping = masked::masked_with(OPCODE_PING, b"", [9, 9, 9, 9]);
        assert_eq!(ping, [0x89, 0x80, 9, 9, 9, 9]);
        let medium = masked::binary(&[7; 300]);
        assert_eq!(&medium[..4], &[0x82, 0x80 | 126, 1, 44]);
        assert_eq!(medium.len(), 4 + 4 + 300);
        let large = masked::binary(&vec![7; 70_000]);
        assert_eq!(&large[..2], &[0x82, 0x80 | 127]);
        assert_eq!(&large[2..10], &70_000u64.to_be_bytes());
    }

    #[test]
    fn a_server_reads_each_masked_kind() {
        assert_eq!(server_reads(masked::text("héllo")), Message::text("héllo"));
        assert_eq!(
            server_reads(masked::binary(&[0, 255])),
            Message::binary(vec![0, 255])
        );
        assert!(matches!(server_reads(masked::ping()), Message::Ping(p) if p.is_empty()));
        let Message::Close(Some(close)) = server_reads(masked::close(1000, "bye")) else {
            panic!("not a close frame")
        };
        assert_eq!(
            (u16::from(close.code), close.reason.as_str()),
            (1000, "bye")
        );
        let large = vec![3u8; 100_000];
        assert_eq!(server_reads(masked::binary(&large)), Message::binary(large));
    }

    #[test]
    fn masks_differ_and_long_reasons_are_cut_on_a_char_boundary() {
        let (a, b) = (masked::text("same"), masked::text("same"));
        assert_ne!(a[2..6], b[2..6], "two frames with the same mask");
        let frame = masked::close(1000, &"é".repeat(100));
        assert_eq!(frame[1] & 0x7f, 2 + 122);
    }
}
