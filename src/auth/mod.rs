//! Authentication of WebSocket clients: [`Jwt`] verifies the HS256 JSON Web Tokens they
//! present (Centrifugo-style connection tokens) and hands back their [`Claims`].
//!
//! Nothing here touches a connection: [`Jwt::verify`] takes the token's text and answers with
//! the claims or a [`JwtError`] saying why not. Where the token comes from is the caller's
//! business; [`bearer_or_query_token`] picks it out of the usual two places.

mod jwt;

pub use jwt::{Claims, Jwt, JwtError};

/// The token a client presents: the one in an `Authorization: Bearer <token>` header when
/// there is one, else the one given in the query string (`?token=...`), else `None`.
///
/// `authorization` is the value of the request's (first) `Authorization` header; the scheme
/// is case-insensitive, and spaces and tabs around the token are ignored. A header with
/// another scheme (`Basic ...`) is not a token, and the query's is used. `query_token` is the
/// query parameter's value, already decoded; an empty one is no token.
///
/// Browsers cannot set headers on a WebSocket upgrade, so they pass the token in the query
/// string; mind that query strings end up in access logs, and prefer short-lived tokens
/// there.
///
/// ```
/// use signalhub::auth::bearer_or_query_token;
///
/// assert_eq!(bearer_or_query_token(Some("Bearer abc"), Some("xyz")), Some("abc"));
/// assert_eq!(bearer_or_query_token(Some("Basic dXNlcg=="), Some("xyz")), Some("xyz"));
/// assert_eq!(bearer_or_query_token(None, Some("xyz")), Some("xyz"));
/// assert_eq!(bearer_or_query_token(None, Some("")), None);
/// ```
pub fn bearer_or_query_token<'a>(
    authorization: Option<&'a str>,
    query_token: Option<&'a str>,
) -> Option<&'a str> {
    authorization
        .and_then(bearer_token)
        .or_else(|| query_token.filter(|token| !token.is_empty()))
}

/// The token of a `Bearer` credential (`Bearer <token>`, scheme in any case, one or more
/// spaces or tabs after it, surrounding ones ignored); `None` for any other value. The same
/// rules as [`ApiToken`](crate::http::ApiToken)'s.
fn bearer_token(value: &str) -> Option<&str> {
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
    fn a_bearer_header_wins_over_the_query() {
        assert_eq!(
            bearer_or_query_token(Some("Bearer a.b.c"), Some("x.y.z")),
            Some("a.b.c")
        );
        assert_eq!(
            bearer_or_query_token(Some("Bearer a.b.c"), None),
            Some("a.b.c")
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_blanks_are_ignored() {
        for value in [
            "bearer a.b.c",
            "BEARER a.b.c",
            "  Bearer   a.b.c  ",
            "Bearer\ta.b.c\t",
        ] {
            assert_eq!(
                bearer_or_query_token(Some(value), None),
                Some("a.b.c"),
                "{value:?}"
            );
        }
    }

    #[test]
    fn without_a_bearer_header_the_query_token_is_used() {
        for header in [
            None,
            Some(""),
            Some("Basic dXNlcg=="),
            Some("Bearer"),
            Some("Bearer "),
        ] {
            assert_eq!(
                bearer_or_query_token(header, Some("x.y.z")),
                Some("x.y.z"),
                "{header:?}"
            );
        }
    }

    #[test]
    fn no_token_anywhere_is_none() {
        assert_eq!(bearer_or_query_token(None, None), None);
        assert_eq!(bearer_or_query_token(None, Some("")), None);
        assert_eq!(bearer_or_query_token(Some("Basic x"), Some("")), None);
        assert_eq!(bearer_or_query_token(Some("Bearera.b.c"), None), None);
    }
}
