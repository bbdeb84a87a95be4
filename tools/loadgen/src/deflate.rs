//! permessage-deflate (RFC 7692) for `--compression true`: the offer, the server's answer, a
//! frame reader for the connections where the server accepted it (tungstenite refuses frames
//! with RSV1 set, so these read their frames here), and the compression of what they send
//! (`--compress-sent true`; tungstenite writes the frame, RSV1 and all).
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Cursor, Read};
use std::ops::Range;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame, FrameHeader};
use tungstenite::Message;

/// What the clients offer (`Sec-WebSocket-Extensions`), as browsers do.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";
/// What a sync flush ends with; the sender strips it, the receiver appends it (RFC 7692 7.2).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
/// The largest message, inflated or not (tungstenite's default), and so the largest frame.
pub const MAX_MESSAGE: usize = 64 << 20;
/// The read buffer's size, unless a frame needs more; back to it once a big frame is done.
const READ_CHUNK: usize = 4096;
const KEEP_AT_MOST: usize = 64 << 10;

/// What the server's answer settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Each message of the server's is compressed on its own: inflate each from a fresh state.
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    /// The window our compressor may use (8 to 15; 15 when not given).
    pub client_max_window_bits: Option<u8>,
}

/// The server's `Sec-WebSocket-Extensions` answer to [`OFFER`] (all its values joined with
/// commas; None if it sent none): Ok(None) if it accepted nothing, the parameters if it
/// accepted permessage-deflate, an error if the answer is one the client must fail the
/// connection for (an extension not offered, a parameter twice, an unknown or bad one).
pub fn accepted(answer: Option<&str>) -> Result<Option<Params>, String> {
    let mut found = None;
    for ext in answer.unwrap_or_default().split(',').map(str::trim) {
        let mut parts = ext.split(';').map(str::trim);
        match parts.next() {
            Some("") => continue,
            Some("permessage-deflate") if found.is_none() => {}
            Some("permessage-deflate") => return Err("permessage-deflate accepted twice".into()),
            name => {
                return Err(format!(
                    "the server accepted {name:?}, which was not offered"
                ))
            }
        }
        let mut p = Params::default();
        let mut seen = Vec::new();
        for param in parts {
            let (key, value) = match param.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (param, None),
            };
            if seen.contains(&key) {
                return Err(format!("permessage-deflate: {key} twice"));
            }
            seen.push(key);
            let bits = || {
                let bits = value.and_then(|v| v.parse::<u8>().ok());
                bits.filter(|b| (8..=15).contains(b))
                    .ok_or(format!("permessage-deflate: bad {param:?}"))
            };
            match (key, value) {
                ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
                ("server_max_window_bits", _) => p.server_max_window_bits = Some(bits()?),
                ("client_max_window_bits", _) => p.client_max_window_bits = Some(bits()?),
                _ => return Err(format!("permessage-deflate: unexpected {param:?}")),
            }
        }
        found = Some(p);
    }
    Ok(found)
}

/// A connection's permessage-deflate state: its frame reader, and its compressor with
/// `--compress-sent true` (none if the server limited our window to 8 bits, which zlib cannot
/// compress with: those connections send uncompressed frames, which is always allowed).
pub struct Deflate {
    pub inbound: Inbound,
    pub outbound: Option<Deflater>,
}

impl Deflate {
    /// `tail`: what was read after the handshake's response (the first frames, perhaps).
    pub fn new(p: &Params, tail: Vec<u8>, compress_sent: bool) -> Self {
        let bits = p.client_max_window_bits.unwrap_or(15);
        Deflate {
            inbound: Inbound::new(Some(p), tail),
            outbound: (compress_sent && bits >= 9).then(|| Deflater::new(bits)),
        }
    }
}

fn invalid(why: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.into())
}

/// The message being put together from fragments.
#[derive(Clone, Copy)]
struct Partial {
    text: bool,
    compressed: bool,
}

