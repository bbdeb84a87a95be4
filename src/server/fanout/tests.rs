//! The fan-out thread's bookkeeping without sockets: receivers are recorders in memory (the
//! [`FrameSink`] seam), commands go in through the channel, and each test watches what every
//! receiver was handed, and in which calls.

use super::*;
use crossbeam_channel::{Receiver as Events, Sender};
use std::sync::atomic::AtomicBool;

/// The longest a test waits for the fan-out thread to do something.
const WAIT: Duration = Duration::from_secs(5);

/// What a recorder was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// One `send_frames` call, with each frame's payload as text.
    Sent(usize, Vec<String>),
    Closed(usize, Option<u16>),
    Cut(usize),
}

/// How a recorder answers `send_frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Take,
    /// As a client whose queue is full.
    Overflow,
    /// As a bug would.
    Panic,
}

/// A receiver in memory: reports every call as an [`Event`].
struct Recorder {
    number: usize,
    events: Sender<Event>,
    answer: Answer,
    closed: AtomicBool,
}

impl FrameSink for Recorder {
    fn send_frames(&self, frames: &[&Frame]) -> Delivery {
        match self.answer {
            Answer::Panic => panic!("a bug while writing"),
            Answer::Overflow => {
                self.closed.store(true, Ordering::SeqCst);
                let _ = self.events.send(Event::Closed(self.number, Some(1008)));
                Delivery::Overflowed
            }
            Answer::Take if self.closed.load(Ordering::SeqCst) => Delivery::Closed,
            Answer::Take => {
                let texts = frames
                    .iter()
                    .map(|f| String::from_utf8_lossy(f.payload()).into_owned())
                    .collect();
                let _ = self.events.send(Event::Sent(self.number, texts));
                Delivery::Written
            }
        }
    }

    fn close(&self, code: Option<u16>, _reason: &str) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let _ = self.events.send(Event::Closed(self.number, code));
        }
    }

    fn cut(&self) {
        let _ = self.events.send(Event::Cut(self.number));
    }

    fn idle_millis(&self) -> u64 {
        0
    }
}

use crate::server::outbox::Delivery;
use std::sync::atomic::Ordering;

/// A fan-out thread fed by a channel, with recorders registered as clients.
struct Bench {
    commands: Sender<Command>,
    events: Events<Event>,
    event_sender: Sender<Event>,
    ids: Vec<ClientId>,
    metrics: Arc<Counters>,
    lifecycle: Arc<Lifecycle>,
    /// The fan-out, until started.
    fanout: Option<FanOut>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bench {
    fn new(writers: usize) -> Bench {
        let (commands, receiver) = crossbeam_channel::unbounded();
        let (event_sender, events) = crossbeam_channel::unbounded();
        let metrics = Arc::new(Counters::default());
        let lifecycle = Arc::new(Lifecycle::default());
        let keepalive = Keepalive {
            ping_interval: None,
            idle_timeout: None,
        };
        let writers = (1..writers)
            .map(|n| Writer::spawn(n, metrics.clone()).unwrap())
            .collect();
        let fanout = FanOut::new(
            receiver,
            metrics.clone(),
            keepalive,
            Duration::from_secs(1),
            lifecycle.clone(),
        )
        .release_memory_after_bursts(false)
        .with_writers(writers);
        Bench {
            commands,
            events,
            event_sender,
            ids: Vec::new(),
            metrics,
            lifecycle,
            fanout: Some(fanout),
            thread: None,
        }
    }

    /// Registers a recorder on `path`; returns its number (its index in `ids`).
    fn client(&mut self, path: &str, answer: Answer) -> usize {
        let number = self.ids.len();
        let id = ClientId::random();
        self.ids.push(id);
        let sink = Arc::new(Recorder {
            number,
            events: self.event_sender.clone(),
            answer,
            closed: AtomicBool::new(false),
        });
        self.send(Command::Register(Registration {
            info: ClientInfo::for_tests(id, path, None, &[]),
            sink,
        }));
        number
    }

    fn send(&self, command: Command) {
        self.commands.send(command).unwrap();
    }

    fn signal(&self, text: &str, target: Target) {
        let frame = Frame::text(text.as_bytes());
        self.send(Command::Signal(Outgoing::new(frame, target, None)));
    }

    /// Starts the fan-out thread: everything sent before is in its first batch.
    fn start(&mut self) {
        let fanout = self.fanout.take().expect("not started yet");
        self.thread = Some(std::thread::spawn(move || fanout.run()));
    }

    fn next(&self) -> Event {
        self.events
            .recv_timeout(WAIT)
            .expect("the fan-out thread did something")
    }

    /// The next `n` events, in order.
    fn take(&self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next()).collect()
    }

