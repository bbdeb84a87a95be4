//! PKCS#12 (.pfx/.p12) archives, read with a small DER walk (RFC 7292) on ring's digests,
//! HMAC and PBKDF2, plus the RustCrypto block ciphers ring does not have (AES-CBC, 3DES,
//! RC2).
//!
//! Why not a PKCS#12 crate: p12-keystore (what this replaced) brings x509-parser, the
//! RustCrypto CMS, PKCS#5 and SHA-2 crates, scrypt and AES-GCM: about 300 KiB of the
//! `signalhub` binary for what it does once at start (docs/PERFORMANCE.md). What is read:
//!
//! - the integrity check (`MacData`: HMAC with SHA-1, SHA-256, SHA-384 or SHA-512 under the
//!   PKCS#12 key derivation); a mismatch is a wrong password;
//! - encrypted contents and shrouded keys under PBES1 (SHA-1 with 3-key triple DES, 128- or
//!   40-bit RC2: OpenSSL 1.x and Windows) or PBES2 (PBKDF2 with HMAC-SHA-1/256/384/512, then
//!   AES-128/192/256-CBC or triple DES: OpenSSL 3);
//! - PKCS#8 key bags, shrouded or not, and X.509 certificate bags, with their `localKeyId`.
//!
//! The key is the first one whose `localKeyId` a certificate shares; its chain is that
//! certificate, then the issuers found in the archive (matched by their DER names), as
//! p12-keystore's strict import made it. Iteration counts are capped (a hostile file could
//! otherwise hold the start for hours); anything else gives a reason, never a panic.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockCipherDecrypt, BlockModeDecrypt, InnerIvInit, KeyInit};
use ring::{digest, hmac, pbkdf2};

use super::validity::{expect, tbs_fields};

/// DER tags.
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// `[0] EXPLICIT`, and `[0] IMPLICIT OCTET STRING` (primitive).
const EXPLICIT_0: u8 = 0xa0;
const IMPLICIT_0: u8 = 0x80;

/// Object identifiers, as their DER contents.
const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const ENCRYPTED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x06];
const KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x01,
];
const SHROUDED_KEY_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];
const CERT_BAG: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x03,
];
const X509_CERTIFICATE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16, 0x01];
const LOCAL_KEY_ID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x15];
const PBE_SHA1_3DES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x03];
const PBE_SHA1_RC2_128: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x05];
const PBE_SHA1_RC2_40: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06];
const PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const DES_EDE3_CBC: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07];
const AES_128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const AES_192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
const AES_256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// The most key-derivation iterations accepted (p12-keystore's cap too); files seen in
/// practice use 2,048 to 600,000.
const MAX_ITERATIONS: u32 = 1_000_000;

/// Why an archive could not be read.
#[derive(Debug, PartialEq)]
pub(super) enum Failure {
    /// The integrity check failed: the password is wrong (or the file was altered).
    WrongPassword,
    /// Anything else, in words.
    Unreadable(String),
}

fn unreadable(reason: impl Into<String>) -> Failure {
    Failure::Unreadable(reason.into())
}

/// What the structure walk calls a DER element that is not where it should be.
fn malformed(what: &str) -> Failure {
    unreadable(format!("malformed DER ({what})"))
}

/// A key and its certificate chain, leaf first, as DER.
pub(super) struct KeyChain {
    /// PKCS#8 `PrivateKeyInfo`.
    pub key: Vec<u8>,
    pub chain: Vec<Vec<u8>>,
}

/// A certificate from the archive.
struct Cert {
    der: Vec<u8>,
    local_key_id: Option<Vec<u8>>,
}

/// What the bags held.
#[derive(Default)]
struct Bags {
    /// PKCS#8 keys and their `localKeyId`.
    keys: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    certs: Vec<Cert>,
}

