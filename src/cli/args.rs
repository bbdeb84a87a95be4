//! Flags, parsed with `argh` (derive; small and without dependencies of its own).
//!
//! Every field's doc comment is its `--help` text. Parsing never exits the process itself:
//! help comes back as [`Exit::help`], bad flags as [`Exit::usage`] (exit code 2).

use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;
use log::LevelFilter;
use signalhub::http::ApiToken;
use signalhub::ServerConfig;

use super::Exit;

/// Pode-style WebSocket signals: a server that fans messages out to WebSocket clients by path
/// or client id, and a small WebSocket client.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(
    example = "signalhub serve                     # http on 127.0.0.1:8090, ws on 127.0.0.1:8091",
    example = "signalhub serve --http 127.0.0.1:8091 --ws 127.0.0.1:8091   # one shared port",
    example = "signalhub serve --http '*:8090' --ws '*:8091' --api-token-env TOKEN
                                    # every interface; POST /broadcast needs $TOKEN",
    example = "signalhub connect ws://127.0.0.1:8091/messages",
    note = "Run `signalhub serve --help` or `signalhub connect --help` for their flags.",
    help_triggers("-h", "--help", "help"),
    error_code(
        1,
        "a failure while running (cannot listen, cannot connect, abnormal close)"
    ),
    error_code(2, "bad flags or arguments")
)]
pub struct Cli {
    /// print the version and exit
    #[argh(switch, short = 'V')]
    pub version: bool,

    #[argh(subcommand)]
    /// what to run
    pub command: Command,
}

/// The subcommands.
#[derive(FromArgs, Debug, PartialEq)]
// Built once per run; argh needs the variants unboxed.
#[allow(clippy::large_enum_variant)]
#[argh(subcommand)]
pub enum Command {
    /// `signalhub serve`.
    Serve(ServeArgs),
    /// `signalhub connect`.
    Connect(ConnectArgs),
}

/// Run a signal server: pages and HTTP routes on Http endpoints, signals on Ws endpoints.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(
    subcommand,
    name = "serve",
    note = "ADDR is host:port; `*` as the host, or none (`:8091`), means every interface; port 0
