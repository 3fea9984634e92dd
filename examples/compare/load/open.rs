//! Open loop: the echo requests go out on a fixed schedule (`Schedule`), spread over the
//! connections in turn, whatever the server does; a connection whose earlier requests are
//! unanswered sends the next one behind them (the echo is a byte stream, so its answers come
//! back in order). Every request's latency runs from its *scheduled* send time to the end of
//! its echo, so a server that stalls is charged for every request the stall delays, not only
//! for the one in flight (no coordinated omission).
//!
//! The generator is one thread; when it is late (it takes a due request after its time,
//! because it was busy reading), that lag is recorded apart, so a saturated client is not
//! mistaken for a slow server. It spins (epoll_wait with no timeout) when the next request is
//! due within SPIN, and sleeps otherwise.
//!
//! The measured requests are those scheduled in the window. It begins a little after the
//! runner's mark at the end of the warm-up returns (SETTLE, CATCH_UP: the requests that mark
//! delayed are not measured), lasts `measure`, and the schedule goes on after it at the
//! same rate until every measured request is answered, or DRAIN has passed: a request still unanswered then is
//! recorded at its age and counted as unanswered. The closing mark is taken then: the
//! outcome's units and elapsed time are the requests answered (measured or not) between the
//! two marks and the time between them, so the server's CPU is divided by what it did in
//! that span, and the answered rate falls below the offered one once the server is past
//! its capacity. A server silent for STALL is an error, but the run goes on to the end of
//! its drain, so every request of the window is recorded.
use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::rr::Echo;
use super::schedule::{Arrivals, Schedule};
use super::{latency_histogram, Epoll, Errors, Outcome, EVENTS, STALL};

/// The generator spins when the next request is due within this; it sleeps otherwise.
const SPIN: Duration = Duration::from_millis(2);
/// How long, after the window, the generator waits for the measured requests' answers.
pub const DRAIN: Duration = Duration::from_secs(2);
/// The window starts SETTLE, plus CATCH_UP times as long as the mark at its start took (at
/// most CATCH_UP_MAX), after that mark returns: the requests the mark delayed (the runner
/// reads the server's counters on this thread) are warm-up, not measured, and so are those
/// queued behind them while the server catches up.
const SETTLE: Duration = Duration::from_millis(5);
const CATCH_UP: u32 = 20;
const CATCH_UP_MAX: Duration = Duration::from_millis(250);
/// The most bytes one read takes (the echoes of several requests, when they queue).
const RX: usize = 64 * 1024;

/// What an open-loop run offers.
#[derive(Clone, Copy, Debug)]
pub struct Offer {
    /// Requests a second, over all connections.
    pub rate: f64,
    pub arrivals: Arrivals,
    pub warmup: Duration,
    pub measure: Duration,
    /// How long, after the window, the generator waits for the measured requests' answers
    /// (DRAIN in the runs of `compare`).
    pub drain: Duration,
}

/// What an open-loop run measured beyond the latency histogram.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenFigures {
    /// Measured requests scheduled per second of the window.
    pub offered: f64,
    /// The largest latency, µs.
    pub max_us: f64,
    /// The generator's own lag (from a request's due time to when it took it), µs.
    pub lag_p99_us: f64,
    pub lag_max_us: f64,
    /// Measured requests with no answer DRAIN after the window.
    pub unanswered: f64,
}

/// A request scheduled and not yet answered.
struct Pending {
    due: Instant,
    /// Scheduled in the window (not in the warm-up).
    measured: bool,
}

/// One connection of the open loop.
struct OpenConn {
    stream: TcpStream,
    /// Scheduled and unanswered, oldest first: `queue[0]` is the one whose echo is read.
    queue: VecDeque<Pending>,
    /// The connection's sequence number of `queue[0]`.
    head_seq: usize,
    /// Requests of the queue written whole, and the bytes written of the one after them.
    written: usize,
    partial: usize,
    /// Bytes of `queue[0]`'s echo read.
    recvd: usize,
    want_out: bool,
    dead: bool,
}

