//! The verifier against tokens made here with ring and data-encoding: well-formed and valid,
//! expired, forged, tampered with, misshapen, oversized; two published test vectors; and
//! properties over arbitrary input.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const SECRET: &[u8] = b"a test secret of at least 32 bytes!";

/// The tests' "now": 2023-11-14T22:13:20Z.
const NOW_SECS: u64 = 1_700_000_000;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

fn jwt() -> Jwt {
    Jwt::hs256(SECRET).unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    BASE64URL_NOPAD.encode(bytes.as_ref())
}

/// A token with this header and these claims (JSON text, sent as is), signed with `secret`.
fn sign(secret: &[u8], header: &str, claims: &str) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signature = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(signature))
}

/// A token with the usual header and these claims, signed with the test secret.
fn token(claims: Value) -> String {
    sign(
        SECRET,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &claims.to_string(),
    )
}

/// A token with this header and a valid subject, signed with the test secret.
fn token_with_header(header: &str) -> String {
    sign(SECRET, header, r#"{"sub":"42"}"#)
}

fn verify(token: &str) -> Result<Claims, JwtError> {
    jwt().verify_at(token, now())
}

fn malformed(token: &str) -> &'static str {
    match verify(token) {
        Err(JwtError::Malformed(reason)) => reason,
        other => panic!("{token:?}: expected Malformed, got {other:?}"),
    }
}

/// The three parts of a token.
fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

// --- Valid tokens ---

#[test]
fn a_token_with_exp_and_groups_verifies() {
    let exp = NOW_SECS + 60;
    let claims = verify(&token(
        json!({"sub": "42", "exp": exp, "groups": ["admins", "ops"]}),
    ))
    .unwrap();
    assert_eq!(claims.subject, "42");
    assert_eq!(claims.expires, Some(UNIX_EPOCH + Duration::from_secs(exp)));
    assert_eq!(claims.not_before, None);
    assert_eq!(claims.groups, ["admins", "ops"]);
}

#[test]
fn a_token_without_exp_or_groups_verifies() {
    let claims = verify(&token(json!({"sub": "user-7"}))).unwrap();
    assert_eq!(claims.subject, "user-7");
    assert_eq!(claims.expires, None);
    assert!(claims.groups.is_empty());
    let claims = verify(&token(json!({"sub": "user-7", "groups": []}))).unwrap();
    assert!(claims.groups.is_empty());
}

#[test]
fn every_claim_stays_available() {
    let claims = verify(&token(json!({
        "sub": "42",
        "name": "Ada",
        "info": {"plan": "pro"},
        "iss": "https://app.example",
        "groups": ["a"],
    })))
    .unwrap();
    assert_eq!(claims.get("name"), Some(&json!("Ada")));
    assert_eq!(claims.get("info"), Some(&json!({"plan": "pro"})));
    assert_eq!(claims.get("iss"), Some(&json!("https://app.example")));
    assert_eq!(claims.get("sub"), Some(&json!("42")));
    assert_eq!(claims.get("groups"), Some(&json!(["a"])));
    assert_eq!(claims.get("absent"), None);
    assert_eq!(claims.raw.len(), 5);
}

#[test]
fn verify_uses_the_current_time() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(jwt()
        .verify(&token(json!({"sub": "42", "exp": now + 3600})))
        .is_ok());
    assert_eq!(
        jwt().verify(&token(json!({"sub": "42", "exp": now - 3600}))),
        Err(JwtError::Expired)
    );
}

#[test]
fn the_typ_may_be_jwt_in_any_case_or_absent() {
    for header in [
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"typ":"jwt","alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"application/jwt"}"#,
        r#"{"alg":"HS256","typ":"JWT","kid":"key-1"}"#,
        " {\r\n \"alg\" : \"HS256\" } ",
    ] {
        assert!(verify(&token_with_header(header)).is_ok(), "{header}");
    }
}

