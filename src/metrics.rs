//! The counters a server keeps ([`Metrics`]), read as a [`MetricsSnapshot`] or as
//! Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The most paths that get a `signalhub_path_clients_connected` series of their own in
/// [`MetricsSnapshot::to_prometheus`]. Clients choose their paths, so one client opening
/// connections on `/1`, `/2`, ... could otherwise make a series per connection, and
/// Prometheus keeps every series it has seen. The busiest paths keep theirs; the rest are
/// summed into [`OTHER_PATHS`].
const MAX_PATH_SERIES: usize = 100;

/// The `path` label of the series that sums the paths beyond [`MAX_PATH_SERIES`]: a value no
/// real path has (they all start with `/`).
const OTHER_PATHS: &str = "other";

/// Why a WebSocket client left, for [`MetricsSnapshot::disconnects`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disconnect {
    /// It sent a close frame.
    Normal,
    /// It went away without one (reset, dropped network, killed process).
    Abrupt,
    /// Closed with 1002: it broke the protocol.
    ProtocolError,
    /// Closed with 1007: a text message was not UTF-8.
    InvalidUtf8,
    /// Closed with 1009: a message over the size limit.
    TooBig,
    /// Closed with 1001: silent for longer than the idle timeout.
    Idle,
    /// Closed by the server's own choice ([`Signals::disconnect`](crate::Signals::disconnect)).
    Server,
}

impl Disconnect {
    const ALL: [Disconnect; 7] = [
        Disconnect::Normal,
        Disconnect::Abrupt,
        Disconnect::ProtocolError,
        Disconnect::InvalidUtf8,
        Disconnect::TooBig,
        Disconnect::Idle,
        Disconnect::Server,
    ];
}

/// Live counters, shared by the server's threads. Read them with [`Counters::snapshot`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_received: AtomicU64,
    /// Client messages that were not understood (not a JSON object with `message`, ...).
    pub(crate) messages_ignored: AtomicU64,
    /// Departures by [`Disconnect`] (its index in [`Disconnect::ALL`]).
    disconnects: [AtomicU64; 7],
    /// Client messages to a group the sender is not in (dropped).
    pub(crate) group_messages_refused: AtomicU64,
    /// Upgrades the authorize hook refused.
    pub(crate) connections_unauthorized: AtomicU64,
    pub(crate) signals_sent: AtomicU64,
    pub(crate) frames_delivered: AtomicU64,
    pub(crate) clients_dropped_slow: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    /// Backplane: signals published to Redis.
    #[cfg(feature = "redis")]
    pub(crate) backplane_published: AtomicU64,
    /// Backplane: signals received from other nodes.
    #[cfg(feature = "redis")]
    pub(crate) backplane_received: AtomicU64,
    /// Backplane: signals not published (Redis down, or the publish queue full).
    #[cfg(feature = "redis")]
    pub(crate) backplane_dropped: AtomicU64,
    /// Clients per path (lowercased), kept by the fan-out thread, the registry's owner.
    pub(crate) clients_by_path: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a client leaving for this reason.
    pub(crate) fn disconnected(&self, why: Disconnect) {
        Counters::add(&self.disconnects[why as usize], 1);
    }

    pub(crate) fn set_path_count(&self, path: &str, count: usize) {
        let mut map = self
            .clients_by_path
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if count == 0 {
            map.remove(path);
        } else {
            map.insert(path.to_owned(), count as u64);
        }
    }

    /// A consistent-enough copy of every counter (each is read atomically on its own).
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let by_path = self
            .clients_by_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        MetricsSnapshot {
            clients_connected: by_path.values().sum(),
            clients_by_path: by_path,
            messages_received: self.messages_received.load(Ordering::Relaxed),
            messages_ignored: self.messages_ignored.load(Ordering::Relaxed),
            group_messages_refused: self.group_messages_refused.load(Ordering::Relaxed),
            connections_unauthorized: self.connections_unauthorized.load(Ordering::Relaxed),
            disconnects: Disconnects {
                normal: self.count(Disconnect::Normal),
                abrupt: self.count(Disconnect::Abrupt),
                protocol_error: self.count(Disconnect::ProtocolError),
                invalid_utf8: self.count(Disconnect::InvalidUtf8),
                message_too_big: self.count(Disconnect::TooBig),
                idle: self.count(Disconnect::Idle),
                server: self.count(Disconnect::Server),
                slow: self.clients_dropped_slow.load(Ordering::Relaxed),
            },
            signals_sent: self.signals_sent.load(Ordering::Relaxed),
            frames_delivered: self.frames_delivered.load(Ordering::Relaxed),
            clients_dropped_slow: self.clients_dropped_slow.load(Ordering::Relaxed),
            connections_refused: self.connections_refused.load(Ordering::Relaxed),
            connections_total: self.connections_total.load(Ordering::Relaxed),
            #[cfg(feature = "redis")]
            backplane_published: self.backplane_published.load(Ordering::Relaxed),
            #[cfg(feature = "redis")]
            backplane_received: self.backplane_received.load(Ordering::Relaxed),
            #[cfg(feature = "redis")]
            backplane_dropped: self.backplane_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Counters {
    fn count(&self, why: Disconnect) -> u64 {
        debug_assert_eq!(Disconnect::ALL[why as usize], why);
        self.disconnects[why as usize].load(Ordering::Relaxed)
    }
}

/// WebSocket clients that have left since start, by why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Disconnects {
    /// They sent a close frame.
    pub normal: u64,
    /// They went away without one (a reset, a dropped network, a killed process).
    pub abrupt: u64,
    /// Closed with 1002: they broke the protocol.
    pub protocol_error: u64,
    /// Closed with 1007: a text message that was not UTF-8.
    pub invalid_utf8: u64,
    /// Closed with 1009: a message over `max_message_size`.
    pub message_too_big: u64,
    /// Closed with 1001: silent for longer than `idle_timeout`.
    pub idle: u64,
    /// Closed by the server's own choice, with the code it gave
    /// ([`Signals::disconnect`](crate::Signals::disconnect)).
    pub server: u64,
    /// Closed with 1008: they did not read fast enough (the same as
    /// [`MetricsSnapshot::clients_dropped_slow`]).
    pub slow: u64,
}

