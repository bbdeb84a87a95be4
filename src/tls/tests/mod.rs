//! Configs proven with real handshakes on 127.0.0.1, client configs, and the validity
//! reader on real (rcgen-made) certificates. The startup failure messages are tested through
//! the public API in tests/tls_certs.rs.

mod handshake;
mod pki;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::version::{TLS12, TLS13};
use rustls::ProtocolVersion;

use super::*;
use handshake::{client, round_trip};
use pki::{fixture, fixture_key, p256, Ca, Leaf, TempDir};

/// Writes `leaf` (then `chain`) and its key as PEM files; the certificate naming them.
fn pem_files(dir: &TempDir, leaf: &Leaf, chain: &[String]) -> Certificate {
    let mut pem = leaf.cert_pem.clone();
    chain.iter().for_each(|c| pem.push_str(c));
    Certificate::pem(
        dir.write("chain.pem", pem),
        dir.write("key.pem", &leaf.key_pem),
    )
}

fn der(ca: &Ca) -> CertificateDer<'static> {
    CertificateDer::from(ca.der())
}

/// Handshakes as "localhost" with a client trusting `root`; asserts the echo; the version.
fn handshake_version(
    server: Arc<rustls::ServerConfig>,
    client: Arc<ClientConfig>,
) -> ProtocolVersion {
    let (outcome, server_side) = round_trip(server, client, "localhost");
    let outcome = outcome.expect("client side of the handshake");
    assert_eq!(outcome.echoed, b"hello");
    assert_eq!(outcome.alpn.as_deref(), Some(&b"http/1.1"[..]));
    let version = outcome.version.expect("a negotiated version");
    assert_eq!(server_side, Ok(Some(version)));
    version
}

#[test]
fn pem_config_handshakes_over_tls13_by_default_with_http11_alpn() {
    let dir = TempDir::new("tls13");
    let ca = Ca::root("test root");
    let cert = pem_files(&dir, &ca.leaf(p256()), &[]);
    let config = server_config(&cert).unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    let ca_file = dir.write("ca.pem", ca.pem());
    let client = client_config(Some(&ca_file)).unwrap();
    assert_eq!(handshake_version(config, client), ProtocolVersion::TLSv1_3);
}

#[test]
fn a_client_limited_to_tls12_connects_too() {
    let dir = TempDir::new("tls12");
    let ca = Ca::root("test root");
    let config = server_config(&pem_files(&dir, &ca.leaf(p256()), &[])).unwrap();
    let version = handshake_version(config, client(&[der(&ca)], &[&TLS12]));
    assert_eq!(version, ProtocolVersion::TLSv1_2);
}

#[test]
fn rsa_ec_and_ed25519_keys_in_every_pem_format_handshake() {
    let ca = Ca::root("test root");
    let cases = [
        ("rsa-2048.pkcs8.pem", "rsa-2048.pkcs8.pem"),
        ("rsa-2048.pkcs8.pem", "rsa-2048.pkcs1.pem"),
        ("ec-p256.pkcs8.pem", "ec-p256.pkcs8.pem"),
        ("ec-p256.pkcs8.pem", "ec-p256.sec1.pem"),
    ];
    for (signing_key, key_file) in cases {
        let dir = TempDir::new("formats");
        let leaf = ca.leaf(fixture_key(signing_key));
        let chain = dir.write("chain.pem", &leaf.cert_pem);
        let config = server_config(&Certificate::pem(chain, fixture(key_file))).unwrap();
        for versions in [&[&TLS13, &TLS12][..], &[&TLS12]] {
            handshake_version(config.clone(), client(&[der(&ca)], versions));
        }
    }
    let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let dir = TempDir::new("ed25519");
    let config = server_config(&pem_files(&dir, &ca.leaf(ed25519), &[])).unwrap();
    handshake_version(config, client(&[der(&ca)], &[&TLS13]));
}