/// jwt.io's example token (secret `your-256-bit-secret`): another implementation's output.
#[test]
fn the_jwt_io_example_verifies() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                 eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
                 SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let claims = Jwt::hs256("your-256-bit-secret")
        .unwrap()
        .verify_at(token, now())
        .unwrap();
    assert_eq!(claims.subject, "1234567890");
    assert_eq!(claims.get("name"), Some(&json!("John Doe")));
}

/// RFC 7515 appendix A.1 (its header has CRLFs and `typ` first): the signature verifies
/// under the RFC's key, and the claims then fail for want of a `sub`, which is checked before
/// their `exp` (2011) is.
#[test]
fn the_rfc_7515_example_passes_the_signature() {
    let key = BASE64URL_NOPAD
        .decode(
            b"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
        )
        .unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                 eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
                 dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let jwt = Jwt::hs256(key).unwrap();
    assert_eq!(jwt.verify_at(token, now()), Err(JwtError::MissingSubject));
    assert_eq!(
        Jwt::hs256(SECRET).unwrap().verify_at(token, now()),
        Err(JwtError::BadSignature)
    );
}

// --- Time ---

#[test]
fn a_token_expires_at_its_exp() {
    let at = |exp: u64| verify(&token(json!({"sub": "42", "exp": exp})));
    assert!(at(NOW_SECS + 1).is_ok());
    assert_eq!(at(NOW_SECS), Err(JwtError::Expired));
    assert_eq!(at(NOW_SECS - 1), Err(JwtError::Expired));
    assert_eq!(at(0), Err(JwtError::Expired));
}

#[test]
fn exp_may_be_fractional_or_before_the_epoch() {
    let at = |exp: Value| verify(&token(json!({"sub": "42", "exp": exp})));
    let now = NOW_SECS as f64;
    assert!(at(json!(now + 0.5)).is_ok());
    assert_eq!(at(json!(now - 0.5)), Err(JwtError::Expired));
    assert_eq!(at(json!(-1)), Err(JwtError::Expired));
    assert_eq!(at(json!(-1.5)), Err(JwtError::Expired));
    let claims = at(json!(now + 0.5)).unwrap();
    assert_eq!(
        claims.expires,
        Some(UNIX_EPOCH + Duration::from_millis(NOW_SECS * 1000 + 500))
    );
}

#[test]
fn a_token_is_not_valid_before_its_nbf() {
    let at = |nbf: u64| verify(&token(json!({"sub": "42", "nbf": nbf})));
    assert_eq!(at(NOW_SECS + 1), Err(JwtError::NotYetValid));
    assert!(at(NOW_SECS).is_ok());
    assert!(at(NOW_SECS - 1).is_ok());
    let claims = at(NOW_SECS - 1).unwrap();
    assert_eq!(
        claims.not_before,
        Some(UNIX_EPOCH + Duration::from_secs(NOW_SECS - 1))
    );
}

#[test]
fn leeway_stretches_exp_and_nbf() {
    let expired = token(json!({"sub": "42", "exp": NOW_SECS - 10}));
    let early = token(json!({"sub": "42", "nbf": NOW_SECS + 10}));
    let lenient = jwt().leeway(Duration::from_secs(30));
    assert!(lenient.verify_at(&expired, now()).is_ok());
    assert!(lenient.verify_at(&early, now()).is_ok());
    let strict = jwt().leeway(Duration::from_secs(5));
    assert_eq!(strict.verify_at(&expired, now()), Err(JwtError::Expired));
    assert_eq!(strict.verify_at(&early, now()), Err(JwtError::NotYetValid));
    // Exactly at the leeway's end: expired; exactly at its start: valid.
    let edge = jwt().leeway(Duration::from_secs(10));
    assert_eq!(edge.verify_at(&expired, now()), Err(JwtError::Expired));
    assert!(edge.verify_at(&early, now()).is_ok());
}

