//! TLS for Wss endpoints (SPEC 10): certificates turned into rustls configs.
//!
//! One rustls, on the ring provider, handed explicitly to every config (the process-wide
//! default provider is never installed nor relied on); TLS 1.2 and 1.3 only; ALPN
//! `http/1.1`; no client certificates. Every certificate problem is found when the config is
//! built (that is, at start), as an [`Error::Certificate`] naming the file.

mod input;
mod insecure;
#[cfg(feature = "pkcs12")]
mod pkcs12;
mod source;
mod validity;

pub(crate) use input::{decrypt, TlsInput};
pub(crate) use insecure::insecure_client_config;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

use crate::{Error, Result};
use source::{tls_error, Material};

/// Where a Wss endpoint's certificate comes from.
///
/// The files are read, and the certificate checked, when the server starts: a missing or
/// unreadable file, a file with no certificate or no private key, a wrong PKCS#12 password,
/// a key that does not match the certificate, an expired or not yet valid certificate all
/// stop the start with an [`Error::Certificate`] that names the file and says what is wrong.
/// [`Certificate::check`] does the same at any time.
///
/// ```
/// use signalhub::tls::Certificate;
///
/// // Let's Encrypt's usual pair: the chain (leaf first) and the key.
/// let cert = Certificate::pem("/etc/signalhub/fullchain.pem", "/etc/signalhub/privkey.pem");
/// // Load it now, as a Wss endpoint does at start, to report a bad certificate early:
/// let err = cert.check().unwrap_err();
/// assert_eq!(err.to_string(), "tls: /etc/signalhub/fullchain.pem: not found");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Certificate {
    /// PEM files: the chain (leaf first, then intermediates) and the private key (PKCS#8,
    /// PKCS#1 or SEC1). Both may be the same file.
    Pem {
        /// The certificate chain file.
        chain: PathBuf,
        /// The private key file (unencrypted).
        key: PathBuf,
    },
    /// A PKCS#12 (.pfx/.p12) file and its password (feature "pkcs12"): Pode's usual form.
    #[cfg(feature = "pkcs12")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs12")))]
    Pkcs12 {
        /// The .pfx/.p12 file.
        file: PathBuf,
        /// Its password (empty for none); `Debug` does not show it.
        password: String,
    },
    /// A certificate generated at start for development (feature "self-signed"), for the
    /// given host names, e.g. `["localhost", "127.0.0.1"]`. Browsers will not trust it.
    #[cfg(feature = "self-signed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "self-signed")))]
    SelfSigned {
        /// Host names and IP addresses the certificate is for.
        names: Vec<String>,
    },
}

