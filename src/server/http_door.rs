//! The shared port's front door to the HTTP side.
//!
//! An `Http` and a `Ws` endpoint on the same address share one port (Pode's seed runs both on
//! 8091). tiny_http only serves its own listeners, and its `Request::upgrade` hands back a
//! stream that cannot be split or read without blocking writes, so it cannot carry our
//! WebSocket connections. Instead our listener owns the port: it reads each request head,
//! keeps WebSocket upgrades, and passes plain HTTP requests to a tiny_http server listening
//! on an internal Unix socket. The head already read is replayed with the client's
//! address added as `X-Signalhub-Peer`, then one small thread pipes bytes both ways until
//! either side closes (or nothing moves for [`PIPE_IDLE`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

use crate::http::PEER_HEADER;
use crate::server::handshake::PlainRequest;
use crate::server::limits::Connections;
use crate::ClientId;

/// A piped HTTP connection with no traffic either way for this long is closed.
const PIPE_IDLE: Duration = Duration::from_secs(120);

/// Where a shared port sends plain HTTP requests.
pub(crate) struct HttpDoor {
    /// A private (0700) folder holding the socket, removed with the door.
    folder: PathBuf,
    socket: PathBuf,
    connections: Arc<Connections>,
}

impl HttpDoor {
    /// Binds a fresh internal socket for tiny_http to serve, and the door that leads to it.
    /// The socket lives in a folder only this user can enter, so nobody else can reach the
    /// HTTP side around the door (and claim any peer address).
    pub(crate) fn bind(connections: Arc<Connections>) -> io::Result<(HttpDoor, UnixListener)> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let folder = std::env::temp_dir().join(format!(
            "signalhub-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            ClientId::random().as_u128() as u32
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&folder)?;
        let socket = folder.join("http.sock");
        let listener = UnixListener::bind(&socket)?;
        let door = HttpDoor {
            folder,
            socket,
            connections,
        };
        Ok((door, listener))
    }

    /// Hands a client's connection to the HTTP side: its request head is replayed with the
    /// real peer's address and `Connection: close`, then exactly its body (starting with
    /// `body_start`, the bytes read after the head); the answer is piped back.
    pub(crate) fn forward(
        &self,
        client: TcpStream,
        peer: SocketAddr,
        request: &PlainRequest,
        body_start: &[u8],
    ) -> io::Result<()> {
        client.set_nonblocking(false)?;
        let mut backend = UnixStream::connect(&self.socket)?;
        let body_length = request.body_length().unwrap_or(0);
        let first = body_start
            .len()
            .min(usize::try_from(body_length).unwrap_or(usize::MAX));
        backend.write_all(&replayed_head(request, peer))?;
        backend.write_all(&body_start[..first])?;
        let body_left = body_length - first as u64;
        let guard = self.connections.thread_started();
        std::thread::Builder::new()
            .name("sh-http-pipe".into())
            .spawn(move || {
                pipe(client, backend, body_left);
                drop(guard);
            })?;
        Ok(())
    }
}

impl Drop for HttpDoor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_dir(&self.folder);
    }
}

/// The head tiny_http gets: the client's request line and headers, without `Connection`,
/// `Keep-Alive` and any `X-Signalhub-Peer` the client sent, plus the real peer's address and
/// `Connection: close`. One request per connection keeps every request passing through this
/// door (where body sizes are checked and the peer is known) rather than reaching tiny_http
/// unchecked on a kept-alive connection.
fn replayed_head(request: &PlainRequest, peer: SocketAddr) -> Vec<u8> {
    let mut head = format!(
        "{} {} HTTP/1.{}\r\n",
        request.method, request.target, request.minor_version
    );
    let dropped = [
        "connection",
        "keep-alive",
        &PEER_HEADER.to_ascii_lowercase(),
    ];
    for (name, value) in &request.headers {
        if !dropped.contains(&name.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str(&format!(
        "{PEER_HEADER}: {peer}\r\nConnection: close\r\n\r\n"
    ));
    head.into_bytes()
}

/// Copies the rest of the request body (`body_left` bytes) to the HTTP side and its answer
/// back, until the HTTP side is done or nothing moves for a while. Anything the client sends
/// after its body (a pipelined request) is not passed on: one request per connection.
fn pipe(mut client: TcpStream, mut backend: UnixStream, mut body_left: u64) {
    let mut buf = vec![0u8; 8192];
    let (mut client_open, mut backend_open) = (body_left > 0, true);
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
            let budget = buf
                .len()
                .min(usize::try_from(body_left).unwrap_or(usize::MAX));
            match copy_once(&mut client, &mut backend, &mut buf[..budget]) {
                Some(n) => body_left -= n as u64,
                None => body_left = 0,
            }
            client_open = body_left > 0;
        }
        if backend_ready && backend_open {
            backend_open = copy_once(&mut backend, &mut client, &mut buf).is_some();
            if !backend_open {
                // tiny_http is done with this connection: so are we.
                break;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// Moves one read's worth of bytes; `None` once `from` is finished or either side failed.
fn copy_once(from: &mut impl Read, to: &mut impl Write, buf: &mut [u8]) -> Option<usize> {
    match from.read(buf) {
        Ok(0) | Err(_) => None,
        Ok(n) => to.write_all(&buf[..n]).ok().map(|()| n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replayed_head_carries_the_peer_and_closes_the_connection() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let request = PlainRequest {
            method: "POST".into(),
            target: "/broadcast?x=1".into(),
            minor_version: 1,
            headers: vec![
                ("Host".into(), "h".into()),
                ("Connection".into(), "keep-alive".into()),
                ("X-Signalhub-Peer".into(), "6.6.6.6:1".into()),
                ("Content-Length".into(), "2".into()),
            ],
        };
        assert_eq!(
            String::from_utf8(replayed_head(&request, peer)).unwrap(),
            "POST /broadcast?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\
             X-Signalhub-Peer: 127.0.0.1:5000\r\nConnection: close\r\n\r\n"
        );
    }
}