#[test]
fn huge_leeway_and_far_times_do_not_overflow() {
    let huge = jwt().leeway(Duration::MAX);
    assert!(huge
        .verify_at(
            &token(json!({"sub": "42", "exp": 1, "nbf": i64::MAX / 2})),
            now()
        )
        .is_ok());
    let far_exp = token(json!({"sub": "42", "exp": i64::MAX / 4}));
    assert!(verify(&far_exp).is_ok());
}

#[test]
fn exp_and_nbf_beyond_system_time_are_malformed() {
    for claims in [
        json!({"sub": "42", "exp": u64::MAX}),
        json!({"sub": "42", "exp": 1e300}),
        json!({"sub": "42", "exp": -1e300}),
        json!({"sub": "42", "nbf": u64::MAX}),
        json!({"sub": "42", "nbf": 1e300}),
    ] {
        let reason = malformed(&token(claims.clone()));
        assert!(reason.ends_with("is out of range"), "{claims}: {reason}");
    }
    // The earliest whole second SystemTime holds, on the platforms this runs on.
    assert_eq!(
        verify(&token(json!({"sub": "42", "exp": i64::MIN}))),
        Err(JwtError::Expired)
    );
}

#[test]
fn exp_and_nbf_must_be_numbers() {
    for (claims, reason) in [
        (
            json!({"sub": "42", "exp": "1800000000"}),
            "exp is not a number",
        ),
        (json!({"sub": "42", "exp": null}), "exp is not a number"),
        (json!({"sub": "42", "exp": [1]}), "exp is not a number"),
        (json!({"sub": "42", "nbf": true}), "nbf is not a number"),
        (json!({"sub": "42", "nbf": {}}), "nbf is not a number"),
    ] {
        assert_eq!(malformed(&token(claims.clone())), reason, "{claims}");
    }
}

// --- Forged and tampered tokens ---

