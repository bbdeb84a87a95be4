//! A test CA and a server certificate it signed (for `localhost` and `127.0.0.1`), written as
//! PEM files (`ca.pem`, `cert.pem`, `key.pem`) in a fresh folder removed on drop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustls::pki_types::CertificateDer;

/// The files of a test PKI.
pub struct TestCerts {
    pub folder: PathBuf,
    /// The CA certificate, for a client's root store.
    pub ca: CertificateDer<'static>,
}

impl TestCerts {
    /// Generates a CA and a server certificate (ECDSA P-256) into a fresh folder.
    pub fn new() -> TestCerts {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let folder = std::env::temp_dir().join(format!(
            "signalhub-certs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&folder).expect("folder");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = rcgen::CertificateParams::new(names)
            .expect("params")
            .signed_by(&key, &ca)
            .expect("cert");
        std::fs::write(folder.join("ca.pem"), ca.pem()).expect("write ca");
        std::fs::write(folder.join("cert.pem"), cert.pem()).expect("write cert");
        std::fs::write(folder.join("key.pem"), key.serialize_pem()).expect("write key");
        TestCerts {
            folder,
            ca: ca.der().clone(),
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.folder.join(file)
    }

    pub fn ca_file(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The server certificate as the library takes it.
    pub fn certificate(&self) -> signalhub::tls::Certificate {
        signalhub::tls::Certificate::pem(self.path("cert.pem"), self.path("key.pem"))
    }

    pub fn folder(&self) -> &Path {
        &self.folder
    }
}

impl TestCerts {
    /// A rustls client config (ring) trusting this CA.
    pub fn client_config(&self) -> std::sync::Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("ca");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::sync::Arc::new(config)
    }

    /// A TLS connection to `addr` as `localhost`, trusting this CA (the handshake happens on
    /// first use); reads wait at most [`super::WAIT`].
    pub fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        let tcp = std::net::TcpStream::connect(addr).expect("tcp connect");
        tcp.set_read_timeout(Some(super::WAIT)).expect("timeout");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let session = rustls::ClientConnection::new(self.client_config(), name).expect("session");
        rustls::StreamOwned::new(session, tcp)
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}
