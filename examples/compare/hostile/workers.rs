//! The storm threads. They run in the runner's process, so on the load generator's core (a
//! thread inherits its creator's affinity), beside the well-behaved client; each is paced to
//! a fixed rate so that it takes a bounded share of that core, and each stops by itself at its
//! deadline (or sooner, when the runner raises the stop flag) and closes every socket it
//! opened before it returns.
//!
//! Rates (every storm brings the server about 2000 events a second):
//! - reset, vanish: `CHURN_THREADS` threads, each opening one connection at a time at
//!   `CHURN_RATE` a second; so at most `CHURN_THREADS` storm connections are open on our side
//!   at once (the server's accept queue may hold more).
//! - slowloris: one thread opens `SLOWLORIS_CONNS` connections at `SLOWLORIS_RAMP` a second
//!   (within the warm-up), then sends one byte on the next one in turn, each connection every
//!   `SLOWLORIS_INTERVAL`. It drains the echoes before it closes them.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::storm::{Storm, Tally};

/// Reset and vanish: the storm threads, and the connections each opens per second.
pub const CHURN_THREADS: usize = 2;
pub const CHURN_RATE: f64 = 1000.0;
/// Reset: the bytes each connection sends before its RST (half of the client's 64 B request).
pub const RESET_SEND: usize = 32;
/// Slowloris: the connections, how often each sends its byte, and how fast they are opened.
pub const SLOWLORIS_CONNS: usize = 500;
pub const SLOWLORIS_INTERVAL: Duration = Duration::from_millis(250);
const SLOWLORIS_RAMP: f64 = 5000.0;
/// A connect that takes longer fails (the server's accept queue is full: the SYN is dropped
/// and resent a second later).
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// A pacer that has fallen this far behind (its core was busy) starts afresh rather than
/// catching up in a burst.
const MAX_LAG: Duration = Duration::from_millis(5);

/// Until when a storm runs: its deadline, or until the runner raises `stop`.
#[derive(Clone, Copy)]
pub struct Until<'a> {
    pub deadline: Instant,
    pub stop: &'a AtomicBool,
}

impl Until<'_> {
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// Starts the threads of `storm` against `addr` in `scope` (none for `Storm::None`).
pub fn spawn<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    storm: Storm,
    addr: SocketAddr,
    until: Until<'env>,
) -> io::Result<Vec<ScopedJoinHandle<'scope, Tally>>> {
    let thread = |name: String| std::thread::Builder::new().name(name);
    match storm {
        Storm::None => Ok(Vec::new()),
        Storm::Reset | Storm::Vanish => (0..CHURN_THREADS)
            .map(|i| {
                let reset = storm == Storm::Reset;
                thread(format!("storm-{}-{i}", storm.name()))
                    .spawn_scoped(scope, move || churn(addr, until, reset, CHURN_RATE))
            })
            .collect(),
        Storm::Slowloris => {
            let (n, interval) = (SLOWLORIS_CONNS, SLOWLORIS_INTERVAL);
            Ok(vec![thread("storm-slowloris".into())
                .spawn_scoped(scope, move || {
                    slowloris(addr, until, n, interval)
                })?])
        }
    }
}

/// Sleeps between the events of a thread so that they come at a fixed rate.
struct Pacer {
    period: Duration,
    next: Instant,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
        Pacer {
            period: Duration::from_secs_f64(1.0 / per_second.max(1.0)),
            next: Instant::now(),
        }
    }

    /// Waits until the next event is due; false once the storm is over.
    fn wait(&mut self, until: &Until) -> bool {
        let now = Instant::now();
        if self.next > now {
            if self.next >= until.deadline {
                return false;
            }
            std::thread::sleep(self.next - now);
        } else if now - self.next > MAX_LAG {
            self.next = now;
        }
        self.next += self.period;
        !until.over()
    }
}

/// A blocking connect that gives up after CONNECT_TIMEOUT or at the deadline.
fn connect(addr: &SocketAddr, until: &Until) -> io::Result<TcpStream> {
    let left = until.deadline.saturating_duration_since(Instant::now());
    let timeout = CONNECT_TIMEOUT.min(left).max(Duration::from_millis(1));
    TcpStream::connect_timeout(addr, timeout)
}

/// Sets SO_LINGER to on, 0 s: closing the socket then sends an RST instead of a FIN.
fn linger_zero(s: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the option value is a live `linger` and its exact size is passed; the fd is
    // owned by `s`, which outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reset (`reset`: send RESET_SEND bytes, close with an RST) or vanish (close at once, a FIN):
/// one connection at a time, `rate` a second (CHURN_RATE in the runs).
fn churn(addr: SocketAddr, until: Until, reset: bool, rate: f64) -> Tally {
    let part = [b'r'; RESET_SEND];
    let mut t = Tally::default();
    let mut pace = Pacer::new(rate);
    while pace.wait(&until) {
        let Ok(mut s) = connect(&addr, &until) else {
            t.failed += 1;
            continue;
        };
        t.open_peak = 1;
        if reset && (s.write_all(&part).is_err() || linger_zero(&s).is_err()) {
            t.failed += 1;
            continue;
        }
        t.events += 1;
        // Dropped here: closed (an RST for reset, a FIN for vanish).
    }
    t
}

/// Slowloris: opens `n` connections, then trickles a byte on each in turn, each connection
/// every `interval` (SLOWLORIS_CONNS and SLOWLORIS_INTERVAL in the runs).
fn slowloris(addr: SocketAddr, until: Until, n: usize, interval: Duration) -> Tally {
    let mut t = Tally::default();
    let mut conns: Vec<TcpStream> = Vec::with_capacity(n);
    let mut pace = Pacer::new(SLOWLORIS_RAMP);
    let mut attempts = 0;
    while conns.len() < n && attempts < 2 * n && pace.wait(&until) {
        attempts += 1;
        match connect(&addr, &until).and_then(|s| s.set_nonblocking(true).map(|()| s)) {
            Ok(s) => conns.push(s),
            Err(_) => t.failed += 1,
        }
    }
    t.open_peak = conns.len() as u64;
    let mut alive = vec![true; conns.len()];
    let per_second = conns.len() as f64 / interval.as_secs_f64();
    let mut pace = Pacer::new(per_second);
    let mut turn = 0;
    while !conns.is_empty() && pace.wait(&until) {
        let i = turn % conns.len();
        turn += 1;
        if !alive[i] {
            continue;
        }
        match (&conns[i]).write(b"s") {
            Ok(_) => t.events += 1,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                alive[i] = false;
                t.failed += 1;
            }
        }
    }
    // Read the echoes back so that each close is a FIN (unread data would make it an RST).
    let mut sink = [0u8; 64];
    for mut s in &conns {
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
    }
    t
}

#[cfg(test)]
mod tests;
