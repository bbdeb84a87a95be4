//! [`ApiToken`]: a bearer token guarding control routes (`Authorization: Bearer <token>`).
//!
//! The token is never compared byte by byte. At construction it is hashed with HMAC-SHA256
//! under a random key made for this token, and only that tag is kept; a request's token is
//! checked with ring's `hmac::verify`, which compares tags in constant time. A wrong token
//! therefore costs the same time whatever it shares with the right one, and its length
//! says nothing about the right one's (both sides are 32-byte tags). The random key is the
//! "double HMAC" pattern: even a comparison that leaked timing would leak it about tags an
//! attacker cannot compute.

use std::fmt;

use ring::hmac;

use super::{WebEvent, WebResponse};
use crate::auth::bearer_token;
use crate::{Error, Result};

/// The body of the `401` a request without the right token gets.
const UNAUTHORIZED: &str = "missing or wrong API token";

/// A bearer token guarding control routes: requests must carry `Authorization: Bearer <token>`.
///
/// [`check`](ApiToken::check) answers a request without the right token with `401` and
/// `WWW-Authenticate: Bearer`; [`guard`](ApiToken::guard) wraps a route's handler so that
/// only requests with the right token reach it. The scheme is case-insensitive (`bearer`
/// works), the token is compared in constant time, and nothing about the secret is kept
/// in memory except an HMAC tag of it (`Debug` shows no secret).
///
/// Cheap to clone, `Send + Sync`.
///
/// ```
/// use signalhub::http::{ApiToken, WebResponse};
/// use signalhub::Server;
///
/// # fn main() -> signalhub::Result<()> {
/// // In a real program the secret comes from the environment or a file, not the source.
/// let token = ApiToken::new("s3cret-t0ken")?;
/// let mut server = Server::new();
/// server.http_route("POST", "/admin", token.guard(|event| {
///     Ok(WebResponse::text(format!("hello, admin at {:?}", event.remote_addr)))
/// }))?;
/// // Or check by hand inside a handler that does more:
/// server.http_route("POST", "/reload", move |event| {
///     if let Err(refused) = token.check(event) {
///         return Ok(refused);
///     }
///     Ok(WebResponse::status(204))
/// })?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ApiToken {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl ApiToken {
    /// A token with this secret: one or more visible ASCII characters (`!` to `~`; no
    /// spaces, which a header could not carry at its ends anyway). Anything else, or an
    /// empty secret, is [`Error::InvalidConfig`] (whose text does not repeat the secret).
    pub fn new(secret: impl Into<String>) -> Result<ApiToken> {
        let secret = secret.into();
        if secret.is_empty() {
            return Err(Error::InvalidConfig("the API token is empty".into()));
        }
        if !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidConfig(
                "the API token must be visible ASCII characters, without spaces".into(),
            ));
        }
        let random = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &random).map_err(|_| {
            Error::Io(std::io::Error::other(
                "no random bytes for the API token's key",
            ))
        })?;
        let tag = hmac::sign(&key, secret.as_bytes());
        Ok(ApiToken { key, tag })
    }

    /// Whether the request carries `Authorization: Bearer <this token>` (the first
    /// `Authorization` header counts). The scheme is case-insensitive, spaces and tabs around
    /// the token are ignored, and the token is compared in constant time.
    pub fn allows(&self, event: &WebEvent) -> bool {
        let Some(token) = event.header("Authorization").and_then(bearer_token) else {
            return false;
        };
        hmac::verify(&self.key, token.as_bytes(), self.tag.as_ref()).is_ok()
    }

    /// `Ok(())` when the request [`allows`](ApiToken::allows) it, else the answer to give:
    /// `401` with `WWW-Authenticate: Bearer` and a short text body.
    pub fn check(&self, event: &WebEvent) -> std::result::Result<(), WebResponse> {
        if self.allows(event) {
            return Ok(());
        }
        log::debug!(
            "{} {} from {:?}: no valid API token",
            event.method,
            event.path,
            event.remote_addr
        );
        Err(WebResponse::text(UNAUTHORIZED)
            .with_status(401)
            .with_header("WWW-Authenticate", "Bearer"))
    }

    /// `handler`, run only for requests with the right token; the others get the `401` of
    /// [`check`](ApiToken::check). Give it to [`Server::http_route`](crate::Server::http_route).
    pub fn guard<F>(
        &self,
        handler: F,
    ) -> impl Fn(&WebEvent) -> Result<WebResponse> + Send + Sync + 'static
    where
        F: Fn(&WebEvent) -> Result<WebResponse> + Send + Sync + 'static,
    {
        let token = self.clone();
        move |event| match token.check(event) {
            Ok(()) => handler(event),
            Err(refused) => Ok(refused),
        }
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::WebData;
    use crate::Pairs;
    use crate::Signals;
    use std::time::SystemTime;

    const SECRET: &str = "s3cret-T0ken_with.punct~";

    fn event(authorization: &[&str]) -> WebEvent {
        let headers = authorization
            .iter()
            .map(|value| ("Authorization".to_owned(), (*value).to_owned()));
        WebEvent {
            method: "POST".into(),
            path: "/broadcast".into(),
            query: Pairs::default(),
            headers: headers.collect(),
            data: WebData::None,
            remote_addr: None,
            timestamp: SystemTime::now(),
            signals: Signals::default(),
        }
    }

    fn token() -> ApiToken {
        ApiToken::new(SECRET).unwrap()
    }

    #[test]
    fn the_right_token_is_allowed() {
        assert!(token().allows(&event(&[&format!("Bearer {SECRET}")])));
        assert_eq!(
            token().check(&event(&[&format!("Bearer {SECRET}")])),
            Ok(())
        );
    }

    #[test]
    fn a_wrong_token_is_refused() {
        let token = token();
        for wrong in [
            "Bearer wrong",
            "Bearer s3cret-T0ken_with.punct",   // a prefix
            "Bearer s3cret-T0ken_with.punct~~", // longer
            "Bearer S3CRET-T0KEN_WITH.PUNCT~",  // the token is case-sensitive
            "Bearer s3cret-T0ken_with punct~",
            "Bearer",
            "Bearer ",
            "",
        ] {
            assert!(!token.allows(&event(&[wrong])), "{wrong:?}");
        }
    }

    #[test]
    fn a_missing_header_is_refused() {
        assert!(!token().allows(&event(&[])));
    }

    #[test]
    fn another_scheme_is_refused() {
        let token = token();
        for value in [
            format!("Basic {SECRET}"),
            format!("Token {SECRET}"),
            format!("Bearer{SECRET}"),
            SECRET.to_owned(),
        ] {
            assert!(!token.allows(&event(&[&value])), "{value:?}");
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        let token = token();
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme} {SECRET}");
            assert!(token.allows(&event(&[&value])), "{value:?}");
        }
    }

    #[test]
    fn extra_spaces_and_tabs_around_the_token_are_ignored() {
        let token = token();
        for value in [
            format!("Bearer   {SECRET}"),
            format!("  Bearer {SECRET}  "),
            format!("Bearer\t{SECRET}\t"),
        ] {
            assert!(token.allows(&event(&[&value])), "{value:?}");
        }
    }

    #[test]
    fn only_the_first_authorization_header_counts() {
        let token = token();
        let right = format!("Bearer {SECRET}");
        assert!(token.allows(&event(&[&right, "Bearer wrong"])));
        assert!(!token.allows(&event(&["Bearer wrong", &right])));
    }

    #[test]
    fn a_refusal_is_401_with_www_authenticate_bearer() {
        let refused = token().check(&event(&["Bearer wrong"])).unwrap_err();
        let expected = WebResponse::text("missing or wrong API token")
            .with_status(401)
            .with_header("WWW-Authenticate", "Bearer");
        assert_eq!(refused, expected);
    }

    #[test]
    fn guard_runs_the_handler_only_with_the_right_token() {
        let guarded = token().guard(|_| Ok(WebResponse::text("ran")));
        let ran = guarded(&event(&[&format!("bearer {SECRET}")])).unwrap();
        assert_eq!(ran.body(), b"ran");
        let refused = guarded(&event(&[])).unwrap();
        assert_eq!(refused.status_code(), 401);
        assert_eq!(refused.body(), b"missing or wrong API token");
    }

    #[test]
    fn empty_or_unprintable_secrets_are_invalid_config() {
        for bad in ["", "has space", "tab\t", "new\nline", "caf\u{e9}", "\u{7f}"] {
            let err = ApiToken::new(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{bad:?}: {err:?}");
            if !bad.is_empty() {
                assert!(!err.to_string().contains(bad), "{err}");
            }
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", token());
        assert_eq!(shown, "ApiToken(..)");
    }

    #[test]
    fn clones_and_separate_tokens_agree_on_the_same_secret() {
        let (a, b) = (token(), token());
        let request = event(&[&format!("Bearer {SECRET}")]);
        assert!(a.clone().allows(&request) && b.allows(&request));
    }
}
