//! [`Jwt`]: an HS256 JSON Web Token verifier (RFC 7519, compact JWS of RFC 7515).
//!
//! The order of the checks is the point. The token's length is bounded before anything is
//! decoded. The header is read only to refuse what this verifier does not do: the algorithm
//! is never *chosen* from it (only HS256 is accepted, so `none`, `HS512`, `RS256`... are
//! refused, and an RSA public key can never be used as an HMAC secret). The signature is
//! checked with ring's `hmac::verify`, which compares tags in constant time, over the
//! token's first two parts as sent; the claims are decoded and parsed only after that, so an
//! attacker without the secret reaches no JSON parser but the header's. base64url is strict:
//! no padding, no `+` or `/`, no non-zero trailing bits, so a token has one spelling only.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE64URL_NOPAD;
use ring::hmac;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The algorithm's name in a token's header.
const HS256: &str = "HS256";

/// How many characters of an unsupported `alg` an error keeps (it comes from the client).
const ALG_SHOWN: usize = 32;

/// Why a token with the wrong number of parts is refused.
const NOT_THREE_PARTS: &str = "a token is three base64url parts separated by dots";

/// Verifies HS256 JSON Web Tokens signed with one secret, and hands back their [`Claims`].
///
/// A token is accepted when it is three base64url parts (no padding); its header says
/// `"alg":"HS256"` (and `"typ":"JWT"` in any case, if it has a `typ`); its signature is the HMAC-SHA256
/// of its first two parts under the secret; and its claims are a JSON object with a
/// non-empty string `sub`, an `exp` not reached yet and an `nbf` reached already (both
/// optional, both seconds since the Unix epoch, allowed [`leeway`](Jwt::leeway) either way,
/// none by default) and, if present, a list of strings `groups`. Anything else is a
/// [`JwtError`]. Tokens longer than [`MAX_TOKEN_LEN`](Jwt::MAX_TOKEN_LEN) are refused
/// before decoding.
///
/// Only the HMAC key is kept, not the secret, and `Debug` shows neither. Use a random
/// secret of 32 bytes or more (RFC 7518 asks for at least the hash's 256 bits); the secret
/// is all that stands between anyone and a token for any user.
///
/// Cheap to clone, `Send + Sync`.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// use data_encoding::BASE64URL_NOPAD;
/// use ring::hmac;
/// use signalhub::auth::{Jwt, JwtError};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In a real program the secret comes from the environment or a file, not the source.
/// let secret = b"a random secret of 32 bytes or more!";
/// let jwt = Jwt::hs256(secret)?.leeway(Duration::from_secs(5));
///
/// // The token an application server hands its client (any JWT library makes the same).
/// let in_an_hour = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
/// let header = BASE64URL_NOPAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
/// let claims = format!(r#"{{"sub":"42","exp":{in_an_hour},"groups":["admins"],"name":"Ada"}}"#);
/// let signing_input = format!("{header}.{}", BASE64URL_NOPAD.encode(claims.as_bytes()));
/// let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
/// let signature = hmac::sign(&key, signing_input.as_bytes());
/// let token = format!("{signing_input}.{}", BASE64URL_NOPAD.encode(signature.as_ref()));
///
/// let claims = jwt.verify(&token)?;
/// assert_eq!(claims.subject, "42");
/// assert_eq!(claims.groups, ["admins"]);
/// assert_eq!(claims.get("name"), Some(&"Ada".into()));
///
/// // Signed with another secret: refused.
/// let other = Jwt::hs256(b"another secret")?;
/// assert_eq!(other.verify(&token), Err(JwtError::BadSignature));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Jwt {
    key: Arc<hmac::Key>,
    leeway: Duration,
}

impl Jwt {
    /// The longest token accepted, in bytes (8 KiB): longer ones are
    /// [`JwtError::Malformed`] before anything is decoded.
    pub const MAX_TOKEN_LEN: usize = 8 * 1024;

