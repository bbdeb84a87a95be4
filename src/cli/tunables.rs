//! glibc's allocator settings for `signalhub serve`, applied by executing the program again.
//!
//! glibc reads its tunables from the `GLIBC_TUNABLES` environment variable once, when the
//! process starts, so a process cannot change them for itself; it can only run itself again
//! (same pid, arguments and environment) with the variable set. `serve` does that once, first
//! thing, unless `GLIBC_TUNABLES` is already set: then the caller chose, and `GLIBC_TUNABLES=`
//! (empty) keeps glibc's own defaults.
//!
//! Why: a server whose connections come and go leaves glibc holding memory it no longer
//! uses, and `malloc_trim` (which the server calls after a burst) cannot reach most of it.
//! Measured with `make soak`'s load for 40 s (500 steady clients, 2,000 churning), end RSS
//! over start RSS:
//!
//! | settings | end / start |
//! |---|---|
//! | glibc's defaults | 1.37 |
//! | no thread-stack cache | 1.19 |
//! | that, one arena, then `malloc_trim` | 1.11 |
//! | that, and no per-thread cache (these settings) | 1.05 |
//!
//! - `glibc.pthread.stack_cache_size=0`: glibc keeps up to 40 MiB of exited threads' stacks,
//!   and each cached stack keeps 8 KiB resident (its thread descriptor and TLS): 80 stacks
//!   of 512 KiB, 640 KiB, after churn.
//! - `glibc.malloc.arena_max=1`: `malloc_trim` returns free pages from the middle of the main
//!   heap, but never the top of another arena's heap, where most churn memory ended up.
//! - `glibc.malloc.tcache_count=0`: each long-lived thread (fan-out, listener, drain) caches
//!   up to 7 freed chunks per size; after churn they held about 450 each, scattered over
//!   pages that otherwise would have been returned.
//!
//! Speed did not suffer: in the same `shared/bench` run (3 rounds, medians) fan-out to 1000
//! clients went from 0.78 M to 0.91 M deliveries/s and direct round trips from 85 k to 88 k/s.

use std::ffi::OsString;

/// The settings `serve` runs with.
pub const SERVER_TUNABLES: &str =
    "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0";

/// Runs the program again with [`SERVER_TUNABLES`] unless `GLIBC_TUNABLES` is set (or this is
/// not glibc). Returns only if it does not: the settings were chosen already, or the
/// program could not be executed again (then it says so and goes on with glibc's defaults).
pub fn apply() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    if std::env::var_os("GLIBC_TUNABLES").is_some() {
        return;
    }
    reexec(SERVER_TUNABLES.into());
}

#[cfg(unix)]
fn reexec(tunables: OsString) {
    use std::os::unix::process::CommandExt;
    let Ok(program) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| program.clone().into());
    let error = std::process::Command::new(&program)
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
    eprintln!(
        "signalhub: could not run again with GLIBC_TUNABLES set ({error}); \
         going on with glibc's defaults"
    );
}

#[cfg(not(unix))]
fn reexec(_: OsString) {}
