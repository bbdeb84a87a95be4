//! The command line: `SCENARIO --flag value...` into [`Opts`].
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use crate::http::{HttpOpts, Mix};
use crate::payload::PayloadKind;
use crate::soak::{SoakOpts, SOAK_GRACE};
use crate::tls::{tls_client, Tls};

pub struct Opts {
    pub scenario: String,
    pub url: String,
    pub addr: SocketAddr,
    pub clients: usize,
    pub messages: usize,
    pub payload: usize,
    /// bigcast: bytes of padding in the one message.
    pub size: usize,
    pub window: usize,
    pub hold: Duration,
    pub pid: Option<u32>,
    pub threads: usize,
    pub batch: usize,
    pub stall: Duration,
    pub timeout: Duration,
    pub label: Option<String>,
    pub tls: Option<Tls>, // wss://
    /// fanout: a second server (another node of a cluster) that half the receivers use.
    pub url2: Option<(String, SocketAddr)>,
    /// fanout: once every client is connected, try one more and report its HTTP status.
    pub one_more: bool,
    /// fanout: the JSON fields after `message` in what the sender sends, naming its
    /// receivers (`--to all`, `--to path:/p`, `--to group:g`): empty, `,"path":"/p"` or
    /// `,"group":"g"`.
    pub to: String,
    /// fanout, direct, idle: offer permessage-deflate, and inflate if the server accepts it.
    pub compression: bool,
    /// fanout, direct: compress what is sent, where the server accepted permessage-deflate.
    pub compress_sent: bool,
    /// fanout: `x` padding or generated JSON (from `seed`) in the measured messages.
    pub payload_kind: PayloadKind,
    pub seed: u64,
    pub soak: SoakOpts,
    pub http: HttpOpts,
}

/// `--key value` pairs, removed as they are read so that leftovers are unknown flags.
struct Flags(HashMap<String, String>);

impl Flags {
    fn opt<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, String> {
        let Some(v) = self.0.remove(key) else {
            return Ok(None);
        };
        v.parse()
            .map(Some)
            .map_err(|_| format!("bad --{key} {v:?}"))
    }
    fn get<T: FromStr>(&mut self, key: &str, default: T) -> Result<T, String> {
        Ok(self.opt(key)?.unwrap_or(default))
    }
    fn secs(&mut self, key: &str, default: f64) -> Result<Duration, String> {
        let s = self.get(key, default)?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("bad --{key} {s}"))
    }
}

