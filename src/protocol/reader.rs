//! Reading a client's messages: frames off a byte stream, checked (RFC 6455 section 5) and
//! put together into messages, inflated when permessage-deflate was agreed (RFC 7692).
//!
//! tungstenite's `WebSocket` refuses frames with RSV1 set, which compressed messages carry, so
//! the server reads frames itself, parsing their headers with tungstenite's `FrameHeader`.
//! Doing so also lets it check a text message's UTF-8 fragment by fragment (a message that
//! turns invalid fails at that fragment) and keep its buffers small: a payload is read
//! straight into its message, a step at a time, so an idle connection holds only the small
//! read buffer and a big message is given back whole once handled.

use std::io::{self, Cursor, Read};

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// The most payload read at a time into a message: memory is touched as bytes arrive, not
/// when a frame announces its length.
const READ_STEP: usize = 64 << 10;

/// A message from the client, or a control frame the connection acts on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A text message (valid UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping, with its payload (to echo in a pong).
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame: its code (`None` when it had none). A code a peer may not send (1005,
    /// 1006, 1015, an unassigned one) is reported as 1002, the answer it gets.
    Close(Option<u16>),
}

/// Why no message could be read.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The stream ended (at a frame boundary or not) or failed: the peer is gone.
    Gone,
    /// The peer broke the protocol: the connection fails with 1002.
    Protocol(&'static str),
    /// A text message (or a close reason) that is not UTF-8: 1007.
    InvalidUtf8,
    /// A message (or frame) over the size limit, inflated or not: 1009.
    TooBig,
}

/// Text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Binary,
}

/// A fragmented message being put together.
struct Partial {
    kind: Kind,
    data: Vec<u8>,
    /// How many bytes of `data` are known to be valid UTF-8 (text only): what follows is an
    /// incomplete character at most.
    checked: usize,
    /// Its frames are compressed: the inflater for this message.
    #[cfg(feature = "compression")]
    inflater: Option<crate::protocol::deflate::Inflater>,
}

/// Reads messages from a client's stream.
pub(crate) struct MessageReader {
    /// Bytes read and not used yet: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// How many bytes a read asks for when it needs a frame header.
    read_size: usize,
    /// The largest message (and frame), after inflating.
    max_message: usize,
    /// Compressed frames (RSV1) are allowed: permessage-deflate was agreed.
    deflate: bool,
    partial: Option<Partial>,
}

impl MessageReader {
    /// A reader starting with `leftover` (bytes that came with the upgrade request), reading
    /// `read_size` bytes at a time for headers.
    pub(crate) fn new(
        leftover: Vec<u8>,
        read_size: usize,
        max_message: usize,
        deflate: bool,
    ) -> MessageReader {
        MessageReader {
            buf: leftover,
            pos: 0,
            read_size: read_size.max(14),
            max_message,
            deflate,
            partial: None,
        }
    }

    /// The next message or control frame.
    pub(crate) fn read(&mut self, stream: &mut impl Read) -> Result<Incoming, Failure> {
        loop {
            let (header, length) = self.header(stream)?;
            match header.opcode {
                OpCode::Control(control) => return self.control(stream, &header, length, control),
                OpCode::Data(data) => {
                    if let Some(message) = self.data(stream, &header, length, data)? {
                        return Ok(message);
                    }
                }
            }
        }
    }

