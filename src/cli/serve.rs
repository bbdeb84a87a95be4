//! `signalhub serve`: endpoints from the flags, the built-in page and routes, one
//! `listening on URL` line per endpoint, and a graceful shutdown on SIGINT or SIGTERM.
//!
//! With no address flags it listens on loopback only; bound beyond loopback without
//! `--api-token-env`, it warns once at start that `POST /broadcast` is open.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use signalhub::http::Assets;
use signalhub::tls::Certificate;
use signalhub::{Endpoint, Error, Protocol, Server, ServerHandle};

use super::args::{ServeArgs, TimerBroadcast};
use super::{control, describe, logging, routes, Exit};

/// Where the Http endpoint listens when no address flag is given (Pode's example): this
/// machine only, so that an unguarded `POST /broadcast` is not offered to the network.
const DEFAULT_HTTP: &str = "127.0.0.1:8090";
/// Where the Ws endpoint listens when no address flag is given.
const DEFAULT_WS: &str = "127.0.0.1:8091";

/// The built-in views: the web-signal page.
static VIEWS: &[(&str, &[u8])] = &[(
    "index.html",
    include_bytes!("../../examples/web_signal/views/index.html"),
)];

/// The built-in public files: the web-signal page's script.
static PUBLIC: &[(&str, &[u8])] = &[(
    "script.js",
    include_bytes!("../../examples/web_signal/public/script.js"),
)];

/// One endpoint to add, with the name it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    name: String,
    endpoint: Endpoint,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> Result<(), Exit> {
    let config = args.config()?;
    let api_token = args.api_token()?;
    let jwt = args.jwt()?;
    let (levels, rust_log_warning) = logging::choose(args.log_level, std::env::var_os("RUST_LOG"));
    logging::init(levels)?;
    if let Some(warning) = rust_log_warning {
        log::warn!("{warning}");
    }
    let plan = plan(&args)?;
    let mut server = Server::with_config(config);
    for planned in &plan {
        server
            .endpoint(planned.endpoint.clone())
            .map_err(start_error)?;
    }
    server.views(assets("--views", args.views.as_deref(), VIEWS)?);
    server.public(assets("--public", args.public.as_deref(), PUBLIC)?);
    let ws_config = Arc::new(OnceLock::new());
    let has_ws = plan.iter().any(|p| p.name.starts_with("ws"));
    let ws_config_route = has_ws.then(|| ws_config.clone());
    routes::add(&mut server, ws_config_route, api_token.as_ref()).map_err(start_error)?;
    if let Some(token) = &api_token {
        control::add(&mut server, token).map_err(start_error)?;
    }
    if let Some(jwt) = jwt {
        control::require_tokens(&mut server, jwt);
    }
    add_timer_broadcasts(&mut server, &args.timer_broadcast).map_err(start_error)?;
    let (stop_sender, stop) = stop_signal()?;
    let handle = server.start().map_err(start_error)?;
    if has_ws {
        let first = plan
            .iter()
            .find(|p| p.name.starts_with("ws"))
            .map_or("ws-0", |p| p.name.as_str());
        let _ = ws_config.set(routes::ws_config(&handle, first));
    }
    if api_token.is_none() {
        warn_if_open(&handle);
        log::info!("GET /clients and POST /disconnect need --api-token-env: not offered");
    }
    announce(&handle, &plan);
    // Only an error if the signal handler is gone, which never happens: stop either way.
    let failed = std::thread::scope(|scope| {
        // join() returns early, with an error, only if the server fails by itself.
        scope.spawn(|| {
            if let Err(error) = handle.join() {
                let _ = stop_sender.send(Stop::Failed(error));
            }
        });
        let why = stop.recv();
        log::info!("shutting down");
        handle.shutdown();
        match why {
            Ok(Stop::Failed(error)) => Some(error),
            _ => None,
        }
    });
    match failed {
        Some(error) => Err(Exit::failure(error)),
        None => Ok(()),
    }
}

/// Why `serve` stops.
enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// The server failed by itself.
    Failed(Error),
}