/// The first key of `pfx` with its chain; `Ok(None)` when no key has its certificate there.
pub(super) fn read(pfx: &[u8], password: &str) -> Result<Option<KeyChain>, Failure> {
    let (pfx, rest) = expect(pfx, SEQUENCE).ok_or_else(|| malformed("PFX"))?;
    if !rest.is_empty() {
        return Err(malformed("bytes after the PFX"));
    }
    let (version, rest) = expect(pfx, INTEGER).ok_or_else(|| malformed("version"))?;
    if version != [3] {
        return Err(unreadable("not a PKCS#12 version 3 file"));
    }
    let (auth_safe, rest) = expect(rest, SEQUENCE).ok_or_else(|| malformed("authSafe"))?;
    let (kind, content) = content_info(auth_safe)?;
    if kind != DATA {
        return Err(unreadable("public-key integrity mode is not supported"));
    }
    let (data, _) = expect(content, OCTET_STRING).ok_or_else(|| malformed("authSafe data"))?;
    if !rest.is_empty() {
        let (mac_data, _) = expect(rest, SEQUENCE).ok_or_else(|| malformed("macData"))?;
        verify_mac(mac_data, password, data)?;
    }
    let (mut infos, _) = expect(data, SEQUENCE).ok_or_else(|| malformed("AuthenticatedSafe"))?;
    let mut bags = Bags::default();
    while !infos.is_empty() {
        let (info, rest) = expect(infos, SEQUENCE).ok_or_else(|| malformed("ContentInfo"))?;
        infos = rest;
        let (kind, content) = content_info(info)?;
        if kind == DATA {
            let (contents, _) = expect(content, OCTET_STRING).ok_or_else(|| malformed("data"))?;
            read_bags(contents, password, &mut bags)?;
        } else if kind == ENCRYPTED_DATA {
            let contents = encrypted_data(content, password)?;
            read_bags(&contents, password, &mut bags)?;
        } else {
            return Err(unreadable(
                "a content type other than data or encrypted data",
            ));
        }
    }
    Ok(link(bags))
}

/// A `ContentInfo`'s type and its `[0] EXPLICIT` content.
fn content_info(info: &[u8]) -> Result<(&[u8], &[u8]), Failure> {
    let (kind, rest) = expect(info, OID).ok_or_else(|| malformed("content type"))?;
    let (content, _) = expect(rest, EXPLICIT_0).ok_or_else(|| malformed("content"))?;
    Ok((kind, content))
}

/// An `EncryptedData`'s contents, decrypted.
fn encrypted_data(content: &[u8], password: &str) -> Result<Vec<u8>, Failure> {
    let (data, _) = expect(content, SEQUENCE).ok_or_else(|| malformed("EncryptedData"))?;
    let (_version, rest) = expect(data, INTEGER).ok_or_else(|| malformed("version"))?;
    let (info, _) = expect(rest, SEQUENCE).ok_or_else(|| malformed("EncryptedContentInfo"))?;
    let (_kind, rest) = expect(info, OID).ok_or_else(|| malformed("content type"))?;
    let (algorithm, rest) = expect(rest, SEQUENCE).ok_or_else(|| malformed("algorithm"))?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let (ciphertext, _) = expect(rest, IMPLICIT_0).ok_or_else(|| malformed("encryptedContent"))?;
    decrypt(algorithm, ciphertext, password)
}

/// The bags of a `SafeContents`, added to `bags`.
fn read_bags(contents: &[u8], password: &str, bags: &mut Bags) -> Result<(), Failure> {
    let (mut list, _) = expect(contents, SEQUENCE).ok_or_else(|| malformed("SafeContents"))?;
    while !list.is_empty() {
        let (bag, rest) = expect(list, SEQUENCE).ok_or_else(|| malformed("SafeBag"))?;
        list = rest;
        let (kind, rest) = expect(bag, OID).ok_or_else(|| malformed("bag type"))?;
        let (value, attributes) = expect(rest, EXPLICIT_0).ok_or_else(|| malformed("bag"))?;
        let local_key_id = local_key_id(attributes);
        if kind == KEY_BAG {
            let (_, after) = expect(value, SEQUENCE).ok_or_else(|| malformed("key"))?;
            let key = &value[..value.len() - after.len()];
            bags.keys.push((key.to_vec(), local_key_id));
        } else if kind == SHROUDED_KEY_BAG {
            let (info, _) = expect(value, SEQUENCE).ok_or_else(|| malformed("shrouded key"))?;
            let (algorithm, rest) = expect(info, SEQUENCE).ok_or_else(|| malformed("algorithm"))?;
            let (ciphertext, _) = expect(rest, OCTET_STRING).ok_or_else(|| malformed("key"))?;
            bags.keys
                .push((decrypt(algorithm, ciphertext, password)?, local_key_id));
        } else if kind == CERT_BAG {
            let (cert_bag, _) = expect(value, SEQUENCE).ok_or_else(|| malformed("cert bag"))?;
            let (cert_kind, rest) = expect(cert_bag, OID).ok_or_else(|| malformed("cert type"))?;
            if cert_kind != X509_CERTIFICATE {
                continue; // SDSI certificates: nothing rustls can use
            }
            let (inner, _) = expect(rest, EXPLICIT_0).ok_or_else(|| malformed("cert"))?;
            let (der, _) = expect(inner, OCTET_STRING).ok_or_else(|| malformed("cert"))?;
            bags.certs.push(Cert {
                der: der.to_vec(),
                local_key_id,
            });
        }
        // Other bags (CRLs, secrets, nested contents) hold nothing a server's key needs.
    }
    Ok(())
}

