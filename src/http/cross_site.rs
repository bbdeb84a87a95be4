//! Refusing cross-site requests that change state (CSRF).
//!
//! A browser attaches a page's origin to the requests it sends for that page. A request that
//! could change something (anything but `GET`, `HEAD`, `OPTIONS` and `TRACE`) whose `Origin`
//! names neither the server itself (the scheme and `Host` the request came with) nor an
//! allowed origin was sent by another site's page, with the visitor's network position and
//! cookies: it is refused before any route sees it. Requests without an `Origin` (curl,
//! servers, other programs) are not from a browser page and are unaffected.

use super::reply::HttpRequest;

/// Whether `request` changes state and comes from another site's page.
pub(crate) fn is_cross_site(
    request: &HttpRequest,
    method: &str,
    allowed: Option<&[String]>,
) -> bool {
    if matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE") {
        return false;
    }
    let Some(origin) = request.header("Origin") else {
        return false;
    };
    if allowed.is_some_and(|list| list.iter().any(|a| a.eq_ignore_ascii_case(origin))) {
        return false;
    }
    !is_own_origin(origin, request.header("Host"), request.secure)
}

/// Whether `origin` (`scheme://host[:port]`) is the server as the request reached it.
fn is_own_origin(origin: &str, host: Option<&str>, secure: bool) -> bool {
    let (scheme, default_port) = if secure {
        ("https://", ":443")
    } else {
        ("http://", ":80")
    };
    let Some(host) = host else {
        return false;
    };
    let Some(authority) = strip_prefix_ignore_case(origin, scheme) else {
        return false;
    };
    let without_default = |a: &str| a.strip_suffix(default_port).unwrap_or(a).to_owned();
    without_default(authority).eq_ignore_ascii_case(&without_default(host.trim()))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: &str,
        origin: Option<&str>,
        host: Option<&str>,
        secure: bool,
    ) -> HttpRequest {
        let mut headers = Vec::new();
        if let Some(host) = host {
            headers.push(("Host".to_owned(), host.to_owned()));
        }
        if let Some(origin) = origin {
            headers.push(("Origin".to_owned(), origin.to_owned()));
        }
        HttpRequest {
            method: method.into(),
            target: "/broadcast".into(),
            minor_version: 1,
            headers,
            body: Vec::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            secure,
            keep_alive: true,
        }
    }

    fn cross(method: &str, origin: Option<&str>, host: &str, secure: bool) -> bool {
        let request = request(method, origin, Some(host), secure);
        is_cross_site(&request, method, None)
    }

    #[test]
    fn another_sites_page_cannot_change_state() {
        for method in ["POST", "PUT", "PATCH", "DELETE", "PURGE"] {
            assert!(
                cross(method, Some("https://evil.example"), "app.example", false),
                "{method}"
            );
        }
        assert!(cross("POST", Some("null"), "app.example", false));
        // Same host, other scheme or port: another origin.
        assert!(cross(
            "POST",
            Some("https://app.example"),
            "app.example",
            false
        ));
        assert!(cross(
            "POST",
            Some("http://app.example:8080"),
            "app.example:8090",
            false
        ));
        assert!(cross(
            "POST",
            Some("http://app.example.evil"),
            "app.example",
            false
        ));
    }

    #[test]
    fn the_servers_own_pages_and_programs_without_origin_may() {
        assert!(!cross(
            "POST",
            Some("http://127.0.0.1:8090"),
            "127.0.0.1:8090",
            false
        ));
        assert!(!cross(
            "POST",
            Some("HTTP://App.Example"),
            "app.example:80",
            false
        ));
        assert!(!cross(
            "DELETE",
            Some("https://app.example"),
            "app.example",
            true
        ));
        assert!(!cross(
            "POST",
            Some("https://app.example:443"),
            "app.example",
            true
        ));
        assert!(!cross("POST", None, "app.example", false));
        assert!(!cross(
            "GET",
            Some("https://evil.example"),
            "app.example",
            false
        ));
        assert!(!cross(
            "HEAD",
            Some("https://evil.example"),
            "app.example",
            false
        ));
    }

    #[test]
    fn allowed_origins_may_and_no_host_means_no_match() {
        let allowed = vec!["https://Dashboard.example".to_owned()];
        let from = |origin| request("POST", Some(origin), Some("api.example"), false);
        assert!(!is_cross_site(
            &from("https://dashboard.example"),
            "POST",
            Some(&allowed)
        ));
        assert!(is_cross_site(
            &from("https://evil.example"),
            "POST",
            Some(&allowed)
        ));
        let no_host = request("POST", Some("http://api.example"), None, false);
        assert!(is_cross_site(&no_host, "POST", None));
    }
}