    /// The next frame's header and payload length, checked against the rules that do not
    /// depend on what it carries.
    fn header(&mut self, stream: &mut impl Read) -> Result<(FrameHeader, u64), Failure> {
        let (header, length) = loop {
            let mut cursor = Cursor::new(&self.buf[self.pos..]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some(parsed)) => {
                    self.pos += cursor.position() as usize;
                    break parsed;
                }
                Ok(None) => self.fill(stream)?,
                Err(_) => return Err(Failure::Protocol("bad frame header")),
            }
        };
        if header.rsv2 || header.rsv3 {
            return Err(Failure::Protocol("reserved bits set"));
        }
        if header.mask.is_none() {
            return Err(Failure::Protocol("unmasked frame from a client"));
        }
        if length > self.max_message as u64 {
            return Err(Failure::TooBig);
        }
        Ok((header, length))
    }

    /// Reads more bytes into the buffer (at least one), dropping what was used.
    ///
    /// Until the first bytes arrive there is no buffer: they are read into a few bytes on the
    /// stack, so a connection that never sends anything holds none (idle memory).
    #[inline(never)]
    fn fill(&mut self, stream: &mut impl Read) -> Result<(), Failure> {
        if self.buf.capacity() == 0 {
            let mut first = [0u8; 14];
            let read = read_some(stream, &mut first)?;
            self.buf.reserve_exact(self.read_size);
            self.buf.extend_from_slice(&first[..read]);
            return Ok(());
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + self.read_size, 0);
        let read = read_some(stream, &mut self.buf[start..]);
        self.buf.truncate(start + *read.as_ref().unwrap_or(&0));
        read.map(|_| ())
    }

    /// Appends the next `length` payload bytes to `out`, unmasked with `mask`, calling
    /// `arrived` with `out` after each step (a text message is checked as it arrives).
    fn payload(
        &mut self,
        stream: &mut impl Read,
        length: usize,
        mask: [u8; 4],
        out: &mut Vec<u8>,
        mut arrived: impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let start = out.len();
        let buffered = (self.buf.len() - self.pos).min(length);
        out.extend_from_slice(&self.buf[self.pos..self.pos + buffered]);
        self.pos += buffered;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        unmask(&mut out[start..], mask, 0);
        arrived(out)?;
        while out.len() - start < length {
            let at = out.len();
            let step = (length - (at - start)).min(READ_STEP);
            out.resize(at + step, 0);
            let read = loop {
                match stream.read(&mut out[at..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            out.truncate(at + *read.as_ref().unwrap_or(&0));
            match read {
                Ok(0) => return Err(Failure::Gone),
                Ok(_) => {}
                Err(_) => return Err(Failure::Gone),
            }
            unmask(&mut out[at..], mask, at - start);
            arrived(out)?;
        }
        Ok(())
    }

    /// A control frame: ping, pong or close.
    #[inline(never)]
    fn control(
        &mut self,
        stream: &mut impl Read,
        header: &FrameHeader,
        length: u64,
        control: Control,
    ) -> Result<Incoming, Failure> {
        if !header.is_final {
            return Err(Failure::Protocol("fragmented control frame"));
        }
        if length > 125 {
            return Err(Failure::Protocol("control frame over 125 bytes"));
        }
        if header.rsv1 {
            return Err(Failure::Protocol("compressed control frame"));
        }
        let mask = header.mask.unwrap_or_default();
        let mut payload = Vec::with_capacity(length as usize);
        self.payload(stream, length as usize, mask, &mut payload, |_| Ok(()))?;
        match control {
            Control::Ping => Ok(Incoming::Ping(payload)),
            Control::Pong => Ok(Incoming::Pong),
            Control::Close => close_code(&payload).map(Incoming::Close),
            Control::Reserved(_) => Err(Failure::Protocol("unknown control opcode")),
        }
    }

    /// A data frame: the message it completes, if it is the last.
    #[inline(never)]
    fn data(
        &mut self,
        stream: &mut impl Read,
        header: &FrameHeader,
        length: u64,
        data: Data,
    ) -> Result<Option<Incoming>, Failure> {
        let length = length as usize;
        let mask = header.mask.unwrap_or_default();
        let mut partial = match (data, self.partial.take()) {
            (Data::Continue, Some(partial)) if !header.rsv1 => partial,
            (Data::Continue, Some(_)) => {
                return Err(Failure::Protocol("compression bit on a continuation frame"))
            }
            (Data::Continue, None) => return Err(Failure::Protocol("continuation out of place")),
            (Data::Text | Data::Binary, Some(_)) => {
                return Err(Failure::Protocol("a new message inside a fragmented one"))
            }
            (Data::Reserved(_), _) => return Err(Failure::Protocol("unknown data opcode")),
            (Data::Text | Data::Binary, None) => self.start(header, data)?,
        };
        let text = partial.kind == Kind::Text;
        if !partial.is_compressed() {
            if partial.data.len() + length > self.max_message {
                return Err(Failure::TooBig);
            }
            // Checked as it arrives: a message that turns invalid fails there and then.
            let checked = &mut partial.checked;
            let check = |data: &[u8]| match text {
                true => check_utf8(data, checked, false),
                false => Ok(()),
            };
            self.payload(stream, length, mask, &mut partial.data, check)?;
        } else {
            self.inflate(stream, length, mask, &mut partial, header.is_final)?;
        }
        if text {
            check_utf8(&partial.data, &mut partial.checked, header.is_final)?;
        }
        if !header.is_final {
            self.partial = Some(partial);
            return Ok(None);
        }
        Ok(Some(match partial.kind {
            // Checked above, whole.
            Kind::Text => {
                Incoming::Text(String::from_utf8(partial.data).map_err(|_| Failure::InvalidUtf8)?)
            }
            Kind::Binary => Incoming::Binary(partial.data),
        }))
    }

    /// The first frame of a message.
    fn start(&self, header: &FrameHeader, data: Data) -> Result<Partial, Failure> {
        if header.rsv1 && !self.deflate {
            return Err(Failure::Protocol("reserved bits set"));
        }
        Ok(Partial {
            kind: if data == Data::Text {
                Kind::Text
            } else {
                Kind::Binary
            },
            data: Vec::new(),
            checked: 0,
            #[cfg(feature = "compression")]
            inflater: header.rsv1.then(crate::protocol::deflate::Inflater::new),
        })
    }

    /// Reads a compressed frame's payload and inflates it into the message.
    #[cfg(feature = "compression")]
    fn inflate(
        &mut self,
        stream: &mut impl Read,
        length: usize,
        mask: [u8; 4],
        partial: &mut Partial,
        last: bool,
    ) -> Result<(), Failure> {
        use crate::protocol::deflate::InflateError;
        let mut compressed = Vec::new();
        self.payload(stream, length, mask, &mut compressed, |_| Ok(()))?;
        let Some(inflater) = partial.inflater.as_mut() else {
            return Err(Failure::Protocol("not compressed"));
        };
        let limit = self.max_message;
        let mut result = inflater.push(&compressed, &mut partial.data, limit);
        if last && result.is_ok() {
            result = inflater.finish(&mut partial.data, limit);
        }
        result.map_err(|e| match e {
            InflateError::TooBig => Failure::TooBig,
            InflateError::Corrupt => Failure::Protocol("invalid compressed data"),
        })
    }

    /// Without the `compression` feature nothing is ever agreed, so nothing is compressed.
    #[cfg(not(feature = "compression"))]
    fn inflate(
        &mut self,
        _stream: &mut impl Read,
        _length: usize,
        _mask: [u8; 4],
        _partial: &mut Partial,
        _last: bool,
    ) -> Result<(), Failure> {
        Err(Failure::Protocol("reserved bits set"))
    }

    /// Whether a message is half read (the client is sending one).
    #[cfg(test)]
    fn in_message(&self) -> bool {
        self.partial.is_some()
    }
}

/// One read of at least one byte into `buf` (retried when interrupted); the end of the stream
/// or an error means the peer is gone.
fn read_some(stream: &mut impl Read, buf: &mut [u8]) -> Result<usize, Failure> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => return Err(Failure::Gone),
            Ok(read) => return Ok(read),
        }
    }
}