/// Reads the server's frames from a socket itself (unmasked, perhaps fragmented, with control
/// frames in between) and returns whole messages, inflating those whose first frame has RSV1
/// set. Protocol errors are `InvalidData`; `WouldBlock` when no whole message is buffered
/// and the socket has no more.
pub struct Inbound {
    buf: Vec<u8>, // [start..end] is read and not yet parsed
    start: usize,
    end: usize,
    need: usize,  // what the frame at `start` needs in all, once its header is known
    msg: Vec<u8>, // the message being put together (its fragments, or what they inflate to)
    partial: Option<Partial>,
    inflater: Option<Inflater>, // None: not negotiated, and RSV1 is an error
    /// Compressed messages inflated here, and those whose inflated form was reused.
    pub inflated: u64,
    pub reused: u64,
}

impl Inbound {
    /// A reader for a connection with permessage-deflate (`params`) or without (None), whose
    /// first bytes are `tail`.
    pub fn new(params: Option<&Params>, tail: Vec<u8>) -> Self {
        let end = tail.len();
        let mut buf = tail;
        buf.resize(end.max(READ_CHUNK), 0);
        Inbound {
            buf,
            start: 0,
            end,
            need: 0,
            msg: Vec::new(),
            partial: None,
            inflater: params.map(Inflater::new),
            inflated: 0,
            reused: 0,
        }
    }

    /// The next message (or control frame) from what is buffered and what `src` has.
    pub fn read(&mut self, src: &mut impl Read) -> io::Result<Message> {
        loop {
            if let Some(m) = self.next_message()? {
                return Ok(m);
            }
            self.fill(src)?;
        }
    }

    /// Read once from `src` into the buffer: room is made at its end (moving the unparsed
    /// bytes to the front, growing it to fit a big frame) when needed.
    fn fill(&mut self, src: &mut impl Read) -> io::Result<()> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if self.buf.len() > KEEP_AT_MOST && self.need <= READ_CHUNK {
                self.buf = vec![0; READ_CHUNK];
            }
        }
        if self.end == self.buf.len() || self.start + self.need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
            if self.need > self.buf.len() {
                self.buf.resize(self.need, 0);
            }
        }
        match src.read(&mut self.buf[self.end..])? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection without a close frame",
            )),
            n => {
                self.end += n;
                Ok(())
            }
        }
    }

    /// Parse the buffered frames until one completes a message; None if more bytes are needed.
    fn next_message(&mut self) -> io::Result<Option<Message>> {
        loop {
            let mut cursor = Cursor::new(&self.buf[self.start..self.end]);
            let parsed = FrameHeader::parse(&mut cursor).map_err(|e| invalid(e.to_string()))?;
            let Some((head, len)) = parsed else {
                return Ok(None);
            };
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > MAX_MESSAGE {
                return Err(invalid(format!("a frame of {len} bytes")));
            }
            let at = self.start + cursor.position() as usize;
            if self.end - at < len {
                self.need = at - self.start + len;
                return Ok(None);
            }
            self.need = 0;
            self.start = at + len;
            if let Some(m) = self.frame(head, at..at + len)? {
                return Ok(Some(m));
            }
        }
    }

    /// One whole frame, its payload at `payload` in the buffer.
    fn frame(&mut self, head: FrameHeader, payload: Range<usize>) -> io::Result<Option<Message>> {
        if head.mask.is_some() {
            return Err(invalid("a masked frame from the server"));
        }
        if head.rsv2 || head.rsv3 {
            return Err(invalid("RSV2 or RSV3 set"));
        }
        let data = match head.opcode {
            OpCode::Control(op) => return control(op, &head, &self.buf[payload]).map(Some),
            OpCode::Data(data) => data,
        };
        let part = match (data, self.partial) {
            (Data::Continue, None) => return Err(invalid("a continuation frame, no message")),
            (Data::Continue, Some(_)) if head.rsv1 => {
                return Err(invalid("RSV1 set on a continuation frame"))
            }
            (Data::Continue, Some(part)) => part,
            (Data::Text | Data::Binary, Some(_)) => {
                return Err(invalid("a new message within a fragmented one"))
            }
            (Data::Text | Data::Binary, None) if head.rsv1 && self.inflater.is_none() => {
                return Err(invalid("RSV1 set, permessage-deflate was not negotiated"))
            }
            (Data::Text, None) | (Data::Binary, None) => Partial {
                text: data == Data::Text,
                compressed: head.rsv1,
            },
            (Data::Reserved(op), _) => return Err(invalid(format!("opcode {op}"))),
        };
        if head.is_final && !part.compressed && self.partial.is_none() {
            return message(part.text, self.buf[payload].to_vec()).map(Some); // the usual case
        }
        // One frame, inflated from a fresh state: the same bytes as another receiver's make
        // the same message (see `Reuse`).
        let fresh = self.inflater.as_ref().is_some_and(|i| i.fresh_each);
        let reusable = fresh && head.is_final && self.partial.is_none() && part.compressed;
        let reusable = reusable && payload.len() <= REUSE_MAX;
        if reusable {
            if let Some(whole) = Reuse::find(&self.buf[payload.clone()]) {
                self.reused += 1;
                return message(part.text, whole).map(Some);
            }
        }
        if self.partial.is_none() {
            self.msg.clear();
            self.partial = Some(part);
        }
        let Inbound {
            buf, msg, inflater, ..
        } = self;
        match inflater.as_mut().filter(|_| part.compressed) {
            Some(inflater) => inflater.inflate(&buf[payload.clone()], msg)?,
            None => msg.extend_from_slice(&buf[payload.clone()]),
        }
        if msg.len() > MAX_MESSAGE {
            return Err(invalid("a message over 64 MiB"));
        }
        if !head.is_final {
            return Ok(None);
        }
        if let Some(inflater) = inflater.as_mut().filter(|_| part.compressed) {
            inflater.finish(msg)?;
            self.inflated += 1;
            if reusable {
                Reuse::keep(&buf[payload], msg);
            }
        }
        self.partial = None;
        let whole = self.msg.clone(); // keeps `msg`'s buffer for the next one
        if self.msg.capacity() > KEEP_AT_MOST {
            self.msg = Vec::new();
        }
        message(part.text, whole).map(Some)
    }
}