impl Disconnects {
    /// Each reason with its Prometheus label.
    fn labelled(&self) -> [(&'static str, u64); 8] {
        [
            ("normal", self.normal),
            ("abrupt", self.abrupt),
            ("protocol_error", self.protocol_error),
            ("invalid_utf8", self.invalid_utf8),
            ("message_too_big", self.message_too_big),
            ("idle", self.idle),
            ("server", self.server),
            ("slow", self.slow),
        ]
    }
}

/// A server's counters: cheap to clone, `Send + Sync`, from
/// [`Server::metrics`](crate::Server::metrics) (before start, for an HTTP route that serves
/// them) or [`ServerHandle::metrics`](crate::ServerHandle::metrics). Read them with
/// [`Metrics::snapshot`].
///
/// ```
/// let server = signalhub::Server::new();
/// let metrics = server.metrics();
/// assert_eq!(metrics.snapshot().clients_connected, 0);
/// let text = metrics.snapshot().to_prometheus(); // for GET /metrics
/// # let _ = text;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Metrics(pub(crate) std::sync::Arc<Counters>);

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.0.snapshot()
    }
}

/// The server's counters at one moment: [`Metrics::snapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// WebSocket clients connected now.
    pub clients_connected: u64,
    /// WebSocket clients connected now, per connection path (lowercased).
    pub clients_by_path: BTreeMap<String, u64>,
    /// Text or binary messages received from clients.
    pub messages_received: u64,
    /// Client messages ignored because they were not understood (not a JSON object with a
    /// `message`, a key of the wrong type, ...); the client stays connected.
    pub messages_ignored: u64,
    /// Client messages naming a group the sender is not in: dropped, the client stays
    /// connected.
    pub group_messages_refused: u64,
    /// WebSocket upgrades the [`authorize`](crate::Server::authorize) hook refused.
    pub connections_unauthorized: u64,
    /// Clients that have left, by why.
    pub disconnects: Disconnects,
    /// Signals routed by the fan-out thread (one per send, whatever the number of receivers).
    pub signals_sent: u64,
    /// Frames handed to client sockets (one per receiver per signal).
    pub frames_delivered: u64,
    /// Clients closed because they did not read fast enough (their queue was full).
    pub clients_dropped_slow: u64,
    /// Connections refused before the upgrade (connection caps, failed thread starts).
    pub connections_refused: u64,
    /// WebSocket connections accepted since start.
    pub connections_total: u64,
    /// Backplane (feature `redis`): signals this node published to the other nodes.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub backplane_published: u64,
    /// Backplane (feature `redis`): signals received from the other nodes.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub backplane_received: u64,
    /// Backplane (feature `redis`): signals delivered here only because Redis was unavailable
    /// or the publish queue was full.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub backplane_dropped: u64,
}