/// The measured window, once it is known: the mark at its start, when that mark was taken,
/// and the window [ws, we) itself (requests due in it are measured).
struct Begun<S> {
    mark: S,
    at: Instant,
    window: (Instant, Instant),
}

/// One measured request as the test sees it: when it was due, and the latency recorded.
pub type Traced = (Instant, Duration);

/// The state of one open-loop run.
struct OpenLoop {
    echo: Echo,
    cs: Vec<OpenConn>,
    rx: Vec<u8>,
    hist: Histogram<u64>,
    lag: Histogram<u64>,
    /// Measured requests scheduled (those answered, or given up on, are in `hist`).
    scheduled: u64,
    /// Requests answered since the mark at the window's start (measured or not: the
    /// server's counters cover them all), and requests sent and not yet answered.
    answered: u64,
    in_flight: u64,
    /// The number of the next request (it goes to connection `next % conns`).
    next: usize,
    /// When a request was last answered (or, with none pending, last sent), and whether
    /// the stall error was given.
    last_progress: Instant,
    stalled: bool,
    alive: usize,
    errors: Errors,
    trace: Option<Vec<Traced>>,
}

/// Open-loop echo with `size`-byte messages over `streams` (from `connect_all`).
pub fn open_loop<S>(
    streams: Vec<TcpStream>,
    size: usize,
    offer: Offer,
    mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    Ok(run(streams, size, offer, mark, false)?.0)
}

/// The open loop; with `trace`, also every measured request's due time and latency.
pub(super) fn run<S>(
    streams: Vec<TcpStream>,
    size: usize,
    offer: Offer,
    mut mark: impl FnMut() -> S,
    trace: bool,
) -> io::Result<(Outcome<S>, Vec<Traced>)> {
    let (ep, mut ol) = OpenLoop::start(streams, size, trace)?;
    let t0 = Instant::now();
    let mut schedule = Schedule::new(t0, offer.rate, offer.arrivals);
    let mut start: Option<Begun<S>> = None;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    loop {
        let now = Instant::now();
        if start.is_none() && now >= t0 + offer.warmup {
            let (t, s) = (Instant::now(), mark());
            // The requests that were due while the mark ran go out late, in a burst: the
            // window starts once the server has had time to catch up with them.
            let ws = Instant::now() + SETTLE + (t.elapsed() * CATCH_UP).min(CATCH_UP_MAX);
            ol.answered = 0;
            start = Some(Begun {
                mark: s,
                at: t,
                window: (ws, ws + offer.measure),
            });
        }
        let window = start.as_ref().map(|b| b.window);
        ol.take_due(&ep, &mut schedule, now, window);
        if let Some((_, we)) = window {
            if now >= we && (ol.outstanding() == 0 || now >= we + offer.drain) {
                break;
            }
        }
        if ol.alive == 0 {
            ol.errors.add(|| "every connection failed".into());
            break;
        }
        ol.check_stall(now);
        let next = schedule.due().saturating_duration_since(now);
        let timeout = match next > SPIN {
            true => (next - Duration::from_millis(1)).as_millis() as i32,
            false => 0,
        };
        let n = ep.wait(&mut events, timeout)?;
        for ev in &events[..n] {
            ol.on_event(&ep, ev.u64 as usize, ev.events as i32);
        }
    }
    let end_t = Instant::now();
    let end = mark();
    let (start, start_t) = match start {
        Some(b) => (b.mark, b.at),
        None => (mark(), end_t),
    };
    let unanswered = ol.give_up(Instant::now());
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    let open = OpenFigures {
        offered: ol.scheduled as f64 / offer.measure.as_secs_f64(),
        max_us: ol.hist.max() as f64 / 1000.0,
        lag_p99_us: q(&ol.lag, 0.99),
        lag_max_us: ol.lag.max() as f64 / 1000.0,
        unanswered: unanswered as f64,
    };
    let out = Outcome {
        units: ol.answered,
        elapsed: end_t.duration_since(start_t),
        hist: Some(ol.hist),
        errors: ol.errors.count,
        first_error: ol.errors.first,
        start,
        end,
        storm: None,
        open: Some(open),
    };
    Ok((out, ol.trace.unwrap_or_default()))
}

