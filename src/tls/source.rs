//! Reading certificate material: PEM files, PKCS#12 archives, generated self-signed
//! certificates. Every failure names the file and says what is wrong in words.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Certificate;
use crate::{Error, Result};

/// A certificate chain (leaf first) with its private key, and where they came from.
pub(super) struct Material {
    /// The chain, leaf first; never empty.
    pub(super) chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub(super) key: PrivateKeyDer<'static>,
    /// The files they were read from; `None` for a generated certificate.
    pub(super) files: Option<Files>,
}

/// The file holding the chain and the one holding the key (the same for PKCS#12).
#[derive(Debug, Clone)]
pub(super) struct Files {
    pub(super) chain: PathBuf,
    pub(super) key: PathBuf,
}

impl Material {
    /// An error about the certificate chain, naming its file when there is one.
    pub(super) fn chain_error(&self, reason: String) -> Error {
        match &self.files {
            Some(files) => tls_error(&files.chain, reason),
            None => Error::SelfSigned(format!("generated certificate: {reason}")),
        }
    }

    /// An error about the private key, naming its file when there is one.
    pub(super) fn key_error(&self, reason: String) -> Error {
        match &self.files {
            Some(files) => tls_error(&files.key, reason),
            None => Error::SelfSigned(format!("generated key: {reason}")),
        }
    }
}

/// `Error::Certificate` for `file`.
pub(super) fn tls_error(file: &Path, reason: impl Into<String>) -> Error {
    Error::Certificate {
        file: file.to_path_buf(),
        reason: reason.into(),
    }
}

/// Loads the chain and key a [`Certificate`] describes.
pub(super) fn load(cert: &Certificate) -> Result<Material> {
    match cert {
        Certificate::Pem { chain, key } => Ok(Material {
            chain: pem_certificates(chain)?,
            key: pem_private_key(key)?,
            files: Some(Files {
                chain: chain.clone(),
                key: key.clone(),
            }),
        }),
        #[cfg(feature = "pkcs12")]
        Certificate::Pkcs12 { file, password } => pkcs12(file, password),
        #[cfg(feature = "self-signed")]
        Certificate::SelfSigned { names } => self_signed(names),
    }
}

/// The whole file, with "not found" and "cannot read" said plainly.
pub(super) fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => tls_error(path, "not found"),
        _ => tls_error(path, format!("cannot read: {e}")),
    })
}

/// Every certificate in a PEM file, in order; at least one.
pub(super) fn pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    pem_certificates_in(path, &read(path)?)
}

/// Every certificate in `bytes`, the contents of the PEM file `path`, in order; at least one.
pub(super) fn pem_certificates_in(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, bad_pem(&e)))?;
    if certs.is_empty() {
        return Err(tls_error(path, no_certificate(bytes)));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
fn pem_private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let bytes = read(path)?;
    if is_encrypted(&bytes) {
        return Err(tls_error(path, ENCRYPTED_KEY));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => tls_error(path, no_private_key(&bytes)),
        e => tls_error(path, bad_pem(&e)),
    })
}

/// Why an encrypted key is refused, and what to do.
const ENCRYPTED_KEY: &str =
    "the private key is encrypted; give it unencrypted (openssl pkey -in KEY -out PLAIN-KEY)";

/// Whether the file holds an encrypted key: PKCS#8 or the legacy OpenSSL PEM form.
fn is_encrypted(bytes: &[u8]) -> bool {
    contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(bytes, b"Proc-Type: 4,ENCRYPTED")
}

/// Why a file with no certificate has none.
fn no_certificate(bytes: &[u8]) -> String {
    if !has_pem_block(bytes) {
        return not_pem(bytes, "certificate");
    }
    let mut reason =
        String::from("no certificate in it (expected \"-----BEGIN CERTIFICATE-----\")");
    if PrivateKeyDer::from_pem_slice(bytes).is_ok() {
        reason.push_str("; it holds a private key: are the chain and key files swapped?");
    }
    reason
}

