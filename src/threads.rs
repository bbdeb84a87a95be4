//! Starting the crate's threads: every one named (as Linux keeps names), its spawn failure
//! an [`Error::Spawn`](crate::Error::Spawn).

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
pub(crate) fn spawn<T, F>(name: &str, body: F) -> crate::Result<std::thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    builder(name).spawn(body).map_err(crate::Error::Spawn)
}

/// [`spawn`] with a stack of `stack_size` bytes (of which only the pages used count).
pub(crate) fn spawn_with_stack<T, F>(
    name: &str,
    stack_size: usize,
    body: F,
) -> crate::Result<std::thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    builder(name)
        .stack_size(stack_size)
        .spawn(body)
        .map_err(crate::Error::Spawn)
}

fn builder(name: &str) -> std::thread::Builder {
    std::thread::Builder::new().name(thread_name("", name))
}

/// Joins a thread of the crate, logging (as an error) if it panicked: a thread never ends
/// unseen.
pub(crate) fn join<T>(thread: std::thread::JoinHandle<T>) -> Option<T> {
    let name = thread.thread().name().unwrap_or("a thread").to_owned();
    match thread.join() {
        Ok(value) => Some(value),
        Err(_) => {
            log::error!("{name} panicked");
            None
        }
    }
}