    /// A verifier of HS256 tokens signed with `secret` (the raw bytes of the shared secret,
    /// not base64 of them). An empty secret is [`Error::InvalidConfig`].
    pub fn hs256(secret: impl AsRef<[u8]>) -> Result<Jwt> {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(Error::InvalidConfig("the JWT secret is empty".into()));
        }
        Ok(Jwt {
            key: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
            leeway: Duration::ZERO,
        })
    }

    /// This verifier, allowing `leeway` for clocks that disagree: a token stays valid until
    /// `leeway` after its `exp`, and becomes valid `leeway` before its `nbf`. None by default.
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Jwt {
        self.leeway = leeway;
        self
    }

    /// The claims of `token` if it is valid now (see [`Jwt`] for what valid means), else
    /// why not.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_at(token, SystemTime::now())
    }

    /// The claims of `token` if it is valid at `now`, else why not: [`verify`](Jwt::verify)
    /// with a clock of your choosing (for tests, or to check a token's validity at a
    /// given time).
    pub fn verify_at(&self, token: &str, now: SystemTime) -> Result<Claims, JwtError> {
        if token.len() > Jwt::MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("the token is longer than 8 KiB"));
        }
        let (signing_input, signature) = token
            .rsplit_once('.')
            .ok_or(JwtError::Malformed(NOT_THREE_PARTS))?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(JwtError::Malformed(NOT_THREE_PARTS))?;
        if payload.contains('.') {
            return Err(JwtError::Malformed(NOT_THREE_PARTS));
        }

        check_header(&decode(header, "the header is not base64url")?)?;
        let signature = decode(signature, "the signature is not base64url")?;
        hmac::verify(&self.key, signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;

        let claims = Claims::parse(&decode(payload, "the claims are not base64url")?)?;
        if let Some(expires) = claims.expires {
            // An `exp` so late that adding the leeway overflows is never reached.
            if expires
                .checked_add(self.leeway)
                .is_some_and(|end| now >= end)
            {
                return Err(JwtError::Expired);
            }
        }
        if let Some(not_before) = claims.not_before {
            // A `now` so late that adding the leeway overflows is past any `nbf`.
            if now
                .checked_add(self.leeway)
                .is_some_and(|now| now < not_before)
            {
                return Err(JwtError::NotYetValid);
            }
        }
        Ok(claims)
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field("algorithm", &HS256)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// One part of a token, decoded from strict base64url (no padding, canonical trailing bits).
fn decode(part: &str, malformed: &'static str) -> Result<Vec<u8>, JwtError> {
    BASE64URL_NOPAD
        .decode(part.as_bytes())
        .map_err(|_| JwtError::Malformed(malformed))
}

/// Refuses a header this verifier cannot honour: not a JSON object, an `alg` other than
/// HS256 (or none), a `typ` other than JWT, or any `crit` extension (RFC 7515 4.1.11: a
/// recipient must refuse extensions it does not understand, and this one understands none).
fn check_header(header: &[u8]) -> Result<(), JwtError> {
    let header: Map<String, Value> = serde_json::from_slice(header)
        .map_err(|_| JwtError::Malformed("the header is not a JSON object"))?;
    match header.get("alg") {
        Some(Value::String(alg)) if alg == HS256 => {}
        Some(Value::String(alg)) => {
            return Err(JwtError::UnsupportedAlgorithm(
                alg.chars().take(ALG_SHOWN).collect(),
            ))
        }
        Some(_) => return Err(JwtError::Malformed("the header's alg is not a string")),
        None => return Err(JwtError::Malformed("the header has no alg")),
    }
    match header.get("typ") {
        // RFC 7515 4.1.9: a `typ` without a slash means "application/" + it.
        Some(Value::String(typ))
            if typ.eq_ignore_ascii_case("JWT") || typ.eq_ignore_ascii_case("application/jwt") => {}
        None => {}
        Some(_) => return Err(JwtError::Malformed("the header's typ is not JWT")),
    }
    if header.contains_key("crit") {
        return Err(JwtError::Malformed(
            "the header has crit extensions, which are not supported",
        ));
    }
    Ok(())
}

/// The claims of a verified token.
///
/// The ones the server uses are parsed into fields; every claim, those included, stays in
/// [`raw`](Claims::raw) (read one with [`get`](Claims::get)), for `name`, `info`, `iss`,
/// `aud` or whatever else the application puts in its tokens.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Claims {
    /// `sub`: who the token is for (the user id); never empty.
    pub subject: String,
    /// `exp`: when the token expires, if it does.
    pub expires: Option<SystemTime>,
    /// `nbf`: when the token becomes valid, if it says.
    pub not_before: Option<SystemTime>,
    /// `groups`: the groups (or channels, or roles) the token grants; empty without one.
    pub groups: Vec<String>,
    /// Every claim of the token as sent, `sub`, `exp`, `nbf` and `groups` included.
    pub raw: Map<String, Value>,
}

