//! `signalhub serve`'s log on stderr, through simplelog: at the level of `--log-level` when
//! given, else at what `RUST_LOG` says, else at info.
//!
//! Of `RUST_LOG`'s syntax (env_logger's), comma-separated entries of these forms are
//! understood: `LEVEL` (every target), `signalhub=LEVEL` (signalhub's own messages, the
//! library's and the binary's) and `signalhub` (the same at trace). As with env_logger,
//! entries for `signalhub` alone leave other targets (rustls, tungstenite) off. Anything
//! else (other targets, a `/regex` filter, unknown levels) is ignored with one warning.

use std::ffi::OsString;
use std::io;

use log::{LevelFilter, Log, Metadata, Record};
use simplelog::{Config, WriteLogger};

use super::args::level;
use super::Exit;

/// The crate's log target: the library's modules and the binary's are `signalhub::...`.
const OWN: &str = "signalhub";

/// What `RUST_LOG` entries are understood, for the warning about the rest.
const UNDERSTOOD: &str = "only LEVEL, signalhub=LEVEL and signalhub entries are understood \
                          (LEVEL: error, warn, info, debug, trace or off)";

/// The levels logged at: signalhub's own messages, and everything else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Levels {
    /// Targets `signalhub` and `signalhub::...`.
    pub own: LevelFilter,
    /// Every other target (rustls, tungstenite, ...).
    pub others: LevelFilter,
}

impl Levels {
    /// One level for every target.
    pub fn all(level: LevelFilter) -> Levels {
        Levels {
            own: level,
            others: level,
        }
    }

    /// The level for records of `target`.
    fn of(&self, target: &str) -> LevelFilter {
        let own = target
            .strip_prefix(OWN)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"));
        if own {
            self.own
        } else {
            self.others
        }
    }
}

/// The levels to log at: `flag` (`--log-level`) when given, else what `rust_log` (the value
/// of `RUST_LOG`) says, else info. The second value is a warning to log when `RUST_LOG`
/// had entries that are not understood.
pub fn choose(flag: Option<LevelFilter>, rust_log: Option<OsString>) -> (Levels, Option<String>) {
    let default = Levels::all(LevelFilter::Info);
    if let Some(level) = flag {
        return (Levels::all(level), None);
    }
    let Some(value) = rust_log else {
        return (default, None);
    };
    let Some(value) = value.to_str() else {
        return (
            default,
            Some("RUST_LOG is not valid UTF-8: ignored".to_owned()),
        );
    };
    let (levels, ignored) = from_rust_log(value);
    let warning = (!ignored.is_empty()).then(|| {
        let ignored: Vec<String> = ignored.iter().map(|entry| format!("`{entry}`")).collect();
        format!("RUST_LOG: ignoring {}: {UNDERSTOOD}", ignored.join(", "))
    });
    (levels.unwrap_or(default), warning)
}

/// What `RUST_LOG` says: the levels (`None` when no entry is understood, as when it is
/// empty), and the entries that are not understood.
fn from_rust_log(value: &str) -> (Option<Levels>, Vec<&str>) {
    let mut ignored = Vec::new();
    // env_logger's `DIRECTIVES/REGEX`: the message filter is not supported.
    let directives = match value.split_once('/') {
        Some((directives, _)) => {
            ignored.push(&value[directives.len()..]);
            directives
        }
        None => value,
    };
    let (mut every, mut own) = (None, None);
    for entry in directives
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match entry.split_once('=') {
            None => match level(entry) {
                Ok(level) => every = Some(level),
                Err(_) if entry == OWN => own = Some(LevelFilter::Trace),
                Err(_) => ignored.push(entry),
            },
            Some((target, value)) if target.trim() == OWN => match level(value.trim()) {
                Ok(level) => own = Some(level),
                Err(_) => ignored.push(entry),
            },
            Some(_) => ignored.push(entry),
        }
    }
    let levels = match (every, own) {
        (None, None) => None,
        (Some(every), own) => Some(Levels {
            own: own.unwrap_or(every),
            others: every,
        }),
        (None, Some(own)) => Some(Levels {
            own,
            others: LevelFilter::Off,
        }),
    };
    (levels, ignored)
}

/// Logs to stderr at these levels, in simplelog's format.
pub fn init(levels: Levels) -> Result<(), Exit> {
    let most = levels.own.max(levels.others);
    // One simplelog writer (one lock: lines never interleave) at the highest of the two
    // levels; `Split` lets through what each target's level allows.
    let inner = WriteLogger::new(most, Config::default(), io::stderr());
    log::set_boxed_logger(Box::new(Split { levels, inner }))
        .map_err(|e| Exit::failure(format!("cannot start logging: {e}")))?;
    log::set_max_level(most);
    Ok(())
}

/// A simplelog writer behind a per-target level.
struct Split {
    levels: Levels,
    inner: Box<WriteLogger<io::Stderr>>,
}

impl Log for Split {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.levels.of(metadata.target()) && self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LevelFilter::{Debug, Info, Off, Trace, Warn};

    fn levels(own: LevelFilter, others: LevelFilter) -> Levels {
        Levels { own, others }
    }

    #[test]
    fn the_flag_wins_over_rust_log_and_info_is_the_default() {
        let debug = Some(OsString::from("debug"));
        assert_eq!(choose(Some(Warn), debug.clone()), (Levels::all(Warn), None));
        assert_eq!(choose(None, debug), (Levels::all(Debug), None));
        assert_eq!(choose(None, None), (Levels::all(Info), None));
        assert_eq!(choose(None, Some("".into())), (Levels::all(Info), None));
    }

    #[test]
    fn plain_levels_and_signalhub_entries_are_understood() {
        for (value, expected) in [
            ("debug", levels(Debug, Debug)),
            ("WARN", levels(Warn, Warn)),
            ("off", levels(Off, Off)),
            ("info, trace", levels(Trace, Trace)),
            ("signalhub=debug", levels(Debug, Off)),
            ("signalhub", levels(Trace, Off)),
            ("warn,signalhub=debug", levels(Debug, Warn)),
            ("signalhub=debug,warn", levels(Debug, Warn)),
            ("debug,signalhub=off", levels(Off, Debug)),
        ] {
            assert_eq!(from_rust_log(value), (Some(expected), vec![]), "{value}");
        }
    }

    #[test]
    fn other_entries_are_ignored_with_one_warning() {
        assert_eq!(
            from_rust_log("info,rustls=debug,signalhub=loud,/ab"),
            (
                Some(levels(Info, Info)),
                vec!["/ab", "rustls=debug", "signalhub=loud"]
            )
        );
        assert_eq!(from_rust_log("tungstenite"), (None, vec!["tungstenite"]));
        let (chosen, warning) = choose(None, Some("warn,rustls=debug,x=y".into()));
        assert_eq!(chosen, Levels::all(Warn));
        let warning = warning.expect("a warning");
        assert!(
            warning.starts_with("RUST_LOG: ignoring `rustls=debug`, `x=y`: only LEVEL"),
            "{warning}"
        );
        // Nothing understood: the default, and the warning.
        let (chosen, warning) = choose(None, Some("rustls=debug".into()));
        assert_eq!(chosen, Levels::all(Info));
        assert!(warning.is_some());
    }

    #[test]
    fn own_targets_are_signalhub_and_its_modules() {
        let split = levels(Debug, Warn);
        assert_eq!(split.of("signalhub"), Debug);
        assert_eq!(split.of("signalhub::server::door"), Debug);
        assert_eq!(split.of("signalhubx"), Warn);
        assert_eq!(split.of("rustls::conn"), Warn);
    }
}