/// The endpoints from the address flags, named `http-N`, `ws-N`, `https-N` and `wss-N` in
/// flag order; with none of them, Http on 127.0.0.1:8090 and Ws on 127.0.0.1:8091. The TLS
/// ones all use the one certificate the flags give.
fn plan(args: &ServeArgs) -> Result<Vec<Planned>, Exit> {
    let no_address = [&args.http, &args.ws, &args.https, &args.wss]
        .iter()
        .all(|flags| flags.is_empty());
    let (http, ws) = if no_address {
        (vec![DEFAULT_HTTP.to_owned()], vec![DEFAULT_WS.to_owned()])
    } else {
        (every_interface(&args.http), every_interface(&args.ws))
    };
    let (https, wss) = (every_interface(&args.https), every_interface(&args.wss));
    let mut planned = pair(
        ("http", &http, &|address| Endpoint::http(address)),
        ("ws", &ws, &|address| Endpoint::ws(address)),
    );
    if !args.https.is_empty() || !args.wss.is_empty() {
        let certificate = certificate(args)?;
        let https_endpoint = |address: &str| Endpoint::https(address, certificate.clone());
        let wss_endpoint = |address: &str| Endpoint::wss(address, certificate.clone());
        planned.extend(pair(
            ("https", &https, &https_endpoint),
            ("wss", &wss, &wss_endpoint),
        ));
    }
    Ok(planned)
}

/// The addresses, with `:PORT` (no host) written `*:PORT`: every interface, as Go's
/// `net.Listen` takes it (the library's addresses always have a host).
fn every_interface(addresses: &[String]) -> Vec<String> {
    (addresses.iter())
        .map(|address| match address.strip_prefix(':') {
            Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                format!("*{address}")
            }
            _ => address.clone(),
        })
        .collect()
}

/// One kind of endpoint: its name prefix, the addresses its flags gave, and how to make one.
type Kind<'a> = (&'a str, &'a [String], &'a dyn Fn(&str) -> Endpoint);

/// Page and WebSocket endpoints of one kind (plain or TLS), named `KIND-N` in flag order. A
/// WebSocket endpoint with exactly the same address as a page endpoint not yet paired shares
/// its port, also with port 0.
fn pair(
    (page_kind, pages, page): Kind<'_>,
    (socket_kind, sockets, socket): Kind<'_>,
) -> Vec<Planned> {
    let mut planned: Vec<Planned> = (pages.iter().enumerate())
        .map(|(n, address)| {
            let name = format!("{page_kind}-{n}");
            let endpoint = page(address).name(name.as_str());
            Planned { name, endpoint }
        })
        .collect();
    let mut paired = vec![false; pages.len()];
    for (n, address) in sockets.iter().enumerate() {
        let name = format!("{socket_kind}-{n}");
        let mut endpoint = socket(address).name(name.as_str());
        let partner = (0..pages.len()).find(|&i| !paired[i] && pages[i] == *address);
        if let Some(i) = partner {
            paired[i] = true;
            endpoint = endpoint.share_port_with(format!("{page_kind}-{i}"));
        }
        planned.push(Planned { name, endpoint });
    }
    planned
}

/// The certificate for `--https` and `--wss`: `--cert` + `--key`, `--pfx`, or
/// `--self-signed`, exactly one.
fn certificate(args: &ServeArgs) -> Result<Certificate, Exit> {
    let flag = if args.wss.is_empty() {
        "--https"
    } else {
        "--wss"
    };
    let usage = |message: &str| Exit::usage(format!("{flag}: {message}"));
    match (&args.cert, &args.key, &args.pfx, args.self_signed) {
        (Some(cert), Some(key), None, false) => Ok(Certificate::pem(cert, key)),
        (None, None, Some(pfx), false) => pfx_certificate(pfx, args.pfx_password_env.as_deref()),
        (None, None, None, true) => self_signed_certificate(),
        (Some(_), None, _, _) | (None, Some(_), _, _) => Err(usage("--cert and --key go together")),
        (None, None, None, false) => Err(usage("needs --cert and --key, --pfx, or --self-signed")),
        _ => Err(usage("give one of --cert/--key, --pfx or --self-signed")),
    }
}

