//! Timers and cron schedules (SPEC 12): cadence without drift, skipped overruns, panics,
//! removal, names, shutdown, signals reaching WebSocket clients, and the binary's
//! `--timer-broadcast`. Timings are checked as orderings (a run never comes before its time,
//! never overlaps another), never as speeds; every wait is bounded; servers listen on
//! 127.0.0.1 only.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use serde_json::{json, Value};
use signalhub::schedule::{ScheduleEvent, Scheduler};
use signalhub::{Error, SendOptions, Signals};
use support::{config, connect, start_with, wait_until, within_wait, QUIET, WAIT};

const MS: Duration = Duration::from_millis(1);

// ---- log capture: the scheduler's warnings and errors, to check what it logs ----

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{} {}", record.level(), record.args());
            LINES.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    }

    fn flush(&self) {}
}

/// Starts capturing warnings and errors (once per test binary).
fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&Capture).expect("no other logger");
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// Waits until a captured log line contains every one of `parts`.
fn wait_for_log(parts: &[&str]) -> String {
    let found = || {
        LINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|line| parts.iter().all(|part| line.contains(part)))
            .cloned()
    };
    wait_until(&format!("a log line with {parts:?}"), || found().is_some());
    found().unwrap_or_default()
}

// ---- helpers ----

/// A scheduler without a server.
fn scheduler() -> Scheduler {
    capture_logs();
    Scheduler::start(Signals::default()).expect("scheduler starts")
}

/// A handler that counts its runs.
fn counting(count: &Arc<AtomicU64>) -> impl Fn(&ScheduleEvent) -> signalhub::Result<()> {
    let count = count.clone();
    move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A handler that reports each run's number on a channel.
fn reporting() -> (
    impl Fn(&ScheduleEvent) -> signalhub::Result<()>,
    Receiver<u64>,
) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let handler = move |event: &ScheduleEvent| {
        let _ = sender.send(event.run);
        Ok(())
    };
    (handler, receiver)
}

fn recv_run(runs: &Receiver<u64>) -> u64 {
    runs.recv_timeout(WAIT).expect("a run within the wait")
}

// ---- cadence ----

/// A handler that reports when each run started, and notes if two ever ran at once.
fn timestamping(
    overlapped: &Arc<AtomicBool>,
) -> (
    impl Fn(&ScheduleEvent) -> signalhub::Result<()>,
    Receiver<(u64, Instant)>,
) {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let (overlapped, busy) = (overlapped.clone(), AtomicBool::new(false));
    let handler = move |event: &ScheduleEvent| {
        if busy.swap(true, Ordering::SeqCst) {
            overlapped.store(true, Ordering::SeqCst);
        }
        let _ = sender.send((event.run, Instant::now()));
        busy.store(false, Ordering::SeqCst);
        Ok(())
    };
    (handler, receiver)
}

/// Its runs come (twelve, each waited for with a bound), numbered in order, never two at
/// once, and never early: run k starts no sooner than k intervals after the timer was added.
/// That last is the rate's upper bound, as an ordering: however slow or busy the machine, a
/// timer may run late, never more often than its interval.
#[test]
fn a_timer_runs_at_its_rate() {
    let scheduler = scheduler();
    let interval = 50 * MS;
    let overlapped = Arc::new(AtomicBool::new(false));
    let (handler, runs) = timestamping(&overlapped);
    let added = Instant::now();
    scheduler
        .timer("cadence", interval, handler)
        .expect("timer");
    let runs: Vec<(u64, Instant)> = (0..12)
        .map(|_| runs.recv_timeout(WAIT).expect("a run"))
        .collect();
    scheduler.shutdown();
    let numbers: Vec<u64> = runs.iter().map(|(run, _)| *run).collect();
    assert_eq!(numbers, (1..=12).collect::<Vec<u64>>());
    for (k, (_, started)) in (1u32..).zip(&runs) {
        assert!(*started >= added + interval * k, "run {k} came early");
    }
    assert!(!overlapped.load(Ordering::SeqCst), "two runs at once");
}