picks a free port.
An --http and a --ws with the same ADDR share one port, as do an --https and a --wss.
With no address flag at all:
--http 127.0.0.1:8090 --ws 127.0.0.1:8091 (this machine only; `*:8090` for every interface).
Http endpoints serve the built-in web-signal page (GET /, /script.js), GET /ws-config,
POST /broadcast ({{\"message\": ..., \"path\": ..., \"clientId\": ...}}, JSON or form) and
GET /metrics (Prometheus text). POST /broadcast is open to anyone who can reach the port
unless --api-token-env is given (a warning at start says so when bound beyond loopback).
One line per endpoint goes to stdout: `listening on URL`, with the address really bound
(`*` shows as 0.0.0.0). SIGINT or SIGTERM shuts down gracefully (clients get close code 1001).
The log goes to stderr. Without --log-level, RUST_LOG sets its level: comma-separated LEVEL
(every message) and signalhub=LEVEL (signalhub's own) entries, e.g. RUST_LOG=warn,signalhub=debug;
other entries (other targets, /regex) are ignored with a warning.",
    help_triggers("-h", "--help", "help")
)]
pub struct ServeArgs {
    /// an Http endpoint (pages and routes) on ADDR; repeatable
    #[argh(option, arg_name = "ADDR")]
    pub http: Vec<String>,

    /// a WebSocket endpoint on ADDR; repeatable
    #[argh(option, arg_name = "ADDR")]
    pub ws: Vec<String>,

    /// a WebSocket-over-TLS endpoint on ADDR (needs --cert and --key, --pfx, or
    /// --self-signed); repeatable
    #[argh(option, arg_name = "ADDR")]
    pub wss: Vec<String>,

    /// an Https endpoint (pages and routes over TLS) on ADDR, with the same certificate
    /// flags as --wss; repeatable
    #[argh(option, arg_name = "ADDR")]
    pub https: Vec<String>,

    /// the PEM certificate chain (leaf first) for --https and --wss endpoints
    #[argh(option, arg_name = "PEM")]
    pub cert: Option<PathBuf>,

    /// the PEM private key (PKCS#8, PKCS#1 or SEC1) for --https and --wss endpoints
    #[argh(option, arg_name = "PEM")]
    pub key: Option<PathBuf>,

    /// a PKCS#12 (.pfx) certificate and key for --https and --wss endpoints (feature pkcs12)
    #[argh(option, arg_name = "FILE")]
    pub pfx: Option<PathBuf>,

    /// the environment variable holding the --pfx password
    #[argh(option, arg_name = "VAR")]
    pub pfx_password_env: Option<String>,

    /// generate a self-signed certificate for localhost at start, for development
    /// (feature self-signed)
    #[argh(switch)]
    pub self_signed: bool,

    /// serve views (index.html for GET /) from DIR instead of the built-in page
    #[argh(option, arg_name = "DIR")]
    pub views: Option<PathBuf>,

    /// serve public files at / from DIR instead of the built-in script.js
    #[argh(option, arg_name = "DIR")]
    pub public: Option<PathBuf>,

    /// log level on stderr: error, warn, info (default), debug, trace or off; wins over
    /// RUST_LOG
    #[argh(option, arg_name = "LEVEL", from_str_fn(level))]
    pub log_level: Option<LevelFilter>,

    /// largest message a client may send, in bytes (default 16 MiB; bigger: close 1009)
    #[argh(option, arg_name = "BYTES")]
    pub max_message_size: Option<usize>,

    /// bytes that may wait for a client that does not read before it is closed with 1008
    /// (default 4 MiB)
    #[argh(option, arg_name = "BYTES")]
    pub max_queue_bytes: Option<usize>,

    /// most WebSocket connections at once; more get 503 (default: what the open-file and
    /// thread limits allow)
    #[argh(option, arg_name = "N")]
    pub max_connections: Option<usize>,

    /// most WebSocket connections at once from one IP address (default: no limit)
    #[argh(option, arg_name = "N")]
    pub max_connections_per_ip: Option<usize>,

    /// seconds a new connection has to send its upgrade request (default 10; decimals allowed)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    pub handshake_timeout: Option<Duration>,

    /// largest upgrade request head, in bytes (default 8 KiB)
    #[argh(option, arg_name = "BYTES")]
    pub max_request_head: Option<usize>,

    /// an Origin allowed to connect, others get 403; repeatable (default: every origin)
    #[argh(option, arg_name = "ORIGIN")]
    pub allowed_origin: Vec<String>,

    /// a WebSocket subprotocol the server speaks (Sec-WebSocket-Protocol); repeatable, most
    /// preferred first: a client gets the first of these it offers, none in common means none
    #[argh(option, arg_name = "NAME")]
    pub subprotocol: Vec<String>,

    /// accept permessage-deflate from clients that offer it (every browser does): each signal
    /// is compressed once for all of them, and no compression state is kept per connection
    #[argh(switch)]
    pub compression: bool,

    /// require `Authorization: Bearer <token>` on POST /broadcast (else 401), the token
    /// being the value of the environment variable VAR (visible ASCII, no spaces); GET /,
    /// /script.js, /ws-config and /metrics stay open
    #[argh(option, arg_name = "VAR")]
    pub api_token_env: Option<String>,

    /// every WebSocket client must present an HS256 JSON Web Token signed with the secret in
    /// the environment variable VAR (at least 32 bytes), as ?token=JWT or an Authorization:
    /// Bearer header; its sub is the user id, its groups claim the first groups, its exp is
    /// honoured; a missing, bad or expired token gets 401 before the upgrade
    #[argh(option, arg_name = "VAR")]
    pub jwt_secret_env: Option<String>,

    /// seconds between the server's pings to every client; 0 turns pings off (default 30)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    pub ping_interval: Option<Duration>,

    /// drop a client that sends nothing for this many seconds; 0 turns it off (default 60)
    #[argh(option, arg_name = "SECS", from_str_fn(seconds))]
    pub idle_timeout: Option<Duration>,

    /// largest HTTP request body a route accepts, in bytes; bigger gets 413 (default 1 MiB)
    #[argh(option, arg_name = "BYTES")]
    pub max_http_body: Option<usize>,

    /// threads writing broadcasts to clients, 1 to 16 (default 2 with two or more cores)
    #[argh(option, arg_name = "N")]
    pub fanout_writers: Option<usize>,

    /// send JSON to every client every SECONDS (decimals allowed), e.g. a heartbeat:
    /// 30:'{"type":"heartbeat"}'; a JSON string goes out as plain text; repeatable
    #[argh(option, arg_name = "SECONDS:JSON", from_str_fn(timer_broadcast))]
    pub timer_broadcast: Vec<TimerBroadcast>,

    /// share signals with other signalhub processes through Redis pub/sub at URL, e.g.
    /// redis://127.0.0.1:6379/ or rediss://user:password@host:6380/ (TLS; needs the `redis`
    /// cargo feature)
    #[argh(option, arg_name = "URL")]
    pub redis: Option<String>,

    /// with a rediss:// --redis: trust only the CA certificates in this PEM file
    #[argh(option, arg_name = "FILE")]
    pub redis_ca: Option<std::path::PathBuf>,

    /// with --redis: the cluster name; only processes with the same name share signals
    /// (default "default")
    #[argh(option, arg_name = "NAME")]
    pub cluster: Option<String>,
}

/// `--timer-broadcast SECONDS:JSON`: what to send to every client, and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerBroadcast {
    /// How often (above 0).
    pub every: Duration,
    /// What to send.
    pub message: serde_json::Value,
}

/// Connect to a WebSocket server: each line of standard input is sent as one text message,
/// each message received is printed on its own line.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(
    subcommand,
    name = "connect",
    note = "ws:// and wss:// URLs; wss:// trusts the built-in web roots, or the CA certificates
of --ca, or with --danger-accept-invalid-certs any certificate (a warning says so).
When standard input ends, a normal close (1000) is sent; what the server still sends is
printed until its close arrives (at most --close-timeout, 5 s). Exits 0 when the server
closes normally (1000 or 1001), 1 when it cannot connect or the connection ends abnormally
(the reason on stderr).",
    help_triggers("-h", "--help", "help")
)]
pub struct ConnectArgs {
    /// the server's URL, e.g. ws://127.0.0.1:8091/messages
    #[argh(positional, arg_name = "URL")]
    pub url: String,