#[cfg(feature = "pkcs12")]
fn pfx_certificate(
    file: &std::path::Path,
    password_env: Option<&str>,
) -> Result<Certificate, Exit> {
    let password = match password_env {
        Some(var) => std::env::var(var)
            .map_err(|_| Exit::usage(format!("--pfx-password-env: {var} is not set")))?,
        None => String::new(),
    };
    Ok(Certificate::pkcs12(file, password))
}

#[cfg(not(feature = "pkcs12"))]
fn pfx_certificate(_: &std::path::Path, _: Option<&str>) -> Result<Certificate, Exit> {
    Err(Exit::usage(
        "--pfx: this signalhub was built without the pkcs12 feature",
    ))
}

#[cfg(feature = "self-signed")]
fn self_signed_certificate() -> Result<Certificate, Exit> {
    Ok(Certificate::self_signed(["localhost", "127.0.0.1"]))
}

#[cfg(not(feature = "self-signed"))]
fn self_signed_certificate() -> Result<Certificate, Exit> {
    Err(Exit::usage(
        "--self-signed: this signalhub was built without the self-signed feature",
    ))
}

/// `--timer-broadcast`: timers `timer-broadcast-N` sending their message to every client.
fn add_timer_broadcasts(
    server: &mut Server,
    broadcasts: &[TimerBroadcast],
) -> signalhub::Result<()> {
    for (n, broadcast) in broadcasts.iter().enumerate() {
        let message = broadcast.message.clone();
        server.timer(
            &format!("timer-broadcast-{n}"),
            broadcast.every,
            move |event| event.signals().send(&message),
        )?;
    }
    Ok(())
}

/// The folder a flag names, or the built-in files without one.
fn assets(
    flag: &str,
    folder: Option<&Path>,
    built_in: &'static [(&'static str, &'static [u8])],
) -> Result<Assets, Exit> {
    match folder {
        None => Ok(Assets::Embedded(built_in)),
        Some(dir) if dir.is_dir() => Ok(Assets::Folder(dir.to_owned())),
        Some(dir) => Err(Exit::usage(format!(
            "{flag} {}: not a folder",
            dir.display()
        ))),
    }
}

/// Prints `listening on SCHEME://ADDRESS` for every endpoint, in plan order, with the
/// address really bound (`*:8091` shows as `0.0.0.0:8091`), and flushes stdout.
fn announce(handle: &ServerHandle, plan: &[Planned]) {
    let mut stdout = std::io::stdout().lock();
    for planned in plan {
        if let Some(info) = handle.endpoints().iter().find(|e| e.name == planned.name) {
            let scheme = info.protocol.as_str();
            let _ = writeln!(stdout, "listening on {scheme}://{}", info.address);
        }
    }
    let _ = stdout.flush();
}

/// One warning when an Http endpoint (where `POST /broadcast` is) is bound beyond loopback:
/// without `--api-token-env`, anyone who can reach it can send to every client.
fn warn_if_open(handle: &ServerHandle) {
    let open: Vec<String> = handle
        .endpoints()
        .iter()
        .filter(|e| matches!(e.protocol, Protocol::Http | Protocol::Https))
        .filter(|e| !e.address.ip().to_canonical().is_loopback())
        .map(|e| e.address.to_string())
        .collect();
    if !open.is_empty() {
        log::warn!(
            "POST /broadcast is open to anyone who can reach {}: give --api-token-env VAR \
             (VAR holding a secret) to require `Authorization: Bearer <secret>`, or listen \
             on 127.0.0.1",
            open.join(", ")
        );
    }
}

/// A channel that receives once SIGINT or SIGTERM arrives. A second signal exits at once.
fn stop_signal() -> Result<(mpsc::Sender<Stop>, mpsc::Receiver<Stop>), Exit> {
    let (sender, receiver) = mpsc::channel();
    let for_failures = sender.clone();
    let signalled = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if signalled.swap(true, Ordering::SeqCst) {
            eprintln!("signalhub: second signal, exiting without waiting");
            std::process::exit(1);
        }
        let _ = sender.send(Stop::Signal);
    })
    .map_err(|e| Exit::failure(format!("cannot handle SIGINT/SIGTERM: {e}")))?;
    Ok((for_failures, receiver))
}