/// The compressed messages a thread inflated last, and what they inflated to. The server
/// compresses a broadcast once and sends the same bytes to each receiver; inflated from a
/// fresh state (server_no_context_takeover) the same bytes always make the same message, so
/// the receivers that one thread serves inflate each broadcast once. That keeps the
/// loadgen's cost per delivery near the uncompressed path's (inflating 4 KiB costs it more
/// than the server spends on a delivery), so that a run measures the server.
struct Reuse(VecDeque<(Vec<u8>, Vec<u8>)>); // newest first

/// How many `Reuse` keeps (fanout's window is 16 messages), and the largest it keeps.
const REUSE_ENTRIES: usize = 64;
const REUSE_MAX: usize = 64 << 10;

thread_local! {
    static REUSE: RefCell<Reuse> = const { RefCell::new(Reuse(VecDeque::new())) };
}

impl Reuse {
    /// What `compressed` inflated to, if this thread did it lately.
    fn find(compressed: &[u8]) -> Option<Vec<u8>> {
        REUSE.with_borrow(|r| {
            let hit = r.0.iter().find(|(c, _)| c.as_slice() == compressed);
            hit.map(|(_, inflated)| inflated.clone())
        })
    }
    fn keep(compressed: &[u8], inflated: &[u8]) {
        REUSE.with_borrow_mut(|r| {
            if r.0.len() == REUSE_ENTRIES {
                r.0.pop_back();
            }
            r.0.push_front((compressed.to_vec(), inflated.to_vec()));
        });
    }
}

