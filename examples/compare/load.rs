//! The load generator: one fixed design for every server. A single thread (pinned by the
//! runner) drives all connections through level-triggered epoll with non-blocking sockets.
//!
//! - Request/response (`rr`): every connection sends a message of the case's size, reads until the
//!   whole echo is back (checking every byte), records the round trip in an HDR histogram, and
//!   sends the next one at once (a closed loop: `conns` requests are always in flight). The
//!   loop takes any `Exchange`: the echo, or an HTTP/1.1 GET (`crate::http::load`).
//! - Streaming (`stream`): each connection writes a byte stream as fast as the server takes
//!   it while reading the echo back; the figure is the echoed bytes per second.
//!
//! Each run has a warm-up phase, then the measured window; `mark` is called at the start and
//! at the end of the window so the runner can read the server's CPU time and counters there.
//!
//! Connections are opened in small batches, each checked with a one-byte echo before the
//! next, so the server's accept queue never overflows however many there are (see
//! `CONNECT_BATCH`).
mod open;
mod rr;
mod schedule;
mod stream;

use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Message bytes repeat with this period; a request starts at an offset that depends on its
/// sequence number, so an echo of the wrong request does not compare equal.
const PERIOD: usize = 251;
/// A run fails if no response arrives for this long.
const STALL: Duration = Duration::from_secs(5);

fn pattern(len: usize) -> Vec<u8> {
    (0..len + PERIOD).map(|i| (i % PERIOD) as u8).collect()
}

/// What one run measured, between the two `mark` calls.
pub struct Outcome<S> {
    /// Completed requests (request/response) or echoed bytes (streaming) in the window.
    pub units: u64,
    pub elapsed: Duration,
    /// Round-trip latency in nanoseconds (request/response only).
    pub hist: Option<Histogram<u64>>,
    /// Broken connections, bad echoes, stalls; with the first message.
    pub errors: u64,
    pub first_error: Option<String>,
    pub start: S,
    pub end: S,
    /// The hostile cases: what the storm beside the run did (`crate::hostile`).
    pub storm: Option<crate::hostile::StormFigures>,
    /// The open-loop (latency) cases: the schedule's figures (`open`).
    pub open: Option<OpenFigures>,
}

pub use open::{open_loop, Offer, OpenFigures, DRAIN};
pub use rr::{closed_loop, echo_loop, request_response, Exchange};
pub use schedule::Arrivals;
pub use stream::stream;

/// A histogram of latencies in nanoseconds, 1 ns to 60 s, 3 significant digits.
fn latency_histogram() -> io::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| io::Error::other(e.to_string()))
}

/// Events taken per epoll_wait.
const EVENTS: usize = 1024;

struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: no memory preconditions; the result is checked before it is owned.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a new fd that nothing else owns.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: i32, fd: RawFd, events: i32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: a live epoll_event; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        // SAFETY: `events` is a live buffer of events.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(e)
            };
        }
        Ok(n as usize)
    }
}

fn sys_read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads into a live buffer, within its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn sys_send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: writes from a live buffer, within its length.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Whether a failed read or send is only "not now".
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Connections are opened this many at a time, and each batch makes a one-byte round trip on
/// every connection before the next batch starts. The echo proves that the server has
/// accepted them, so its accept queue (128 for a std listener) never overflows: the kernel
/// drops a SYN that finds the queue full, and the client then waits a second to resend it.
const CONNECT_BATCH: usize = 64;

/// What the batches of `connect_with` check: one round trip on every connection of a batch,
/// or the index in the batch of the one that failed and why.
pub type Handshake<'a> = &'a dyn Fn(&[TcpStream]) -> Result<(), (usize, io::Error)>;

/// Opens `n` connections to `addr`: blocking connect, TCP_NODELAY, a read timeout of STALL
/// (for blocking reads), a one-byte echo each, then non-blocking.
pub fn connect_all(addr: &str, n: usize) -> io::Result<Vec<TcpStream>> {
    connect_with(addr, n, &echo_handshake)
}

/// Opens `n` connections to `addr` as `connect_all` does, with `handshake` (one round trip
/// on each connection of a batch) in place of the one-byte echo.
pub fn connect_with(addr: &str, n: usize, handshake: Handshake) -> io::Result<Vec<TcpStream>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let from = out.len();
        for i in from..n.min(from + CONNECT_BATCH) {
            let s = TcpStream::connect(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("connection {i} of {n}: {e}")))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(STALL))?;
            out.push(s);
        }
        handshake(&out[from..]).map_err(|(i, e)| {
            io::Error::new(e.kind(), format!("connection {} of {n}: {e}", from + i))
        })?;
    }
    for s in &out {
        s.set_nonblocking(true)?;
    }
    Ok(out)
}

/// Sends one byte on each connection of a batch, then reads each echo back.
fn echo_handshake(batch: &[TcpStream]) -> Result<(), (usize, io::Error)> {
    use std::io::{Read, Write};
    let fail = |i: usize, e: io::Error| (i, io::Error::new(e.kind(), format!("first echo: {e}")));
    for (i, mut s) in batch.iter().enumerate() {
        s.write_all(b"h").map_err(|e| fail(i, e))?;
    }
    for (i, mut s) in batch.iter().enumerate() {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).map_err(|e| fail(i, e))?;
        if b != *b"h" {
            return Err(fail(i, io::Error::other("wrong byte")));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Errors {
    count: u64,
    first: Option<String>,
}

impl Errors {
    fn add(&mut self, msg: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(msg());
        }
    }
}

/// The warm-up, then the measured window.
struct Window<S> {
    measure: Duration,
    /// When the current phase ends.
    end: Instant,
    /// The mark at the start of the window, and when it was taken.
    start: Option<(S, Instant)>,
}

enum Phase {
    Running,
    /// The measured window has just begun: counters start from zero.
    Begun,
    Over,
}

impl<S> Window<S> {
    fn new(warmup: Duration, measure: Duration) -> Window<S> {
        Window {
            measure,
            end: Instant::now() + warmup,
            start: None,
        }
    }

    /// Moves to the next phase once `now` is past the current one, marking the start.
    fn tick(&mut self, now: Instant, mark: &mut impl FnMut() -> S) -> Phase {
        if now < self.end {
            return Phase::Running;
        }
        if self.start.is_some() {
            return Phase::Over;
        }
        let s = mark();
        let t = Instant::now();
        self.start = Some((s, t));
        self.end = t + self.measure;
        Phase::Begun
    }

    /// Marks the end: the two marks and the length of the window (zero if it never began).
    fn finish(self, mark: &mut impl FnMut() -> S) -> (S, S, Duration) {
        let end_t = Instant::now();
        let end = mark();
        let (start, start_t) = match self.start {
            Some(m) => m,
            None => (mark(), end_t),
        };
        (start, end, end_t.duration_since(start_t))
    }
}