/// Bad addresses and configuration are usage errors (2); anything else, such as a port in
/// use, is a failure (1).
fn start_error(error: Error) -> Exit {
    let text = describe(&error);
    match error {
        Error::InvalidAddress { .. }
        | Error::InvalidConfig(_)
        | Error::DuplicateEndpoint(_)
        | Error::UnknownEndpoint(_) => Exit::usage(text),
        _ => Exit::failure(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let mut all = vec!["serve".to_owned()];
        all.extend(flags.iter().map(|f| f.to_string()));
        match super::super::args::parse(&all) {
            Ok(super::super::args::Command::Serve(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn plain(http: &[&str], ws: &[&str]) -> Vec<Planned> {
        pair(
            ("http", &strings(http), &|address| Endpoint::http(address)),
            ("ws", &strings(ws), &|address| Endpoint::ws(address)),
        )
    }

    #[test]
    fn no_flags_listen_on_loopback_like_the_example() {
        let planned = plan(&args(&[])).unwrap();
        assert_eq!(
            planned,
            [
                Planned {
                    name: "http-0".into(),
                    endpoint: Endpoint::http("127.0.0.1:8090").name("http-0"),
                },
                Planned {
                    name: "ws-0".into(),
                    endpoint: Endpoint::ws("127.0.0.1:8091").name("ws-0"),
                },
            ]
        );
    }

    #[test]
    fn the_same_address_string_shares_a_port_once() {
        let planned = plain(
            &["127.0.0.1:0", "127.0.0.1:0"],
            &["127.0.0.1:0", "127.0.0.1:5", "127.0.0.1:0", "127.0.0.1:0"],
        );
        let ws: Vec<&Endpoint> = planned[2..].iter().map(|p| &p.endpoint).collect();
        assert_eq!(
            ws,
            [
                &Endpoint::ws("127.0.0.1:0")
                    .name("ws-0")
                    .share_port_with("http-0"),
                &Endpoint::ws("127.0.0.1:5").name("ws-1"),
                &Endpoint::ws("127.0.0.1:0")
                    .name("ws-2")
                    .share_port_with("http-1"),
                &Endpoint::ws("127.0.0.1:0").name("ws-3"),
            ]
        );
    }

    #[test]
    fn a_port_without_a_host_is_every_interface() {
        assert_eq!(
            every_interface(&strings(&[
                ":8091", ":0", "*:1", ":", ":x", "[::1]:2", "h:3"
            ])),
            ["*:8091", "*:0", "*:1", ":", ":x", "[::1]:2", "h:3"]
        );
        // Normalised before pairing: `:0` and `*:0` are the same address.
        let planned = plan(&args(&["--http", ":0", "--ws", "*:0"])).unwrap();
        assert_eq!(
            planned[1].endpoint,
            Endpoint::ws("*:0").name("ws-0").share_port_with("http-0")
        );
        assert_eq!(planned[0].endpoint, Endpoint::http("*:0").name("http-0"));
    }

    #[test]
    fn ws_only_has_no_http_endpoint() {
        let planned = plain(&[], &["127.0.0.1:0"]);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].name, "ws-0");
    }

    #[test]
    fn https_and_wss_on_one_address_share_it_with_one_certificate() {
        let planned = plan(&args(&[
            "--https",
            "127.0.0.1:0",
            "--wss",
            "127.0.0.1:0",
            "--cert",
            "c.pem",
            "--key",
            "k.pem",
        ]))
        .unwrap();
        let certificate = Certificate::pem("c.pem", "k.pem");
        assert_eq!(
            planned,
            [
                Planned {
                    name: "https-0".into(),
                    endpoint: Endpoint::https("127.0.0.1:0", certificate.clone()).name("https-0"),
                },
                Planned {
                    name: "wss-0".into(),
                    endpoint: Endpoint::wss("127.0.0.1:0", certificate)
                        .name("wss-0")
                        .share_port_with("https-0"),
                },
            ]
        );
        let missing = plan(&args(&["--https", "127.0.0.1:0"])).unwrap_err();
        assert!(
            format!("{missing:?}").contains("--https: needs --cert"),
            "{missing:?}"
        );
    }
}
