//! glibc's allocator settings for `signalhub serve`, applied by executing the program again.
//!
//! glibc reads its tunables from the `GLIBC_TUNABLES` environment variable once, when the
//! process starts, so a process cannot change them for itself; it can only run itself again
//! (same pid, arguments and environment) with the variable set. `serve` does that once, first
//! thing, unless `GLIBC_TUNABLES` is already set: then the caller chose, and `GLIBC_TUNABLES=`
//! (empty) keeps glibc's own defaults.
//!
//! It happens at most once: the re-executed program also gets [`MARKER`]
//! (`SIGNALHUB_TUNED=1`), a private variable of signalhub's, and a process that has it (any
//! value) never runs itself again, even if `GLIBC_TUNABLES` did not survive. And it does not
//! happen in secure-execution mode (`AT_SECURE`: set-user-id, or file capabilities such as
//! `cap_net_bind_service` to listen on port 443), where glibc may drop `GLIBC_TUNABLES` from
//! the environment: there the process keeps glibc's defaults rather than run itself again
//! for nothing.
//!
//! Why: a server whose connections come and go leaves glibc holding memory it no longer
//! uses, and `malloc_trim` (which the server calls after a burst) cannot reach most of it.
//!
//! - `glibc.pthread.stack_cache_size=0`: glibc keeps exited threads' stacks for reuse, and
//!   each cached stack keeps its thread descriptor and TLS resident.
//! - `glibc.malloc.arena_max=1`: `malloc_trim` returns free pages from the middle of the main
//!   heap, but never the top of another arena's heap, where most churn memory ended up.
//! - `glibc.malloc.tcache_count=0`: each long-lived thread (fan-out, listener, drain) caches
//!   freed chunks per size, scattered over pages that otherwise would have been returned.
//!
//! What each setting saved, and that speed did not suffer, is measured in
//! `docs/PERFORMANCE.md` ("Measurements behind choices").

use std::ffi::OsString;

/// The settings `serve` runs with.
pub const SERVER_TUNABLES: &str =
    "glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0";

/// The variable the re-executed program gets (set to `1`): it has been run again already.
pub const MARKER: &str = "SIGNALHUB_TUNED";

/// `AT_NULL`: the auxiliary vector's last entry.
const AT_NULL: usize = 0;
/// `AT_SECURE`: non-zero in secure-execution mode.
const AT_SECURE: usize = 23;

/// Runs the program again with [`SERVER_TUNABLES`] unless `GLIBC_TUNABLES` or [`MARKER`] is
/// set, the process is in secure-execution mode (or that cannot be told), or this is not
/// glibc. Returns only if it does not, or if the program could not be executed again (then
/// it says so and goes on with glibc's defaults).
pub fn apply() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    if std::env::var_os("GLIBC_TUNABLES").is_some() || std::env::var_os(MARKER).is_some() {
        return;
    }
    // Unknown counts as secure: running again is only worth some memory, looping is not.
    if secure_execution() != Some(false) {
        return;
    }
    reexec(SERVER_TUNABLES.into());
}

/// Whether the process runs in secure-execution mode (glibc's `getauxval(AT_SECURE)`), read
/// from `/proc/self/auxv` in safe code; `None` when that cannot be read or has no
/// `AT_SECURE`. A process that gained privileges may not be allowed to read it: `None` too.
fn secure_execution() -> Option<bool> {
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    at_secure(&auxv)
}

/// `AT_SECURE` in an auxiliary vector: pairs of native-endian words (type, value), up to an
/// `AT_NULL` type. `None` when it is not there before the end or the buffer stops short.
fn at_secure(auxv: &[u8]) -> Option<bool> {
    const WORD: usize = std::mem::size_of::<usize>();
    let word = |bytes: &[u8]| bytes.try_into().ok().map(usize::from_ne_bytes);
    for pair in auxv.chunks_exact(2 * WORD) {
        let (kind, value) = pair.split_at(WORD);
        match word(kind)? {
            AT_NULL => return None,
            AT_SECURE => return Some(word(value)? != 0),
            _ => {}
        }
    }
    None
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
        .env(MARKER, "1")
        .exec();
    eprintln!(
        "signalhub: could not run again with GLIBC_TUNABLES set ({error}); \
         going on with glibc's defaults"
    );
}

#[cfg(not(unix))]
fn reexec(_: OsString) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// An auxiliary vector as the kernel lays it out, from (type, value) pairs.
    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        let words = pairs.iter().flat_map(|&(kind, value)| [kind, value]);
        words.flat_map(usize::to_ne_bytes).collect()
    }

    #[test]
    fn at_secure_is_read_up_to_at_null() {
        let page_size = (6, 4096);
        let secure = |value| auxv(&[page_size, (AT_SECURE, value), (AT_NULL, 0)]);
        assert_eq!(at_secure(&secure(1)), Some(true));
        assert_eq!(at_secure(&secure(0)), Some(false));
        assert_eq!(at_secure(&auxv(&[(AT_SECURE, 2)])), Some(true));
    }

    #[test]
    fn a_missing_or_cut_at_secure_is_unknown() {
        assert_eq!(at_secure(&[]), None);
        assert_eq!(at_secure(&auxv(&[(6, 4096), (AT_NULL, 0)])), None);
        assert_eq!(at_secure(&auxv(&[(AT_NULL, 0), (AT_SECURE, 1)])), None);
        let cut = auxv(&[(6, 4096), (AT_SECURE, 1)]);
        assert_eq!(at_secure(&cut[..cut.len() - 1]), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_test_process_is_not_in_secure_execution_mode() {
        assert_eq!(secure_execution(), Some(false));
    }
}
