//! `signalhub connect`: a small WebSocket client for debugging any server. Each line of
//! standard input goes out as one text message; each message received is printed on its own
//! line.
//!
//! It is one [`signalhub::outbound::Connections`] connection with the `text/plain` content type (so every
//! message is printed as it came, JSON or not): the library's connection thread reads,
//! answers pings and the server's close, and prints through the handler; a `sh-stdin` thread
//! sends the lines, which never waits for that read. `ws://` and `wss://` both work (`--ca`
//! for a private CA, `--danger-accept-invalid-certs` for any certificate, with a warning).

use std::io::{self, BufRead, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use signalhub::outbound::{ConnectOptions, Connections, DisconnectReason};
use signalhub::Error;

use super::args::ConnectArgs;
use super::{describe, Exit};

/// The connection's name in the registry.
const NAME: &str = "cli";
/// How long connecting (TCP, TLS and the upgrade) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What `--danger-accept-invalid-certs` prints on stderr before connecting.
const DANGER_WARNING: &str = "signalhub: warning: --danger-accept-invalid-certs: the server's \
    certificate is not checked; whoever can intercept the connection can pose as the server";

/// What the threads tell the main thread.
enum Event {
    /// The connection ended: `Ok` for a normal close, else the reason.
    Ended(Result<(), String>),
    /// Standard input ended, and the close (1000) is done.
    InputDone,
    /// Sending failed (the connection's end usually has the real reason).
    SendFailed(String),
}

/// Connects, then runs until the connection ends or standard input ends and the close is
/// answered.
pub fn run(args: ConnectArgs) -> Result<(), Exit> {
    let mut options = ConnectOptions::new()
        .content_type("text/plain")
        .connect_timeout(CONNECT_TIMEOUT)
        .close_timeout(args.close_timeout);
    for header in &args.header {
        let (name, value) = parse_header(header).map_err(Exit::usage)?;
        options = options.header(name, value);
    }
    if args.danger_accept_invalid_certs {
        if args.ca.is_some() {
            return Err(Exit::usage(
                "--ca and --danger-accept-invalid-certs: give one or the other",
            ));
        }
        eprintln!("{DANGER_WARNING}");
        options = options.danger_accept_invalid_certs(true);
    }
    options.ca_file = args.ca;
    let (events, received) = mpsc::channel();
    let ended = Mutex::new(events.clone());
    let options = options.on_disconnect(move |event| {
        let _ = lock(&ended).send(Event::Ended(verdict(&event.reason)));
    });
    let printer = Mutex::new(events.clone());
    let clients = Connections::new();
    (clients.connect(NAME, &args.url, options, move |event| {
        if let Err(e) = print_line(&String::from_utf8_lossy(&event.body)) {
            let _ = lock(&printer).send(Event::Ended(Err(e)));
        }
        Ok(())
    }))
    .map_err(|e| connect_error(&args.url, e))?;
    eprintln!("connected to {}", args.url);
    let sender = clients.clone();
    thread::Builder::new()
        .name("sh-stdin".into())
        .spawn(move || pump_stdin(&sender, &events))
        .map_err(|e| Exit::failure(format!("cannot start a thread: {e}")))?;
    let outcome = wait(&received, args.close_timeout).map_err(Exit::failure);
    clients.shutdown();
    outcome
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Name: value`, checked as a header.
fn parse_header(header: &str) -> Result<(String, String), String> {
    use tungstenite::http::{HeaderName, HeaderValue};
    let invalid = |why: &str| format!("invalid header {header:?}: {why}");
    let (name, value) = header
        .split_once(':')
        .ok_or_else(|| invalid("expected 'Name: value'"))?;
    let (name, value) = (name.trim(), value.trim());
    HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(&e.to_string()))?;
    HeaderValue::from_str(value).map_err(|e| invalid(&e.to_string()))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// A failed connect, in words: a bad URL or option is a usage error (exit 2), the rest a
/// failure (exit 1).
fn connect_error(url: &str, error: Error) -> Exit {
    match error {
        Error::InvalidUrl { reason, .. } => Exit::usage(format!("invalid URL {url:?}: {reason}")),
        Error::InvalidConfig(reason) => Exit::usage(reason),
        Error::Refused { status, body, .. } => {
            let reason = tungstenite::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            let detail = match body.as_str() {
                "" => String::new(),
                body => format!(": {body}"),
            };
            Exit::failure(format!(
                "the server refused the upgrade: HTTP {status} {reason}{detail}"
            ))
        }
        other => Exit::failure(describe(&other)),
    }
}

/// `Ok` for a close we asked for or a normal one from the server (1000, 1001, or no code),
/// else the reason.
fn verdict(reason: &DisconnectReason) -> Result<(), String> {
    match reason {
        DisconnectReason::Requested => Ok(()),
        DisconnectReason::Closed {
            code: None | Some(1000 | 1001),
            ..
        } => Ok(()),
        DisconnectReason::Closed {
            code: Some(code),
            reason,
        } => Err(match reason.as_str() {
            "" => format!("the server closed the connection with code {code}"),
            reason => format!("the server closed the connection with code {code}: {reason}"),
        }),
        other => Err(other.to_string()),
    }
}

/// Prints one received message as a line and flushes, so pipes see it at once.
fn print_line(text: &str) -> Result<(), String> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))
}

/// Sends each line of standard input (without its line ending) as a text message; at its end,
/// closes normally (waiting for the server's reply, at most the close timeout; what arrives
/// meanwhile is printed).
fn pump_stdin(clients: &Connections, events: &Sender<Event>) {
    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = events.send(Event::SendFailed(format!("cannot read stdin: {e}")));
                return;
            }
        }
        let text = String::from_utf8_lossy(strip_line_ending(&line)).into_owned();
        if let Err(e) = clients.send(NAME, text) {
            let _ = events.send(Event::SendFailed(format!("cannot send: {}", describe(&e))));
            return;
        }
    }
    let _ = clients.disconnect(NAME);
    let _ = events.send(Event::InputDone);
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Waits for the end: the connection's verdict, or, once standard input is done (or sending
/// failed), the verdict within `close_timeout`.
fn wait(events: &Receiver<Event>, close_timeout: Duration) -> Result<(), String> {
    let first = events
        .recv()
        .map_err(|_| "the client threads stopped".to_owned())?;
    let fallback = match first {
        Event::Ended(outcome) => return outcome,
        Event::InputDone => Ok(()),
        Event::SendFailed(reason) => Err(reason),
    };
    match events.recv_timeout(close_timeout) {
        Ok(Event::Ended(outcome)) => outcome,
        _ => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_and_bad_ones_say_why() {
        let parsed = parse_header("X-Token:  abc ").unwrap();
        assert_eq!(parsed, ("X-Token".to_owned(), "abc".to_owned()));
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn bad_urls_are_usage_errors_and_refusals_show_the_status() {
        let invalid = Error::InvalidUrl {
            url: "http://x/".into(),
            reason: "expected ws:// or wss://".into(),
        };
        assert_eq!(connect_error("http://x/", invalid).code(), 2);
        let refused = Error::Refused {
            url: "ws://x/".into(),
            status: 503,
            body: "full".into(),
        };
        assert_eq!(
            connect_error("ws://x/", refused),
            Exit::failure("the server refused the upgrade: HTTP 503 Service Unavailable: full")
        );
    }

    #[test]
    fn normal_closes_are_fine_and_others_say_why() {
        let closed = |code, reason: &str| DisconnectReason::Closed {
            code,
            reason: reason.into(),
        };
        assert_eq!(verdict(&closed(Some(1001), "")), Ok(()));
        assert_eq!(verdict(&closed(None, "")), Ok(()));
        assert_eq!(verdict(&DisconnectReason::Requested), Ok(()));
        assert_eq!(
            verdict(&closed(Some(1009), "too big")),
            Err("the server closed the connection with code 1009: too big".into())
        );
        assert!(verdict(&DisconnectReason::DeadPeer).is_err());
    }

    #[test]
    fn line_endings_are_stripped_once() {
        assert_eq!(strip_line_ending(b"a\r\n"), b"a");
        assert_eq!(strip_line_ending(b"a\n"), b"a");
        assert_eq!(strip_line_ending(b"a"), b"a");
        assert_eq!(strip_line_ending(b"a\n\n"), b"a\n");
    }
}