#[test]
fn the_intermediate_in_the_chain_file_is_sent_to_clients() {
    let dir = TempDir::new("intermediate");
    let root = Ca::root("test root");
    let intermediate = root.intermediate("test intermediate");
    let leaf = intermediate.leaf(p256());
    let with_chain = server_config(&pem_files(&dir, &leaf, &[intermediate.pem()])).unwrap();
    let version = handshake_version(with_chain, client(&[der(&root)], &[&TLS13, &TLS12]));
    assert_eq!(version, ProtocolVersion::TLSv1_3);

    let leaf_only = server_config(&pem_files(&dir, &leaf, &[])).unwrap();
    let (outcome, _) = round_trip(leaf_only, client(&[der(&root)], &[&TLS13]), "localhost");
    let err = outcome.expect_err("without the intermediate the client cannot verify");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[test]
fn building_configs_installs_no_process_default_provider() {
    let dir = TempDir::new("provider");
    let ca = Ca::root("test root");
    server_config(&pem_files(&dir, &ca.leaf(p256()), &[])).unwrap();
    client_config(Some(&dir.write("ca.pem", ca.pem()))).unwrap();
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
}

#[cfg(feature = "pkcs12")]
#[test]
fn pkcs12_with_the_right_password_handshakes_and_sends_its_chain() {
    let dir = TempDir::new("pkcs12");
    let root = Ca::root("test root");
    let intermediate = root.intermediate("test intermediate");
    let leaf = intermediate.leaf(p256());
    let pfx = pki::pkcs12(&leaf, &[intermediate.der(), root.der()], "s3cret");
    let cert = Certificate::pkcs12(dir.write("site.pfx", pfx), "s3cret");
    let config = server_config(&cert).unwrap();
    let version = handshake_version(config, client(&[der(&root)], &[&TLS13, &TLS12]));
    assert_eq!(version, ProtocolVersion::TLSv1_3);
}

#[cfg(feature = "self-signed")]
#[test]
fn self_signed_config_handshakes_by_name_and_by_ip() {
    let cert = Certificate::self_signed(["localhost", "127.0.0.1"]);
    let material = source::load(&cert).unwrap();
    let trusted = material.chain.clone();
    let config = server_config_from(material).unwrap();
    for name in ["localhost", "127.0.0.1"] {
        let (outcome, _) = round_trip(config.clone(), client(&trusted, &[&TLS13]), name);
        assert_eq!(outcome.unwrap().echoed, b"hello", "{name}");
    }
    let (outcome, _) = round_trip(config, client(&trusted, &[&TLS13]), "example.com");
    let err = outcome.expect_err("a name the certificate is not for");
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[test]
fn client_config_trusts_every_certificate_of_a_ca_file() {
    let dir = TempDir::new("cafile");
    let (first, second) = (Ca::root("first root"), Ca::root("second root"));
    let ca_file = dir.write("cas.pem", first.pem() + &second.pem());
    let client = client_config(Some(&ca_file)).unwrap();
    assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    for ca in [&first, &second] {
        let config = server_config(&pem_files(&dir, &ca.leaf(p256()), &[])).unwrap();
        handshake_version(config, client.clone());
    }
}

#[test]
fn the_insecure_client_config_takes_a_certificate_nobody_trusts_for_any_name() {
    let dir = TempDir::new("insecure");
    let cert = pem_files(&dir, &Ca::root("nobody's root").leaf(p256()), &[]);
    let config = server_config(&cert).unwrap();
    let client = insecure_client_config().unwrap();
    assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    for name in ["localhost", "example.com"] {
        let (outcome, _) = round_trip(config.clone(), client.clone(), name);
        assert_eq!(outcome.expect(name).echoed, b"hello", "{name}");
    }
}

#[test]
fn client_config_errors_name_the_ca_file() {
    let dir = TempDir::new("cafile-errors");
    let missing = dir.path("missing.pem");
    let err = client_config(Some(&missing)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("tls: {}: not found", missing.display())
    );

    let key_only = dir.write("key.pem", p256().serialize_pem());
    let err = client_config(Some(&key_only)).unwrap_err().to_string();
    let expected = format!(
        "tls: {}: no certificate in it (expected \"-----BEGIN CERTIFICATE-----\"); \
         it holds a private key: are the chain and key files swapped?",
        key_only.display()
    );
    assert_eq!(err, expected);
}

#[cfg(feature = "webpki-roots")]
#[test]
fn client_config_without_a_ca_file_trusts_the_web_roots() {
    assert!(default_roots().unwrap().roots.len() > 100);
    assert!(client_config(None).is_ok());
}

#[cfg(not(feature = "webpki-roots"))]
#[test]
fn client_config_without_a_ca_file_or_web_roots_says_so() {
    let err = client_config(None).unwrap_err().to_string();
    assert!(err.contains("webpki-roots"), "{err}");
}

#[test]
fn validity_is_read_from_real_certificates() {
    let ca = Ca::root("test root");
    let cases = [
        ((2001, 2, 3), (2049, 12, 31), "2001-02-03", "2049-12-31"), // UTCTime both
        ((1975, 1, 1), (4096, 1, 1), "1975-01-01", "4096-01-01"),   // GeneralizedTime after
        ((2050, 1, 1), (2099, 6, 30), "2050-01-01", "2099-06-30"),  // GeneralizedTime both
    ];
    for (from, until, from_text, until_text) in cases {
        let leaf = ca.leaf_dated(p256(), Some((from, until)));
        let dates = validity::read(&leaf.cert_der).expect("validity");
        assert_eq!(
            dates.not_before.to_string(),
            format!("{from_text} 00:00:00 UTC")
        );
        assert_eq!(
            dates.not_after.to_string(),
            format!("{until_text} 00:00:00 UTC")
        );
    }
    assert_eq!(
        validity::read(&ca.der()).map(|v| v.not_before.unix()),
        Some(157_766_400)
    );
}
