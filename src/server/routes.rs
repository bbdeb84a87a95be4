//! Signal routes and connect/disconnect hooks, matched on a connection's path.

use std::sync::Arc;

use crate::auth::AuthorizeHook;
use crate::event::{ClientInfo, MessageEvent, SignalEvent};
use crate::{Error, Result};

/// A signal route's handler: runs on the sending connection's own thread.
pub(crate) type RouteHandler = dyn Fn(&SignalEvent) -> Result<()> + Send + Sync;
/// A connect or disconnect hook.
pub(crate) type ClientHook = dyn Fn(&ClientInfo) + Send + Sync;
/// A raw message handler (`Server::on_message`).
pub(crate) type MessageHandler = dyn Fn(&MessageEvent<'_>) -> Result<()> + Send + Sync;

/// One registered signal route.
pub(crate) struct Route {
    /// The path pattern as registered.
    pub(crate) pattern: String,
    key: String,
    endpoint: Option<String>,
    pub(crate) handler: Arc<RouteHandler>,
}

impl Route {
    fn is_pattern(&self) -> bool {
        self.key.contains('*')
    }
}

struct Hook {
    key: String,
    hook: Arc<ClientHook>,
}

/// The routes and hooks of one server, fixed once it starts.
#[derive(Default)]
pub(crate) struct Routes {
    routes: Vec<Arc<Route>>,
    on_connect: Vec<Hook>,
    on_disconnect: Vec<Hook>,
    on_message: Vec<(String, Arc<MessageHandler>)>,
    authorize: Option<Arc<AuthorizeHook>>,
}

impl Routes {
    /// Adds a route; the same path (case-insensitively) for the same endpoint is an error.
    pub(crate) fn add(
        &mut self,
        pattern: &str,
        endpoint: Option<&str>,
        handler: Arc<RouteHandler>,
    ) -> Result<()> {
        let key = pattern.to_lowercase();
        if self
            .routes
            .iter()
            .any(|r| r.key == key && r.endpoint.as_deref() == endpoint)
        {
            return Err(Error::DuplicateRoute(pattern.to_owned()));
        }
        let endpoint = endpoint.map(str::to_owned);
        self.routes.push(Arc::new(Route {
            pattern: pattern.to_owned(),
            key,
            endpoint,
            handler,
        }));
        Ok(())
    }

    /// Endpoint names the routes are limited to, for checking at start.
    pub(crate) fn endpoint_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().filter_map(|r| r.endpoint.as_deref())
    }

    pub(crate) fn set_authorize_hook(&mut self, hook: Arc<AuthorizeHook>) {
        self.authorize = Some(hook);
    }

    /// The authorize hook, if one is set.
    pub(crate) fn authorize_hook(&self) -> Option<&AuthorizeHook> {
        self.authorize.as_deref()
    }

    pub(crate) fn add_connect_hook(&mut self, pattern: &str, hook: Arc<ClientHook>) {
        self.on_connect.push(Hook {
            key: pattern.to_lowercase(),
            hook,
        });
    }

    pub(crate) fn add_disconnect_hook(&mut self, pattern: &str, hook: Arc<ClientHook>) {
        self.on_disconnect.push(Hook {
            key: pattern.to_lowercase(),
            hook,
        });
    }

    /// The route for a connection: an exact path match wins, then the first matching pattern
    /// in registration order; at each step a route for this endpoint comes before one for
    /// every endpoint. `path` must already be lowercased.
    pub(crate) fn find(&self, path: &str, endpoint: &str) -> Option<Arc<Route>> {
        let exact = |r: &&Arc<Route>| !r.is_pattern() && r.key == path;
        let pattern = |r: &&Arc<Route>| r.is_pattern() && wildcard_match(&r.key, path);
        let own = || {
            self.routes
                .iter()
                .filter(|r| r.endpoint.as_deref() == Some(endpoint))
        };
        let any = || self.routes.iter().filter(|r| r.endpoint.is_none());
        own()
            .find(exact)
            .or_else(|| any().find(exact))
            .or_else(|| own().find(pattern))
            .or_else(|| any().find(pattern))
            .cloned()
    }

    pub(crate) fn add_message_handler(&mut self, pattern: &str, handler: Arc<MessageHandler>) {
        self.on_message.push((pattern.to_lowercase(), handler));
    }

    /// The first raw message handler whose pattern matches `path` (lowercased).
    pub(crate) fn message_handler(&self, path: &str) -> Option<Arc<MessageHandler>> {
        let matching = self
            .on_message
            .iter()
            .find(|(key, _)| wildcard_match(key, path));
        matching.map(|(_, handler)| handler.clone())
    }

    /// The connect hooks whose pattern matches `path` (lowercased).
    pub(crate) fn connect_hooks(&self, path: &str) -> Vec<Arc<ClientHook>> {
        matching_hooks(&self.on_connect, path)
    }

    /// The disconnect hooks whose pattern matches `path` (lowercased).
    pub(crate) fn disconnect_hooks(&self, path: &str) -> Vec<Arc<ClientHook>> {
        matching_hooks(&self.on_disconnect, path)
    }
}

