//! Unit tests of the open loop (`cargo test --example compare`), each against a std echo
//! server in this process that stalls on purpose: the recorded latencies include the stall
//! for every request scheduled during it, and requests never answered are recorded too. No
//! assert is about how long anything took: the checks follow from the order of events (the
//! server answers nothing while it stalls), so they hold on a slow machine as well.
use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{run, Offer, Traced};
use crate::load::{connect_all, Arrivals, Outcome};

const RATE: f64 = 1000.0;
/// The drain of these runs: long, so that whether a backlog clears in time never depends on
/// the machine's speed.
const DRAIN: Duration = Duration::from_secs(60);

/// What the test server does at its `at`-th request (counted from 0).
#[derive(Clone, Copy)]
enum Stall {
    /// Answers nothing for this long, then goes on.
    For(Duration),
    /// Answers nothing more (reads on until the client closes).
    Forever,
}

/// A one-connection echo server (the one-byte handshake, then `size`-byte echoes) that
/// stalls, reading and writing nothing, at request `at`; its thread returns when the stall
/// began and ended.
fn server(size: usize, at: usize, stall: Stall) -> (String, JoinHandle<(Instant, Instant)>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = vec![0u8; size];
        s.read_exact(&mut b[..1]).unwrap();
        s.write_all(&b[..1]).unwrap();
        let mut times = None;
        for n in 0.. {
            if s.read_exact(&mut b).is_err() {
                break;
            }
            match (n == at, stall) {
                (true, Stall::For(d)) => {
                    let t = Instant::now();
                    std::thread::sleep(d);
                    times = Some((t, Instant::now()));
                }
                (true, Stall::Forever) => times = Some((Instant::now(), Instant::now())),
                _ => {}
            }
            let answering = matches!(stall, Stall::For(_)) || n < at;
            if answering && s.write_all(&b).is_err() {
                break;
            }
        }
        times.expect("the server saw the request it stalls at")
    });
    (addr, h)
}

/// Runs the open loop of `size`-byte requests at RATE over one connection for `measure`
/// (after the shortest warm-up), with a drain of `drain`.
fn open(addr: &str, size: usize, measure: Duration, drain: Duration) -> (Outcome<()>, Vec<Traced>) {
    let streams = connect_all(addr, 1).unwrap();
    let offer = Offer {
        rate: RATE,
        arrivals: Arrivals::Constant,
        warmup: Duration::ZERO,
        measure,
        drain,
    };
    run(streams, size, offer, || (), true).unwrap()
}

/// Every request is recorded, once, on the schedule's own times (a closed loop would show a
/// gap where the server stalled: it sends nothing while it waits).
fn check_schedule(out: &Outcome<()>, trace: &[Traced], measure: Duration) {
    let hist = out.hist.as_ref().unwrap();
    let open = out.open.unwrap();
    let offered = (open.offered * measure.as_secs_f64()).round() as u64;
    assert_eq!(
        trace.len() as u64,
        offered,
        "every scheduled request recorded"
    );
    assert_eq!(hist.len(), offered, "the histogram holds every request");
    let mut dues: Vec<Instant> = trace.iter().map(|t| t.0).collect();
    dues.sort();
    for w in dues.windows(2) {
        let gap = (w[1] - w[0]).as_secs_f64();
        assert!((gap - 1.0 / RATE).abs() < 1e-8, "dues {gap} s apart");
    }
}

/// The server stalls at its 50th request for 300 ms: every request due during the stall is
/// recorded as waiting at least until the stall's end.
fn stall_is_charged(size: usize) {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let measure = Duration::from_secs(2);
    let (addr, h) = server(size, 50, Stall::For(Duration::from_millis(300)));
    let (out, trace) = open(&addr, size, measure, DRAIN);
    let (s0, s1) = h.join().unwrap();
    assert_eq!(out.errors, 0, "{:?}", out.first_error);
    check_schedule(&out, &trace, measure);
    let during: Vec<&Traced> = trace.iter().filter(|t| t.0 >= s0 && t.0 < s1).collect();
    assert!(
        !during.is_empty(),
        "requests were scheduled during the stall"
    );
    for (due, latency) in &during {
        assert!(
            *due + *latency >= s1,
            "a request due {:?} into the stall was recorded at {latency:?}, before it ended",
            *due - s0
        );
    }
    let longest = during.iter().map(|t| t.1).max().unwrap();
    let hist_max = Duration::from_nanos(out.hist.as_ref().unwrap().max());
    assert!(
        hist_max >= longest.mul_f64(0.999),
        "{hist_max:?} < {longest:?}"
    );
    assert_eq!(out.open.unwrap().unanswered, 0.0);
}

#[test]
fn a_stall_counts_against_every_request_scheduled_during_it() {
    // 64 B requests: the socket buffers take every request sent during the stall.
    stall_is_charged(64);
}

#[test]
fn a_stall_that_blocks_the_sends_is_charged_from_the_schedule_too() {
    // 256 KiB requests: 300 of them fill the socket buffers many times over, so the requests
    // due during the stall are written after it. Their latency still runs from their due
    // time (timed from the write, they would look fast).
    stall_is_charged(256 * 1024);
}

#[test]
fn requests_never_answered_are_recorded_at_their_age() {
    let _serial = crate::SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let measure = Duration::from_millis(500);
    let drain = Duration::from_millis(500);
    let (addr, h) = server(64, 50, Stall::Forever);
    let (out, trace) = open(&addr, 64, measure, drain);
    // The client's connection is closed with the run: the server's loop ends.
    let (s0, _) = h.join().unwrap();
    assert_eq!(out.errors, 0, "{:?}", out.first_error);
    check_schedule(&out, &trace, measure);
    let open = out.open.unwrap();
    // Some were answered before the server stopped; the rest are in the trace (every
    // scheduled request is, by check_schedule) as unanswered.
    assert!(open.unanswered > 0.0 && open.unanswered < trace.len() as f64);
    // Every request scheduled after the server stopped answering waited, by the end, longer
    // than the drain: it is in the histogram at that age, not left out.
    for (due, latency) in trace.iter().filter(|t| t.0 >= s0) {
        assert!(*latency >= drain, "due {due:?}: recorded at {latency:?}");
    }
}
