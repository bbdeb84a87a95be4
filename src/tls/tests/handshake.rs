//! A real TLS handshake on 127.0.0.1: a thread accepts one connection and echoes five bytes
//! back with a blocking `rustls::StreamOwned`; a client connects and checks. Every wait is
//! bounded (accept deadline, socket timeouts).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, ServerConnection};
use rustls::{StreamOwned, SupportedProtocolVersion};

/// The longest any step may wait.
const WAIT: Duration = Duration::from_secs(10);

/// What the client saw.
#[derive(Debug)]
pub(super) struct Outcome {
    pub(super) version: Option<ProtocolVersion>,
    pub(super) alpn: Option<Vec<u8>>,
    pub(super) echoed: Vec<u8>,
}

/// Serves one TLS connection with `config`, echoing five bytes; the thread returns the
/// protocol version the server negotiated.
pub(super) fn serve_once(
    config: Arc<rustls::ServerConfig>,
) -> (SocketAddr, JoinHandle<io::Result<Option<ProtocolVersion>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let handle = thread::spawn(move || {
        let stream = accept(&listener)?;
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(conn, stream);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf)?;
        tls.write_all(&buf)?;
        tls.conn.send_close_notify();
        tls.flush()?;
        Ok(tls.conn.protocol_version())
    });
    (addr, handle)
}

/// Accepts one connection within [`WAIT`], with read and write timeouts set.
fn accept(listener: &TcpListener) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + WAIT;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                set_timeouts(&stream)?;
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

fn set_timeouts(stream: &TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(WAIT))?;
    stream.set_write_timeout(Some(WAIT))
}

/// Connects to `addr` as `name`, sends "hello" and reads the echo.
pub(super) fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<Outcome> {
    let stream = TcpStream::connect_timeout(&addr, WAIT)?;
    set_timeouts(&stream)?;
    let server_name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, server_name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, stream);
    tls.write_all(b"hello")?;
    tls.flush()?;
    let mut echoed = vec![0u8; 5];
    tls.read_exact(&mut echoed)?;
    Ok(Outcome {
        version: tls.conn.protocol_version(),
        alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
        echoed,
    })
}

/// Serves once with `server`, connects with `client` as `name`: the client's outcome, and
/// the server's own view of the version (or its error, as text).
pub(super) fn round_trip(
    server: Arc<rustls::ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> (io::Result<Outcome>, Result<Option<ProtocolVersion>, String>) {
    let (addr, server_thread) = serve_once(server);
    let outcome = connect(addr, client, name);
    let server_side = server_thread.join().expect("server thread");
    (outcome, server_side.map_err(|e| e.to_string()))
}

/// A client trusting `roots` and speaking only `versions`, with ALPN http/1.1.
pub(super) fn client(
    roots: &[CertificateDer<'static>],
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("a trust anchor");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}
