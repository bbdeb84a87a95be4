//! One outbound connection's socket, split so that a blocking read never delays a write.
//!
//! The reader thread owns the tungstenite `WebSocket<ClientStream>`: [`ClientStream`] reads
//! the raw socket without holding any lock (on `wss://`, it then locks the TLS session just
//! long enough to decrypt what it read). Every write, tungstenite's own pongs and close
//! replies as well as frames sent by other threads, goes through [`Link`]'s write lock as a
//! whole buffer, so frames never interleave. Writes block (bounded by the socket's write
//! timeout); the lock is never held across a read.

use crate::tls::TlsInput;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ClientConnection;

/// Where the write side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteState {
    Open,
    /// Our close frame is out: only the reader's wait for the reply is left.
    Closing,
    /// Cut, or a write failed: nothing more goes out.
    Broken,
}

struct WriteSide {
    state: WriteState,
    /// Our close frame went out.
    close_sent: bool,
    /// TLS records waiting to be written (reused between writes).
    records: Vec<u8>,
}

/// The shared half of a connection: the socket, the TLS session if any, and the write lock.
pub(crate) struct Link {
    socket: TcpStream,
    /// `wss://`: the session, locked briefly to encrypt or decrypt (after the write lock
    /// when both are needed).
    tls: Option<Mutex<ClientConnection>>,
    write: Mutex<WriteSide>,
}

impl Link {
    /// A link over `socket`, with the TLS session when the handshake made one.
    pub(crate) fn new(socket: TcpStream, tls: Option<ClientConnection>) -> Link {
        Link {
            socket,
            tls: tls.map(Mutex::new),
            write: Mutex::new(WriteSide {
                state: WriteState::Open,
                close_sent: false,
                records: Vec::new(),
            }),
        }
    }

    /// The socket (timeouts, addresses).
    pub(crate) fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Sets the timeout of the reader's blocking reads (the keepalive clock).
    pub(crate) fn set_read_timeout(&self, timeout: Option<Duration>) {
        let _ = self
            .socket
            .set_read_timeout(timeout.filter(|t| !t.is_zero()));
    }