/// Why a file with no usable private key has none.
fn no_private_key(bytes: &[u8]) -> String {
    if !has_pem_block(bytes) {
        return not_pem(bytes, "private key");
    }
    let mut reason = String::from(
        "no private key in it (expected \"-----BEGIN PRIVATE KEY-----\", \
         \"-----BEGIN RSA PRIVATE KEY-----\" or \"-----BEGIN EC PRIVATE KEY-----\")",
    );
    if CertificateDer::from_pem_slice(bytes).is_ok() {
        reason.push_str("; it holds a certificate: are the chain and key files swapped?");
    }
    reason
}

/// "not a PEM file", with a hint when the bytes look like binary DER or PKCS#12.
fn not_pem(bytes: &[u8], what: &str) -> String {
    let mut reason = format!("not a PEM file (no \"-----BEGIN\" line), so no {what} in it");
    if bytes.first() == Some(&0x30) {
        reason.push_str(
            "; it looks binary (DER or PKCS#12): convert it to PEM with openssl, \
             or use a PKCS#12 certificate",
        );
    }
    reason
}

fn has_pem_block(bytes: &[u8]) -> bool {
    contains(bytes, b"-----BEGIN ")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A PEM syntax error in words.
fn bad_pem(e: &pem::Error) -> String {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match e {
        pem::Error::MissingSectionEnd { end_marker } => {
            let label = lossy(end_marker); // the section's label, or the whole line
            let line = match label.starts_with("-----END") {
                true => label,
                false => format!("-----END {label}-----"),
            };
            format!("not valid PEM: the \"{line}\" line is missing")
        }
        pem::Error::IllegalSectionStart { line } => {
            format!("not valid PEM: bad \"-----BEGIN\" line {:?}", lossy(line))
        }
        pem::Error::Base64Decode(why) => format!("not valid PEM: bad base64 ({why})"),
        e => format!("not valid PEM: {e}"),
    }
}

/// The chain and key of a PKCS#12 (.pfx/.p12) archive.
#[cfg(feature = "pkcs12")]
fn pkcs12(path: &Path, password: &str) -> Result<Material> {
    use super::pkcs12::{read as read_pkcs12, Failure};
    use rustls_pki_types::PrivatePkcs8KeyDer;

    let bytes = read(path)?;
    let key_chain = read_pkcs12(&bytes, password).map_err(|failure| match failure {
        Failure::WrongPassword => {
            tls_error(path, "wrong password (the PKCS#12 integrity check failed)")
        }
        Failure::Unreadable(why) => tls_error(
            path,
            format!("not a readable PKCS#12 file, or a wrong password: {why}"),
        ),
    })?;
    let key_chain =
        key_chain.ok_or_else(|| tls_error(path, "no private key with its certificate in it"))?;
    Ok(Material {
        chain: key_chain
            .chain
            .into_iter()
            .map(CertificateDer::from)
            .collect(),
        key: PrivatePkcs8KeyDer::from(key_chain.key).into(),
        files: Some(Files {
            chain: path.to_path_buf(),
            key: path.to_path_buf(),
        }),
    })
}

/// A self-signed certificate for `names`, made now.
#[cfg(feature = "self-signed")]
fn self_signed(names: &[String]) -> Result<Material> {
    use rustls_pki_types::PrivatePkcs8KeyDer;

    if names.is_empty() {
        return Err(Error::SelfSigned(
            "a self-signed certificate needs at least one host name, e.g. \"localhost\"".into(),
        ));
    }
    let fail = |e: rcgen::Error| {
        Error::SelfSigned(format!(
            "cannot generate a self-signed certificate for {names:?}: {e}"
        ))
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(fail)?;
    let common_name = "signalhub self-signed certificate (development only)";
    params.distinguished_name = rcgen::DistinguishedName::new();
    (params.distinguished_name).push(rcgen::DnType::CommonName, common_name);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    log::info!(
        "tls: generated a self-signed certificate for {}",
        names.join(", ")
    );
    Ok(Material {
        chain: vec![cert.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        files: None,
    })
}