/// A control frame: Ping, Pong or Close.
fn control(op: Control, head: &FrameHeader, payload: &[u8]) -> io::Result<Message> {
    if head.rsv1 {
        return Err(invalid("RSV1 set on a control frame"));
    }
    if !head.is_final || payload.len() > 125 {
        return Err(invalid("a fragmented or long control frame"));
    }
    Ok(match op {
        Control::Ping => Message::Ping(payload.to_vec().into()),
        Control::Pong => Message::Pong(payload.to_vec().into()),
        Control::Close => Message::Close(match payload {
            [] => None,
            [a, b, reason @ ..] => Some(CloseFrame {
                code: CloseCode::from(u16::from_be_bytes([*a, *b])),
                reason: String::from_utf8_lossy(reason).into_owned().into(),
            }),
            [_] => return Err(invalid("a close frame of one byte")),
        }),
        Control::Reserved(op) => return Err(invalid(format!("opcode {op}"))),
    })
}

fn message(text: bool, bytes: Vec<u8>) -> io::Result<Message> {
    if !text {
        return Ok(Message::Binary(bytes.into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("a text message not UTF-8"))?;
    Ok(Message::Text(text.into()))
}

/// Raw inflate with a 15-bit window (enough for any window the server used).
struct Inflater {
    d: Decompress,
    fresh_each: bool, // server_no_context_takeover: reset after each message
    ended: bool,      // a final block came: the next message starts a new stream
}

impl Inflater {
    fn new(p: &Params) -> Self {
        Inflater {
            d: Decompress::new_with_window_bits(false, 15),
            fresh_each: p.server_no_context_takeover,
            ended: false,
        }
    }

    /// Inflate `input` onto the end of `out`; what follows a final block is ignored.
    fn inflate(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !self.ended {
            if out.capacity() - out.len() < 1024 {
                out.reserve((input.len() * 4).max(READ_CHUNK));
            }
            let (in0, out0) = (self.d.total_in(), out.len());
            let status = self.d.decompress_vec(input, out, FlushDecompress::None);
            let status = status.map_err(|e| invalid(format!("inflate: {e}")))?;
            input = &input[(self.d.total_in() - in0) as usize..];
            let progress = self.d.total_in() > in0 || out.len() > out0;
            match status {
                Status::StreamEnd => self.ended = true,
                // All consumed, with room left: nothing more to come out.
                _ if input.is_empty() && out.len() < out.capacity() => return Ok(()),
                _ if !progress && out.len() < out.capacity() => {
                    return Err(invalid("inflate: stuck"))
                }
                _ => {}
            }
            if out.len() > MAX_MESSAGE {
                return Err(invalid("a message inflating to over 64 MiB"));
            }
        }
        Ok(())
    }

    /// The end of a message: the stripped tail, and a fresh state if the server asked for
    /// none to be kept (or ended its stream).
    fn finish(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.inflate(&TAIL, out)?;
        if self.fresh_each || self.ended {
            self.d.reset(false);
            self.ended = false;
        }
        Ok(())
    }
}

/// Raw deflate for sent messages, each on its own (no context takeover, which a client may
/// always choose), at zlib's default level as browsers use.
pub struct Deflater {
    c: Compress,
}

impl Deflater {
    /// `bits`: the window, 9 to 15.
    pub fn new(bits: u8) -> Self {
        Deflater {
            c: Compress::new_with_window_bits(Compression::default(), false, bits),
        }
    }

    /// `data` compressed (sync flush, its tail stripped).
    pub fn compress(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let (mut input, mut out) = (data, Vec::with_capacity(data.len() / 2 + 64));
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let in0 = self.c.total_in();
            let status = self.c.compress_vec(input, &mut out, FlushCompress::Sync);
            status.map_err(|e| invalid(format!("deflate: {e}")))?;
            input = &input[(self.c.total_in() - in0) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break; // the flush is complete
            }
        }
        self.c.reset();
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        Ok(out)
    }

    /// A text frame of `text` compressed, RSV1 set (tungstenite masks it when writing).
    pub fn text_frame(&mut self, text: &str) -> io::Result<Frame> {
        let head = FrameHeader {
            is_final: true,
            rsv1: true,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::Data(Data::Text),
            mask: None,
        };
        Ok(Frame::from_payload(
            head,
            self.compress(text.as_bytes())?.into(),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A socket that hands out its chunks one read at a time, then would block.
    struct Chunks(VecDeque<Vec<u8>>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(mut chunk) = self.0.pop_front() else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.push_front(chunk.split_off(n));
            }
            Ok(n)
        }
    }

    fn chunks(parts: &[&[u8]]) -> Chunks {
        Chunks(parts.iter().map(|p| p.to_vec()).collect())
    }

    /// A server frame (unmasked): FIN, RSV1, opcode and payload.
    pub(crate) fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let head = FrameHeader {
            is_final: fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode: OpCode::from(opcode),
            mask: None,
        };
        let mut out = Vec::new();
        Frame::from_payload(head, payload.to_vec().into())
            .format(&mut out)
            .unwrap();
        out
    }

    /// Raw deflate, sync flush, tail stripped: what the server sends.
    fn squeeze(data: &[u8]) -> Vec<u8> {
        Deflater::new(15).compress(data).unwrap()
    }

    fn negotiated() -> Params {
        accepted(Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        ))
        .unwrap()
        .unwrap()
    }

    fn text(m: io::Result<Message>) -> String {
        match m.unwrap() {
            Message::Text(t) => t.to_string(),
            other => panic!("not text: {other:?}"),
        }
    }

    fn would_block(r: io::Result<Message>) -> bool {
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    fn error(r: io::Result<Message>) -> String {
        match r {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => e.to_string(),
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    fn json(n: usize) -> String {
        let items: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"id":{i},"name":"item-{}","value":{}.5}}"#,
                    i % 7,
                    i * 3
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    #[test]
    fn answers() {
        assert_eq!(accepted(None), Ok(None));
        assert_eq!(accepted(Some("")), Ok(None));
        let p = accepted(Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=\"12\"",
        ));
        let want = Params {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: Some(10),
            client_max_window_bits: Some(12),
        };
        assert_eq!(p, Ok(Some(want)));
        assert_eq!(
            accepted(Some("permessage-deflate")),
            Ok(Some(Params::default()))
        );
        for bad in [
            "x-webkit-deflate-frame",
            "permessage-deflate, permessage-deflate",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; mystery",
        ] {
            assert!(accepted(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_and_compressed_messages() {
        let long = json(100);
        let packed = squeeze(long.as_bytes());
        assert!(
            packed.len() * 3 < long.len(),
            "{} -> {}",
            long.len(),
            packed.len()
        );
        let mut src = chunks(&[
            &frame(true, false, 1, b"small"),
            &frame(true, true, 1, &packed),
            &frame(true, true, 1, &squeeze(b"again")), // a fresh inflater each time
        ]);
        let mut r = Inbound::new(Some(&negotiated()), Vec::new());
        assert_eq!(text(r.read(&mut src)), "small");
        assert_eq!(text(r.read(&mut src)), long);
        assert_eq!(text(r.read(&mut src)), "again");
        assert!(would_block(r.read(&mut src)));
    }

    #[test]
    fn fragmented_compressed_message_with_control_frames_between() {
        let long = json(300);
        let packed = squeeze(long.as_bytes());
        let (a, rest) = packed.split_at(packed.len() / 3);
        let (b, c) = rest.split_at(rest.len() / 2);
        let mut bytes = frame(false, true, 1, a); // RSV1 on the first frame only
        bytes.extend(frame(true, false, 9, b"are you there")); // ping
        bytes.extend(frame(false, false, 0, b));
        bytes.extend(frame(true, false, 10, b"")); // pong
        bytes.extend(frame(true, false, 0, c));
        // Close, code 1000, "bye".
        bytes.extend(frame(true, false, 8, &[3, 232, b'b', b'y', b'e']));
        // Delivered in pieces of 7 bytes: headers and payloads split across reads.
        let mut src = Chunks(bytes.chunks(7).map(<[u8]>::to_vec).collect());
        let mut r = Inbound::new(Some(&negotiated()), Vec::new());
        assert_eq!(
            r.read(&mut src).unwrap(),
            Message::Ping(b"are you there"[..].into())
        );
        assert_eq!(r.read(&mut src).unwrap(), Message::Pong(Vec::new().into()));
        assert_eq!(text(r.read(&mut src)), long);
        match r.read(&mut src).unwrap() {
            Message::Close(Some(c)) => {
                assert_eq!((u16::from(c.code), c.reason.as_str()), (1000, "bye"))
            }
            other => panic!("{other:?}"),
        }
        assert!(would_block(r.read(&mut src)));
    }

    #[test]
    fn fragmented_plain_message_and_binary() {
        let mut src = chunks(&[
            &frame(false, false, 1, b"hel"),
            &frame(false, false, 0, b"lo "),
            &frame(true, false, 0, b"there"),
            &frame(true, true, 2, &squeeze(&[1, 2, 3])),
        ]);
        let mut r = Inbound::new(Some(&negotiated()), Vec::new());
        assert_eq!(text(r.read(&mut src)), "hello there");
        assert_eq!(
            r.read(&mut src).unwrap(),
            Message::Binary(vec![1, 2, 3].into())
        );
    }

    #[test]
    fn a_big_frame_grows_the_buffer_then_it_shrinks() {
        let big = "y".repeat(200_000);
        let mut src = chunks(&[
            &frame(true, false, 1, big.as_bytes()),
            &frame(true, false, 1, b"z"),
        ]);
        let mut r = Inbound::new(None, Vec::new());
        assert_eq!(text(r.read(&mut src)), big);
        assert_eq!(text(r.read(&mut src)), "z");
        assert!(would_block(r.read(&mut src)));
        assert_eq!(r.buf.len(), READ_CHUNK);
    }

    #[test]
    fn handshake_tail_is_read_first() {
        // The first frame arrived with the 101 response, the second later.
        let first = frame(true, true, 1, &squeeze(b"first"));
        let (head, rest) = first.split_at(3);
        let mut src = chunks(&[rest, &frame(true, false, 1, b"second")]);
        let mut r = Inbound::new(Some(&negotiated()), head.to_vec());
        assert_eq!(text(r.read(&mut src)), "first");
        assert_eq!(text(r.read(&mut src)), "second");
    }

    #[test]
    fn tail_variants() {
        let mut r = Inbound::new(Some(&negotiated()), Vec::new());
        // The tail left on (some senders do): one more empty block, nothing more to inflate.
        let mut whole = squeeze(b"with its tail");
        whole.extend(TAIL);
        // A message ending in a final block (BFINAL), as a Z_FINISH compressor makes.
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut finished = Vec::with_capacity(64);
        c.compress_vec(b"finished", &mut finished, FlushCompress::Finish)
            .unwrap();
        // An empty message: a sync flush of nothing, stripped, is one zero byte.
        let empty = squeeze(b"");
        assert_eq!(empty, [0]);
        let mut src = chunks(&[
            &frame(true, true, 1, &whole),
            &frame(true, true, 1, &finished),
            &frame(true, true, 1, &empty),
            &frame(true, true, 1, &squeeze(b"after")),
        ]);
        for want in ["with its tail", "finished", "", "after"] {
            assert_eq!(text(r.read(&mut src)), want);
        }
    }

    #[test]
    fn context_kept_when_the_server_keeps_it() {
        // No server_no_context_takeover: the server's second message may refer to the first.
        let mut c = Compress::new_with_window_bits(Compression::default(), false, 15);
        let mut pack = |data: &[u8]| {
            let mut out = Vec::with_capacity(data.len() + 64);
            c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
            out.truncate(out.len() - 4);
            out
        };
        let msg = json(20);
        let (one, two) = (pack(msg.as_bytes()), pack(msg.as_bytes()));
        assert!(two.len() * 4 < one.len()); // the second is mostly a reference to the first
        let mut src = chunks(&[&frame(true, true, 1, &one), &frame(true, true, 1, &two)]);
        let p = accepted(Some("permessage-deflate")).unwrap().unwrap();
        let mut r = Inbound::new(Some(&p), Vec::new());
        assert_eq!(text(r.read(&mut src)), msg);
        assert_eq!(text(r.read(&mut src)), msg);
    }

    #[test]
    fn the_same_bytes_inflate_once_per_thread() {
        std::thread::spawn(|| {
            let long = json(100);
            let one = frame(true, true, 1, &squeeze(long.as_bytes()));
            let packed = squeeze(long.as_bytes());
            let (a, b) = packed.split_at(packed.len() / 2);
            let parts = [frame(false, true, 1, a), frame(true, false, 0, b)].concat();
            let takeover = accepted(Some("permessage-deflate")).unwrap().unwrap();
            // (parameters, frames, inflated, reused) for a second receiver after a first one.
            let cases = [
                (negotiated(), &one, 0, 1),
                (negotiated(), &parts, 1, 0), // fragmented: inflated
                (takeover, &one, 1, 0),       // context kept: inflated
            ];
            let mut first = Inbound::new(Some(&negotiated()), Vec::new());
            assert_eq!(text(first.read(&mut chunks(&[&one]))), long);
            assert_eq!((first.inflated, first.reused), (1, 0));
            for (params, bytes, inflated, reused) in cases {
                let mut r = Inbound::new(Some(&params), Vec::new());
                assert_eq!(text(r.read(&mut chunks(&[bytes]))), long);
                assert_eq!((r.inflated, r.reused), (inflated, reused));
            }
            // Another message is another entry.
            let mut r = Inbound::new(Some(&negotiated()), Vec::new());
            let other = frame(true, true, 1, &squeeze(b"other"));
            let mut src = chunks(&[&other, &one, &other]);
            for want in ["other", &long, "other"] {
                assert_eq!(text(r.read(&mut src)), want);
            }
            assert_eq!((r.inflated, r.reused), (1, 2));
        })
        .join()
        .unwrap(); // a thread of its own: `Reuse` is per thread
    }

    #[test]
    fn protocol_errors() {
        let packed = squeeze(b"hello");
        let cases: Vec<(Vec<u8>, Option<Params>, &str)> = vec![
            (frame(true, true, 1, &packed), None, "not negotiated"),
            (
                [frame(false, true, 1, &packed), frame(true, true, 0, b"")].concat(),
                Some(negotiated()),
                "continuation",
            ),
            (
                frame(true, false, 0, b"x"),
                Some(negotiated()),
                "no message",
            ),
            (
                [frame(false, false, 1, b"a"), frame(true, false, 1, b"b")].concat(),
                Some(negotiated()),
                "within a fragmented",
            ),
            (
                frame(true, true, 9, b""),
                Some(negotiated()),
                "control frame",
            ),
            (
                frame(false, false, 9, b""),
                Some(negotiated()),
                "fragmented or long",
            ),
            (frame(true, false, 1, &[0xff, 0xfe]), None, "UTF-8"),
            (
                frame(true, true, 1, &[0xff, 0xff, 0xff]),
                Some(negotiated()),
                "inflate",
            ),
            (vec![0x81 | 0x20, 0], None, "RSV2"),
            (vec![0x81, 0x80, 1, 2, 3, 4], None, "masked"),
        ];
        for (bytes, params, want) in cases {
            let mut r = Inbound::new(params.as_ref(), Vec::new());
            let mut src = chunks(&[&bytes]);
            let got = error(r.read(&mut src));
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
    }

    #[test]
    fn eof_without_close_frame() {
        let mut r = Inbound::new(None, Vec::new());
        let mut src = io::empty();
        let e = r.read(&mut src).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn sent_frames_inflate_back() {
        let long = json(50);
        let mut d = Deflater::new(15);
        let f = d.text_frame(&long).unwrap();
        assert!(f.header().rsv1);
        let mut bytes = Vec::new();
        f.format(&mut bytes).unwrap();
        let mut r = Inbound::new(Some(&negotiated()), Vec::new());
        assert_eq!(text(r.read(&mut chunks(&[&bytes]))), long);
        // The compressor starts afresh each message.
        assert_eq!(
            d.compress(long.as_bytes()).unwrap(),
            squeeze(long.as_bytes())
        );
        // A small window still round-trips.
        let small = Deflater::new(9).compress(long.as_bytes()).unwrap();
        assert_eq!(
            text(r.read(&mut chunks(&[&frame(true, true, 1, &small)]))),
            long
        );
    }
}
