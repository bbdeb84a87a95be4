//! `make-token SECRET [GROUP...]`: an HS256 JSON Web Token for a server run with
//! `signalhub serve --jwt-secret-env`, subject `bench`, in these groups, valid for a day.
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use ring::hmac;

/// The token's text.
pub fn make_token(secret: &str, groups: &[String]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 24 * 3600;
    let header = BASE64URL_NOPAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "sub": "bench", "exp": exp, "groups": groups });
    let claims = BASE64URL_NOPAD.encode(claims.to_string().as_bytes());
    let signed = format!("{header}.{claims}");
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = BASE64URL_NOPAD.encode(hmac::sign(&key, signed.as_bytes()).as_ref());
    format!("{signed}.{signature}")
}
