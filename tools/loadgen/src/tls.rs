//! `wss://` clients (rustls on ring, over the nonblocking sockets) and `make-cert`.
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// What every `wss://` client of a run shares.
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// A client config trusting the CA certificates of the PEM file `ca` (ring, explicitly), and
/// the name the server's certificate must have.
pub fn tls_client(ca: &str, host: &str) -> Result<Tls, String> {
    let bad = |e: &dyn std::fmt::Display| format!("--ca {ca}: {e}");
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?}: {e}"))?;
    Ok(Tls {
        config: Arc::new(config),
        name,
    })
}

/// `make-cert DIR`: a CA (`DIR/ca.pem`) and a certificate it signed for `localhost` and
/// `127.0.0.1` (`DIR/cert.pem`, its key `DIR/key.pem`), ECDSA P-256, for a bench's Wss server.
pub fn make_cert(dir: &Path) -> Result<(), String> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let gen = |e: rcgen::Error| format!("rcgen: {e}");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(gen)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (ca_params.distinguished_name).push(DnType::CommonName, "signalhub loadgen CA");
    let ca_key = KeyPair::generate_for(alg).map_err(gen)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(gen)?;
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let key = KeyPair::generate_for(alg).map_err(gen)?;
    let cert = (CertificateParams::new(names).map_err(gen)?)
        .signed_by(&key, &ca)
        .map_err(gen)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let files = [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ];
    for (name, pem) in files {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true).mode(0o600);
        let written = options
            .open(&path)
            .and_then(|mut f| f.write_all(pem.as_bytes()));
        written.map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A rustls client session over a nonblocking socket, as tungstenite's stream. `read` returns
/// plaintext, pulling TLS records from the socket as needed, and `WouldBlock` only once the
/// socket is drained (what edge-triggered epoll needs); `write` encrypts into rustls' buffer
/// (`WouldBlock` only when that is full and the socket takes nothing); `flush` hands the
/// buffer to the socket (`WouldBlock`: flush again when writable).
pub struct TlsStream {
    pub tls: ClientConnection,
    pub sock: TcpStream,
}

impl TlsStream {
    /// Write what rustls has for the peer until it has nothing left or the socket is full.
    fn push(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut self.sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // Ok(0) once the server sent close_notify, UnexpectedEof on a bare TCP EOF.
            match self.tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            self.tls.read_tls(&mut self.sock)?; // WouldBlock: nothing more for now
            let state = self.tls.process_new_packets();
            // Our handshake flight (and the request buffered behind it), alerts, key updates.
            // Best effort: what the socket cannot take waits for a writable event.
            let _ = self.push();
            if let Err(e) = state {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tls.writer().write(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        self.push()?; // rustls' buffer is full: make room
        match self.tls.writer().write(buf)? {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tls.writer().flush()?;
        self.push()
    }
}