    /// an extra request header, 'Name: value'; repeatable
    #[argh(option, short = 'H', arg_name = "HEADER")]
    pub header: Vec<String>,

    /// wss://: a PEM file of CA certificates to trust instead of the built-in web roots
    #[argh(option, arg_name = "FILE")]
    pub ca: Option<std::path::PathBuf>,

    /// wss://: accept any server certificate (self-signed, unknown CA, expired, another
    /// name). DANGEROUS: whoever can intercept the connection can pose as the server; for
    /// development only (e.g. against `signalhub serve --self-signed`)
    #[argh(switch)]
    pub danger_accept_invalid_certs: bool,

    /// once standard input ends: seconds to keep printing what arrives while waiting for the
    /// server's close (default 5; decimals allowed)
    #[argh(
        option,
        arg_name = "SECS",
        default = "Duration::from_secs(5)",
        from_str_fn(seconds)
    )]
    pub close_timeout: Duration,
}

impl ServeArgs {
    /// The server configuration: library defaults, changed where a flag says so.
    pub fn config(&self) -> Result<ServerConfig, Exit> {
        let mut config = ServerConfig::default();
        let sizes = [
            (self.max_message_size, &mut config.max_message_size),
            (self.max_queue_bytes, &mut config.max_queue_bytes),
            (self.max_connections, &mut config.max_connections),
            (
                self.max_connections_per_ip,
                &mut config.max_connections_per_ip,
            ),
            (self.max_request_head, &mut config.max_request_head),
            (self.max_http_body, &mut config.max_http_body),
            (self.fanout_writers, &mut config.tuning.fanout_writers),
        ];
        for (flag, field) in sizes {
            if let Some(value) = flag {
                *field = value;
            }
        }
        if let Some(timeout) = self.handshake_timeout {
            if timeout.is_zero() {
                return Err(Exit::usage("--handshake-timeout must be above 0"));
            }
            config.handshake_timeout = timeout;
        }
        if let Some(interval) = self.ping_interval {
            config.ping_interval = (!interval.is_zero()).then_some(interval);
        }
        if let Some(timeout) = self.idle_timeout {
            config.idle_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if !self.allowed_origin.is_empty() {
            config.allowed_origins = Some(self.allowed_origin.clone());
        }
        config.subprotocols = self.subprotocol.clone();
        config.compression = self.compression;
        self.backplane(&mut config)?;
        Ok(config)
    }

    /// The API token `--api-token-env VAR` names, read from the environment; `None` without
    /// the flag. VAR unset, empty or not a valid token is a usage error.
    pub fn api_token(&self) -> Result<Option<ApiToken>, Exit> {
        self.api_token_env
            .as_deref()
            .map(|var| api_token(var, std::env::var_os(var)))
            .transpose()
    }

    /// The verifier `--jwt-secret-env VAR` names, its secret read from the environment;
    /// `None` without the flag. VAR unset or shorter than 32 bytes is a usage error.
    pub fn jwt(&self) -> Result<Option<signalhub::auth::Jwt>, Exit> {
        let Some(var) = self.jwt_secret_env.as_deref() else {
            return Ok(None);
        };
        let usage = |what: &str| Exit::usage(format!("--jwt-secret-env: {var} {what}"));
        let secret = std::env::var_os(var).ok_or_else(|| usage("is not set"))?;
        // RFC 7518 3.2: an HS256 key of at least the hash's size, 256 bits.
        if secret.len() < 32 {
            return Err(usage("is shorter than 32 bytes"));
        }
        let jwt = signalhub::auth::Jwt::hs256(secret.as_encoded_bytes())
            .map_err(|e| usage(&format!("is not a usable secret: {}", super::describe(&e))))?;
        Ok(Some(jwt))
    }

    /// `--redis` and `--cluster`.
    #[cfg(feature = "redis")]
    fn backplane(&self, config: &mut ServerConfig) -> Result<(), Exit> {
        match (&self.redis, &self.cluster) {
            (Some(url), cluster) => {
                let mut backplane = signalhub::Backplane::redis(url);
                if let Some(name) = cluster {
                    backplane = backplane.cluster(name);
                }
                if let Some(ca) = &self.redis_ca {
                    backplane = backplane.ca_file(ca);
                }
                config.backplane = Some(backplane);
                Ok(())
            }
            (None, _) if self.redis_ca.is_some() => Err(Exit::usage("--redis-ca needs --redis")),
            (None, Some(_)) => Err(Exit::usage("--cluster needs --redis")),
            (None, None) => Ok(()),
        }
    }

    /// `--redis` and `--cluster`: refused, this build has no backplane.
    #[cfg(not(feature = "redis"))]
    fn backplane(&self, _config: &mut ServerConfig) -> Result<(), Exit> {
        if self.redis.is_some() || self.cluster.is_some() || self.redis_ca.is_some() {
            return Err(Exit::usage(
                "--redis, --cluster and --redis-ca need signalhub built with the `redis` feature",
            ));
        }
        Ok(())
    }
}

/// The token in the environment variable `var`, whose value is `value`. The message of an
/// error names the variable, never its value.
fn api_token(var: &str, value: Option<std::ffi::OsString>) -> Result<ApiToken, Exit> {
    let usage = |what: &str| Exit::usage(format!("--api-token-env: {var} {what}"));
    let value = value.ok_or_else(|| usage("is not set"))?;
    let value = value
        .into_string()
        .map_err(|_| usage("is not valid UTF-8"))?;
    if value.is_empty() {
        return Err(usage("is empty"));
    }
    ApiToken::new(value)
        .map_err(|e| usage(&format!("is not a usable token: {}", super::describe(&e))))
}

/// Parses the process's arguments.
pub fn parse_env() -> Result<Command, Exit> {
    let args = std::env::args_os()
        .skip(1)
        .map(|arg| {
            arg.into_string()
                .map_err(|bad| Exit::usage(format!("argument {bad:?} is not valid UTF-8")))
        })
        .collect::<Result<Vec<String>, Exit>>()?;
    parse(&args)
}

/// What `--version` and `-V` print.
pub const VERSION: &str = concat!("signalhub ", env!("CARGO_PKG_VERSION"));

/// Parses `args` (without the program name). `--version` or `-V` before the subcommand
/// (argh wants a subcommand even then) gives the version as [`Exit::help`].
pub fn parse(args: &[String]) -> Result<Command, Exit> {
    if args
        .first()
        .is_some_and(|first| first == "--version" || first == "-V")
    {
        return Err(Exit::help(VERSION));
    }
    let args = split_equals(args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match Cli::from_args(&["signalhub"], &args) {
        Ok(cli) if cli.version => Err(Exit::help(VERSION)),
        Ok(cli) => Ok(cli.command),
        Err(early) if early.status.is_ok() => Err(Exit::help(early.output)),
        Err(early) => Err(Exit::usage(format!(
            "{}; see --help",
            one_line(&early.output)
        ))),
    }
}

/// `--flag=value` as `--flag value` (argh takes only the second form), up to a bare `--`.
fn split_equals(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut flags_done = false;
    for arg in args {
        flags_done |= arg == "--";
        match arg.split_once('=') {
            Some((flag, value)) if !flags_done && flag.starts_with("--") => {
                out.push(flag.to_owned());
                out.push(value.to_owned());
            }
            _ => out.push(arg.clone()),
        }
    }
    out
}

/// argh's error text (sometimes a heading and an indented list) on one line.
fn one_line(text: &str) -> String {
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    parts.join(" ").trim_end_matches(['.', ':']).to_owned()
}

/// `--log-level` (and `RUST_LOG`'s levels): a level name, any case.
pub fn level(value: &str) -> Result<LevelFilter, String> {
    match value.to_ascii_lowercase().as_str() {
        "error" => Ok(LevelFilter::Error),
        "warn" => Ok(LevelFilter::Warn),
        "info" => Ok(LevelFilter::Info),
        "debug" => Ok(LevelFilter::Debug),
        "trace" => Ok(LevelFilter::Trace),
        "off" => Ok(LevelFilter::Off),
        _ => Err("expected error, warn, info, debug, trace or off".to_owned()),
    }
}

/// `SECONDS:JSON`, with SECONDS above 0.
fn timer_broadcast(value: &str) -> Result<TimerBroadcast, String> {
    let (secs, json) = value
        .split_once(':')
        .ok_or("expected SECONDS:JSON such as 30:{\"type\":\"heartbeat\"}")?;
    let every = seconds(secs).and_then(|every| {
        (!every.is_zero())
            .then_some(every)
            .ok_or_else(|| "the interval must be above 0 seconds".to_owned())
    })?;
    let message = serde_json::from_str(json).map_err(|e| format!("invalid JSON: {e}"))?;
    Ok(TimerBroadcast { every, message })
}

/// A number of seconds, decimals allowed (`0.5`).
fn seconds(value: &str) -> Result<Duration, String> {
    let expected = || "expected a number of seconds such as 10 or 0.5".to_owned();
    let secs: f64 = value.trim().parse().map_err(|_| expected())?;
    Duration::try_from_secs_f64(secs).map_err(|_| expected())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, Exit> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(&owned)
    }

    fn serve(args: &[&str]) -> ServeArgs {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        match parse_strs(&all) {
            Ok(Command::Serve(serve)) => serve,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repeatable_endpoints_keep_their_order() {
        let args = serve(&["--ws", "a:1", "--http", "b:2", "--ws", "c:3"]);
        assert_eq!(args.ws, ["a:1", "c:3"]);
        assert_eq!(args.http, ["b:2"]);
        assert_eq!(args.log_level, None);
        assert_eq!(
            serve(&["--log-level", "WARN"]).log_level,
            Some(LevelFilter::Warn)
        );
    }

    #[test]
    fn limits_map_to_the_config_and_default_otherwise() {
        let defaults = ServerConfig::default();
        let config = serve(&[]).config().unwrap();
        assert_eq!(config.max_message_size, defaults.max_message_size);
        assert_eq!(config.ping_interval, defaults.ping_interval);
        assert_eq!(config.allowed_origins, None);

        let args = serve(&[
            "--max-message-size=100",
            "--max-queue-bytes=200",
            "--max-connections=3",
            "--max-connections-per-ip=1",
            "--handshake-timeout=0.5",
            "--max-request-head=1024",
            "--allowed-origin=http://a",
            "--allowed-origin=http://b",
            "--ping-interval=0",
            "--idle-timeout=2.25",
            "--max-http-body=64",
        ]);
        let config = args.config().unwrap();
        assert_eq!(config.max_message_size, 100);
        assert_eq!(config.max_queue_bytes, 200);
        assert_eq!(config.max_connections, 3);
        assert_eq!(config.max_connections_per_ip, 1);
        assert_eq!(config.handshake_timeout, Duration::from_millis(500));
        assert_eq!(config.max_request_head, 1024);
        assert_eq!(
            config.allowed_origins,
            Some(vec!["http://a".into(), "http://b".into()])
        );
        assert_eq!(config.ping_interval, None);
        assert_eq!(config.idle_timeout, Some(Duration::from_millis(2250)));
        assert_eq!(config.max_http_body, 64);
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_and_cluster_set_the_backplane() {
        let config = serve(&["--redis", "redis://127.0.0.1:1/", "--cluster", "c"])
            .config()
            .unwrap();
        let backplane = config.backplane.expect("a backplane");
        assert_eq!(backplane.url(), "redis://127.0.0.1:1/");
        assert_eq!(backplane.cluster_name(), "c");
        assert!(serve(&[]).config().unwrap().backplane.is_none());
        let err = serve(&["--cluster", "c"]).config().unwrap_err();
        assert_eq!(err.code(), 2);
    }

    #[cfg(not(feature = "redis"))]
    #[test]
    fn redis_without_the_feature_is_a_usage_error() {
        let err = serve(&["--redis", "redis://127.0.0.1:1/"])
            .config()
            .unwrap_err();
        assert_eq!(err.code(), 2);
    }

    #[test]
    fn the_api_token_comes_from_the_named_variable() {
        assert!(serve(&[]).api_token().unwrap().is_none());
        let args = serve(&["--api-token-env", "MY_TOKEN"]);
        assert_eq!(args.api_token_env.as_deref(), Some("MY_TOKEN"));
        assert!(api_token("MY_TOKEN", Some("s3cret".into())).is_ok());
    }

    #[test]
    fn an_unset_empty_or_bad_api_token_is_a_one_line_usage_error() {
        for (value, says) in [
            (None, "MY_TOKEN is not set"),
            (Some(""), "MY_TOKEN is empty"),
            (Some("two words"), "MY_TOKEN is not a usable token: "),
        ] {
            let err = api_token("MY_TOKEN", value.map(Into::into)).unwrap_err();
            assert_eq!(err.code(), 2, "{value:?}");
            assert!(
                err.message.starts_with(&format!("--api-token-env: {says}")),
                "{}",
                err.message
            );
            assert!(!err.message.contains('\n') && !err.message.contains("two words"));
        }
    }

    #[test]
    fn a_zero_handshake_timeout_is_a_usage_error() {
        let err = serve(&["--handshake-timeout", "0"]).config().unwrap_err();
        assert_eq!(err.code(), 2);
    }

    #[test]
    fn bad_flags_are_one_line_usage_errors() {
        for args in [
            &["serve", "--bogus"][..],
            &["serve", "--max-connections", "x"],
            &["serve", "--ping-interval", "-1"],
            &["serve", "--log-level", "loud"],
            &["connect"],
            &[],
        ] {
            let err = parse_strs(args).unwrap_err();
            assert_eq!(err.code(), 2, "{args:?}");
            assert!(!err.message.contains('\n'), "{args:?}: {}", err.message);
        }
    }

    #[test]
    fn help_is_exit_zero() {
        for args in [
            &["--help"][..],
            &["-h"],
            &["help"],
            &["serve", "--help"],
            &["serve", "-h"],
            &["serve", "--ws", "*:0", "-h"],
            &["connect", "--help"],
            &["connect", "-h"],
        ] {
            let exit = parse_strs(args).unwrap_err();
            assert_eq!(exit.code(), 0, "{args:?}");
            assert!(exit.message.starts_with("Usage: signalhub"), "{args:?}");
        }
        let serve = parse_strs(&["serve", "-h"]).unwrap_err().message;
        assert!(serve.contains("-h, --help"), "{serve}");
    }

    #[test]
    fn version_is_exit_zero_before_a_subcommand() {
        let expected = format!("signalhub {}", env!("CARGO_PKG_VERSION"));
        for args in [
            &["--version"][..],
            &["-V"],
            &["-V", "serve"],
            &["--version", "x"],
        ] {
            let exit = parse_strs(args).unwrap_err();
            assert_eq!(exit, Exit::help(&expected), "{args:?}");
        }
        assert_eq!(parse_strs(&["serve", "-V"]).unwrap_err().code(), 2);
    }

    #[test]
    fn flag_equals_value_is_split_before_a_bare_double_dash_only() {
        let args: Vec<String> = ["--a=1", "-b=2", "x=y", "--", "--c=3"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            split_equals(&args),
            ["--a", "1", "-b=2", "x=y", "--", "--c=3"]
        );
    }

    #[test]
    fn seconds_take_decimals_and_refuse_the_rest() {
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "x", "-1", "NaN", "inf"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timer_broadcasts_take_seconds_and_json() {
        let args = serve(&[
            "--timer-broadcast",
            "0.5:{\"type\":\"heartbeat\"}",
            "--timer-broadcast=30:\"tick: tock\"",
        ]);
        assert_eq!(
            args.timer_broadcast,
            [
                TimerBroadcast {
                    every: Duration::from_millis(500),
                    message: serde_json::json!({ "type": "heartbeat" }),
                },
                TimerBroadcast {
                    every: Duration::from_secs(30),
                    message: serde_json::json!("tick: tock"),
                },
            ]
        );
        for bad in ["30", "0:{}", "x:{}", "5:{", "5:"] {
            let err = parse_strs(&["serve", "--timer-broadcast", bad]).unwrap_err();
            assert_eq!(err.code(), 2, "{bad}");
        }
    }

    #[test]
    fn connect_takes_a_url_and_headers() {
        let parsed = parse_strs(&["connect", "ws://h:1/p", "--header", "A: b"]).unwrap();
        let Command::Connect(args) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(args.url, "ws://h:1/p");
        assert_eq!(args.header, ["A: b"]);
        assert_eq!(args.ca, None);
        let parsed = parse_strs(&["connect", "wss://h/", "--ca", "ca.pem"]).unwrap();
        let Command::Connect(args) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(args.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert!(!args.danger_accept_invalid_certs);
        let parsed = parse_strs(&["connect", "wss://h/", "--danger-accept-invalid-certs"]);
        let Ok(Command::Connect(args)) = parsed else {
            panic!("{parsed:?}")
        };
        assert!(args.danger_accept_invalid_certs);
        let parsed = parse_strs(&["connect", "ws://h/", "-H", "A: b", "--header=C: d"]).unwrap();
        let Command::Connect(args) = parsed else {
            panic!("{parsed:?}")
        };
        assert_eq!(args.header, ["A: b", "C: d"]);
    }
}
