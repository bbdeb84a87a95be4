//! The threads that answer HTTP requests: a fixed pool, started with the server.
//!
//! The door hands them complete requests (a bounded number at a time per port) and gets each
//! reply back on its own channel, with a wake-up for its poll loop. Workers never touch a
//! socket, so a slow or hostile client cannot hold one; only a slow handler can. A panic
//! while answering is caught (the client gets a `500`), so no request can end a worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::reply::{HttpRequest, Reply};
use super::HttpApp;
use crate::waker::Waker;
use crate::Result;

/// How long [`HttpWorkers::stop`] waits for workers busy with a request.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where a reply goes: the door's channel, the connection's key there, and its waker.
pub(crate) struct ReplyTo {
    pub(crate) replies: Sender<(u64, Reply)>,
    pub(crate) key: u64,
    pub(crate) waker: Arc<Waker>,
}

/// A request for a worker.
pub(crate) struct Job {
    pub(crate) request: HttpRequest,
    pub(crate) reply_to: ReplyTo,
}

/// The pool: named threads `sh-http-N` answering [`Job`]s with an [`HttpApp`].
pub(crate) struct HttpWorkers {
    jobs: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    /// Disconnected once every worker has ended: each holds a sender until it returns.
    ended: Receiver<()>,
}

impl HttpWorkers {
    /// Starts `count` workers (at least one).
    pub(crate) fn start(app: Arc<HttpApp>, count: usize) -> Result<HttpWorkers> {
        let (jobs, receiver) = crossbeam_channel::unbounded::<Job>();
        let (ending, ended) = crossbeam_channel::bounded::<()>(0);
        let mut pool = HttpWorkers {
            jobs: Some(jobs),
            threads: Vec::new(),
            ended,
        };
        for n in 0..count.max(1) {
            let (app, receiver, ending) = (app.clone(), receiver.clone(), ending.clone());
            let thread = crate::threads::spawn(&format!("sh-http-{n}"), move || {
                work(&app, &receiver);
                drop(ending);
            })?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Where the door sends requests.
    pub(crate) fn sender(&self) -> Sender<Job> {
        self.jobs
            .clone()
            .expect("the pool is running until stopped")
    }

    /// Ends the workers once the jobs already queued are answered: waits for them at most a
    /// few seconds, and leaves behind (logged) any still busy in a handler after that.
    pub(crate) fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.jobs = None; // workers end once every sender (the doors' too) is gone
                          // Disconnected once every worker has dropped its `ending` sender (each is then on its
                          // way out and joins at once); a timeout leaves the busy ones behind.
        let all_ended = matches!(
            self.ended.recv_deadline(Instant::now() + STOP_GRACE),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
        for thread in std::mem::take(&mut self.threads) {
            if all_ended || thread.is_finished() {
                if thread.join().is_err() {
                    log::error!("an http worker panicked");
                }
            } else {
                log::warn!("an http worker is still busy after {STOP_GRACE:?}; leaving it");
            }
        }
    }
}

impl Drop for HttpWorkers {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shut_down();
        }
    }
}

/// One worker: answers jobs until every sender is gone.
fn work(app: &HttpApp, jobs: &Receiver<Job>) {
    for Job { request, reply_to } in jobs {
        let peer = request.peer;
        let reply = match catch_unwind(AssertUnwindSafe(|| app.respond(request))) {
            Ok(reply) => reply,
            Err(_) => {
                log::error!("answering an http request from {peer} panicked");
                HttpApp::internal_error()
            }
        };
        // The door may have dropped the connection meanwhile (the peer reset it); then
        // nobody waits for this reply.
        if reply_to.replies.send((reply_to.key, reply)).is_ok() {
            reply_to.waker.wake();
        }
    }
}
