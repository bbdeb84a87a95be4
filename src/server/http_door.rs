//! The shared port's front door to the HTTP side.
//!
//! An `Http` and a `Ws` endpoint on the same address share one port (Pode's seed runs both on
//! 8091). tiny_http only serves its own listeners, and its `Request::upgrade` hands back a
//! stream that cannot be split or read without blocking writes, so it cannot carry our
//! WebSocket connections. Instead our listener owns the port: it reads each request head,
//! keeps WebSocket upgrades, and passes plain HTTP requests to a tiny_http server listening
//! on an internal abstract Unix socket. The head already read is replayed with the client's
//! address added as `X-Signalhub-Peer`, then one small thread pipes bytes both ways until
//! either side closes (or nothing moves for [`PIPE_IDLE`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::server::limits::Connections;
use crate::ClientId;

/// The header that carries the client's address to the HTTP side.
pub(crate) const PEER_HEADER: &str = "X-Signalhub-Peer";
/// A piped HTTP connection with no traffic either way for this long is closed.
const PIPE_IDLE: Duration = Duration::from_secs(120);

/// Where a shared port sends plain HTTP requests.
pub(crate) struct HttpDoor {
    address: UnixAddr,
    connections: Arc<Connections>,
}

impl HttpDoor {
    /// Binds a fresh internal socket for tiny_http to serve, and the door that leads to it.
    pub(crate) fn bind(connections: Arc<Connections>) -> io::Result<(HttpDoor, UnixListener)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "signalhub-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            ClientId::random()
        );
        let address = UnixAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&address)?;
        Ok((
            HttpDoor {
                address,
                connections,
            },
            listener,
        ))
    }

    /// Hands a client's connection to the HTTP side: `received` is everything read so far,
    /// whose first `head_len` bytes are the request head.
    pub(crate) fn forward(
        &self,
        client: TcpStream,
        peer: SocketAddr,
        received: &[u8],
    ) -> io::Result<()> {
        client.set_nonblocking(false)?;
        let mut backend = UnixStream::connect_addr(&self.address)?;
        backend.write_all(&with_peer_header(received, peer))?;
        let guard = self.connections.thread_started();
        std::thread::Builder::new()
            .name("sh-http-pipe".into())
            .spawn(move || {
                pipe(client, backend);
                drop(guard);
            })?;
        Ok(())
    }
}

/// The request with `X-Signalhub-Peer: ADDR` inserted right after the request line, so it
/// comes before (and so wins over) any header of that name the client sent itself.
fn with_peer_header(received: &[u8], peer: SocketAddr) -> Vec<u8> {
    let line_end = received
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(received.len(), |i| i + 2);
    let mut out = Vec::with_capacity(received.len() + 64);
    out.extend_from_slice(&received[..line_end]);
    out.extend_from_slice(format!("{PEER_HEADER}: {peer}\r\n").as_bytes());
    out.extend_from_slice(&received[line_end..]);
    out
}

/// Copies bytes both ways until both directions are finished, or nothing moves for a while.
fn pipe(mut client: TcpStream, mut backend: UnixStream) {
    let mut buf = vec![0u8; 8192];
    let (mut client_open, mut backend_open) = (true, true);
    let idle = Timespec::try_from(PIPE_IDLE).unwrap_or_default();
    while client_open || backend_open {
        let mut fds = [
            PollFd::new(
                &client,
                if client_open {
                    PollFlags::IN
                } else {
                    PollFlags::empty()
                },
            ),
            PollFd::new(
                &backend,
                if backend_open {
                    PollFlags::IN
                } else {
                    PollFlags::empty()
                },
            ),
        ];
        match rustix::event::poll(&mut fds, Some(&idle)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
        let (client_ready, backend_ready) =
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if client_ready && client_open {
            client_open = copy_once(&mut client, &mut backend, &mut buf);
            if !client_open {
                let _ = backend.shutdown(Shutdown::Write);
            }
        }
        if backend_ready && backend_open {
            backend_open = copy_once(&mut backend, &mut client, &mut buf);
            if !backend_open {
                // tiny_http is done with this connection: so are we.
                break;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// Moves one read's worth of bytes; false once `from` is finished (or either side failed).
fn copy_once(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> bool {
    match from.read(buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => to.write_all(&buf[..n]).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_header_goes_right_after_the_request_line() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let out = with_peer_header(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nbody", peer);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET / HTTP/1.1\r\nX-Signalhub-Peer: 127.0.0.1:5000\r\nHost: x\r\n\r\nbody"
        );
    }
}