/// The `localKeyId` attribute's value among a bag's attributes (`SET OF Attribute`).
fn local_key_id(attributes: &[u8]) -> Option<Vec<u8>> {
    let (mut set, _) = expect(attributes, SET)?;
    while !set.is_empty() {
        let (attribute, rest) = expect(set, SEQUENCE)?;
        set = rest;
        let (kind, values) = expect(attribute, OID)?;
        if kind == LOCAL_KEY_ID {
            let (values, _) = expect(values, SET)?;
            let (id, _) = expect(values, OCTET_STRING)?;
            return Some(id.to_vec());
        }
    }
    None
}

/// The first key whose certificate is in the archive, and the chain from that certificate
/// up through the issuers found there (each once, stopping at a self-signed one).
fn link(bags: Bags) -> Option<KeyChain> {
    for (key, id) in bags.keys {
        let Some(id) = id else { continue };
        let Some(leaf) = (bags.certs.iter()).find(|c| c.local_key_id.as_ref() == Some(&id)) else {
            continue;
        };
        let mut chain = vec![leaf.der.clone()];
        let mut current = leaf;
        while let Some((issuer, subject)) = names(&current.der) {
            if issuer == subject {
                break; // self-signed: the top
            }
            let parent = (bags.certs.iter()).find(|c| names(&c.der).is_some_and(|n| n.1 == issuer));
            match parent {
                Some(parent) if !chain.contains(&parent.der) => {
                    chain.push(parent.der.clone());
                    current = parent;
                }
                _ => break,
            }
        }
        return Some(KeyChain { key, chain });
    }
    None
}

/// A certificate's issuer and subject names, as DER contents.
fn names(cert: &[u8]) -> Option<(&[u8], &[u8])> {
    tbs_fields(cert).map(|fields| (fields.issuer, fields.subject))
}

/// A DER INTEGER's contents as a positive count below 2^32.
fn count(value: &[u8]) -> Option<u32> {
    let (&first, _) = value.split_first()?;
    if first & 0x80 != 0 {
        return None; // negative
    }
    let value = match value {
        [0, rest @ ..] if !rest.is_empty() => rest, // the zero that keeps 0x80.. positive
        _ => value,
    };
    (value.len() <= 4).then(|| value.iter().fold(0, |n, &b| (n << 8) | u32::from(b)))
}

/// An iteration count, checked to be at least 1 and at most [`MAX_ITERATIONS`].
fn iterations(value: &[u8]) -> Result<u32, Failure> {
    match count(value) {
        Some(n @ 1..=MAX_ITERATIONS) => Ok(n),
        _ => Err(unreadable(format!(
            "an iteration count that is not between 1 and {MAX_ITERATIONS}"
        ))),
    }
}

/// The digest and HMAC named by a `MacData`'s digest algorithm.
fn mac_algorithm(oid: &[u8]) -> Option<(&'static digest::Algorithm, hmac::Algorithm)> {
    Some(match oid {
        SHA1 => (
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        ),
        SHA256 => (&digest::SHA256, hmac::HMAC_SHA256),
        SHA384 => (&digest::SHA384, hmac::HMAC_SHA384),
        SHA512 => (&digest::SHA512, hmac::HMAC_SHA512),
        _ => return None,
    })
}

