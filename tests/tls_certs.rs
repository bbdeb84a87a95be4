//! Wss certificates through the public API (SPEC 10): every way a certificate can be wrong
//! stops with a message naming the file, and every supported form loads. `Certificate::check`
//! loads exactly as a Wss endpoint does at start. (Real handshakes with the resulting rustls
//! configs are in src/tls/tests.)

#[path = "../src/tls/tests/pki.rs"]
mod pki;

use std::path::Path;

use pki::{fixture, fixture_key, p256, Ca, TempDir};
use signalhub::tls::Certificate;
use signalhub::Error;

/// The error `check` gives, as text; also asserts it is `Error::Tls` for `file`.
fn failure(cert: &Certificate, file: &Path) -> String {
    let err = cert.check().expect_err("the certificate should be refused");
    match &err {
        Error::Certificate { file: at, .. } => assert_eq!(at, file, "{err}"),
        other => panic!("expected Error::Tls, got {other:?}"),
    }
    err.to_string()
}

/// A good chain and key, written as chain.pem and key.pem.
fn good_pair(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let leaf = Ca::root("test root").leaf(p256());
    (
        dir.write("chain.pem", leaf.cert_pem),
        dir.write("key.pem", leaf.key_pem),
    )
}

#[test]
fn a_good_pem_pair_loads() {
    let dir = TempDir::new("good");
    let (chain, key) = good_pair(&dir);
    Certificate::pem(chain, key).check().unwrap();
}

#[test]
fn pkcs8_pkcs1_and_sec1_keys_load() {
    let ca = Ca::root("test root");
    for (signing_key, key_file) in [
        ("rsa-2048.pkcs8.pem", "rsa-2048.pkcs8.pem"),
        ("rsa-2048.pkcs8.pem", "rsa-2048.pkcs1.pem"),
        ("ec-p256.pkcs8.pem", "ec-p256.pkcs8.pem"),
        ("ec-p256.pkcs8.pem", "ec-p256.sec1.pem"),
    ] {
        let dir = TempDir::new("formats");
        let chain = dir.write("chain.pem", ca.leaf(fixture_key(signing_key)).cert_pem);
        let result = Certificate::pem(chain, fixture(key_file)).check();
        assert!(result.is_ok(), "{key_file}: {result:?}");
    }
}

#[test]
fn one_file_may_hold_both_chain_and_key() {
    let dir = TempDir::new("combined");
    let root = Ca::root("test root");
    let intermediate = root.intermediate("test intermediate");
    let leaf = intermediate.leaf(p256());
    let both = dir.write(
        "both.pem",
        leaf.key_pem + &leaf.cert_pem + &intermediate.pem(),
    );
    Certificate::pem(&both, &both).check().unwrap();
}

#[test]
fn a_missing_file_is_named_with_not_found() {
    let dir = TempDir::new("missing");
    let (chain, key) = good_pair(&dir);
    let nowhere = dir.path("nowhere.pem");
    let cert = Certificate::pem(&nowhere, &key);
    let expected = format!("tls: {}: not found", nowhere.display());
    assert_eq!(failure(&cert, &nowhere), expected);
    let cert = Certificate::pem(&chain, &nowhere);
    assert_eq!(failure(&cert, &nowhere), expected);
}

#[test]
fn an_unreadable_file_says_why() {
    let dir = TempDir::new("unreadable");
    let (_, key) = good_pair(&dir);
    let folder = dir.path("");
    let message = failure(&Certificate::pem(&folder, &key), &folder);
    let prefix = format!("tls: {}: cannot read: ", folder.display());
    assert!(message.starts_with(&prefix), "{message}");
}

#[test]
fn a_file_that_is_not_pem_says_so() {
    let dir = TempDir::new("not-pem");
    let (chain, key) = good_pair(&dir);
    let text = dir.write("notes.txt", "just some text\n");
    assert_eq!(
        failure(&Certificate::pem(&text, &key), &text),
        format!(
            "tls: {}: not a PEM file (no \"-----BEGIN\" line), so no certificate in it",
            text.display()
        )
    );
    let der = dir.write("cert.der", Ca::root("test root").der());
    assert_eq!(
        failure(&Certificate::pem(&chain, &der), &der),
        format!(
            "tls: {}: not a PEM file (no \"-----BEGIN\" line), so no private key in it; \
             it looks binary (DER or PKCS#12): convert it to PEM with openssl, \
             or use a PKCS#12 certificate",
            der.display()
        )
    );
}

#[test]
fn broken_pem_says_what_is_broken() {
    let dir = TempDir::new("bad-pem");
    let (_, key) = good_pair(&dir);
    let cut = dir.write("cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    assert_eq!(
        failure(&Certificate::pem(&cut, &key), &cut),
        format!(
            "tls: {}: not valid PEM: the \"-----END CERTIFICATE-----\" line is missing",
            cut.display()
        )
    );
    let garbled = dir.write(
        "garbled.pem",
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    );
    let message = failure(&Certificate::pem(&garbled, &key), &garbled);
    let prefix = format!("tls: {}: not valid PEM: bad base64 (", garbled.display());
    assert!(message.starts_with(&prefix), "{message}");
}