impl Partial {
    fn is_compressed(&self) -> bool {
        #[cfg(feature = "compression")]
        return self.inflater.is_some();
        #[cfg(not(feature = "compression"))]
        return false;
    }
}

/// Checks `data[*checked..]` (what arrived since the last check) as UTF-8, moving `checked`
/// past what is valid; only an incomplete character may be left at the end, and at the last
/// fragment nothing may be.
fn check_utf8(data: &[u8], checked: &mut usize, last: bool) -> Result<(), Failure> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => *checked = data.len(),
        Err(e) if e.error_len().is_some() => return Err(Failure::InvalidUtf8),
        Err(e) => *checked += e.valid_up_to(),
    }
    if last && *checked != data.len() {
        return Err(Failure::InvalidUtf8);
    }
    Ok(())
}

/// A close frame's code: none for an empty payload; its reason must be UTF-8.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Failure> {
    match payload {
        [] => Ok(None),
        [_] => Err(Failure::Protocol("a close payload of one byte")),
        [high, low, reason @ ..] => {
            std::str::from_utf8(reason).map_err(|_| Failure::InvalidUtf8)?;
            let code = u16::from_be_bytes([*high, *low]);
            Ok(Some(if may_send(code) { code } else { 1002 }))
        }
    }
}

/// Whether a peer may send this close code (RFC 6455 7.4: the codes defined for use in
/// frames, the registered ones and the private range; not 1005, 1006, 1015).
fn may_send(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// XORs `bytes` with the frame's mask (RFC 6455 5.3); `offset` is where in the payload they
/// start.
fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    let mask: [u8; 4] = std::array::from_fn(|i| mask[(offset + i) % 4]);
    let word = u32::from_ne_bytes(mask);
    let mut chunks = bytes.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let value = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

#[cfg(test)]
mod tests;