/// Checks the archive's HMAC over `data` (RFC 7292, section 5 and appendix B).
fn verify_mac(mac_data: &[u8], password: &str, data: &[u8]) -> Result<(), Failure> {
    let (digest_info, rest) = expect(mac_data, SEQUENCE).ok_or_else(|| malformed("mac"))?;
    let (algorithm, rest_info) = expect(digest_info, SEQUENCE).ok_or_else(|| malformed("mac"))?;
    let (expected, _) = expect(rest_info, OCTET_STRING).ok_or_else(|| malformed("mac"))?;
    let (oid, _) = expect(algorithm, OID).ok_or_else(|| malformed("mac algorithm"))?;
    let (salt, rest) = expect(rest, OCTET_STRING).ok_or_else(|| malformed("mac salt"))?;
    let rounds = match expect(rest, INTEGER) {
        Some((value, _)) => iterations(value)?,
        None => 1, // DEFAULT 1
    };
    let (digest, hmac) =
        mac_algorithm(oid).ok_or_else(|| unreadable("an unsupported integrity algorithm"))?;
    let key = kdf(digest, &bmp(password), salt, 3, rounds, digest.output_len());
    hmac::verify(&hmac::Key::new(hmac, &key), data, expected).map_err(|_| Failure::WrongPassword)
}

/// The password as PKCS#12 wants it for its own key derivation: UTF-16 big-endian with two
/// zero bytes at the end (an empty password is just those two).
fn bmp(password: &str) -> Vec<u8> {
    let mut bytes: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    bytes.extend([0, 0]);
    bytes
}

/// PKCS#12's key derivation (RFC 7292, appendix B.2): `len` bytes of key material of kind
/// `id` (1 a cipher key, 2 an IV, 3 a MAC key).
fn kdf(
    digest: &'static digest::Algorithm,
    password: &[u8],
    salt: &[u8],
    id: u8,
    rounds: u32,
    len: usize,
) -> Vec<u8> {
    let (u, v) = (digest.output_len(), digest.block_len());
    let repeat = |s: &[u8]| -> Vec<u8> {
        let n = v * s.len().div_ceil(v);
        s.iter().copied().cycle().take(n).collect()
    };
    let mut i = repeat(salt);
    i.extend(repeat(password));
    let d = vec![id; v];
    let mut out = Vec::with_capacity(len);
    loop {
        let mut context = digest::Context::new(digest);
        context.update(&d);
        context.update(&i);
        let mut a = context.finish();
        for _ in 1..rounds {
            a = digest::digest(digest, a.as_ref());
        }
        let a = a.as_ref();
        let take = (len - out.len()).min(u);
        out.extend_from_slice(&a[..take]);
        if out.len() == len {
            return out;
        }
        // I_j = (I_j + B + 1) mod 2^v for each v-byte block of I, B being A repeated.
        for block in i.chunks_exact_mut(v) {
            let mut carry = 1u16;
            for k in (0..v).rev() {
                let sum = u16::from(block[k]) + u16::from(a[k % u]) + carry;
                block[k] = sum as u8; // the low byte; the high one is the carry
                carry = sum >> 8;
            }
        }
    }
}

