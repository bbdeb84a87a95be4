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

/// Starts a connection's thread, named `name`, with a stack of `stack_size` bytes, detached.
///
/// On Linux with glibc it is a bare POSIX thread rather than std's: std's thread start
/// allocates and frees on the new thread (its start record, the stack-overflow handler's
/// attribute query, the name it keeps, a thread-local destructor), and glibc gives a thread
/// its own cache (`tcache`) at its first `malloc` or `free` and keeps what it frees there. An
/// idle connection's thread never uses that cache again, so every idle connection carried it
/// (docs/PERFORMANCE.md). A bare thread touches the allocator only once its connection does.
/// It has no std name (panic messages say `<unnamed>`; the kernel's name is set) and no
/// stack-overflow message (an overflow still kills the process at the guard page).
pub(crate) fn spawn_connection<F>(name: &str, stack_size: usize, body: F) -> crate::Result<()>
where
    F: FnOnce() + Send + 'static,
{
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        bare::spawn(&thread_name("", name), stack_size, body).map_err(crate::Error::Spawn)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        (builder(name).stack_size(stack_size).spawn(body))
            .map(drop)
            .map_err(crate::Error::Spawn)
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod bare {
    use std::ffi::{c_void, CString};
    use std::io;
    use std::mem::MaybeUninit;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Runs the body, then frees its record: the thread's only `free` of ours happens when the
    /// connection is over.
    extern "C" fn start<F: FnOnce() + Send + 'static>(record: *mut c_void) -> *mut c_void {
        // SAFETY: `record` is the `Box<Option<F>>` that `spawn` leaked for this thread alone,
        // and it is taken back exactly once, here.
        let mut record = unsafe { Box::from_raw(record.cast::<Option<F>>()) };
        if let Some(body) = record.take() {
            // No panic may cross this `extern "C"` frame (the body contains its own; this is
            // the last guard).
            let _ = catch_unwind(AssertUnwindSafe(body));
        }
        drop(record);
        std::ptr::null_mut()
    }

    pub(super) fn spawn<F: FnOnce() + Send + 'static>(
        name: &str,
        stack_size: usize,
        body: F,
    ) -> io::Result<()> {
        // glibc rounds the size up to whole pages itself.
        let stack_size = stack_size.max(libc::PTHREAD_STACK_MIN);
        let record = Box::into_raw(Box::new(Some(body))).cast::<c_void>();
        let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
        let mut thread: libc::pthread_t = 0;
        // SAFETY: `attr` is initialised by pthread_attr_init before any other use and destroyed
        // once; `start::<F>` matches `record`'s type, and on success the new thread owns
        // `record` (freed by `start`); on failure no thread saw it and it is freed here.
        let created = unsafe {
            let attr = attr.as_mut_ptr();
            let mut code = libc::pthread_attr_init(attr);
            if code == 0 {
                code = libc::pthread_attr_setstacksize(attr, stack_size);
                if code == 0 {
                    code = libc::pthread_create(&mut thread, attr, start::<F>, record);
                }
                libc::pthread_attr_destroy(attr);
            }
            if code != 0 {
                drop(Box::from_raw(record.cast::<Option<F>>()));
            }
            code
        };
        if created != 0 {
            return Err(io::Error::from_raw_os_error(created));
        }
        // Named from here (the new thread would need the name, an allocation it would free),
        // then detached, as std does when a JoinHandle is dropped.
        // SAFETY: `thread` is joinable and not yet detached or joined, so its handle is valid
        // until pthread_detach, which is called exactly once.
        unsafe {
            if let Ok(name) = CString::new(name) {
                libc::pthread_setname_np(thread, name.as_ptr());
            }
            libc::pthread_detach(thread);
        }
        Ok(())
    }
}