#[test]
fn a_token_signed_with_another_secret_is_refused() {
    let forged = sign(b"another secret", r#"{"alg":"HS256"}"#, r#"{"sub":"42"}"#);
    assert_eq!(verify(&forged), Err(JwtError::BadSignature));
    let prefix = sign(
        &SECRET[..SECRET.len() - 1],
        r#"{"alg":"HS256"}"#,
        r#"{"sub":"42"}"#,
    );
    assert_eq!(verify(&prefix), Err(JwtError::BadSignature));
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    for alg in [
        "none", "None", "NONE", "HS512", "HS384", "RS256", "ES256", "hs256", "HS256 ", "",
    ] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        // Signed with the secret all the same: the algorithm is refused before the signature.
        let signed = token_with_header(&header);
        assert_eq!(
            verify(&signed),
            Err(JwtError::UnsupportedAlgorithm(alg.into())),
            "{alg}"
        );
        // The classic alg:none forgery: an empty signature.
        let unsigned = format!("{}.{}.", b64(&header), b64(r#"{"sub":"42"}"#));
        assert_eq!(
            verify(&unsigned),
            Err(JwtError::UnsupportedAlgorithm(alg.into())),
            "{alg}"
        );
    }
}

#[test]
fn a_missing_or_odd_alg_is_malformed() {
    for (header, reason) in [
        (r#"{"typ":"JWT"}"#, "the header has no alg"),
        (r#"{}"#, "the header has no alg"),
        (r#"{"alg":null}"#, "the header's alg is not a string"),
        (r#"{"alg":256}"#, "the header's alg is not a string"),
        (r#"{"alg":["HS256"]}"#, "the header's alg is not a string"),
    ] {
        assert_eq!(malformed(&token_with_header(header)), reason, "{header}");
    }
}

#[test]
fn a_long_alg_is_cut_short_in_the_error() {
    let alg = "X".repeat(1000);
    let err = verify(&token_with_header(&format!(r#"{{"alg":"{alg}"}}"#))).unwrap_err();
    assert_eq!(err, JwtError::UnsupportedAlgorithm("X".repeat(32)));
    assert!(err.to_string().len() < 100, "{err}");
}

#[test]
fn another_typ_or_a_crit_header_is_malformed() {
    for (header, reason) in [
        (
            r#"{"alg":"HS256","typ":"JWS"}"#,
            "the header's typ is not JWT",
        ),
        (
            r#"{"alg":"HS256","typ":"at+jwt"}"#,
            "the header's typ is not JWT",
        ),
        (r#"{"alg":"HS256","typ":""}"#, "the header's typ is not JWT"),
        (r#"{"alg":"HS256","typ":1}"#, "the header's typ is not JWT"),
        (
            r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
            "the header has crit extensions, which are not supported",
        ),
    ] {
        assert_eq!(malformed(&token_with_header(header)), reason, "{header}");
    }
}

#[test]
fn a_header_changed_after_signing_is_refused() {
    let original = parts(&token(json!({"sub": "42"})));
    // The algorithm swapped, the signature kept: refused for the algorithm.
    let swapped = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"HS512","typ":"JWT"}"#),
        original[1],
        original[2]
    );
    assert_eq!(
        verify(&swapped),
        Err(JwtError::UnsupportedAlgorithm("HS512".into()))
    );
    // Still HS256, but not the header that was signed: refused for the signature.
    for header in [
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT","kid":"x"}"#,
    ] {
        let changed = format!("{}.{}.{}", b64(header), original[1], original[2]);
        assert_eq!(verify(&changed), Err(JwtError::BadSignature), "{header}");
    }
}

#[test]
fn claims_changed_after_signing_are_refused() {
    let original = parts(&token(json!({"sub": "42", "exp": NOW_SECS + 60})));
    for claims in [
        json!({"sub": "1", "exp": NOW_SECS + 60}),
        json!({"sub": "42", "exp": NOW_SECS + 6000}),
        json!({"sub": "42"}),
        json!({"sub": "42", "exp": NOW_SECS + 60, "groups": ["admins"]}),
    ] {
        let changed = format!(
            "{}.{}.{}",
            original[0],
            b64(claims.to_string()),
            original[2]
        );
        assert_eq!(verify(&changed), Err(JwtError::BadSignature), "{claims}");
    }
    // Signature or claims swapped between two valid tokens.
    let other = parts(&token(json!({"sub": "43"})));
    let mixed = format!("{}.{}.{}", original[0], other[1], original[2]);
    assert_eq!(verify(&mixed), Err(JwtError::BadSignature));
}

#[test]
fn a_truncated_or_lengthened_signature_is_refused() {
    let [header, claims, signature]: [String; 3] =
        parts(&token(json!({"sub": "42"}))).try_into().unwrap();
    let tag = BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap();
    let longer = [tag.as_slice(), &[0u8][..]].concat();
    for bad in [&tag[..31], &tag[..16], &[][..], &longer[..]] {
        let token = format!("{header}.{claims}.{}", b64(bad));
        assert_eq!(verify(&token), Err(JwtError::BadSignature), "{}", bad.len());
    }
}

// --- Malformed tokens ---

#[test]
fn a_token_needs_exactly_three_parts() {
    let valid = token(json!({"sub": "42"}));
    let [header, claims, signature]: [String; 3] = parts(&valid).try_into().unwrap();
    for token in [
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        header.clone(),
        format!("{header}.{claims}"),
        format!("{header}.{claims}.{signature}."),
        format!("{header}.{claims}.{signature}.{signature}"),
        format!("{header}.{claims}.{claims}.{signature}"),
        format!("{header}..{claims}.{signature}"),
        format!(".{header}.{claims}.{signature}"),
    ] {
        // "..", say, is three empty parts: malformed for its empty header instead.
        let reason = malformed(&token);
        assert!(
            reason == NOT_THREE_PARTS
                || reason == "the header is not base64url"
                || reason == "the header is not a JSON object",
            "{token:?}: {reason}"
        );
    }
    assert_eq!(malformed(&format!("{header}.{claims}")), NOT_THREE_PARTS);
    assert_eq!(
        malformed(&format!("{header}.{claims}.{signature}.{signature}")),
        NOT_THREE_PARTS
    );
    assert_eq!(malformed(&header), NOT_THREE_PARTS);
}

#[test]
fn bad_base64url_is_malformed() {
    let [header, claims, signature]: [String; 3] =
        parts(&token(json!({"sub": "42"}))).try_into().unwrap();
    let spoil = |part: &str, with: &str| format!("{with}{}", &part[with.len()..]);
    for bad in ["+", "/", "!", " ", "\u{e9}", "%", "*"] {
        assert_eq!(
            malformed(&format!("{}.{claims}.{signature}", spoil(&header, bad))),
            "the header is not base64url"
        );
        assert_eq!(
            malformed(&format!("{header}.{claims}.{}", spoil(&signature, bad))),
            "the signature is not base64url"
        );
    }
    // A bad payload is only decoded after the signature, which no longer matches.
    assert_eq!(
        verify(&format!("{header}.{}.{signature}", spoil(&claims, "+"))),
        Err(JwtError::BadSignature)
    );
    // One character too few or many for whole bytes.
    assert_eq!(
        malformed(&format!("{header}A.{claims}.{signature}")),
        "the header is not base64url"
    );
    // Standard base64 instead of base64url.
    let standard =
        data_encoding::BASE64_NOPAD.encode(&BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap());
    if standard != signature {
        assert_eq!(
            malformed(&format!("{header}.{claims}.{standard}")),
            "the signature is not base64url"
        );
    }
}

#[test]
fn padding_is_malformed() {
    let [header, claims, signature]: [String; 3] =
        parts(&token(json!({"sub": "42"}))).try_into().unwrap();
    // 32 bytes are 43 characters, so padded base64url would add one `=`.
    assert_eq!(signature.len(), 43);
    for padded in [format!("{signature}="), format!("{signature}==")] {
        assert_eq!(
            malformed(&format!("{header}.{claims}.{padded}")),
            "the signature is not base64url"
        );
    }
    assert_eq!(
        malformed(&format!("{header}==.{claims}.{signature}")),
        "the header is not base64url"
    );
    // Padded parts signed as they are: the signature matches, the padding is still refused.
    let padded = data_encoding::BASE64URL;
    let header = padded.encode(br#"{"alg":"HS256","typ":"JWT" }"#);
    let claims = padded.encode(br#"{"sub":"420"}"#);
    assert!(header.ends_with('=') && claims.ends_with("=="));
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    let sign = |signing_input: String| {
        let tag = hmac::sign(&key, signing_input.as_bytes());
        format!("{signing_input}.{}", b64(tag))
    };
    let plain_header = b64(r#"{"alg":"HS256"}"#);
    assert_eq!(
        malformed(&sign(format!("{plain_header}.{claims}"))),
        "the claims are not base64url"
    );
    assert_eq!(
        malformed(&sign(format!("{header}.{}", b64(r#"{"sub":"42"}"#)))),
        "the header is not base64url"
    );
}

/// A signature of 43 characters has 2 spare bits in its last one; a decoder that ignored
/// them would accept four spellings of each signature.
#[test]
fn non_canonical_trailing_bits_are_malformed() {
    const SYMBOLS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let [header, claims, signature]: [String; 3] =
        parts(&token(json!({"sub": "42"}))).try_into().unwrap();
    let (head, last) = signature.split_at(42);
    let index = SYMBOLS
        .iter()
        .position(|&c| c == last.as_bytes()[0])
        .unwrap();
    assert_eq!(
        index & 0b11,
        0,
        "a canonical last character has no trailing bits"
    );
    for spare in 1..4 {
        let respelled = format!("{head}{}", SYMBOLS[index | spare] as char);
        assert_eq!(
            malformed(&format!("{header}.{claims}.{respelled}")),
            "the signature is not base64url"
        );
    }
}

#[test]
fn a_header_that_is_not_a_json_object_is_malformed() {
    for header in [
        "",
        "not json",
        r#"["alg","HS256"]"#,
        r#""HS256""#,
        "null",
        r#"{"alg":"HS256""#,
        r#"{"alg":"HS256"} trailing"#,
        "{\"alg\":\"HS256\",\"x\":\"\u{0}\"}",
    ] {
        assert_eq!(
            malformed(&token_with_header(header)),
            "the header is not a JSON object",
            "{header:?}"
        );
    }
    // Not UTF-8.
    let signing_input = format!("{}.{}", b64(b"{\"alg\":\"\xff\"}"), b64(r#"{"sub":"42"}"#));
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, SECRET),
        signing_input.as_bytes(),
    );
    assert_eq!(
        malformed(&format!("{signing_input}.{}", b64(tag))),
        "the header is not a JSON object"
    );
}

#[test]
fn claims_that_are_not_a_json_object_are_malformed() {
    for claims in [
        "",
        "not json",
        r#"["sub"]"#,
        r#""42""#,
        "42",
        "null",
        r#"{"sub":"42""#,
        r#"{"sub":"42"}x"#,
    ] {
        let token = sign(SECRET, r#"{"alg":"HS256"}"#, claims);
        assert_eq!(
            malformed(&token),
            "the claims are not a JSON object",
            "{claims:?}"
        );
    }
}

#[test]
fn the_subject_is_required_and_a_non_empty_string() {
    assert_eq!(verify(&token(json!({}))), Err(JwtError::MissingSubject));
    assert_eq!(
        verify(&token(json!({"name": "Ada", "exp": NOW_SECS + 60}))),
        Err(JwtError::MissingSubject)
    );
    assert_eq!(
        verify(&token(json!({"sub": ""}))),
        Err(JwtError::MissingSubject)
    );
    for sub in [
        json!(42),
        json!(null),
        json!(true),
        json!(["42"]),
        json!({"id": "42"}),
    ] {
        assert_eq!(
            malformed(&token(json!({"sub": sub}))),
            "sub is not a string",
            "{sub}"
        );
    }
}

#[test]
fn groups_must_be_a_list_of_strings() {
    for groups in [
        json!("admins"),
        json!(null),
        json!({"admins": true}),
        json!(1),
        json!(["admins", 1]),
        json!([null]),
        json!([["admins"]]),
    ] {
        assert_eq!(
            malformed(&token(json!({"sub": "42", "groups": groups}))),
            "groups is not a list of strings",
            "{groups}"
        );
    }
}

#[test]
fn a_token_over_8_kib_is_malformed_before_decoding() {
    // The longest correctly signed token that fits verifies; the next longer one does not.
    let padded = |n: usize| token(json!({"sub": "42", "pad": "x".repeat(n)}));
    // Its length grows with the padding: the largest padding that fits, by bisection.
    let (mut n, mut too_long) = (0, Jwt::MAX_TOKEN_LEN);
    while n + 1 < too_long {
        let middle = (n + too_long) / 2;
        if padded(middle).len() <= Jwt::MAX_TOKEN_LEN {
            n = middle;
        } else {
            too_long = middle;
        }
    }
    let fits = padded(n);
    assert!(fits.len() <= Jwt::MAX_TOKEN_LEN && fits.len() > Jwt::MAX_TOKEN_LEN - 4);
    assert!(verify(&fits).is_ok());
    let over = padded(n + 1);
    assert!(over.len() > Jwt::MAX_TOKEN_LEN);
    assert_eq!(malformed(&over), "the token is longer than 8 KiB");
    // Whatever the content: checked before the parts are even split.
    assert_eq!(
        malformed(&"!".repeat(8193)),
        "the token is longer than 8 KiB"
    );
    assert_eq!(
        malformed(&"A".repeat(1 << 20)),
        "the token is longer than 8 KiB"
    );
}

// --- The verifier itself ---

#[test]
fn an_empty_secret_is_invalid_config() {
    assert!(matches!(Jwt::hs256(""), Err(Error::InvalidConfig(_))));
    assert!(matches!(Jwt::hs256([]), Err(Error::InvalidConfig(_))));
    assert!(Jwt::hs256([0]).is_ok());
    assert!(Jwt::hs256(String::from("s")).is_ok());
    assert!(Jwt::hs256(vec![1u8; 100]).is_ok());
}

#[test]
fn debug_shows_no_secret() {
    let shown = format!("{:?}", jwt().leeway(Duration::from_secs(2)));
    assert_eq!(shown, r#"Jwt { algorithm: "HS256", leeway: 2s, .. }"#);
    assert!(!shown.contains("test secret"));
}

#[test]
fn clones_share_the_key_and_keep_the_leeway() {
    fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    let lenient = jwt().leeway(Duration::from_secs(30));
    send_sync(&lenient);
    let clone = lenient.clone();
    assert!(Arc::ptr_eq(&clone.key, &lenient.key));
    let expired = token(json!({"sub": "42", "exp": NOW_SECS - 10}));
    assert!(clone.verify_at(&expired, now()).is_ok());
}

#[test]
fn errors_read_well_and_are_std_errors() {
    let cases = [
        (
            JwtError::Malformed("the token is longer than 8 KiB"),
            "malformed token: the token is longer than 8 KiB",
        ),
        (
            JwtError::UnsupportedAlgorithm("none".into()),
            r#"unsupported token algorithm "none" (only HS256)"#,
        ),
        (JwtError::BadSignature, "bad token signature"),
        (JwtError::Expired, "the token has expired"),
        (JwtError::NotYetValid, "the token is not valid yet (nbf)"),
        (JwtError::MissingSubject, "the token has no subject (sub)"),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
        assert!(boxed.source().is_none());
    }
    // A client's alg is shown escaped, so it cannot forge log lines.
    let alg = "x\n[ERROR] forged";
    let err = verify(&token_with_header(&json!({ "alg": alg }).to_string())).unwrap_err();
    assert!(!err.to_string().contains('\n'), "{err}");
}

// --- Properties ---

/// Any JSON value, nested a little (for claims of the wrong type).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-z]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,3}", inner), 0..3)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Claims a server might be sent: the known ones well-typed, or not, or missing.
fn claims() -> impl Strategy<Value = Map<String, Value>> {
    let sub = prop_oneof![
        3 => any::<String>().prop_map(Value::String),
        1 => json_value(),
    ];
    let time = || {
        prop_oneof![
            3 => (0..2 * NOW_SECS).prop_map(|n| json!(n)),
            1 => json_value(),
        ]
    };
    let groups = prop_oneof![
        3 => prop::collection::vec(any::<String>(), 0..4).prop_map(|g| json!(g)),
        1 => json_value(),
    ];
    (
        prop::option::of(sub),
        prop::option::of(time()),
        prop::option::of(time()),
        prop::option::of(groups),
        prop::collection::vec(("[a-z]{1,6}", json_value()), 0..3),
    )
        .prop_map(|(sub, exp, nbf, groups, extra)| {
            let mut claims: Map<String, Value> = extra.into_iter().collect();
            for (name, value) in [("sub", sub), ("exp", exp), ("nbf", nbf), ("groups", groups)] {
                match value {
                    Some(value) => claims.insert(name.into(), value),
                    None => claims.remove(name),
                };
            }
            claims
        })
}

/// What `verify` should say of correctly signed `claims`, worked out the plain way.
fn expected(claims: &Map<String, Value>) -> Result<(), ()> {
    /// A number as seconds, if `SystemTime` holds it (64-bit signed seconds here).
    fn seconds(value: &Value) -> Option<f64> {
        const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
        if let Some(n) = value.as_u64() {
            return (n <= i64::MAX as u64).then_some(n as f64);
        }
        if let Some(n) = value.as_i64() {
            return Some(n as f64);
        }
        value.as_f64().filter(|n| n.abs() < LIMIT)
    }
    let sub_ok = matches!(claims.get("sub"), Some(Value::String(s)) if !s.is_empty());
    let now = NOW_SECS as f64;
    let time_ok = |name: &str, valid: &dyn Fn(f64) -> bool| match claims.get(name) {
        None => true,
        Some(value) => seconds(value).is_some_and(valid),
    };
    let groups_ok = match claims.get("groups") {
        None => true,
        Some(Value::Array(groups)) => groups.iter().all(Value::is_string),
        Some(_) => false,
    };
    let valid = sub_ok
        && time_ok("exp", &|exp| exp > now)
        && time_ok("nbf", &|nbf| nbf <= now)
        && groups_ok;
    if valid {
        Ok(())
    } else {
        Err(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings_never_verify(input in any::<String>()) {
        prop_assert!(verify(&input).is_err());
    }

    #[test]
    fn token_shaped_strings_never_verify(
        input in "[A-Za-z0-9_=+/-]{0,60}(\\.[A-Za-z0-9_=+/-]{0,60}){0,4}",
    ) {
        prop_assert!(verify(&input).is_err());
    }

    /// Arbitrary signed headers: only `{"alg":"HS256"}` (with an optional JWT `typ`) passes.
    #[test]
    fn only_hs256_headers_pass(header in prop::collection::vec(
        prop_oneof![Just("alg".to_owned()), Just("typ".to_owned()), "[a-z]{1,4}"]
            .prop_flat_map(|name| (Just(name), json_value())),
        0..4,
    )) {
        let header: Map<String, Value> = header.into_iter().collect();
        let result = verify(&token_with_header(&Value::Object(header.clone()).to_string()));
        let should_pass = header.get("alg") == Some(&json!("HS256"))
            && header.get("typ").is_none_or(|typ| {
                typ.as_str().is_some_and(|t| {
                    t.eq_ignore_ascii_case("jwt") || t.eq_ignore_ascii_case("application/jwt")
                })
            })
            && !header.contains_key("crit");
        prop_assert_eq!(result.is_ok(), should_pass, "{:?}: {:?}", header, result);
    }

    /// Correctly signed claims verify exactly when they are valid, and say what they said;
    /// signed with any other secret they never verify.
    #[test]
    fn signed_claims_verify_exactly_when_valid(
        claims in claims(),
        other_secret in prop::collection::vec(any::<u8>(), 1..48),
    ) {
        let signed = token(Value::Object(claims.clone()));
        let result = verify(&signed);
        prop_assert_eq!(result.is_ok(), expected(&claims).is_ok(), "{:?}: {:?}", claims, result);
        if let Ok(verified) = result {
            prop_assert_eq!(Some(&Value::String(verified.subject.clone())), claims.get("sub"));
            // As sent: the JSON text read back (floats may not survive the round trip whole).
            let sent: Map<String, Value> =
                serde_json::from_str(&Value::Object(claims.clone()).to_string()).unwrap();
            prop_assert_eq!(&verified.raw, &sent);
        }
        prop_assume!(other_secret != SECRET);
        let forged = sign(&other_secret, r#"{"alg":"HS256"}"#, &Value::Object(claims).to_string());
        prop_assert_eq!(verify(&forged).err(), Some(JwtError::BadSignature));
    }

    /// Changing any one character of a valid token makes it fail.
    #[test]
    fn any_changed_character_fails(
        sub in "[a-zA-Z0-9]{1,20}",
        index in any::<prop::sample::Index>(),
        replacement in any::<char>(),
    ) {
        let valid = token(json!({"sub": sub, "exp": NOW_SECS + 60}));
        prop_assert!(verify(&valid).is_ok());
        let mut chars: Vec<char> = valid.chars().collect();
        let at = index.index(chars.len());
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let changed: String = chars.into_iter().collect();
        prop_assert!(verify(&changed).is_err(), "{}", changed);
    }
}