/// `ciphertext` decrypted under the `AlgorithmIdentifier` contents `algorithm`.
fn decrypt(algorithm: &[u8], ciphertext: &[u8], password: &str) -> Result<Vec<u8>, Failure> {
    let (oid, params) = expect(algorithm, OID).ok_or_else(|| malformed("algorithm"))?;
    let (params, _) = expect(params, SEQUENCE).ok_or_else(|| malformed("parameters"))?;
    if oid == PBES2 {
        return pbes2(params, ciphertext, password);
    }
    let (salt, rest) = expect(params, OCTET_STRING).ok_or_else(|| malformed("salt"))?;
    let (rounds, _) = expect(rest, INTEGER).ok_or_else(|| malformed("iterations"))?;
    let rounds = iterations(rounds)?;
    let password = bmp(password);
    let sha1 = &digest::SHA1_FOR_LEGACY_USE_ONLY;
    let key_len = match oid {
        PBE_SHA1_3DES => 24,
        PBE_SHA1_RC2_128 => 16,
        PBE_SHA1_RC2_40 => 5,
        _ => return Err(unreadable("an unsupported encryption algorithm")),
    };
    let key = kdf(sha1, &password, salt, 1, rounds, key_len);
    let iv = kdf(sha1, &password, salt, 2, rounds, 8);
    if oid == PBE_SHA1_3DES {
        cbc_decrypt(cipher::<des::TdesEde3>(&key)?, &iv, ciphertext)
    } else {
        cbc_decrypt(
            rc2::Rc2::new_with_eff_key_len(&key, key_len * 8),
            &iv,
            ciphertext,
        )
    }
}

/// PBES2 (RFC 8018, section 6.2) with PBKDF2; the password's UTF-8 bytes, as OpenSSL does.
fn pbes2(params: &[u8], ciphertext: &[u8], password: &str) -> Result<Vec<u8>, Failure> {
    let (kdf, rest) = expect(params, SEQUENCE).ok_or_else(|| malformed("PBES2 kdf"))?;
    let (scheme, _) = expect(rest, SEQUENCE).ok_or_else(|| malformed("PBES2 scheme"))?;
    let (kdf_oid, rest) = expect(kdf, OID).ok_or_else(|| malformed("kdf"))?;
    if kdf_oid != PBKDF2 {
        return Err(unreadable("a PBES2 key derivation other than PBKDF2"));
    }
    let (kdf_params, _) = expect(rest, SEQUENCE).ok_or_else(|| malformed("PBKDF2"))?;
    let (salt, rest) = expect(kdf_params, OCTET_STRING).ok_or_else(|| malformed("salt"))?;
    let (rounds, mut rest) = expect(rest, INTEGER).ok_or_else(|| malformed("iterations"))?;
    let rounds = iterations(rounds)?;
    let mut key_len = None;
    if let Some((value, after)) = expect(rest, INTEGER) {
        key_len = Some(count(value).ok_or_else(|| malformed("key length"))?);
        rest = after;
    }
    let prf = match expect(rest, SEQUENCE) {
        None => HMAC_SHA1, // DEFAULT hmacWithSHA1
        Some((prf, _)) => expect(prf, OID).ok_or_else(|| malformed("prf"))?.0,
    };
    let prf = match prf {
        HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
        HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
        HMAC_SHA384 => pbkdf2::PBKDF2_HMAC_SHA384,
        HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
        _ => return Err(unreadable("an unsupported PBKDF2 hash")),
    };
    let (cipher_oid, rest) = expect(scheme, OID).ok_or_else(|| malformed("cipher"))?;
    let (iv, _) = expect(rest, OCTET_STRING).ok_or_else(|| malformed("IV"))?;
    let size = match cipher_oid {
        AES_128_CBC => 16,
        AES_192_CBC | DES_EDE3_CBC => 24,
        AES_256_CBC => 32,
        _ => return Err(unreadable("an unsupported PBES2 cipher")),
    };
    if key_len.is_some_and(|n| n as usize != size) {
        return Err(unreadable(
            "a PBES2 key length that does not fit its cipher",
        ));
    }
    let mut key = vec![0; size];
    let rounds = std::num::NonZeroU32::new(rounds).ok_or_else(|| malformed("iterations"))?;
    pbkdf2::derive(prf, rounds, salt, password.as_bytes(), &mut key);
    match cipher_oid {
        AES_128_CBC => cbc_decrypt(cipher::<aes::Aes128>(&key)?, iv, ciphertext),
        AES_192_CBC => cbc_decrypt(cipher::<aes::Aes192>(&key)?, iv, ciphertext),
        AES_256_CBC => cbc_decrypt(cipher::<aes::Aes256>(&key)?, iv, ciphertext),
        _ => cbc_decrypt(cipher::<des::TdesEde3>(&key)?, iv, ciphertext),
    }
}

/// A block cipher under `key`.
fn cipher<C: KeyInit>(key: &[u8]) -> Result<C, Failure> {
    C::new_from_slice(key).map_err(|_| unreadable("a key of the wrong length"))
}

