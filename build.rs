//! How the `signalhub` binary is linked, for its size and its memory at start; nothing else
//! changes (`rustc-link-arg-bins`: not the tests, examples or loadgen), and the library's
//! users link their own programs as they choose. Only on x86-64 Linux with glibc, not
//! cross-compiling. The figures are in docs/PERFORMANCE.md ("The binary's size and RSS").
//!
//! - Packed relative relocations (DT_RELR): a position-independent binary lists every
//!   pointer in its data that the loader adjusts at start. As RELA entries (24 bytes each)
//!   that list was 101 KiB of the binary, read in full at every start; as RELR bitmaps it is
//!   1.3 KiB. Only when this machine's libc.so.6 defines `GLIBC_ABI_DT_RELR` (glibc 2.36 or
//!   later: Debian 12, Ubuntu 22.10): LLD marks such a binary as needing that version
//!   whatever the C library it links against, and an older glibc refuses to start it.
//! - Start-up code together: in release builds, scripts/startup-order.txt (the functions
//!   `serve` runs until it listens, written by scripts/startup-order.sh) goes to the linker
//!   as `--symbol-ordering-file`. The kernel maps code in 64 KiB runs around each page
//!   touched; scattered, the start-up code kept 383 of the 511 pages of `.text` resident,
//!   together 63. Only if the linker takes the option (LLD, rustc's default here since 1.90;
//!   GNU ld does not): a small program is linked with it first.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian and Ubuntu, then Fedora and Arch, keep the C library.
const LIBC: [&str; 4] = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
];

/// The start-up functions, from the package's root.
const ORDER: &str = "scripts/startup-order.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={ORDER}");
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || host != target {
        return;
    }
    if glibc_loads_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let order = root.join(ORDER);
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    if release && order.is_file() {
        let args = [
            format!("-Wl,--symbol-ordering-file={}", order.display()),
            // Names the binary does not have (a stale list) are skipped, silently.
            "-Wl,--no-warn-symbol-ordering".to_string(),
        ];
        if links_with(&args, &target) {
            for arg in args {
                println!("cargo:rustc-link-arg-bins={arg}");
            }
        }
    }
}

/// Whether the first libc.so.6 found defines the `GLIBC_ABI_DT_RELR` version.
fn glibc_loads_relr() -> bool {
    let needle = b"GLIBC_ABI_DT_RELR";
    LIBC.iter()
        .find_map(|path| fs::read(path).ok())
        .is_some_and(|libc| libc.windows(needle.len()).any(|w| w == needle))
}

/// Whether rustc, with this build's flags and linker, links a program with `link_args`.
fn links_with(link_args: &[String], target: &str) -> bool {
    let (Some(rustc), Some(out)) = (env::var_os("RUSTC"), env::var_os("OUT_DIR")) else {
        return false;
    };
    let out = Path::new(&out);
    let source = out.join("probe.rs");
    if fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut command = Command::new(rustc);
    command
        .arg("--target")
        .arg(target)
        .arg("-o")
        .arg(out.join("probe"));
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    command.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        command
            .arg("-C")
            .arg(format!("linker={}", linker.to_string_lossy()));
    }
    for arg in link_args {
        command.arg("-C").arg(format!("link-arg={arg}"));
    }
    command.arg(&source);
    command.output().is_ok_and(|output| output.status.success())
}
