//! Waking a thread asleep in `poll(2)`: a nonblocking pipe whose read end it polls.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// A pipe that wakes whoever polls its read end. Writes never block: a full pipe already
/// means "wake up".
#[derive(Debug)]
pub(crate) struct Waker {
    read: OwnedFd,
    write: OwnedFd,
}

impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        let flags = rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK;
        let (read, write) = rustix::pipe::pipe_with(flags)?;
        Ok(Waker { read, write })
    }

    /// Makes the read end readable.
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(&self.write, &[1]);
    }

    /// Empties the pipe, so the next poll sleeps until the next [`Waker::wake`].
    pub(crate) fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!(rustix::io::read(&self.read, &mut buf), Ok(n) if n > 0) {}
    }
}

impl AsFd for Waker {
    /// The read end, to poll for readability.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{PollFd, PollFlags, Timespec};

    fn readable(waker: &Waker) -> bool {
        let mut fds = [PollFd::new(waker, PollFlags::IN)];
        let zero = Timespec::default();
        rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
    }

    #[test]
    fn a_wake_is_seen_once_and_drained() {
        let waker = Waker::new().unwrap();
        assert!(!readable(&waker));
        waker.wake();
        waker.wake();
        assert!(readable(&waker));
        waker.drain();
        assert!(!readable(&waker));
    }
}