    /// Shuts the fan-out thread down (every client then leaves, as their readers would) and
    /// joins it. Returns what happened meanwhile, closes included.
    fn stop(mut self) -> Vec<Event> {
        self.send(Command::Shutdown);
        for id in &self.ids {
            self.send(Command::Unregister(*id));
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the fan-out thread returns");
        }
        self.events.try_iter().collect()
    }
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_batch_reaches_each_receiver_in_one_call_in_the_order_sent() {
    let mut bench = Bench::new(1);
    let a = bench.client("/a", Answer::Take);
    let b = bench.client("/b", Answer::Take);
    for text in ["one", "two", "three"] {
        bench.signal(text, Target::All);
    }
    bench.signal("only a", Target::Path("/a".into()));
    bench.signal("only b", Target::Client(bench.ids[b]));
    bench.start();
    let mut got = bench.take(2);
    got.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        got,
        [
            Event::Sent(a, texts(&["one", "two", "three", "only a"])),
            Event::Sent(b, texts(&["one", "two", "three", "only b"])),
        ]
    );
    assert_eq!(bench.metrics.snapshot().signals_sent, 5);
    assert_eq!(bench.metrics.snapshot().frames_delivered, 8);
    bench.stop();
}

#[test]
fn a_close_goes_after_what_was_routed_before_it_and_nothing_after() {
    let mut bench = Bench::new(1);
    let a = bench.client("/", Answer::Take);
    bench.signal("reply", Target::Client(bench.ids[a]));
    bench.send(Command::Close(bench.ids[a], Some(1000), ""));
    bench.signal("too late", Target::All);
    bench.start();
    assert_eq!(
        bench.take(2),
        [
            Event::Sent(a, texts(&["reply"])),
            Event::Closed(a, Some(1000))
        ]
    );
    bench.signal("later still", Target::All);
    assert_eq!(
        bench.stop(),
        [],
        "nothing after its close, not even the shutdown's"
    );
}

#[test]
fn signals_sent_after_a_departure_do_not_reach_the_one_who_left() {
    let mut bench = Bench::new(1);
    let a = bench.client("/", Answer::Take);
    let b = bench.client("/", Answer::Take);
    bench.signal("both", Target::All);
    bench.send(Command::Unregister(bench.ids[a]));
    bench.signal("b alone", Target::All);
    bench.start();
    let got = bench.take(2);
    assert!(got.contains(&Event::Sent(a, texts(&["both"]))), "{got:?}");
    assert!(
        got.contains(&Event::Sent(b, texts(&["both", "b alone"]))),
        "{got:?}"
    );
    bench.signal("after", Target::All);
    assert_eq!(bench.next(), Event::Sent(b, texts(&["after"])));
    bench.stop();
}