#[test]
fn a_chain_file_without_a_certificate_says_so() {
    let dir = TempDir::new("no-cert");
    let (chain, key) = good_pair(&dir);
    assert_eq!(
        failure(&Certificate::pem(&key, &chain), &key),
        format!(
            "tls: {}: no certificate in it (expected \"-----BEGIN CERTIFICATE-----\"); \
             it holds a private key: are the chain and key files swapped?",
            key.display()
        )
    );
    let csr = dir.write(
        "request.pem",
        "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
    );
    assert_eq!(
        failure(&Certificate::pem(&csr, &key), &csr),
        format!(
            "tls: {}: no certificate in it (expected \"-----BEGIN CERTIFICATE-----\")",
            csr.display()
        )
    );
}

#[test]
fn a_key_file_without_a_private_key_says_so() {
    let dir = TempDir::new("no-key");
    let (chain, _) = good_pair(&dir);
    let expected = format!(
        "tls: {}: no private key in it (expected \"-----BEGIN PRIVATE KEY-----\", \
         \"-----BEGIN RSA PRIVATE KEY-----\" or \"-----BEGIN EC PRIVATE KEY-----\"); \
         it holds a certificate: are the chain and key files swapped?",
        chain.display()
    );
    assert_eq!(failure(&Certificate::pem(&chain, &chain), &chain), expected);
}