impl MetricsSnapshot {
    /// The counters in Prometheus' text exposition format (version 0.0.4).
    ///
    /// Clients per path are given for the 100 busiest paths (ties by name); the clients of any
    /// other paths are summed in one series with the label `path="other"`, which no real path
    /// has.
    ///
    /// ```
    /// let text = signalhub::metrics::MetricsSnapshot::default().to_prometheus();
    /// assert!(text.contains("signalhub_clients_connected 0\n"));
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "signalhub_clients_connected",
            "gauge",
            "WebSocket clients connected.",
            self.clients_connected,
        );
        metric(
            "signalhub_messages_received_total",
            "counter",
            "Messages received from clients.",
            self.messages_received,
        );
        metric(
            "signalhub_messages_ignored_total",
            "counter",
            "Client messages ignored as not understood.",
            self.messages_ignored,
        );
        metric(
            "signalhub_group_messages_refused_total",
            "counter",
            "Client messages to a group the sender is not in.",
            self.group_messages_refused,
        );
        metric(
            "signalhub_connections_unauthorized_total",
            "counter",
            "WebSocket upgrades refused by the authorize hook.",
            self.connections_unauthorized,
        );
        metric(
            "signalhub_signals_sent_total",
            "counter",
            "Signals routed.",
            self.signals_sent,
        );
        metric(
            "signalhub_frames_delivered_total",
            "counter",
            "Frames handed to client sockets.",
            self.frames_delivered,
        );
        metric(
            "signalhub_clients_dropped_slow_total",
            "counter",
            "Clients closed for not reading.",
            self.clients_dropped_slow,
        );
        metric(
            "signalhub_connections_refused_total",
            "counter",
            "Connections refused before the upgrade.",
            self.connections_refused,
        );
        metric(
            "signalhub_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total,
        );
        #[cfg(feature = "redis")]
        {
            metric(
                "signalhub_backplane_published_total",
                "counter",
                "Signals published to the other nodes.",
                self.backplane_published,
            );
            metric(
                "signalhub_backplane_received_total",
                "counter",
                "Signals received from the other nodes.",
                self.backplane_received,
            );
            metric(
                "signalhub_backplane_dropped_total",
                "counter",
                "Signals not published (Redis unavailable or queue full).",
                self.backplane_dropped,
            );
        }
        out.push_str("# HELP signalhub_disconnects_total WebSocket clients that left, by why.\n");
        out.push_str("# TYPE signalhub_disconnects_total counter\n");
        for (reason, count) in self.disconnects.labelled() {
            let _ = writeln!(
                out,
                "signalhub_disconnects_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP signalhub_path_clients_connected WebSocket clients connected per path \
             (the busiest; the rest under path=\"other\").\n",
        );
        out.push_str("# TYPE signalhub_path_clients_connected gauge\n");
        let (busiest, others) = busiest_paths(&self.clients_by_path);
        let others = others.map(|count| (OTHER_PATHS, count));
        for (path, count) in busiest.into_iter().chain(others) {
            let _ = writeln!(
                out,
                "signalhub_path_clients_connected{{path=\"{}\"}} {count}",
                escape_label(path)
            );
        }
        out
    }
}

