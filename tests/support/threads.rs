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

    /// Waits (at most [`super::WAIT`]) until the thread is blocked: asleep, and not woken
    /// once over ten checks in a row (so not between two steps of its work).
    pub fn wait_blocked(&self) {
        let mut last = None;
        let mut still = 0;
        super::wait_until(&format!("thread {} to block", self.name), || {
            let now = self.switches();
            still = if self.state() == Some('S') && now == last {
                still + 1
            } else {
                0
            };
            last = now;
            still >= 10
        });
    }
}

/// The one thread named `name` (names are cut to 15 bytes, as Linux keeps them); panics if
/// there is not exactly one.
pub fn only(name: &str) -> Task {
    let name: String = name.chars().take(15).collect();
    let mut found: Vec<Task> = named(&name)
        .into_iter()
        .filter(|task| task.name == name)
        .collect();
    assert_eq!(found.len(), 1, "threads named {name}: {found:?}");
    found.remove(0)
}