fn matching_hooks(hooks: &[Hook], path: &str) -> Vec<Arc<ClientHook>> {
    hooks
        .iter()
        .filter(|h| wildcard_match(&h.key, path))
        .map(|h| h.hook.clone())
        .collect()
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (including
/// none and including `/`) and everything else matches itself.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None; // (index after the last '*', text index)
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            pi += 1;
            backtrack = Some((pi, ti));
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_p, star_t)) = backtrack {
            pi = star_p;
            ti = star_t + 1;
            backtrack = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> Arc<RouteHandler> {
        Arc::new(|_| Ok(()))
    }

    #[test]
    fn wildcards_match_any_run_of_characters() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*", "/a/b"));
        assert!(wildcard_match("/chat/*", "/chat/room/1"));
        assert!(wildcard_match("/*/x", "/a/b/x"));
        assert!(wildcard_match("/a*b*c", "/aXbYbZc"));
        assert!(!wildcard_match("/chat/*", "/chat"));
        assert!(!wildcard_match("/a", "/ab"));
        assert!(!wildcard_match("/a*c", "/abd"));
    }

    #[test]
    fn exact_match_wins_then_first_pattern() {
        let mut routes = Routes::default();
        routes.add("/chat/*", None, noop()).unwrap();
        routes.add("/chat/*/x", None, noop()).unwrap();
        routes.add("/Chat/Room", None, noop()).unwrap();
        assert_eq!(
            routes.find("/chat/room", "ws-0").unwrap().pattern,
            "/Chat/Room"
        );
        assert_eq!(routes.find("/chat/a/x", "ws-0").unwrap().pattern, "/chat/*");
        assert!(routes.find("/other", "ws-0").is_none());
    }

    #[test]
    fn same_path_twice_is_an_error_unless_endpoints_differ() {
        let mut routes = Routes::default();
        routes.add("/messages", None, noop()).unwrap();
        assert!(
            matches!(routes.add("/MESSAGES", None, noop()), Err(Error::DuplicateRoute(p)) if p == "/MESSAGES")
        );
        routes.add("/messages", Some("admin"), noop()).unwrap();
    }

    #[test]
    fn an_endpoint_route_beats_a_general_one_registered_before_it() {
        let mut routes = Routes::default();
        routes.add("/x", None, noop()).unwrap();
        routes.add("/*", Some("admin"), noop()).unwrap();
        routes.add("/x", Some("admin"), noop()).unwrap();
        let found = routes.find("/x", "admin").unwrap();
        assert_eq!(
            (found.pattern.as_str(), found.endpoint.as_deref()),
            ("/x", Some("admin"))
        );
        assert!(routes.find("/x", "public").unwrap().endpoint.is_none());
    }

    #[test]
    fn endpoint_routes_serve_only_their_endpoint() {
        let mut routes = Routes::default();
        routes.add("/a", Some("admin"), noop()).unwrap();
        routes.add("/*", None, noop()).unwrap();
        assert_eq!(routes.find("/a", "admin").unwrap().pattern, "/a");
        assert_eq!(routes.find("/a", "public").unwrap().pattern, "/*");
    }

    #[test]
    fn hooks_match_by_pattern() {
        let mut routes = Routes::default();
        routes.add_connect_hook("/chat*", Arc::new(|_| {}));
        routes.add_connect_hook("*", Arc::new(|_| {}));
        routes.add_disconnect_hook("/x", Arc::new(|_| {}));
        assert_eq!(routes.connect_hooks("/chat/1").len(), 2);
        assert_eq!(routes.connect_hooks("/other").len(), 1);
        assert_eq!(routes.disconnect_hooks("/chat").len(), 0);
    }
}
