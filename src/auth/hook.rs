//! The authorize hook's types: the upgrade request it decides on, and its answer.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::event::{ClientData, EndpointInfo};
use crate::Pairs;

/// A WebSocket upgrade request waiting for the [`authorize`](crate::Server::authorize)
/// hook's decision: nothing has been answered yet.
#[derive(Debug)]
#[non_exhaustive]
pub struct UpgradeRequest<'a> {
    /// The request path without its query string, percent-decoded (case as sent).
    pub path: &'a str,
    /// The query string, decoded, in order.
    pub query: &'a Pairs,
    /// The request headers, in order, names as sent (cookies are in `Cookie`).
    pub headers: &'a Pairs,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// The endpoint it came in on.
    pub endpoint: &'a EndpointInfo,
    /// The subprotocols the client offers (`Sec-WebSocket-Protocol`), in its order.
    pub protocols: &'a [String],
}

impl UpgradeRequest<'_> {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get_ignore_case(name)
    }

    /// The first query parameter with this name (case-sensitive, as in URLs).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name)
    }

    /// The value of the cookie `name`, from the `Cookie` headers (names case-sensitive).
    ///
    /// ```
    /// # use signalhub::auth::UpgradeRequest;
    /// fn session(request: &UpgradeRequest) -> Option<String> {
    ///     request.cookie("session").map(str::to_owned)
    /// }
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        (self.headers.iter())
            .filter(|(header, _)| header.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, value)| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.trim_matches('"'))
    }

    /// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else
    /// of a `token` query parameter: browsers cannot set headers on a WebSocket, so they pass
    /// tokens in the URL.
    pub fn bearer_token(&self) -> Option<&str> {
        (self.header("authorization").and_then(super::bearer_token))
            .or_else(|| self.query("token").filter(|t| !t.is_empty()))
    }
}

/// The hook's yes: who the client is. Sends to its user reach all of that user's
/// connections; it starts in `groups`; `data` is there for every handler to read
/// ([`ClientInfo::data`](crate::ClientInfo::data)).
///
/// ```
/// use signalhub::auth::Accepted;
/// let anyone = Accepted::anonymous();
/// let alice = Accepted::user("alice").group("ops").groups(["eu", "beta"]);
/// # let _ = (anyone, alice);
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct Accepted {
    pub(crate) user: Option<String>,
    pub(crate) groups: Vec<String>,
    pub(crate) data: Option<ClientData>,
}

impl Accepted {
    /// Accepted with no user id.
    pub fn anonymous() -> Accepted {
        Accepted::default()
    }

    /// Accepted as this user.
    pub fn user(user: impl Into<String>) -> Accepted {
        Accepted {
            user: Some(user.into()),
            ..Accepted::default()
        }
    }

    /// Also starts in `group`.
    pub fn group(mut self, group: impl Into<String>) -> Accepted {
        self.groups.push(group.into());
        self
    }

    /// Also starts in these groups.
    pub fn groups<S: Into<String>>(mut self, groups: impl IntoIterator<Item = S>) -> Accepted {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Attaches `data` of your own type to the connection.
    pub fn data<T: Any + Send + Sync>(mut self, data: T) -> Accepted {
        self.data = Some(ClientData(Arc::new(data)));
        self
    }
}

/// The hook's no: the HTTP status (and short plain-text reason) the client gets instead of
/// `101 Switching Protocols`.
///
/// ```
/// use signalhub::auth::Refused;
/// let no_token = Refused::unauthorized("a token is required");
/// let banned = Refused::forbidden("banned");
/// let busy = Refused::status(503, "try again later");
/// # let _ = (no_token, banned, busy);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub(crate) status: u16,
    pub(crate) reason: String,
}

impl Refused {
    /// `401 Unauthorized`, with `WWW-Authenticate: Bearer`: no credentials, or bad ones.
    pub fn unauthorized(reason: impl Into<String>) -> Refused {
        Refused::status(401, reason)
    }

    /// `403 Forbidden`: known, but not allowed.
    pub fn forbidden(reason: impl Into<String>) -> Refused {
        Refused::status(403, reason)
    }

    /// Any error status from 400 to 599; another number is answered `403`. The reason is
    /// sent as the body (control characters removed, at most 200 bytes).
    pub fn status(status: u16, reason: impl Into<String>) -> Refused {
        let status = if (400..600).contains(&status) {
            status
        } else {
            403
        };
        let mut reason: String = (reason.into().chars())
            .filter(|c| !c.is_control())
            .collect();
        if reason.len() > 200 {
            let mut end = 200;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        Refused { status, reason }
    }

    /// The status it answers with.
    pub fn code(&self) -> u16 {
        self.status
    }
}

/// An authorize hook: [`Server::authorize`](crate::Server::authorize).
pub(crate) type AuthorizeHook =
    dyn Fn(&UpgradeRequest<'_>) -> Result<Accepted, Refused> + Send + Sync;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Protocol;

    fn with_request(
        headers: &[(&str, &str)],
        query: &[(&str, &str)],
        check: impl FnOnce(&UpgradeRequest<'_>),
    ) {
        let pairs = |list: &[(&str, &str)]| {
            Pairs::from_iter(list.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        };
        let (headers, query) = (pairs(headers), pairs(query));
        let endpoint = EndpointInfo {
            name: "ws".into(),
            address: "127.0.0.1:1".parse().unwrap(),
            protocol: Protocol::Ws,
        };
        check(&UpgradeRequest {
            path: "/",
            query: &query,
            headers: &headers,
            remote_addr: "127.0.0.1:2".parse().unwrap(),
            endpoint: &endpoint,
            protocols: &[],
        });
    }

    #[test]
    fn cookies_are_found_in_any_cookie_header() {
        let headers = [("Cookie", "a=1; session=\"abc\""), ("cookie", "b=2")];
        with_request(&headers, &[], |request| {
            assert_eq!(request.cookie("session"), Some("abc"));
            assert_eq!(request.cookie("b"), Some("2"));
            assert_eq!(request.cookie("Session"), None);
            assert_eq!(request.cookie("c"), None);
        });
    }

    #[test]
    fn a_bearer_header_beats_the_token_parameter() {
        with_request(
            &[("Authorization", "bearer  xyz ")],
            &[("token", "q")],
            |r| {
                assert_eq!(r.bearer_token(), Some("xyz"));
            },
        );
        with_request(&[("Authorization", "Basic abc")], &[("token", "q")], |r| {
            assert_eq!(r.bearer_token(), Some("q"));
        });
        with_request(&[], &[("token", "")], |r| {
            assert_eq!(r.bearer_token(), None)
        });
    }

    #[test]
    fn refusals_keep_to_error_statuses_and_short_clean_reasons() {
        assert_eq!(Refused::unauthorized("x").code(), 401);
        assert_eq!(Refused::status(200, "x").code(), 403);
        assert_eq!(Refused::status(302, "x").code(), 403);
        assert_eq!(Refused::status(599, "x").code(), 599);
        let refused = Refused::forbidden(format!("a\r\nb{}", "é".repeat(150)));
        assert!(refused.reason.starts_with("ab"));
        assert!(refused.reason.len() <= 200);
        assert!(!refused.reason.contains('\n'));
    }
}
