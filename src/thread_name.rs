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

/// Starts a thread named `name` (cut to what Linux keeps): every thread of the crate starts
/// here, so each shows up by name in `top -H`, `ps -T` and debuggers.
pub(crate) fn spawn<T, F>(name: &str, body: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    std::thread::Builder::new()
        .name(thread_name("", name))
        .spawn(body)
}
