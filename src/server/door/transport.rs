//! A connection at the door: its nonblocking socket and, on a TLS port, its TLS session.
//!
//! Reads take everything that has arrived (until the socket would block or a limit is
//! reached) and always hand over every byte of plaintext the TLS session has decrypted:
//! plaintext left inside rustls would never make the socket readable again. Writes queue
//! plaintext here and move it out as the socket takes it, into rustls one record at a time
//! on TLS, so what waits is counted in one place and a peer that does not read holds back
//! the writer instead of filling memory.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use rustix::net::SendFlags;
use rustls::ServerConnection;

/// Bytes read from a plain socket per `read` call.
const READ_CHUNK: usize = 16 << 10;
/// Plaintext handed to rustls at a time: one full TLS record.
const TLS_CHUNK: usize = 16 << 10;

/// What a read found besides data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// The connection is open; more may come.
    Open,
    /// The peer finished sending (end of stream, or TLS close_notify); it may still read.
    Finished,
    /// The connection is broken: reset, or a TLS error (the alert is queued).
    Broken,
}

/// A nonblocking socket, its TLS session if any, and the plaintext waiting to go out.
pub(crate) struct Transport {
    stream: TcpStream,
    tls: Option<Box<ServerConnection>>,
    out: Vec<u8>,
    /// Bytes at the front of `out` already sent (or handed to rustls).
    sent: usize,
    /// Our side is done: shut the socket's write half once everything is sent.
    finishing: bool,
    /// TLS: the close_notify is queued (behind all the plaintext).
    notified: bool,
}

impl Transport {
    /// `stream` must be nonblocking.
    pub(crate) fn new(stream: TcpStream, tls: Option<Box<ServerConnection>>) -> Transport {
        Transport {
            stream,
            tls,
            out: Vec::new(),
            sent: 0,
            finishing: false,
            notified: false,
        }
    }

    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether a TLS handshake is still under way (plain connections never are).
    pub(crate) fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Appends what has arrived to `buf`: reads until the socket would block, or until `buf`
    /// holds `limit` bytes (then the rest waits in the socket; on TLS, every byte already
    /// decrypted is appended even past the limit).
    pub(crate) fn receive(&mut self, buf: &mut Vec<u8>, limit: usize) -> Input {
        match self.tls.as_mut() {
            None => receive_plain(&self.stream, buf, limit),
            Some(tls) => {
                let input = receive_tls(tls, &self.stream, buf, limit);
                // Handshake messages, alerts, session tickets: whatever rustls has to say.
                if self.flush().is_err() {
                    return Input::Broken;
                }
                input
            }
        }
    }

    /// Queues plaintext to send; [`Transport::flush`] sends it.
    pub(crate) fn queue(&mut self, bytes: &[u8]) {
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent > 0 && self.sent * 2 >= self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Bytes waiting to be sent (plaintext not yet handed over, plus a TLS record or so).
    pub(crate) fn backlog(&self) -> usize {
        let ciphertext = self
            .tls
            .as_ref()
            .map_or(0, |tls| if tls.wants_write() { TLS_CHUNK } else { 0 });
        self.out.len() - self.sent + ciphertext
    }

    /// Sends what waits, as far as the socket takes it without blocking. Returns whether
    /// any byte went out; an error means the connection is broken.
    pub(crate) fn flush(&mut self) -> io::Result<bool> {
        let progress = self.send_waiting()?;
        if self.finishing && self.backlog() == 0 {
            self.finishing = false;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        Ok(progress)
    }

    fn send_waiting(&mut self) -> io::Result<bool> {
        let mut progress = false;
        let Some(tls) = self.tls.as_mut() else {
            while self.sent < self.out.len() {
                let n = send(&self.stream, &self.out[self.sent..])?;
                if n == 0 {
                    return Ok(progress);
                }
                self.sent += n;
                progress = true;
            }
            self.out.clear();
            self.sent = 0;
            return Ok(progress);
        };
        loop {
            while tls.wants_write() {
                match tls.write_tls(&mut NoSignal(&self.stream)) {
                    Ok(0) => return Ok(progress),
                    Ok(_) => progress = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progress),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if self.sent == self.out.len() && self.finishing && !self.notified {
                // After every byte of plaintext: a close_notify stops rustls taking more.
                tls.send_close_notify();
                self.notified = true;
                continue;
            }
            if self.sent == self.out.len() || tls.is_handshaking() {
                return Ok(progress);
            }
            let end = self.out.len().min(self.sent + TLS_CHUNK);
            match tls.writer().write(&self.out[self.sent..end]) {
                Ok(0) => return Ok(progress), // the session is closing
                Ok(n) => self.sent += n,
                Err(e) => return Err(e),
            }
        }
    }

    /// Ends our side: a TLS close_notify, then the socket's write half once all is sent
    /// (by this or a later [`Transport::flush`]).
    pub(crate) fn finish(&mut self) {
        self.finishing = true;
        let _ = self.flush();
    }

    /// The socket, the TLS session, and the plaintext not sent yet, for a connection going
    /// live.
    pub(crate) fn into_parts(mut self) -> (TcpStream, Option<Box<ServerConnection>>, Vec<u8>) {
        let unsent = self.out.split_off(self.sent);
        (self.stream, self.tls, unsent)
    }
}

fn receive_plain(mut stream: &TcpStream, buf: &mut Vec<u8>, limit: usize) -> Input {
    while buf.len() < limit {
        let start = buf.len();
        buf.resize(start + READ_CHUNK.min(limit - start), 0);
        let read = stream.read(&mut buf[start..]);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Input::Finished,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Input::Open,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Input::Broken,
        }
    }
    Input::Open
}

fn receive_tls(
    tls: &mut ServerConnection,
    mut stream: &TcpStream,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Input {
    loop {
        let mut input = Input::Open;
        let mut more = buf.len() < limit;
        if more {
            match tls.read_tls(&mut stream) {
                Ok(0) => input = Input::Finished,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => more = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Input::Broken,
            }
        }
        let state = match tls.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                log::debug!("tls error from {:?}: {e}", stream.peer_addr().ok());
                return Input::Broken;
            }
        };
        let start = buf.len();
        buf.resize(start + state.plaintext_bytes_to_read(), 0);
        if tls.reader().read_exact(&mut buf[start..]).is_err() {
            return Input::Broken;
        }
        if state.peer_has_closed() {
            input = Input::Finished;
        }
        if input != Input::Open || !more {
            return input;
        }
    }
}

/// One nonblocking `send` that raises no SIGPIPE; `WouldBlock` is 0 bytes.
fn send(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match rustix::net::send(stream, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::AGAIN) => return Ok(0),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The socket as a `Write` for rustls: nonblocking sends without SIGPIPE.
struct NoSignal<'a>(&'a TcpStream);

impl Write for NoSignal<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match send(self.0, bytes)? {
            0 if !bytes.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
