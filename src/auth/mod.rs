//! Who may connect: the [`authorize`](crate::Server::authorize) hook's request and answers,
//! and [`Jwt`], a verifier of the HS256 JSON Web Tokens clients may present.
//!
//! The hook sees each WebSocket upgrade request ([`UpgradeRequest`]: path, query, headers
//! with cookies, peer address, offered subprotocols) before anything is answered, and
//! either accepts it ([`Accepted`]: a user id, first groups, data of your own) or refuses it
//! with an HTTP status ([`Refused`]) that the client gets instead of `101`.
//!
//! It runs on the new connection's own thread, never on the thread accepting connections,
//! so a hook that asks a database delays only its own client; at most
//! [`ServerConfig::max_authorizing`](crate::ServerConfig::max_authorizing) run at once.
//!
//! ```
//! use signalhub::auth::{Accepted, Jwt, Refused};
//! use signalhub::Server;
//!
//! # fn main() -> signalhub::Result<()> {
//! // In a real program the secret comes from the environment or a file.
//! let jwt = Jwt::hs256("a-long-random-secret")?;
//! let mut server = Server::new();
//! server.authorize(move |request| {
//!     let token = request.bearer_token().ok_or(Refused::unauthorized("a token is required"))?;
//!     match jwt.verify(token) {
//!         Ok(claims) => Ok(Accepted::user(claims.subject).groups(claims.groups)),
//!         Err(e) => Err(Refused::unauthorized(e.to_string())),
//!     }
//! });
//! # Ok(()) }
//! ```

mod hook;
mod jwt;

pub(crate) use hook::AuthorizeHook;
pub use hook::{Accepted, Refused, UpgradeRequest};
pub use jwt::{Claims, Jwt, JwtError};

/// The token of a `Bearer` credential (`Bearer <token>`, scheme in any case, one or more
/// spaces or tabs after it, surrounding ones ignored); `None` for any other value. Shared by
/// [`UpgradeRequest::bearer_token`] and [`ApiToken`](crate::http::ApiToken).
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let blank = |c: char| c == ' ' || c == '\t';
    let value = value.trim_matches(blank);
    let (scheme, token) = value.split_once(blank)?;
    let token = token.trim_start_matches(blank);
    (scheme.eq_ignore_ascii_case("Bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_blanks_are_ignored() {
        for value in [
            "bearer a.b.c",
            "BEARER a.b.c",
            "  Bearer   a.b.c  ",
            "Bearer\ta.b.c\t",
        ] {
            assert_eq!(bearer_token(value), Some("a.b.c"), "{value:?}");
        }
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_none() {
        for value in ["", "Basic dXNlcg==", "Bearer", "Bearer ", "Bearera.b.c"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