    /// Writes a whole frame sent by user code or the keepalive. Fails once the connection is
    /// closing or broken.
    pub(crate) fn send(&self, frame: &[u8]) -> io::Result<()> {
        let mut side = lock(&self.write);
        match side.state {
            WriteState::Open => self.write_locked(&mut side, frame),
            WriteState::Closing | WriteState::Broken => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Bytes tungstenite writes on the reader's thread (the handshake, pongs, close replies).
    /// Once our own close frame is out they are dropped: nothing may follow it.
    fn write_control(&self, bytes: &[u8]) -> io::Result<()> {
        let mut side = lock(&self.write);
        match side.state {
            WriteState::Open => self.write_locked(&mut side, bytes),
            WriteState::Closing => Ok(()),
            WriteState::Broken => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Sends our close frame, once; returns whether this call sent it.
    pub(crate) fn begin_close(&self, code: u16, reason: &str) -> bool {
        let mut side = lock(&self.write);
        if side.state != WriteState::Open {
            return false;
        }
        let sent = self.write_locked(
            &mut side,
            &crate::protocol::frame::masked::close(code, reason),
        );
        if sent.is_ok() {
            side.state = WriteState::Closing;
            side.close_sent = true;
        }
        sent.is_ok()
    }

    /// Whether our close frame went out (the link may have been cut since).
    pub(crate) fn close_sent(&self) -> bool {
        lock(&self.write).close_sent
    }

    /// Cuts the connection: the reader's blocking read returns at once.
    pub(crate) fn cut(&self) {
        lock(&self.write).state = WriteState::Broken;
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Writes `bytes` (encrypted on `wss://`) while holding the write lock. A failed write
    /// leaves a partial frame on the wire, so the link is cut.
    fn write_locked(&self, side: &mut WriteSide, bytes: &[u8]) -> io::Result<()> {
        let result = match &self.tls {
            None => (&self.socket).write_all(bytes),
            Some(tls) => self.write_encrypted(tls, side, bytes),
        };
        if let Err(e) = result {
            side.state = WriteState::Broken;
            let _ = self.socket.shutdown(Shutdown::Both);
            // A write timeout shows as WouldBlock, which the reader would take for its own.
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, e));
        }
        Ok(())
    }

    /// Encrypts `bytes` and writes the records, a slice at a time (the session buffers
    /// only so much plaintext). An empty `bytes` writes what the session has pending.
    fn write_encrypted(
        &self,
        tls: &Mutex<ClientConnection>,
        side: &mut WriteSide,
        bytes: &[u8],
    ) -> io::Result<()> {
        let mut rest = bytes;
        let result = loop {
            side.records.clear();
            {
                let mut session = lock(tls);
                let taken = session.writer().write(rest)?;
                rest = &rest[taken..];
                while session.wants_write() {
                    session.write_tls(&mut side.records)?;
                }
            }
            if side.records.is_empty() && !rest.is_empty() {
                break Err(io::ErrorKind::WriteZero.into());
            }
            if let Err(e) = (&self.socket).write_all(&side.records) {
                break Err(e);
            }
            if rest.is_empty() {
                break Ok(());
            }
        };
        if side.records.capacity() > 64 << 10 {
            side.records = Vec::new(); // give back what a large message took
        }
        result
    }

    /// `wss://`: feeds what the reader read (without any lock) to the session and appends
    /// the plaintext to `plain`. Returns whether the peer closed the TLS session.
    fn decrypt(
        &self,
        tls: &Mutex<ClientConnection>,
        raw: &[u8],
        plain: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let (closed, wants_write) = {
            let mut session = lock(tls);
            let closed = crate::tls::decrypt(&mut *session, raw, plain)?;
            (closed, session.wants_write())
        };
        if wants_write {
            // Key updates or alerts: written now if no writer is busy, else by the next write
            // (the keepalive makes one). Never wait for the write lock here.
            if let Ok(mut side) = self.write.try_lock() {
                if side.state == WriteState::Open {
                    let _ = self.write_locked(&mut side, &[]);
                }
            }
        }
        Ok(closed)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stream the reader's tungstenite `WebSocket` runs on: blocking reads on the raw
/// socket, whole-buffer writes through the [`Link`].
pub(crate) struct ClientStream {
    link: Arc<Link>,
    /// `wss://`: plaintext decrypted but not read yet.
    input: Option<TlsInput>,
}

impl ClientStream {
    pub(crate) fn new(link: Arc<Link>) -> ClientStream {
        let input = link.tls.is_some().then(TlsInput::default);
        ClientStream { link, input }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let link = &*self.link;
        let (Some(input), Some(tls)) = (self.input.as_mut(), link.tls.as_ref()) else {
            return (&link.socket).read(buf);
        };
        input.read(buf, &link.socket, |raw, plain| {
            link.decrypt(tls, raw, plain)
        })
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.link.write_control(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Instant;

    /// The longest a test here waits for anything.
    const WAIT: Duration = Duration::from_secs(5);

    fn pair() -> (Arc<Link>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_read_timeout(Some(WAIT)).unwrap();
        (Arc::new(Link::new(client, None)), server)
    }

    /// Reads once from `stream` on a thread of its own, which says (before reading) which
    /// thread it is; returns once that thread is asleep, which after that point can only be in
    /// the read. The read's result comes on the channel.
    fn blocked_read(mut stream: ClientStream) -> mpsc::Receiver<io::Result<(usize, u8)>> {
        let (ready, reading) = mpsc::channel();
        let (result, results) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = ready.send(thread_id());
            let mut byte = [0u8; 1];
            let _ = result.send(stream.read(&mut byte).map(|n| (n, byte[0])));
        });
        let tid = reading.recv_timeout(WAIT).expect("the reader starts");
        wait_asleep(tid.as_deref());
        results
    }

    /// The calling thread's id, as `/proc/self/task` names it (Linux).
    fn thread_id() -> Option<String> {
        let link = std::fs::read_link("/proc/thread-self").ok()?;
        Some(link.file_name()?.to_string_lossy().into_owned())
    }

    /// Waits (at most [`WAIT`]) until thread `tid` is asleep. Without `/proc`, returns at once.
    fn wait_asleep(tid: Option<&str>) {
        let Some(tid) = tid else { return };
        let deadline = Instant::now() + WAIT;
        let stat = format!("/proc/self/task/{tid}/stat");
        loop {
            let text = std::fs::read_to_string(&stat).expect("the reader's stat");
            // The state follows the name, which is in parentheses.
            let state = text[text.rfind(')').expect("stat") + 1..].trim_start();
            if state.starts_with('S') {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the reader never blocked: {state}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_write_does_not_wait_for_a_blocked_read() {
        let (link, mut server) = pair();
        let read = blocked_read(ClientStream::new(link.clone()));
        // The write goes out while the read is blocked: the server gets it (within its read
        // timeout) before it has sent the reader anything. A write waiting for the read
        // would never finish.
        let writer = std::thread::spawn({
            let link = link.clone();
            move || link.send(b"abc")
        });
        let mut got = [0u8; 3];
        server.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"abc");
        writer.join().unwrap().unwrap();
        assert!(read.try_recv().is_err(), "the read is still blocked");
        server.write_all(b"z").unwrap();
        assert_eq!(read.recv_timeout(WAIT).unwrap().unwrap(), (1, b'z'));
    }

    #[test]
    fn after_our_close_only_the_reader_may_write_and_it_is_dropped() {
        let (link, mut server) = pair();
        assert!(link.begin_close(1000, ""));
        assert!(!link.begin_close(1000, ""), "a second close frame");
        assert!(link.close_sent());
        assert_eq!(
            link.send(b"x").unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        let mut stream = ClientStream::new(link.clone());
        stream.write_all(b"tungstenite's close reply").unwrap();
        link.cut();
        let mut seen = Vec::new();
        server.read_to_end(&mut seen).unwrap();
        assert_eq!(seen.len(), 2 + 4 + 2, "only our close frame: {seen:?}");
        assert_eq!(seen[0], 0x88);
    }

    #[test]
    fn cutting_wakes_a_blocked_reader() {
        let (link, _server) = pair();
        let read = blocked_read(ClientStream::new(link.clone()));
        link.cut();
        assert_eq!(read.recv_timeout(WAIT).unwrap().unwrap().0, 0);
        assert!(link.send(b"x").is_err());
    }
}
