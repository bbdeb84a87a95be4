//! A test PKI made with rcgen when the tests run: a root CA, intermediates, leaf certificates
//! with chosen keys and dates, written to a temporary folder that is removed afterwards.
//!
//! Shared by src/tls's unit tests and tests/tls_certs.rs (`#[path]`): std and rcgen only.
#![allow(dead_code, reason = "each test crate uses a part of it")]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A folder under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty folder; `tag` makes its name readable.
    pub fn new(tag: &str) -> TempDir {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("signalhub-tls-{}-{n}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }

    /// The path of `name` in the folder (the file need not exist).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `name` in the folder and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).expect("write a test file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A key from tests/data (made by tests/data/make-keys.sh).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The PKCS#8 key pair rcgen signs with, read from a tests/data fixture.
pub fn fixture_key(name: &str) -> KeyPair {
    let pem = fs::read_to_string(fixture(name)).expect("read a key fixture");
    KeyPair::from_pem(&pem).expect("a PKCS#8 key fixture")
}

/// A fresh ECDSA P-256 key pair.
pub fn p256() -> KeyPair {
    KeyPair::generate().expect("generate a P-256 key")
}

/// A date: year, month, day (midnight UTC).
pub type Ymd = (i32, u8, u8);

/// A certificate authority: a root, or an intermediate signed by another.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    /// The certificate.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8.
    pub key_pem: String,
    /// The private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
}

impl Ca {
    /// A self-signed root CA.
    pub fn root(name: &str) -> Ca {
        let issuer = CertifiedIssuer::self_signed(ca_params(name), p256()).expect("root CA");
        Ca { issuer }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let issuer = CertifiedIssuer::signed_by(ca_params(name), p256(), &*self.issuer)
            .expect("intermediate CA");
        Ca { issuer }
    }

    /// This CA's certificate, PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// This CA's certificate, DER.
    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A leaf for "localhost" and 127.0.0.1, with `key`, valid the whole default range.
    pub fn leaf(&self, key: KeyPair) -> Leaf {
        self.leaf_dated(key, None)
    }

    /// A leaf valid from `from` to `until` ((year, month, day), midnight UTC).
    pub fn leaf_dated(&self, key: KeyPair, dates: Option<(Ymd, Ymd)>) -> Leaf {
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let mut params = CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        if let Some(((y0, m0, d0), (y1, m1, d1))) = dates {
            params.not_before = rcgen::date_time_ymd(y0, m0, d0);
            params.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let cert = params.signed_by(&key, &*self.issuer).expect("sign a leaf");
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A PKCS#12 archive of `leaf` (with its key) and then `chain`, under `password`.
#[cfg(feature = "pkcs12")]
pub fn pkcs12(leaf: &Leaf, chain: &[Vec<u8>], password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let key = PrivateKey::from_der(&leaf.key_der).expect("p12 key");
    let certs = std::iter::once(&leaf.cert_der)
        .chain(chain)
        .map(|der| Certificate::from_der(der).expect("p12 cert"));
    let key_chain = PrivateKeyChain::new("signalhub-test", key, certs);
    let mut store = KeyStore::new();
    store.add_entry("signalhub", KeyStoreEntry::PrivateKeyChain(key_chain));
    store
        .writer(password)
        .write()
        .expect("write a PKCS#12 file")
}

/// A PKCS#12 archive holding only a certificate, no key.
#[cfg(feature = "pkcs12")]
pub fn pkcs12_without_key(cert_der: &[u8], password: &str) -> Vec<u8> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry};
    let cert = Certificate::from_der(cert_der).expect("p12 cert");
    let mut store = KeyStore::new();
    store.add_entry("ca", KeyStoreEntry::Certificate(cert));
    store
        .writer(password)
        .write()
        .expect("write a PKCS#12 file")
}
