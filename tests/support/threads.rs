//! This process's threads as Linux shows them in `/proc/self/task`: their names, whether each
//! is asleep, and how many times each has stopped running. Tests use these to check that a
//! thread is blocked, or that nothing woke it, by counting events rather than timing them.

use std::fs;

/// One thread of this process.
#[derive(Debug, Clone)]
pub struct Task {
    pub tid: String,
    pub name: String,
}

/// The threads whose name starts with `prefix` (one that ends while they are listed is left
/// out).
pub fn named(prefix: &str) -> Vec<Task> {
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let name = fs::read_to_string(task.path().join("comm")).ok()?;
            let name = name.trim_end().to_owned();
            let tid = task.file_name().to_string_lossy().into_owned();
            name.starts_with(prefix).then_some(Task { tid, name })
        })
        .collect()
}

/// The calling thread.
pub fn current() -> Task {
    // "/proc/thread-self" links to "<pid>/task/<tid>".
    let link = fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    let tid = link
        .file_name()
        .expect("a thread id")
        .to_string_lossy()
        .into_owned();
    let name = fs::read_to_string(format!("/proc/self/task/{tid}/comm")).expect("comm");
    Task {
        tid,
        name: name.trim_end().to_owned(),
    }
}

impl Task {
    /// Its scheduler state: `R` running, `S` asleep in a wait that a signal or an event ends
    /// (a blocking read, poll, a channel), `D`, `T`, `Z`... `None` once it has ended.
    pub fn state(&self) -> Option<char> {
        let stat = fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid)).ok()?;
        // The name is in parentheses and may hold spaces; the state follows it.
        stat[stat.rfind(')')? + 1..].trim_start().chars().next()
    }

    /// How many times it has stopped running so far, voluntarily (to sleep) or not: every
    /// wake-up adds at least one. `None` once it has ended.
    pub fn switches(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/self/task/{}/status", self.tid)).ok()?;
        let count = |key: &str| -> Option<u64> {
            let line = status.lines().find(|line| line.starts_with(key))?;
            line[key.len()..].trim().parse().ok()
        };
        Some(count("voluntary_ctxt_switches:")? + count("nonvoluntary_ctxt_switches:")?)
    }

    /// Waits (at most [`super::WAIT`]) until the thread is asleep.
    pub fn wait_asleep(&self) {
        super::wait_until(&format!("thread {} to sleep", self.name), || {
            self.state() == Some('S')
        });
    }
}
