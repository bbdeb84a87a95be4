//! The reading half of a split TLS stream, shared by server connections and outbound clients.
//!
//! The reader blocks on the raw socket holding nothing; only turning what it read into
//! plaintext takes the session's lock (held by the caller's `decrypt`), so a writer never
//! waits behind a blocking read.

use std::io::{self, Read};
use std::net::TcpStream;
use std::ops::DerefMut;

use rustls::{ConnectionCommon, SideData};

/// Plaintext decrypted but not read yet.
#[derive(Debug, Default)]
pub(crate) struct TlsInput {
    plain: Vec<u8>,
    taken: usize,
    closed: bool,
}

impl TlsInput {
    /// Fills `buf` from the plaintext at hand; when it is used up, blocks reading ciphertext
    /// from `socket` and has `decrypt` (which returns whether the peer closed) append the
    /// plaintext. 0 at the end of the stream, as `Read` does.
    ///
    /// Never inlined: its 4 KiB buffer would otherwise join the frame of a plain Ws reader
    /// too (whose stack stays resident at its deepest use, and frames over a page are probed
    /// page by page).
    #[inline(never)]
    pub(crate) fn read(
        &mut self,
        buf: &mut [u8],
        mut socket: &TcpStream,
        mut decrypt: impl FnMut(&[u8], &mut Vec<u8>) -> io::Result<bool>,
    ) -> io::Result<usize> {
        loop {
            if self.taken < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.taken);
                buf[..n].copy_from_slice(&self.plain[self.taken..self.taken + n]);
                self.taken += n;
                return Ok(n);
            }
            self.plain.clear();
            self.taken = 0;
            if self.closed {
                return Ok(0);
            }
            let mut raw = [0u8; 4096];
            let n = socket.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.closed = decrypt(&raw[..n], &mut self.plain)?;
        }
    }
}

/// Feeds ciphertext to a session (client or server) and appends the plaintext it yields.
/// Returns whether the peer closed the session; a TLS error is `InvalidData`.
pub(crate) fn decrypt<C, D>(tls: &mut C, mut raw: &[u8], plain: &mut Vec<u8>) -> io::Result<bool>
where
    C: DerefMut<Target = ConnectionCommon<D>>,
    D: SideData,
{
    let mut peer_closed = false;
    while !raw.is_empty() {
        if tls.read_tls(&mut raw)? == 0 {
            break;
        }
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let start = plain.len();
        plain.resize(start + state.plaintext_bytes_to_read(), 0);
        tls.reader().read_exact(&mut plain[start..])?;
        peer_closed |= state.peer_has_closed();
    }
    Ok(peer_closed)
}