/// CBC decryption with PKCS#7 padding. A wrong password shows here as bad padding (when the
/// archive has no integrity check to say so first).
fn cbc_decrypt<C: BlockCipherDecrypt>(
    cipher: C,
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, Failure> {
    let decryptor = cbc::Decryptor::<C>::inner_iv_slice_init(cipher, iv)
        .map_err(|_| unreadable("an IV of the wrong length"))?;
    let mut buffer = ciphertext.to_vec();
    let len = (decryptor.decrypt_padded::<Pkcs7>(&mut buffer))
        .map_err(|_| unreadable("decryption failed (bad padding)"))?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_positive_and_small() {
        assert_eq!(count(&[0x00, 0x80]), Some(128));
        assert_eq!(count(&[0x08, 0x00]), Some(2048));
        assert_eq!(count(&[0x80]), None);
        assert_eq!(count(&[]), None);
        assert_eq!(count(&[1, 2, 3, 4, 5]), None);
        assert!(iterations(&[0]).is_err());
        assert_eq!(iterations(&[0x0f, 0x42, 0x40]), Ok(1_000_000));
        assert!(iterations(&[0x0f, 0x42, 0x41]).is_err());
    }

    #[test]
    fn bmp_ends_with_two_zeros() {
        assert_eq!(bmp(""), [0, 0]);
        assert_eq!(bmp("aé"), [0, b'a', 0, 0xe9, 0, 0]);
    }

    /// tests/data's PKCS#12 files, made by OpenSSL 3 (tests/data/make-pfx.sh).
    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        std::fs::read(path.join(name)).expect("read a PKCS#12 fixture")
    }

    /// Each encryption OpenSSL writes: the key, and the chain in order (the file lists the
    /// root and the intermediate before the leaf).
    #[test]
    fn openssl_files_give_the_key_and_the_chain_in_order() {
        for name in [
            "modern.pfx",
            "legacy.pfx",
            "mixed.pfx",
            "plain.pfx",
            "nomac.pfx",
        ] {
            let read = read(&fixture(name), "pw").unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let key_chain = read.unwrap_or_else(|| panic!("{name}: no key"));
            assert_eq!(key_chain.key.first(), Some(&SEQUENCE), "{name}");
            let names: Vec<_> = (key_chain.chain.iter())
                .map(|c| names(c).unwrap())
                .collect();
            assert_eq!(names.len(), 3, "{name}");
            assert!(contains(names[0].1, b"localhost"), "{name}");
            assert_eq!(names[0].0, names[1].1, "{name}: the leaf's issuer next");
            assert_eq!(names[1].0, names[2].1, "{name}: then the intermediate's");
            assert_eq!(names[2].0, names[2].1, "{name}: the root last");
        }
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_wrong_password_fails_the_integrity_check_or_the_decryption() {
        for name in ["modern.pfx", "legacy.pfx", "mixed.pfx", "plain.pfx"] {
            for wrong in ["", "PW", "pw "] {
                assert_eq!(
                    read(&fixture(name), wrong).err(),
                    Some(Failure::WrongPassword)
                );
            }
        }
        let failure = read(&fixture("nomac.pfx"), "PW").err();
        assert!(
            matches!(failure, Some(Failure::Unreadable(_))),
            "{failure:?}"
        );
    }

    /// Every shorter file, and every single-byte change, is refused or read without a
    /// panic.
    #[test]
    fn cut_or_altered_files_never_panic() {
        let pfx = fixture("plain.pfx");
        for len in 0..pfx.len() {
            assert!(read(&pfx[..len], "pw").is_err(), "{len}");
        }
        for at in 0..pfx.len() {
            let mut altered = pfx.clone();
            altered[at] ^= 0x41;
            let _ = read(&altered, "pw");
        }
    }

    #[test]
    fn garbage_is_unreadable_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x03\x02\x01\x03",
            b"\x30\x80\x00\x00",
        ] {
            assert!(
                matches!(read(bytes, "pw"), Err(Failure::Unreadable(_))),
                "{bytes:?}"
            );
        }
    }
}
