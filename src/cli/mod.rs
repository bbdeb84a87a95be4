//! The `signalhub` binary's modules: flags ([`args`]), the server ([`serve`] and its built-in
//! HTTP routes in [`routes`], its log in [`logging`], its glibc settings in [`tunables`]) and
//! the WebSocket client ([`connect`]).

pub mod args;
pub mod connect;
pub mod control;
pub mod logging;
pub mod routes;
pub mod serve;
pub mod tunables;

use std::fmt;
use std::io::Write;
use std::process::ExitCode;

/// Bad flags or arguments.
pub const EXIT_USAGE: u8 = 2;
/// A failure while running: cannot listen, cannot connect, an abnormal close.
pub const EXIT_FAILURE: u8 = 1;

/// How the program ends early: help text (exit 0, on stdout) or an error (on stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    code: u8,
    message: String,
}

impl Exit {
    /// Help or version text the user asked for: printed on stdout, exit 0.
    pub fn help(text: impl Into<String>) -> Exit {
        Exit {
            code: 0,
            message: text.into(),
        }
    }

    /// Bad flags or arguments: one line on stderr, exit 2.
    pub fn usage(message: impl fmt::Display) -> Exit {
        Exit {
            code: EXIT_USAGE,
            message: message.to_string(),
        }
    }

    /// A failure while running: one line on stderr, exit 1.
    pub fn failure(message: impl fmt::Display) -> Exit {
        Exit {
            code: EXIT_FAILURE,
            message: message.to_string(),
        }
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// Prints the text where it belongs and gives the exit code.
    pub fn report(self) -> ExitCode {
        if self.code() == 0 {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{}", self.message.trim_end());
            let _ = stdout.flush();
        } else {
            eprintln!("signalhub: {}", self.message);
        }
        ExitCode::from(self.code)
    }
}

/// An error with its causes, on one line: `cannot listen on 127.0.0.1:80: permission denied`.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