/// The [`MAX_PATH_SERIES`] busiest paths (ties by path, so the cut stays put between
/// scrapes), in path order, and the sum of the others' clients when there are others.
fn busiest_paths(by_path: &BTreeMap<String, u64>) -> (Vec<(&str, u64)>, Option<u64>) {
    let mut paths: Vec<(&str, u64)> = by_path.iter().map(|(p, &n)| (p.as_str(), n)).collect();
    if paths.len() <= MAX_PATH_SERIES {
        return (paths, None);
    }
    paths.select_nth_unstable_by(MAX_PATH_SERIES, |a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let others = paths.split_off(MAX_PATH_SERIES);
    paths.sort_unstable_by_key(|&(path, _)| path);
    (paths, Some(others.iter().map(|&(_, n)| n).sum()))
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_counter_and_escaped_paths() {
        let metrics = Counters::default();
        metrics.set_path_count("/a\"b", 2);
        metrics.set_path_count("/c", 1);
        Counters::add(&metrics.frames_delivered, 7);
        let text = metrics.snapshot().to_prometheus();
        assert!(text.contains("signalhub_clients_connected 3\n"), "{text}");
        assert!(text.contains("signalhub_frames_delivered_total 7\n"));
        assert!(text.contains("signalhub_path_clients_connected{path=\"/a\\\"b\"} 2\n"));
        metrics.set_path_count("/c", 0);
        assert_eq!(metrics.snapshot().clients_by_path.len(), 1);
        assert!(
            path_series(&text).iter().all(|(p, _)| p != "other"),
            "{text}"
        );
    }

    fn path_series(text: &str) -> Vec<(String, u64)> {
        let prefix = "signalhub_path_clients_connected{path=\"";
        let series = text.lines().filter_map(|l| l.strip_prefix(prefix));
        let parse = |rest: &str| {
            let (path, count) = rest.split_once("\"} ").unwrap();
            (path.to_owned(), count.parse().unwrap())
        };
        series.map(parse).collect()
    }

    #[test]
    fn only_the_busiest_paths_get_a_series_of_their_own() {
        let metrics = Counters::default();
        // /p0 has 1 client, /p1 2, ... /p119 120: the 20 quietest are folded.
        let paths = MAX_PATH_SERIES + 20;
        for n in 0..paths {
            metrics.set_path_count(&format!("/p{n}"), n + 1);
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.clients_by_path.len(), paths);
        let text = snapshot.to_prometheus();
        let total: usize = (1..=paths).sum();
        assert!(text.contains(&format!("signalhub_clients_connected {total}\n")));
        let series = path_series(&text);
        assert_eq!(series.len(), MAX_PATH_SERIES + 1, "{text}");
        assert_eq!(series.last(), Some(&("other".to_owned(), (1..=20).sum())));
        let kept: Vec<&str> = series[..MAX_PATH_SERIES]
            .iter()
            .map(|(p, _)| p.as_str())
            .collect();
        let mut expected: Vec<String> = (20..paths).map(|n| format!("/p{n}")).collect();
        expected.sort();
        assert_eq!(kept, expected);
        let counted: u64 = series.iter().map(|(_, n)| n).sum();
        assert_eq!(counted, total as u64);
    }

    #[test]
    fn ties_at_the_cut_go_by_path() {
        let metrics = Counters::default();
        for n in 0..MAX_PATH_SERIES + 1 {
            metrics.set_path_count(&format!("/p{n:03}"), 1);
        }
        let series = path_series(&metrics.snapshot().to_prometheus());
        assert_eq!(series.len(), MAX_PATH_SERIES + 1);
        assert_eq!(series[0], ("/p000".to_owned(), 1));
        assert_eq!(
            series[MAX_PATH_SERIES - 1].0,
            format!("/p{:03}", MAX_PATH_SERIES - 1)
        );
        assert_eq!(series[MAX_PATH_SERIES], ("other".to_owned(), 1));
    }
}
