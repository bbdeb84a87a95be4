//! Writer threads: the fan-out thread hands them a share of each big batch's writes.
//!
//! Almost all the time of a broadcast goes into the kernel's `sendmsg` (on loopback the
//! receiver's TCP work runs there too), one per receiver. On a machine with more than one
//! core the fan-out thread keeps the routing (the registry stays its own) and gives each
//! writer the receivers assigned to it, as a [`Job`]: the batch's frames and, per receiver,
//! which of them it gets. Each receiver is written by one thread only, always the same one,
//! and a writer takes its jobs in order, so a receiver's frames keep their order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::metrics::Counters;
use crate::protocol::Frame;
use crate::server::fanout::Closing;
use crate::server::outbox::{Delivery, FrameSink};
use crate::server::reply::Settle;
use crate::Result;

/// Jobs a writer may have waiting before the fan-out thread waits for it.
const JOB_QUEUE: usize = 2;

/// One batch's writes for one writer.
pub(crate) struct Job {
    frames: Arc<[Frame]>,
    /// Each receiver, where its frame indexes end in `indexes`, and the close to send after
    /// them, if any.
    receivers: Vec<(Arc<dyn FrameSink>, u32, Option<Closing>)>,
    indexes: Vec<u32>,
    /// The batch's signals from connections: let go once written.
    _settle: Arc<Settle>,
}

impl Job {
    /// An empty job over a batch's frames.
    pub(crate) fn new(frames: Arc<[Frame]>, settle: Arc<Settle>) -> Job {
        Job {
            frames,
            receivers: Vec::new(),
            indexes: Vec::new(),
            _settle: settle,
        }
    }

    /// Adds a receiver, the indexes (into the frames) of what it gets, in order, and the
    /// close to send after them.
    pub(crate) fn add(
        &mut self,
        sink: &Arc<dyn FrameSink>,
        frames: &[u32],
        closing: Option<Closing>,
    ) {
        self.indexes.extend_from_slice(frames);
        self.receivers
            .push((sink.clone(), self.indexes.len() as u32, closing));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.receivers.is_empty()
    }

    fn run(&self, metrics: &Counters) {
        let mut tally = Tally::default();
        let mut slices = Vec::new();
        let mut start = 0;
        for (sink, end, closing) in &self.receivers {
            let end = *end as usize;
            let indexes = &self.indexes[start..end];
            if !indexes.is_empty() {
                tally.add(write_frames(&**sink, &self.frames, indexes, &mut slices));
            }
            if let Some((code, reason)) = closing {
                sink.close(*code, reason);
            }
            start = end;
        }
        tally.record(metrics);
    }
}

enum Work {
    Write(Job),
    /// Answered once every job sent before it is written.
    Flush(Sender<()>),
}

/// Deliveries and slow clients counted over a batch, added to the metrics once.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    delivered: u64,
    dropped: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, (delivery, frames): (Delivery, u64)) {
        match delivery {
            Delivery::Written | Delivery::Queued => self.delivered += frames,
            Delivery::Overflowed => self.dropped += 1,
            Delivery::Closed => {}
        }
    }

    pub(crate) fn record(&self, metrics: &Counters) {
        Counters::add(&metrics.frames_delivered, self.delivered);
        Counters::add(&metrics.clients_dropped_slow, self.dropped);
    }
}

/// Writes the frames `indexes` names to `sink` in one call; `chosen` is scratch room kept
/// across the receivers of a batch.
pub(crate) fn write_frames<'a>(
    sink: &dyn FrameSink,
    frames: &'a [Frame],
    indexes: &[u32],
    chosen: &mut Vec<&'a Frame>,
) -> (Delivery, u64) {
    chosen.clear();
    chosen.extend(indexes.iter().map(|&i| &frames[i as usize]));
    (sink.send_frames(chosen), indexes.len() as u64)
}

/// The fan-out thread's end of one writer thread.
pub(crate) struct Writer {
    work: Sender<Work>,
    /// Jobs sent and not yet written.
    in_flight: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts writer thread `number` (named `sh-writer-N`).
    pub(crate) fn spawn(number: usize, metrics: Arc<Counters>) -> Result<Writer> {
        let (work, queue) = crossbeam_channel::bounded(JOB_QUEUE);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let pending = in_flight.clone();
        let name = format!("sh-writer-{number}");
        let thread = crate::threads::spawn(&name, move || run(queue, &pending, &metrics))?;
        Ok(Writer {
            work,
            in_flight,
            thread: Some(thread),
        })
    }

    /// Whether jobs handed over earlier may still be unwritten (its receivers must then go
    /// through it, behind them).
    pub(crate) fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Hands over a job, waiting while the writer has [`JOB_QUEUE`] jobs already. Fails if
    /// the thread has died (a bug).
    pub(crate) fn send(&self, job: Job) -> std::result::Result<(), ()> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.work.send(Work::Write(job)).map_err(|_| ())
    }

    /// Waits (up to `timeout`) until everything handed over is written.
    pub(crate) fn flush(&self, timeout: Duration) {
        let (done, wait) = crossbeam_channel::bounded(1);
        if self.work.send_timeout(Work::Flush(done), timeout).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

impl Drop for Writer {
    /// Stops the thread once its jobs are written, and joins it.
    fn drop(&mut self) {
        drop(std::mem::replace(
            &mut self.work,
            crossbeam_channel::bounded(0).0,
        ));
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("a writer thread panicked");
            }
        }
    }
}

fn run(queue: Receiver<Work>, in_flight: &AtomicUsize, metrics: &Counters) {
    for work in queue {
        match work {
            Work::Write(job) => {
                job.run(metrics);
                drop(job);
                in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            Work::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}