impl OpenLoop {
    /// Registers every connection; nothing is sent until the schedule says so.
    fn start(streams: Vec<TcpStream>, size: usize, trace: bool) -> io::Result<(Epoll, OpenLoop)> {
        let ep = Epoll::new()?;
        let alive = streams.len();
        let mut cs = Vec::with_capacity(alive);
        for (i, stream) in streams.into_iter().enumerate() {
            ep.ctl(
                libc::EPOLL_CTL_ADD,
                stream.as_raw_fd(),
                libc::EPOLLIN,
                i as u64,
            )?;
            cs.push(OpenConn {
                stream,
                queue: VecDeque::new(),
                head_seq: 0,
                written: 0,
                partial: 0,
                recvd: 0,
                want_out: false,
                dead: false,
            });
        }
        let ol = OpenLoop {
            echo: Echo::new(size),
            cs,
            rx: vec![0u8; RX],
            hist: latency_histogram()?,
            lag: latency_histogram()?,
            scheduled: 0,
            answered: 0,
            in_flight: 0,
            next: 0,
            last_progress: Instant::now(),
            stalled: false,
            alive,
            errors: Errors::default(),
            trace: trace.then(Vec::new),
        };
        Ok((ep, ol))
    }

    /// Takes every request due by `now` from the schedule, each onto the next connection in
    /// turn, and sends it; those due in `window` are measured.
    fn take_due(
        &mut self,
        ep: &Epoll,
        schedule: &mut Schedule,
        now: Instant,
        window: Option<(Instant, Instant)>,
    ) {
        while schedule.due() <= now {
            let due = schedule.due();
            let measured = window.is_some_and(|(ws, we)| due >= ws && due < we);
            if measured {
                self.lag.saturating_record((now - due).as_nanos() as u64);
                self.scheduled += 1;
            }
            if self.in_flight == 0 {
                // Nothing was pending: the wait for an answer starts now.
                self.last_progress = now;
            }
            self.in_flight += 1;
            let i = self.next % self.cs.len();
            self.next += 1;
            self.cs[i].queue.push_back(Pending { due, measured });
            self.send(ep, i);
            schedule.advance();
        }
    }

    /// Measured requests not yet answered.
    fn outstanding(&self) -> u64 {
        self.scheduled - self.hist.len()
    }

    /// An error, once, if requests are pending and nothing has been answered for STALL;
    /// the run goes on (the drain bounds it), so every request of the window is recorded.
    fn check_stall(&mut self, now: Instant) {
        if !self.stalled && self.in_flight > 0 && now - self.last_progress > STALL {
            self.stalled = true;
            self.errors.add(|| format!("no response for {STALL:?}"));
        }
    }

    /// Handles the readiness of connection `i`.
    fn on_event(&mut self, ep: &Epoll, i: usize, flags: i32) {
        if self.cs[i].dead {
            return;
        }
        if self.cs[i].want_out && flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
            self.send(ep, i);
        }
        if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
            self.receive(ep, i);
        }
    }

    /// Records every measured request still unanswered at `now` at its age; returns how
    /// many there were.
    fn give_up(&mut self, now: Instant) -> u64 {
        let due: Vec<Instant> = self
            .cs
            .iter_mut()
            .flat_map(|c| c.queue.drain(..))
            .filter(|p| p.measured)
            .map(|p| p.due)
            .collect();
        for &d in &due {
            self.record(d, now);
        }
        due.len() as u64
    }
}

mod conn_io;
#[cfg(test)]
mod tests;