/// No drift: a run takes 30 ms of a 50 ms interval, and the next run is still due on the
/// grid. Checked as an ordering: the run after a slow one was due less than one interval after
/// the slow one ended (it started after its own slot and took 30 ms, so the next slot is at
/// least 30 ms closer than that), while a timer counting its interval from the end of the
/// last run would be due a whole interval after it. Lateness only widens the margin.
#[test]
fn a_slow_handler_does_not_make_the_timer_drift() {
    let scheduler = scheduler();
    let interval = 50 * MS;
    let (sender, receiver) = crossbeam_channel::unbounded();
    scheduler
        .timer("no-drift", interval, move |event| {
            // 30 ms of work per run: "now + interval after the run" would be every 80 ms.
            std::thread::sleep(30 * MS);
            let _ = sender.send((event.scheduled_for, SystemTime::now()));
            Ok(())
        })
        .expect("timer");
    let runs: Vec<(SystemTime, SystemTime)> = (0..10)
        .map(|_| receiver.recv_timeout(WAIT).expect("a run"))
        .collect();
    scheduler.shutdown();
    for (k, pair) in (1..).zip(runs.windows(2)) {
        let ((due, ended), (next_due, _)) = (pair[0], pair[1]);
        assert!(next_due > due, "run {k} was due again");
        assert!(
            next_due < ended + interval,
            "run {} was due {:?} after run {k} ended: the timer drifts",
            k + 1,
            next_due.duration_since(ended).unwrap_or_default()
        );
    }
}

#[test]
fn runs_are_numbered_and_scheduled_on_the_grid() {
    let scheduler = scheduler();
    let (sender, receiver) = crossbeam_channel::unbounded();
    scheduler
        .timer("grid", 40 * MS, move |event| {
            let _ = sender.send((event.run, event.scheduled_for, event.name.clone()));
            Ok(())
        })
        .expect("timer");
    let runs: Vec<(u64, SystemTime, String)> = (0..4)
        .map(|_| receiver.recv_timeout(WAIT).expect("a run"))
        .collect();
    scheduler.shutdown();
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert!(runs.iter().all(|r| r.2 == "grid"));
    // Each due a slot (or more, when one is skipped) after the last: never two for one slot.
    // Not before, only: half an interval covers reading the clocks.
    for pair in runs.windows(2) {
        let gap = pair[1].1.duration_since(pair[0].1).expect("increasing");
        assert!(gap >= 20 * MS, "{gap:?}");
    }
}

#[test]
fn handlers_run_on_named_threads() {
    let scheduler = scheduler();
    let (sender, receiver) = crossbeam_channel::unbounded();
    scheduler
        .timer("thread-name-check", 20 * MS, move |_| {
            let _ = sender.send(std::thread::current().name().map(str::to_owned));
            Ok(())
        })
        .expect("timer");
    let name = receiver.recv_timeout(WAIT).expect("a run");
    scheduler.shutdown();
    assert_eq!(name.as_deref(), Some("sh-timer-thread"));
}

// ---- failures and overruns ----

#[test]
fn a_panicking_handler_is_logged_and_runs_again() {
    let scheduler = scheduler();
    let (sender, receiver) = crossbeam_channel::unbounded();
    scheduler
        .timer("panicky", 20 * MS, move |event| {
            let _ = sender.send(event.run);
            panic!("deliberate panic in run {}", event.run);
        })
        .expect("timer");
    assert_eq!(
        [
            recv_run(&receiver),
            recv_run(&receiver),
            recv_run(&receiver)
        ],
        [1, 2, 3]
    );
    let line = wait_for_log(&["timer \"panicky\"", "panicked"]);
    assert!(line.starts_with("ERROR"), "{line}");
    scheduler.shutdown();
}

