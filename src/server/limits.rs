//! Connection counting for the caps: in total and per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Live WebSocket connections, counted so caps can refuse cleanly and shutdown can wait for
/// every connection thread to finish.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connection threads still running, and a condvar to wait for zero.
    threads: Mutex<usize>,
    threads_done: Condvar,
}

/// Why a connection may not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Total,
    PerIp,
}

/// A counted connection; dropping it gives its place back.
#[derive(Debug)]
pub(crate) struct Slot {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Connections {
    /// Takes a place for a connection from `ip`, unless a cap is reached.
    pub(crate) fn acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<Slot, Full> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        if self.total.load(Ordering::SeqCst) >= max_total {
            return Err(Full::Total);
        }
        let from_ip = per_ip.entry(ip).or_insert(0);
        if *from_ip >= max_per_ip {
            return Err(Full::PerIp);
        }
        *from_ip += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(Slot {
            connections: self.clone(),
            ip,
        })
    }

    /// Connections now.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Counts a connection thread as running until the guard drops (even by a panic).
    pub(crate) fn thread_started(self: &Arc<Self>) -> ThreadGuard {
        *self.threads.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        ThreadGuard {
            connections: self.clone(),
        }
    }

    /// Waits until no connection thread runs, at most `timeout`. Returns whether they all ended.
    pub(crate) fn wait_for_threads(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut running = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        while *running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            running = self
                .threads_done
                .wait_timeout(running, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut per_ip = self
            .connections
            .per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.connections.total.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks a connection thread as running; see [`Connections::thread_started`].
#[derive(Debug)]
pub(crate) struct ThreadGuard {
    connections: Arc<Connections>,
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        let mut running = self
            .connections
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        if *running == 0 {
            self.connections.threads_done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_refuse_and_dropping_a_slot_frees_it() {
        let connections = Arc::new(Connections::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = connections.acquire(a, 3, 2).unwrap();
        let _second = connections.acquire(a, 3, 2).unwrap();
        assert_eq!(connections.acquire(a, 3, 2).unwrap_err(), Full::PerIp);
        let _third = connections.acquire(b, 3, 2).unwrap();
        assert_eq!(connections.acquire(b, 3, 2).unwrap_err(), Full::Total);
        drop(first);
        assert_eq!(connections.count(), 2);
        assert!(connections.acquire(a, 3, 2).is_ok());
    }

    #[test]
    fn waiting_for_threads_returns_when_the_last_guard_drops() {
        let connections = Arc::new(Connections::default());
        let guard = connections.thread_started();
        assert!(!connections.wait_for_threads(Duration::from_millis(10)));
        let waiter = std::thread::spawn({
            let connections = connections.clone();
            move || connections.wait_for_threads(Duration::from_secs(10))
        });
        drop(guard);
        assert!(waiter.join().unwrap());
    }
}
