//! Links the `signalhub` binary with packed relative relocations (DT_RELR) where the C
//! library can load them; nothing else changes, and the library's users' programs are
//! linked as they choose.
//!
//! Why: a position-independent binary lists every pointer in its data that the loader
//! adjusts at start. As RELA entries (24 bytes each) that list was 101 KiB of the binary,
//! read in full at every start; as RELR bitmaps it is 1.3 KiB: the stripped binary 94 KB
//! smaller, about 100 KiB less RSS after start (docs/PERFORMANCE.md, "The binary's size and
//! RSS").
//!
//! Only on x86-64 Linux with glibc, not cross-compiling, and only when this machine's
//! libc.so.6 defines `GLIBC_ABI_DT_RELR` (glibc 2.36 or later; Debian 12, Ubuntu 22.10):
//! LLD marks such a binary as needing that version whatever the C library it links against,
//! and an older glibc would refuse to start it. Test and example programs are never touched
//! (`rustc-link-arg-bins`).

use std::env;
use std::fs;

/// Where Debian and Ubuntu, then Fedora and Arch, keep the C library.
const LIBC: [&str; 4] = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let host = env::var("HOST").unwrap_or_default();
    if target == "x86_64-unknown-linux-gnu" && host == target && glibc_loads_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the first libc.so.6 found defines the `GLIBC_ABI_DT_RELR` version.
fn glibc_loads_relr() -> bool {
    let needle = b"GLIBC_ABI_DT_RELR";
    LIBC.iter()
        .find_map(|path| fs::read(path).ok())
        .is_some_and(|libc| libc.windows(needle.len()).any(|w| w == needle))
}