#[test]
fn a_handler_error_is_logged_with_the_name() {
    let scheduler = scheduler();
    scheduler
        .timer("failing", 20 * MS, |event| {
            // No server: sending is `Error::NotRunning`.
            event.signals().send("never delivered")
        })
        .expect("timer");
    let line = wait_for_log(&["timer \"failing\"", "not running"]);
    assert!(line.starts_with("WARN"), "{line}");
    scheduler.shutdown();
}

#[test]
fn an_overrunning_handler_skips_runs_and_never_queues_them() {
    let scheduler = scheduler();
    let count = Arc::new(AtomicU64::new(0));
    let (overlapped, in_flight) = (Arc::new(AtomicBool::new(false)), AtomicBool::new(false));
    let (counted, two_at_once) = (counting(&count), overlapped.clone());
    scheduler
        .timer("overrun", 20 * MS, move |event| {
            // (A panic here would only be logged: note it for the test instead.)
            if in_flight.swap(true, Ordering::SeqCst) {
                two_at_once.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(100 * MS); // the handler outlasts its interval
            in_flight.store(false, Ordering::SeqCst);
            counted(event)
        })
        .expect("timer");
    // Skipped: the slots that come while it runs are logged as overruns.
    wait_for_log(&["timer \"overrun\"", "overrun"]);
    wait_until("three runs", || count.load(Ordering::SeqCst) >= 3);
    let before_shutdown = count.load(Ordering::SeqCst);
    scheduler.shutdown();
    let runs = count.load(Ordering::SeqCst);
    assert!(!overlapped.load(Ordering::SeqCst), "two runs at once");
    // Never queued: after shutdown, only the run in progress (if any) finished.
    assert!(runs <= before_shutdown + 1, "{before_shutdown} then {runs}");
}

// ---- names, removal, errors ----

#[test]
fn removal_at_runtime_stops_further_runs() {
    let scheduler = scheduler();
    let (handler, runs) = reporting();
    scheduler
        .timer("removable", 20 * MS, handler)
        .expect("timer");
    recv_run(&runs);
    recv_run(&runs);
    assert!(scheduler.remove("removable").expect("remove"));
    // A run already handed over may still finish; no other starts.
    let after: Vec<u64> = runs.try_iter().collect();
    assert!(after.len() <= 1, "{after:?}");
    assert!(runs.recv_timeout(QUIET).is_err(), "ran after removal");
    assert!(scheduler.names().is_empty());
    assert!(!scheduler.remove("removable").expect("remove again"));
    // The name is free again.
    let (handler, runs) = reporting();
    scheduler
        .timer("removable", 20 * MS, handler)
        .expect("re-add");
    assert_eq!(recv_run(&runs), 1);
    scheduler.shutdown();
}

#[test]
fn a_handler_can_remove_itself() {
    let scheduler = scheduler();
    let (sender, runs) = crossbeam_channel::unbounded();
    let handle = scheduler.clone();
    scheduler
        .timer("self-removing", 20 * MS, move |event| {
            let _ = sender.send(event.run);
            if event.run == 2 {
                assert!(handle.remove(&event.name)?);
            }
            Ok(())
        })
        .expect("timer");
    assert_eq!([recv_run(&runs), recv_run(&runs)], [1, 2]);
    assert!(runs.recv_timeout(QUIET).is_err(), "ran after removal");
    scheduler.shutdown();
}

#[test]
fn names_are_unique_across_timers_and_schedules() {
    let scheduler = scheduler();
    scheduler
        .timer("beat", Duration::from_secs(10), |_| Ok(()))
        .expect("timer");
    scheduler
        .timer("another", Duration::from_secs(10), |_| Ok(()))
        .expect("timer");
    let again = scheduler.timer("beat", Duration::from_secs(1), |_| Ok(()));
    assert!(matches!(&again, Err(Error::DuplicateSchedule(name)) if name == "beat"));
    assert_eq!(
        again.unwrap_err().to_string(),
        "a timer or schedule named \"beat\" already exists"
    );
    #[cfg(feature = "schedules")]
    assert!(matches!(
        scheduler.schedule("beat", "* * * * *", |_| Ok(())),
        Err(Error::DuplicateSchedule(_))
    ));
    assert_eq!(scheduler.names(), ["another", "beat"]);
    scheduler.shutdown();
}

#[test]
fn bad_registrations_are_errors() {
    let scheduler = scheduler();
    let zero = scheduler.timer("zero", Duration::ZERO, |_| Ok(()));
    assert!(matches!(zero, Err(Error::InvalidConfig(_))), "{zero:?}");
    let forever = scheduler.timer("forever", Duration::MAX, |_| Ok(()));
    assert!(
        matches!(forever, Err(Error::InvalidConfig(_))),
        "{forever:?}"
    );
    let unnamed = scheduler.timer("", Duration::from_secs(1), |_| Ok(()));
    assert!(
        matches!(unnamed, Err(Error::InvalidConfig(_))),
        "{unnamed:?}"
    );
    assert!(scheduler.names().is_empty());
    scheduler.shutdown();
    let stopped = scheduler.timer("late", Duration::from_secs(1), |_| Ok(()));
    assert!(matches!(stopped, Err(Error::NotRunning)), "{stopped:?}");
    assert!(matches!(scheduler.remove("late"), Err(Error::NotRunning)));
}

#[cfg(feature = "schedules")]
#[test]
fn an_invalid_cron_expression_is_an_error_naming_it() {
    let mut server = signalhub::Server::new();
    let Err(error) = server.schedule("nightly", "0 0 32 * *", |_| Ok(())) else {
        panic!("day 32 was accepted");
    };
    let text = error.to_string();
    assert!(
        text.starts_with("invalid cron expression \"0 0 32 * *\" for schedule \"nightly\": "),
        "{text}"
    );
    assert!(matches!(error, Error::InvalidSchedule { .. }));
    // Names, 5 and 6 fields, steps and ranges are fine.
    server
        .schedule("weekdays", "30 9 * JAN-DEC MON-FRI", |_| Ok(()))
        .expect("5 fields with names");
    server
        .schedule_in(
            "tens",
            "*/10 * 8-18 * * *",
            signalhub::schedule::CronZone::Utc,
            |_| Ok(()),
        )
        .expect("6 fields in UTC");
}

// ---- shutdown ----

#[test]
fn shutdown_is_prompt_and_waits_for_a_run_in_progress() {
    let scheduler = scheduler();
    scheduler
        .timer("idle", Duration::from_secs(10), |_| Ok(()))
        .expect("timer");
    let (started, running) = crossbeam_channel::unbounded();
    // The slow run goes on when the test says so.
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    scheduler
        .timer("slow", 20 * MS, move |event| {
            if event.run == 1 {
                let _ = started.send(());
                let _ = released.recv_timeout(WAIT);
                done.store(true, Ordering::SeqCst);
            }
            Ok(())
        })
        .expect("timer");
    running.recv_timeout(WAIT).expect("the slow run starts");
    let (stopped, stopping) = crossbeam_channel::bounded(1);
    let handle = scheduler.clone();
    std::thread::spawn(move || {
        handle.shutdown();
        let _ = stopped.send(());
    });
    // Shutdown forgets the timers at once (its first step), then waits for the run in
    // progress: it has not returned while the run is held.
    wait_until("shutdown to begin", || scheduler.names().is_empty());
    assert!(stopping.try_recv().is_err(), "returned during the run");
    release.send(()).expect("the run waits");
    // Prompt: it returns (within WAIT) once the run is done, without waiting for the idle
    // timer's next run, 10 s away.
    stopping.recv_timeout(WAIT).expect("shutdown returns");
    assert!(
        finished.load(Ordering::SeqCst),
        "the run in progress finished"
    );
    // Later calls return too.
    within_wait("a second shutdown", move || scheduler.shutdown());
}

#[test]
fn a_handler_can_shut_its_scheduler_down() {
    let scheduler = scheduler();
    let handle = scheduler.clone();
    let (sender, runs) = crossbeam_channel::unbounded();
    scheduler
        .timer("stopper", 20 * MS, move |event| {
            handle.shutdown();
            let _ = sender.send(event.run);
            Ok(())
        })
        .expect("timer");
    assert_eq!(recv_run(&runs), 1);
    assert!(runs.recv_timeout(QUIET).is_err(), "ran after shutdown");
    within_wait("a later shutdown", move || scheduler.shutdown());
}

#[test]
fn dropping_the_last_handle_stops_the_timers() {
    let (handler, runs) = reporting();
    let scheduler = scheduler();
    scheduler.timer("dropped", 20 * MS, handler).expect("timer");
    recv_run(&runs);
    drop(scheduler);
    let _ = runs.try_iter().count();
    assert!(runs.recv_timeout(QUIET).is_err(), "ran after drop");
}

// ---- with a server ----

/// A handler sending `{"Time": unix seconds, "nanos": ...}` of the run to `path`.
fn send_time_to(path: &'static str) -> impl Fn(&ScheduleEvent) -> signalhub::Result<()> {
    move |event| {
        let since = event
            .scheduled_for
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let time = json!({ "Time": since.as_secs(), "nanos": since.subsec_nanos() });
        event
            .signals()
            .send_with(time, &SendOptions::new().path(path))
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

#[test]
fn a_timer_signal_reaches_the_clients_on_its_path_only() {
    capture_logs();
    let handle = start_with(config(), |server| {
        server
            .timer("time", 50 * MS, send_time_to("/time"))
            .expect("timer");
    });
    let mut on_time = connect(&handle, "/time");
    let mut elsewhere = connect(&handle, "/other");
    let first = parse(&on_time.recv());
    let second = parse(&on_time.recv());
    assert!(
        second["Time"].as_u64() >= first["Time"].as_u64(),
        "{second}"
    );
    elsewhere.expect_nothing();
    handle.shutdown();
}

#[test]
fn timers_added_and_removed_while_the_server_runs() {
    capture_logs();
    let handle = start_with(config(), |_| {});
    let mut client = connect(&handle, "/late");
    let scheduler = handle.scheduler();
    scheduler
        .timer("added-later", 30 * MS, send_time_to("/late"))
        .expect("timer");
    parse(&client.recv());
    assert!(scheduler.remove("added-later").expect("remove"));
    // Messages sent before the removal may still be on their way; then nothing (the timer
    // would send ten in the quiet time).
    for _ in 0..3 {
        if client.try_recv(100 * MS).is_err() {
            break;
        }
    }
    client.expect_nothing();
    handle.shutdown();
}

#[test]
fn a_run_in_progress_at_server_shutdown_still_sends_its_signal() {
    capture_logs();
    let (started, running) = crossbeam_channel::unbounded();
    // The run goes on once shutdown has begun.
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    // Set once the client is connected: the next run is the one caught by shutdown.
    let armed = Arc::new(AtomicBool::new(false));
    let arm = armed.clone();
    let handle = start_with(config(), move |server| {
        server
            .timer("last-words", 20 * MS, move |event| {
                if armed.swap(false, Ordering::SeqCst) {
                    let _ = started.send(());
                    let _ = released.recv_timeout(WAIT);
                    event.signals().send("last words")?;
                }
                Ok(())
            })
            .expect("timer");
    });
    let mut client = connect(&handle, "/");
    arm.store(true, Ordering::SeqCst);
    running.recv_timeout(WAIT).expect("the run starts");
    let handle = Arc::new(handle);
    let stopping = {
        let handle = handle.clone();
        std::thread::spawn(move || handle.shutdown())
    };
    // Shutdown stops the scheduler first, which forgets its timers at once, then waits for
    // the run in progress.
    wait_until("shutdown to begin", || {
        handle.scheduler().names().is_empty()
    });
    release.send(()).expect("the run waits");
    assert_eq!(client.recv(), "last words");
    assert_eq!(
        client.recv_close(),
        Some(tungstenite::protocol::frame::coding::CloseCode::Away)
    );
    stopping.join().expect("shutdown");
}

#[cfg(feature = "schedules")]
#[test]
fn a_cron_schedule_runs_on_whole_seconds_and_reaches_clients() {
    capture_logs();
    let handle = start_with(config(), |server| {
        server
            .schedule_in(
                "every-second",
                "* * * * * *",
                signalhub::schedule::CronZone::Utc,
                send_time_to("/clock"),
            )
            .expect("schedule");
    });
    let mut client = connect(&handle, "/clock");
    let first = parse(&client.recv());
    let second = parse(&client.recv());
    assert_eq!(first["nanos"], 0, "{first}");
    let (a, b) = (first["Time"].as_u64(), second["Time"].as_u64());
    assert!(b > a, "{first} then {second}");
    handle.shutdown();
}

// ---- the binary ----

#[cfg(feature = "cli")]
mod binary {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};

    use super::*;

    const BIN: &str = env!("CARGO_BIN_EXE_signalhub");

    /// A `signalhub serve` process, SIGTERMed (then killed) when dropped.
    struct Serve {
        child: Child,
        stdout: Receiver<String>,
    }

    impl Serve {
        fn spawn(args: &[&str]) -> Serve {
            let mut child = Command::new(BIN)
                .arg("serve")
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("the binary starts");
            let out = child.stdout.take().expect("stdout");
            let (sender, stdout) = crossbeam_channel::unbounded();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
            Serve { child, stdout }
        }

        /// The URL of the `listening on URL` line.
        fn url(&self) -> String {
            let line = self.stdout.recv_timeout(WAIT).expect("a listening line");
            line.strip_prefix("listening on ")
                .unwrap_or_else(|| panic!("{line}"))
                .to_owned()
        }

        /// SIGTERM, then the exit code within the wait.
        fn stop(&mut self) -> Option<i32> {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + WAIT;
            while Instant::now() < deadline {
                if let Some(status) = self.child.try_wait().expect("try_wait") {
                    return status.code();
                }
                std::thread::sleep(10 * MS);
            }
            panic!("serve did not exit after SIGTERM");
        }
    }

    impl Drop for Serve {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn exit_code(args: &[&str]) -> (Option<i32>, String) {
        let output = Command::new(BIN)
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stderr)
    }

    #[test]
    fn timer_broadcast_sends_a_heartbeat_to_every_client() {
        let mut serve = Serve::spawn(&[
            "--ws",
            "127.0.0.1:0",
            "--log-level",
            "warn",
            "--timer-broadcast",
            "0.1:{\"type\":\"heartbeat\"}",
            "--timer-broadcast=0.15:\"tick\"",
        ]);
        let url = serve.url();
        let (mut ws, _) = tungstenite::connect(format!("{url}/anywhere")).expect("connects");
        if let tungstenite::stream::MaybeTlsStream::Plain(stream) = ws.get_mut() {
            stream.set_read_timeout(Some(WAIT)).expect("timeout");
        }
        let mut seen = Vec::new();
        while !(seen.iter().any(|m| m == "{\"type\":\"heartbeat\"}")
            && seen.iter().any(|m| m == "tick"))
        {
            assert!(seen.len() < 50, "{seen:?}");
            match ws.read().expect("a message") {
                tungstenite::Message::Text(text) => seen.push(text.to_string()),
                _ => continue,
            }
        }
        drop(ws);
        assert_eq!(serve.stop(), Some(0));
    }

    #[test]
    fn a_bad_timer_broadcast_is_a_usage_error() {
        for bad in ["0:{}", "5:{", "heartbeat"] {
            let (code, stderr) = exit_code(&["--ws", "127.0.0.1:0", "--timer-broadcast", bad]);
            assert_eq!(code, Some(2), "{bad}: {stderr}");
            assert!(stderr.contains("--timer-broadcast"), "{bad}: {stderr}");
        }
    }
}