#[test]
fn an_encrypted_key_asks_for_the_plain_one() {
    let dir = TempDir::new("encrypted");
    let (chain, _) = good_pair(&dir);
    let encrypted = dir.write(
        "key.pem",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    let legacy = dir.write(
        "legacy-key.pem",
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\
         DEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\n\
         MIIB\n-----END RSA PRIVATE KEY-----\n",
    );
    for key in [encrypted, legacy] {
        assert_eq!(
            failure(&Certificate::pem(&chain, &key), &key),
            format!(
                "tls: {}: the private key is encrypted; give it unencrypted \
                 (openssl pkey -in KEY -out PLAIN-KEY)",
                key.display()
            )
        );
    }
}

#[test]
fn a_key_not_matching_the_certificate_says_so_in_words() {
    let dir = TempDir::new("mismatch");
    let (chain, _) = good_pair(&dir);
    let other = dir.write("other-key.pem", p256().serialize_pem());
    assert_eq!(
        failure(&Certificate::pem(&chain, &other), &other),
        format!(
            "tls: {}: the private key does not match the certificate in {}",
            other.display(),
            chain.display()
        )
    );
}

#[test]
fn an_unsupported_key_type_is_refused() {
    let dir = TempDir::new("p521");
    let (chain, _) = good_pair(&dir);
    let p521 = fixture("ec-p521.pkcs8.pem");
    assert_eq!(
        failure(&Certificate::pem(&chain, &p521), &p521),
        format!(
            "tls: {}: cannot use the private key: failed to parse private key as RSA, ECDSA, \
             or EdDSA (supported: RSA, ECDSA P-256/P-384, Ed25519)",
            p521.display()
        )
    );
}

#[test]
fn a_malformed_certificate_is_refused() {
    let dir = TempDir::new("malformed");
    let (_, key) = good_pair(&dir);
    // Valid PEM around bytes that are no X.509 certificate.
    let bogus = dir.write(
        "bogus.pem",
        "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
    );
    let message = failure(&Certificate::pem(&bogus, &key), &bogus);
    let prefix = format!(
        "tls: {}: the first certificate cannot be parsed: ",
        bogus.display()
    );
    assert!(message.starts_with(&prefix), "{message}");
}

#[test]
fn an_expired_certificate_says_when_it_expired() {
    let dir = TempDir::new("expired");
    let key = p256();
    let key_pem = key.serialize_pem();
    let leaf = Ca::root("test root").leaf_dated(key, Some(((2001, 1, 1), (2020, 1, 1))));
    let chain = dir.write("chain.pem", leaf.cert_pem);
    let key = dir.write("key.pem", key_pem);
    assert_eq!(
        failure(&Certificate::pem(&chain, &key), &chain),
        format!(
            "tls: {}: certificate expired on 2020-01-01 00:00:00 UTC",
            chain.display()
        )
    );
}

#[test]
fn a_certificate_not_valid_yet_says_from_when() {
    let dir = TempDir::new("not-yet");
    let leaf = Ca::root("test root").leaf_dated(p256(), Some(((2090, 1, 1), (2099, 1, 1))));
    let chain = dir.write("chain.pem", leaf.cert_pem);
    let key = dir.write("key.pem", leaf.key_pem);
    assert_eq!(
        failure(&Certificate::pem(&chain, &key), &chain),
        format!(
            "tls: {}: certificate is not valid yet: valid from 2090-01-01 00:00:00 UTC",
            chain.display()
        )
    );
}

#[test]
fn errors_display_the_file_and_debug_shows_the_certificate() {
    let err = Certificate::pem("/no/such/chain.pem", "/no/such/key.pem")
        .check()
        .unwrap_err();
    assert_eq!(err.to_string(), "tls: /no/such/chain.pem: not found");
    let cert = Certificate::pem("a.pem", "b.pem");
    assert_eq!(
        format!("{cert:?}"),
        r#"Pem { chain: "a.pem", key: "b.pem" }"#
    );
    assert_eq!(cert.clone(), cert);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Certificate>();
}

#[cfg(feature = "pkcs12")]
mod pkcs12 {
    use super::*;

    #[test]
    fn loads_with_the_right_password() {
        let dir = TempDir::new("p12-good");
        let root = Ca::root("test root");
        let leaf = root.leaf(p256());
        let pfx = dir.write("site.pfx", pki::pkcs12(&leaf, &[root.der()], "s3cret"));
        Certificate::pkcs12(&pfx, "s3cret").check().unwrap();
    }

    /// What OpenSSL 3 writes, in each encryption: its default (PBES2 with AES-256), the
    /// legacy one (RC2-40 and 3DES), PBES2 with 3DES, nothing encrypted, no integrity check
    /// (tests/data/make-pfx.sh).
    #[test]
    fn openssl_files_load() {
        for name in [
            "modern.pfx",
            "legacy.pfx",
            "mixed.pfx",
            "plain.pfx",
            "nomac.pfx",
        ] {
            let result = Certificate::pkcs12(fixture(name), "pw").check();
            assert!(result.is_ok(), "{name}: {result:?}");
        }
    }

    #[test]
    fn a_wrong_password_says_so() {
        let dir = TempDir::new("p12-wrong");
        let root = Ca::root("test root");
        let pfx = dir.write("site.pfx", pki::pkcs12(&root.leaf(p256()), &[], "s3cret"));
        for wrong in ["S3cret", ""] {
            assert_eq!(
                failure(&Certificate::pkcs12(&pfx, wrong), &pfx),
                format!(
                    "tls: {}: wrong password (the PKCS#12 integrity check failed)",
                    pfx.display()
                )
            );
        }
    }

    #[test]
    fn an_archive_without_a_key_says_so() {
        let dir = TempDir::new("p12-no-key");
        let pfx = dir.write(
            "ca.pfx",
            pki::pkcs12_without_key(&Ca::root("r").der(), "pw"),
        );
        assert_eq!(
            failure(&Certificate::pkcs12(&pfx, "pw"), &pfx),
            format!(
                "tls: {}: no private key with its certificate in it",
                pfx.display()
            )
        );
    }

    #[test]
    fn not_a_pkcs12_file_or_missing() {
        let dir = TempDir::new("p12-bad");
        let (chain, _) = good_pair(&dir);
        let message = failure(&Certificate::pkcs12(&chain, "pw"), &chain);
        let prefix = format!(
            "tls: {}: not a readable PKCS#12 file, or a wrong password: ",
            chain.display()
        );
        assert!(message.starts_with(&prefix), "{message}");
        let nowhere = dir.path("nowhere.pfx");
        assert_eq!(
            failure(&Certificate::pkcs12(&nowhere, "pw"), &nowhere),
            format!("tls: {}: not found", nowhere.display())
        );
    }

    #[test]
    fn an_expired_certificate_in_it_is_refused() {
        let dir = TempDir::new("p12-expired");
        let root = Ca::root("test root");
        let leaf = root.leaf_dated(p256(), Some(((2001, 1, 1), (2021, 6, 30))));
        let pfx = dir.write("old.pfx", pki::pkcs12(&leaf, &[], "pw"));
        assert_eq!(
            failure(&Certificate::pkcs12(&pfx, "pw"), &pfx),
            format!(
                "tls: {}: certificate expired on 2021-06-30 00:00:00 UTC",
                pfx.display()
            )
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let cert = Certificate::pkcs12("site.pfx", "s3cret");
        let debug = format!("{cert:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert_eq!(
            debug,
            r#"Pkcs12 { file: "site.pfx", password: "<hidden>" }"#
        );
    }
}

#[cfg(feature = "self-signed")]
mod self_signed {
    use super::*;

    #[test]
    fn generates_for_names_and_addresses() {
        let cert = Certificate::self_signed(["localhost", "127.0.0.1", "::1"]);
        cert.check().unwrap();
    }

    #[test]
    fn needs_a_name() {
        let err = Certificate::self_signed(Vec::<String>::new())
            .check()
            .unwrap_err();
        assert!(matches!(err, Error::SelfSigned(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "tls: a self-signed certificate needs at least one host name, e.g. \"localhost\""
        );
    }

    #[test]
    fn refuses_an_invalid_name() {
        let err = Certificate::self_signed(["b\u{fc}cher.example"])
            .check()
            .unwrap_err();
        assert!(matches!(err, Error::SelfSigned(_)), "{err:?}");
    }
}
