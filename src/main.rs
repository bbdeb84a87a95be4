//! `signalhub`: the command-line signal server and WebSocket client.
//!
//! ```text
//! signalhub serve [--http ADDR]... [--ws ADDR]... [--views DIR] [--public DIR]
//!                 [--api-token-env VAR] [--log-level LEVEL] [limits...]
//! signalhub connect URL [-H 'Name: value']... [--ca FILE | --danger-accept-invalid-certs]
//! signalhub --version
//! ```
//!
//! `serve` runs a [`signalhub::Server`] with the web-signal page built in, `POST /broadcast`
//! (behind a bearer token with `--api-token-env`), `GET /ws-config` and `GET /metrics`, on
//! `127.0.0.1:8090` and `127.0.0.1:8091` unless told otherwise; `connect` sends standard input lines as WebSocket
//! messages and prints the messages it receives. `signalhub --help` (or `-h`) and
//! `signalhub serve --help` list every flag; `--version` (or `-V`) prints the version.
//!
//! Exit codes: 0 on success (and on a normal shutdown or close), 1 on a runtime failure, 2 on
//! bad flags.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    let outcome = cli::args::parse_env().and_then(|command| match command {
        cli::args::Command::Serve(args) => {
            cli::tunables::apply();
            cli::serve::run(args)
        }
        cli::args::Command::Connect(args) => cli::connect::run(args),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
