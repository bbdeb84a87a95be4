//! Thread names as Linux keeps them.

/// The most bytes of a thread's name Linux keeps (16 with the terminating NUL).
const MAX: usize = 15;

/// `prefix` then `name`, cut to what Linux keeps on a character boundary; a NUL byte, which a
/// thread name cannot hold, becomes `?`.
pub(crate) fn thread_name(prefix: &str, name: &str) -> String {
    let mut full = format!("{prefix}{}", name.replace('\0', "?"));
    let mut end = full.len().min(MAX);
    while !full.is_char_boundary(end) {
        end -= 1;
    }
    full.truncate(end);
    full
}