impl Claims {
    /// The claim `name` as sent (`claims.get("name")`), if the token has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.raw.get(name)
    }

    /// The claims in a (verified) token's payload, checked for shape but not for time.
    fn parse(payload: &[u8]) -> Result<Claims, JwtError> {
        let raw: Map<String, Value> = serde_json::from_slice(payload)
            .map_err(|_| JwtError::Malformed("the claims are not a JSON object"))?;
        let subject = match raw.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            None | Some(Value::String(_)) => return Err(JwtError::MissingSubject),
            Some(_) => return Err(JwtError::Malformed("sub is not a string")),
        };
        let expires = raw
            .get("exp")
            .map(|exp| numeric_date(exp, "exp is not a number", "exp is out of range"))
            .transpose()?;
        let not_before = raw
            .get("nbf")
            .map(|nbf| numeric_date(nbf, "nbf is not a number", "nbf is out of range"))
            .transpose()?;
        let groups = match raw.get("groups") {
            None => Vec::new(),
            Some(Value::Array(groups)) => groups
                .iter()
                .map(|group| group.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(JwtError::Malformed("groups is not a list of strings"))?,
            Some(_) => return Err(JwtError::Malformed("groups is not a list of strings")),
        };
        Ok(Claims {
            subject,
            expires,
            not_before,
            groups,
            raw,
        })
    }
}

/// A NumericDate claim (RFC 7519: seconds since the Unix epoch, fractions allowed) as a
/// time; `Malformed` when it is not a number or beyond what `SystemTime` holds.
fn numeric_date(
    value: &Value,
    not_a_number: &'static str,
    out_of_range: &'static str,
) -> Result<SystemTime, JwtError> {
    let Value::Number(seconds) = value else {
        return Err(JwtError::Malformed(not_a_number));
    };
    let time = if let Some(after) = seconds.as_u64() {
        UNIX_EPOCH.checked_add(Duration::from_secs(after))
    } else if let Some(before) = seconds.as_i64() {
        UNIX_EPOCH.checked_sub(Duration::from_secs(before.unsigned_abs()))
    } else {
        seconds.as_f64().and_then(|seconds| {
            let span = Duration::try_from_secs_f64(seconds.abs()).ok()?;
            if seconds >= 0.0 {
                UNIX_EPOCH.checked_add(span)
            } else {
                UNIX_EPOCH.checked_sub(span)
            }
        })
    };
    time.ok_or(JwtError::Malformed(out_of_range))
}

/// Why a token was refused by [`Jwt::verify`].
///
/// Every one deserves a `401`; the text is for the log (at debug: clients can make as many
/// as they like). It never repeats the token nor its claims; only
/// [`UnsupportedAlgorithm`](JwtError::UnsupportedAlgorithm) carries something the client
/// sent, cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not a well-formed JWT, or a claim has the wrong type: the reason says
    /// which (too long, not three parts, not base64url, not JSON, `exp` not a number...).
    Malformed(&'static str),
    /// The header's `alg` is not `HS256`: the `alg` (its first 32 characters).
    UnsupportedAlgorithm(String),
    /// The signature is not the secret's HMAC of the token: forged, tampered with, or signed
    /// with another secret.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is still to come (beyond the leeway).
    NotYetValid,
    /// The claims have no `sub`, or an empty one.
    MissingSubject,
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(reason) => write!(f, "malformed token: {reason}"),
            JwtError::UnsupportedAlgorithm(alg) => {
                write!(f, "unsupported token algorithm {alg:?} (only HS256)")
            }
            JwtError::BadSignature => f.write_str("bad token signature"),
            JwtError::Expired => f.write_str("the token has expired"),
            JwtError::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            JwtError::MissingSubject => f.write_str("the token has no subject (sub)"),
        }
    }
}

impl std::error::Error for JwtError {}

#[cfg(test)]
mod tests;
