//! The Autobahn client driver `make conformance` runs against kosoku's `fuzzingserver`: it
//! puts the project's outbound clients ([`Connections`]) through every case, the classic way.
//!
//! 1. `GET /getCaseCount`: the server sends the number of cases and closes.
//! 2. For each case N: `/runCase?case=N&agent=AGENT`, echoing every message back as it came
//!    (text as text, binary as binary) until the server closes, at most `CASE_TIMEOUT`.
//! 3. `/updateReports?agent=AGENT`: the server writes its reports.
//!
//! ```sh
//! kosoku -m fuzzingserver 127.0.0.1:9001 &
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 signalhub
//! ```
//! It exits 0 once every case was driven (whatever their verdicts, which are the fuzzing
//! server's to give), 1 when the server could not be reached or a case did not end in time.
//! `SIGNALHUB_LOG=debug` shows each connection's end.

use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use signalhub::outbound::{ConnectOptions, Connections, DisconnectEvent, WsData, WsEvent};

const USAGE: &str = "usage: autobahn_client [ws://HOST:PORT] [AGENT]";
/// The longest one case may take, from connect to the server's close.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let level = std::env::var("SIGNALHUB_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Error);
    let _ = simplelog::SimpleLogger::init(level, simplelog::Config::default());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (base, agent) = match &args[..] {
        [] => ("ws://127.0.0.1:9001", "signalhub"),
        [base] => (base.as_str(), "signalhub"),
        [base, agent] => (base.as_str(), agent.as_str()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let base = base.trim_end_matches('/');
    match run(base, agent) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(stuck) => {
            eprintln!("autobahn_client: {stuck} case(s) did not end within {CASE_TIMEOUT:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Drives every case; the number of cases that did not end in time.
fn run(base: &str, agent: &str) -> Result<usize, String> {
    let clients = Connections::new();

    let (count_tx, count_rx) = mpsc::channel();
    let count_tx = Mutex::new(count_tx);
    let ended = session(
        &clients,
        "case-count",
        &format!("{base}/getCaseCount"),
        move |event| {
            if let Some(text) = event.text() {
                let _ = count_tx.lock().map(|tx| tx.send(text.trim().to_owned()));
            }
            Ok(())
        },
    )?;
    wait(&clients, "case-count", &ended).map_err(|e| format!("getCaseCount: {e}"))?;
    let count: usize = match count_rx.try_recv() {
        Ok(text) => text
            .parse()
            .map_err(|_| format!("getCaseCount sent {text:?}, not a number"))?,
        Err(_) => return Err("getCaseCount sent no count".into()),
    };
    println!("running {count} cases as agent {agent:?}");

    let started = Instant::now();
    let mut stuck = 0;
    for case in 1..=count {
        let name = format!("case-{case}");
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        match session(&clients, &name, &url, echo) {
            Ok(ended) => {
                if let Err(e) = wait(&clients, &name, &ended) {
                    eprintln!("case {case}: {e}");
                    stuck += 1;
                }
            }
            // A case may refuse the connection on purpose; the report tells.
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }
    println!(
        "ran {count} cases in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let url = format!("{base}/updateReports?agent={agent}");
    let ended = session(&clients, "update-reports", &url, |_| Ok(()))?;
    wait(&clients, "update-reports", &ended).map_err(|e| format!("updateReports: {e}"))?;
    clients.shutdown();
    Ok(stuck)
}

/// Sends each message back on its connection as it came: text as text, binary as binary.
fn echo(event: &WsEvent) -> signalhub::Result<()> {
    match &event.data {
        WsData::Bytes(bytes) => event.reply_binary(bytes),
        // The content type is text/plain: every text frame is WsData::Text.
        WsData::Text(text) => event.reply(text),
        _ => event.reply(event.text().unwrap_or_default()),
    }
}

/// Connects `name` to `url` with `handler`; the receiver hears when it has ended.
fn session<F>(
    clients: &Connections,
    name: &str,
    url: &str,
    handler: F,
) -> Result<Receiver<String>, String>
where
    F: Fn(&WsEvent) -> signalhub::Result<()> + Send + Sync + 'static,
{
    let (ended_tx, ended_rx) = mpsc::channel();
    let ended_tx = Mutex::new(ended_tx);
    let options = ConnectOptions::new()
        // Every text message as it came, no JSON parsing.
        .content_type("text/plain")
        // No pings of our own: they would show up in the cases' expected frame sequences.
        .ping_interval(None)
        .connect_timeout(Duration::from_secs(10))
        .write_timeout(CASE_TIMEOUT)
        .on_disconnect(move |event: &DisconnectEvent| {
            log::debug!("{}: {}", event.name, event.reason);
            let _ = ended_tx.lock().map(|tx| tx.send(event.reason.to_string()));
        });
    clients
        .connect(name, url, options, handler)
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    Ok(ended_rx)
}

/// Waits for connection `name` to end (at most `CASE_TIMEOUT`), then forgets it; a
/// connection still open by then is closed.
fn wait(clients: &Connections, name: &str, ended: &Receiver<String>) -> Result<(), String> {
    let outcome = match ended.recv_timeout(CASE_TIMEOUT) {
        Ok(_) | Err(RecvTimeoutError::Disconnected) => Ok(()),
        Err(RecvTimeoutError::Timeout) => Err(format!("still open after {CASE_TIMEOUT:?}")),
    };
    let _ = clients.remove(name);
    outcome
}