pub fn parse_args(args: &[String]) -> Result<Opts, String> {
    let (scenario, rest) = args.split_first().ok_or("missing scenario")?;
    let known = ["fanout", "direct", "idle", "bigcast", "soak", "http"];
    if !known.contains(&scenario.as_str()) {
        return Err(format!("unknown scenario {scenario:?}"));
    }
    let (mut f, mut headers) = (Flags(HashMap::new()), Vec::new());
    for pair in rest.chunks(2) {
        let [flag, value] = pair else {
            return Err(format!("{} needs a value", pair[0]));
        };
        let key = flag
            .strip_prefix("--")
            .ok_or(format!("expected a --flag, got {flag:?}"))?;
        match key {
            "header" => headers.push(value.clone()), // repeatable
            _ => drop(f.0.insert(key.to_string(), value.clone())),
        }
    }
    let url: String = f.opt("url")?.ok_or("--url is required")?;
    let (addr, host, scheme) = parse_url(&url)?;
    match (scenario.as_str(), scheme) {
        ("http", "http") => {}
        ("http", _) => return Err("http needs an http:// --url".into()),
        (_, "http") => return Err(format!("{scenario} needs a ws:// or wss:// --url")),
        _ => {}
    }
    let secure = scheme == "wss";
    let tls = match (secure, f.opt::<String>("ca")?) {
        (true, Some(ca)) => Some(tls_client(&ca, &host)?),
        (true, None) => {
            return Err("wss:// needs --ca CA.pem (the CA of the server certificate)".into())
        }
        (false, Some(_)) => return Err("--ca is for wss:// URLs".into()),
        (false, None) => None,
    };
    let url2 = match f.opt::<String>("url2")? {
        None => None,
        Some(url) => match parse_url(&url)? {
            (addr, _, "ws") => Some((url, addr)),
            _ => return Err("--url2 takes a ws:// URL".into()),
        },
    };
    if let Some(bad) = headers.iter().find(|h| !valid_header(h)) {
        return Err(format!("bad --header {bad:?}: want 'Name: value'"));
    }
    if !headers.is_empty() && scenario != "http" {
        return Err("--header is for http".into());
    }
    let http = HttpOpts {
        connections: f.get("connections", 50)?,
        requests: f.get("requests", 20_000)?,
        stalled: f.get("stalled", 0)?,
        mix: f.get("mix", Mix::Alternate)?,
        host: format!("{host}:{}", addr.port()),
        headers,
    };
    let soak = SoakOpts {
        steady: f.get("steady", 500)?,
        churn: f.get("churn", 2000)?,
        churn_threads: f.get("churn-threads", 2)?,
        duration: f.secs("duration", 600.0)?,
        rate: f.get("rate", 50.0)?,
        settle: f.secs("settle", 15.0)?,
    };
    let timeout = match scenario.as_str() {
        "soak" => f.secs("timeout", soak.duration.as_secs_f64() + SOAK_GRACE)?,
        _ => f.secs("timeout", 120.0)?,
    };
    let o = Opts {
        scenario: scenario.clone(),
        addr,
        url,
        clients: f.get("clients", 100)?,
        messages: f.get("messages", 1000)?,
        payload: f.get("payload", 64)?,
        size: f.get("size", 8 << 20)?,
        window: f.get("window", 16)?,
        hold: f.secs("hold", 5.0)?,
        pid: f.opt("pid")?,
        threads: f.get("threads", 2)?,
        batch: f.get("batch", 64)?,
        stall: f.secs("stall", 10.0)?,
        timeout,
        label: f.opt("label")?,
        tls,
        url2,
        one_more: f.get("one-more", false)?,
        to: target_fields(&f.get("to", "all".to_owned())?)?,
        compression: f.get("compression", false)?,
        compress_sent: f.get("compress-sent", false)?,
        payload_kind: f.get("payload-kind", PayloadKind::Pad)?,
        seed: f.get("seed", 1)?,
        soak,
        http,
    };
    if let Some(k) = f.0.keys().next() {
        return Err(format!("unknown flag --{k}"));
    }
    if [o.clients, o.messages, o.window, o.threads, o.batch].contains(&0) {
        return Err("--clients, --messages, --window, --threads, --batch must be > 0".into());
    }
    if ["idle", "bigcast", "soak"].contains(&o.scenario.as_str()) && o.pid.is_none() {
        return Err(format!("{} needs --pid", o.scenario));
    }
    let scenario = o.scenario.as_str();
    if o.compression && !["fanout", "direct", "idle"].contains(&scenario) {
        return Err("--compression is for fanout, direct and idle".into());
    }
    if o.compress_sent && (!o.compression || scenario == "idle") {
        return Err("--compress-sent is for fanout and direct, with --compression true".into());
    }
    if o.payload_kind != PayloadKind::Pad && scenario != "fanout" {
        return Err("--payload-kind is for fanout".into());
    }
    if o.size == 0 {
        return Err("--size must be > 0".into());
    }
    if o.http.connections == 0 || o.http.requests == 0 {
        return Err("--connections, --requests must be > 0".into());
    }
    let s = &o.soak;
    if [s.steady, s.churn_threads].contains(&0) || !(s.rate > 0.0 && s.rate <= 1e5) {
        return Err("--steady, --churn-threads must be > 0, --rate in (0, 100000]".into());
    }
    Ok(o)
}

/// The address and host of a `SCHEME://127.0.0.1:PORT/...` or `SCHEME://localhost:PORT/...`
/// URL, and its scheme: `ws`, `wss` or `http`.
fn parse_url(url: &str) -> Result<(SocketAddr, String, &'static str), String> {
    let (scheme, rest) = ["ws", "wss", "http"]
        .into_iter()
        .find_map(|s| Some((s, url.strip_prefix(s)?.strip_prefix("://")?)))
        .ok_or("--url must start with ws://, wss:// or http://")?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (host, port) = authority.rsplit_once(':').ok_or("--url needs a port")?;
    if host != "127.0.0.1" && host != "localhost" {
        return Err(format!(
            "refusing host {host:?}: only 127.0.0.1 or localhost"
        ));
    }
    let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
    Ok((
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        host.to_owned(),
        scheme,
    ))
}

/// The JSON fields a `--to` value adds to the sender's messages.
fn target_fields(to: &str) -> Result<String, String> {
    let field = |key: &str, value: &str| format!(r#","{key}":{}"#, serde_json::json!(value));
    match to.split_once(':') {
        None if to == "all" => Ok(String::new()),
        Some(("path", path)) if path.starts_with('/') => Ok(field("path", path)),
        Some(("group", group)) if !group.is_empty() => Ok(field("group", group)),
        _ => Err(format!(
            "bad --to {to:?}: want all, path:/PATH or group:NAME"
        )),
    }
}

/// `--header` values: `Name: value`, a token for the name and no line breaks.
fn valid_header(h: &str) -> bool {
    let Some((name, _)) = h.split_once(':') else {
        return false;
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(token) && !h.contains(['\r', '\n'])
}