impl Certificate {
    /// A PEM chain (leaf first) and its private key.
    pub fn pem(chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Certificate {
        Certificate::Pem {
            chain: chain.into(),
            key: key.into(),
        }
    }

    /// A PKCS#12 (.pfx/.p12) file and its password.
    ///
    /// Read: what OpenSSL 3 writes by default (PBES2: PBKDF2 and AES-CBC), its `-legacy`
    /// form and older Windows exports (SHA-1 with 3DES or RC2), and unencrypted contents;
    /// the integrity check with HMAC-SHA-1, -256, -384 or -512. The key served is the first
    /// one whose certificate is in the file; the chain is that certificate, then its issuers
    /// found there.
    #[cfg(feature = "pkcs12")]
    #[cfg_attr(docsrs, doc(cfg(feature = "pkcs12")))]
    pub fn pkcs12(file: impl Into<PathBuf>, password: impl Into<String>) -> Certificate {
        Certificate::Pkcs12 {
            file: file.into(),
            password: password.into(),
        }
    }

    /// A self-signed certificate, generated at start, for these host names or IP addresses.
    #[cfg(feature = "self-signed")]
    #[cfg_attr(docsrs, doc(cfg(feature = "self-signed")))]
    pub fn self_signed<I>(names: I) -> Certificate
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Certificate::SelfSigned {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Loads and checks the certificate as a Wss endpoint does at start, and drops it.
    ///
    /// # Errors
    ///
    /// [`Error::Certificate`] naming the file and the problem; [`Error::SelfSigned`] when a self-signed
    /// certificate cannot be generated.
    pub fn check(&self) -> Result<()> {
        server_config(self).map(drop)
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Certificate::Pem { chain, key } => (f.debug_struct("Pem"))
                .field("chain", chain)
                .field("key", key)
                .finish(),
            #[cfg(feature = "pkcs12")]
            Certificate::Pkcs12 { file, .. } => (f.debug_struct("Pkcs12"))
                .field("file", file)
                .field("password", &"<hidden>")
                .finish(),
            #[cfg(feature = "self-signed")]
            Certificate::SelfSigned { names } => {
                f.debug_struct("SelfSigned").field("names", names).finish()
            }
        }
    }
}

/// TLS 1.3 first, then 1.2; nothing older.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one ALPN protocol spoken: WebSocket handshakes are HTTP/1.1.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The ring provider, explicitly: no process-wide default is installed or used.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server config for a Wss endpoint: the certificate loaded and checked.
pub(crate) fn server_config(cert: &Certificate) -> Result<Arc<rustls::ServerConfig>> {
    server_config_from(source::load(cert)?)
}

/// The server config for already loaded material; checks key, chain and dates.
fn server_config_from(material: Material) -> Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(Error::Tls)?;
    let Some(leaf) = material.chain.first().cloned() else {
        return Err(material.chain_error("no certificate in it".into()));
    };
    let mut config = (builder.with_no_client_auth())
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| rustls_error(&material, e))?;
    let validity = validity::check(&leaf, unix_now()).map_err(|r| material.chain_error(r))?;
    warn_if_expiring(&material, validity.not_after);
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// A rustls refusal of the chain or key, in words, naming the file at fault.
fn rustls_error(material: &Material, e: rustls::Error) -> Error {
    use rustls::{Error as E, InconsistentKeys};
    match e {
        E::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            material.key_error(match &material.files {
                Some(files) if files.key != files.chain => format!(
                    "the private key does not match the certificate in {}",
                    files.chain.display()
                ),
                _ => "the private key does not match the certificate".into(),
            })
        }
        E::InvalidCertificate(why) => {
            material.chain_error(format!("the first certificate cannot be parsed: {why}"))
        }
        E::General(why) => material.key_error(format!(
            "cannot use the private key: {why} (supported: RSA, ECDSA P-256/P-384, Ed25519)"
        )),
        e => material.chain_error(e.to_string()),
    }
}

/// Logs a warning when the certificate expires within two weeks.
fn warn_if_expiring(material: &Material, not_after: validity::Time) {
    const TWO_WEEKS: i64 = 14 * 86_400;
    if not_after.unix() - unix_now() < TWO_WEEKS {
        let file = material.files.as_ref().map(|f| f.chain.display());
        let file = file.map(|f| format!("{f}: ")).unwrap_or_default();
        log::warn!("tls: {file}certificate expires on {not_after}");
    }
}

/// Now, in Unix seconds (0 if the clock is before 1970).
fn unix_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
}

/// A client config for outbound `wss://`: trusts the CA certificates in `ca_pem` (PEM, one
/// or more), or when `None` the built-in web roots (feature "webpki-roots", on by default).
pub(crate) fn client_config(ca_pem: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let roots = match ca_pem {
        Some(path) => roots_from_file(path)?,
        None => default_roots()?,
    };
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(Error::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file as a trust anchor.
fn roots_from_file(path: &Path) -> Result<RootCertStore> {
    roots_from(path, source::pem_certificates(path)?)
}

/// The certificates read from `path` as trust anchors.
fn roots_from(path: &Path, certs: Vec<CertificateDer<'static>>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for (n, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            let n = n + 1;
            tls_error(
                path,
                format!("certificate #{n} cannot be a trusted CA: {e}"),
            )
        })?;
    }
    Ok(roots)
}

/// A CA file's contents, for a TLS client that parses the PEM itself (the Redis backplane's
/// `rediss://`), once it passed the checks [`client_config`] makes: readable, PEM, at least
/// one certificate, each usable as a trust anchor. Errors name the file.
#[cfg(feature = "redis")]
pub(crate) fn ca_file_pem(path: &Path) -> Result<Vec<u8>> {
    let bytes = source::read(path)?;
    roots_from(path, source::pem_certificates_in(path, &bytes)?)?;
    Ok(bytes)
}

/// Mozilla's root certificates, as shipped by the `webpki-roots` crate.
#[cfg(feature = "webpki-roots")]
fn default_roots() -> Result<RootCertStore> {
    Ok(RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
}

/// Without the `webpki-roots` feature there are no built-in roots: a CA file is needed.
#[cfg(not(feature = "webpki-roots"))]
fn default_roots() -> Result<RootCertStore> {
    Err(Error::InvalidConfig(
        "no CA file given, and this build has no built-in root certificates \
         (cargo feature \"webpki-roots\")"
            .into(),
    ))
}