#[test]
fn a_slow_receiver_is_counted_and_the_others_get_everything() {
    let mut bench = Bench::new(1);
    let slow = bench.client("/", Answer::Overflow);
    let fast = bench.client("/", Answer::Take);
    bench.start();
    for text in ["1", "2", "3"] {
        bench.signal(text, Target::All);
    }
    let mut got = Vec::new();
    let frames_to_fast = |got: &[Event]| -> usize {
        got.iter()
            .map(|e| match e {
                Event::Sent(n, texts) if *n == fast => texts.len(),
                _ => 0,
            })
            .sum()
    };
    while frames_to_fast(&got) < 3 {
        got.push(bench.next());
    }
    assert!(got.contains(&Event::Closed(slow, Some(1008))), "{got:?}");
    let delivered: Vec<String> = got
        .iter()
        .filter_map(|e| match e {
            Event::Sent(n, texts) if *n == fast => Some(texts.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(delivered, texts(&["1", "2", "3"]));
    let metrics = bench.metrics.clone();
    bench.stop();
    // Counted once per batch it overflowed in (the fan-out's own count of what it saw).
    assert!(metrics.snapshot().clients_dropped_slow >= 1);
}

#[test]
fn a_big_batch_is_shared_with_a_writer_and_each_receiver_keeps_its_order() {
    let mut bench = Bench::new(2);
    let receivers: Vec<usize> = (0..300).map(|_| bench.client("/", Answer::Take)).collect();
    for n in 0..5 {
        bench.signal(&format!("s{n}"), Target::All);
    }
    bench.start();
    let mut per_receiver: Vec<Vec<String>> = vec![Vec::new(); receivers.len()];
    while per_receiver.iter().any(|got| got.len() < 5) {
        match bench.next() {
            Event::Sent(n, texts) => per_receiver[n].extend(texts),
            other => panic!("{other:?}"),
        }
    }
    let expected = texts(&["s0", "s1", "s2", "s3", "s4"]);
    assert!(per_receiver.iter().all(|got| *got == expected));
    bench.stop();
}

#[test]
fn shutdown_writes_what_was_queued_then_closes_everyone_with_1001() {
    let mut bench = Bench::new(1);
    let a = bench.client("/", Answer::Take);
    bench.signal("last words", Target::All);
    bench.send(Command::Shutdown);
    bench.start();
    assert_eq!(
        bench.take(2),
        [
            Event::Sent(a, texts(&["last words"])),
            Event::Closed(a, Some(1001))
        ]
    );
    bench.send(Command::Unregister(bench.ids[a]));
    let thread = bench.thread.take().unwrap();
    thread
        .join()
        .expect("the fan-out thread returns once everyone left");
    assert_eq!(bench.events.try_iter().count(), 0);
}

#[test]
fn a_bug_while_routing_cuts_every_client_and_fails_the_server() {
    let mut bench = Bench::new(1);
    let a = bench.client("/", Answer::Take);
    let _buggy = bench.client("/", Answer::Panic);
    bench.start();
    bench.signal("boom", Target::All);
    let events = bench.take(2);
    assert!(events.contains(&Event::Cut(a)), "{events:?}");
    let thread = bench.thread.take().unwrap();
    thread.join().expect("returns instead of unwinding");
    assert_eq!(
        bench.lifecycle.wait_failed_or_shut_down().as_deref(),
        Some("the fan-out thread")
    );
}

#[test]
fn a_writer_thread_that_died_fails_the_server() {
    let mut bench = Bench::new(2);
    // 300 receivers: the batch is shared with the writer, which panics on its share.
    for _ in 0..300 {
        bench.client("/", Answer::Panic);
    }
    let steady = bench.client("/", Answer::Take);
    bench.start();
    bench.signal("first", Target::All);
    bench.signal("second", Target::All);
    // The first batch kills the writer (or the fan-out itself panics on its own share):
    // either way the server fails and every client is cut.
    let mut cut = false;
    while !cut {
        cut = matches!(bench.next(), Event::Cut(n) if n == steady);
    }
    let thread = bench.thread.take().unwrap();
    thread.join().expect("returns instead of unwinding");
    let failed = bench.lifecycle.wait_failed_or_shut_down();
    assert!(
        matches!(
            failed.as_deref(),
            Some("a writer thread" | "the fan-out thread")
        ),
        "{failed:?}"
    );
}
