//! The load generator: one fixed design for every server. A single thread (pinned by the
//! runner) drives all connections through level-triggered epoll with non-blocking sockets.
//!
//! - Request/response: every connection sends a message of the case's size, reads until the
//!   whole echo is back (checking every byte), records the round trip in an HDR histogram, and
//!   sends the next one at once (a closed loop: `conns` requests are always in flight).
//! - Streaming: one connection writes a byte stream as fast as the server takes it while
//!   reading the echo back; the figure is the echoed bytes per second.
//!
//! Each run has a warm-up phase, then the measured window; `mark` is called at the start and
//! at the end of the window so the runner can read the server's CPU time and counters there.
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Message bytes repeat with this period; a request starts at an offset that depends on its
/// sequence number, so an echo of the wrong request does not compare equal.
const PERIOD: usize = 251;
/// Streaming: bytes per write.
const CHUNK: usize = 64 * 1024;
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
}

struct Conn {
    stream: TcpStream,
    seq: usize,
    /// Bytes of the current request written, and echoed back.
    sent: usize,
    recvd: usize,
    started: Instant,
    want_out: bool,
    dead: bool,
}

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

/// Opens `n` connections to `addr` (blocking connect, then non-blocking, TCP_NODELAY).
pub fn connect_all(addr: &str, n: usize) -> io::Result<Vec<TcpStream>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("connection {i} of {n}: {e}")))?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        out.push(s);
    }
    Ok(out)
}

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

/// Request/response echo over `conns` connections with messages of `size` bytes.
pub fn request_response<S>(
    addr: &str,
    conns: usize,
    size: usize,
    warmup: Duration,
    measure: Duration,
    mut mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let streams = connect_all(addr, conns)?;
    let ep = Epoll::new()?;
    let tx = pattern(size);
    let mut rx = vec![0u8; size.max(1)];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut errors = Errors {
        count: 0,
        first: None,
    };
    let now = Instant::now();
    let mut cs: Vec<Conn> = streams
        .into_iter()
        .map(|stream| Conn {
            stream,
            seq: 0,
            sent: 0,
            recvd: 0,
            started: now,
            want_out: false,
            dead: false,
        })
        .collect();
    for (i, c) in cs.iter_mut().enumerate() {
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            c.stream.as_raw_fd(),
            libc::EPOLLIN,
            i as u64,
        )?;
        c.started = Instant::now();
        send_rest(&ep, c, i, &tx, size, &mut errors);
    }

    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut done: u64 = 0;
    let mut last_progress = Instant::now();
    let mut phase_end = Instant::now() + warmup;
    let mut start_mark: Option<(S, Instant)> = None;
    let mut alive = cs.len();
    loop {
        let n = ep.wait(&mut events, 100)?;
        let mut now = Instant::now();
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let c = &mut cs[i];
            if c.dead {
                continue;
            }
            let flags = ev.events as i32;
            if c.want_out && flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
                send_rest(&ep, c, i, &tx, size, &mut errors);
            }
            if c.dead || flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) == 0 {
                continue;
            }
            let off = c.seq % PERIOD;
            match sys_read(c.stream.as_raw_fd(), &mut rx[..size - c.recvd]) {
                Ok(0) => {
                    c.dead = true;
                    errors.add(|| format!("connection {i}: server closed it"));
                }
                Ok(k) => {
                    let want = &tx[off + c.recvd..off + c.recvd + k];
                    if rx[..k] != *want {
                        c.dead = true;
                        errors.add(|| format!("connection {i}: echo differs from request"));
                    } else if c.recvd + k > c.sent {
                        c.dead = true;
                        errors.add(|| format!("connection {i}: echo ahead of request"));
                    } else {
                        c.recvd += k;
                        if c.recvd == size {
                            now = Instant::now();
                            hist.saturating_record((now - c.started).as_nanos() as u64);
                            done += 1;
                            last_progress = now;
                            c.seq += 1;
                            c.sent = 0;
                            c.recvd = 0;
                            c.started = now;
                            send_rest(&ep, c, i, &tx, size, &mut errors);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    c.dead = true;
                    errors.add(|| format!("connection {i}: read: {e}"));
                }
            }
            if c.dead {
                alive -= 1;
                let _ = ep.ctl(libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
            }
        }
        if alive == 0 {
            errors.add(|| "every connection failed".into());
            break;
        }
        if now.duration_since(last_progress) > STALL {
            errors.add(|| format!("no response for {STALL:?}"));
            break;
        }
        if now >= phase_end {
            if start_mark.is_none() {
                let s = mark();
                hist.reset();
                done = 0;
                let t = Instant::now();
                start_mark = Some((s, t));
                phase_end = t + measure;
            } else {
                break;
            }
        }
    }
    let end_t = Instant::now();
    let end = mark();
    let (start, start_t) = match start_mark {
        Some(m) => m,
        None => (mark(), end_t),
    };
    Ok(Outcome {
        units: done,
        elapsed: end_t.duration_since(start_t),
        hist: Some(hist),
        errors: errors.count,
        first_error: errors.first,
        start,
        end,
    })
}

/// Writes what is left of the current request; waits for EPOLLOUT if the socket is full.
fn send_rest(ep: &Epoll, c: &mut Conn, i: usize, tx: &[u8], size: usize, errors: &mut Errors) {
    let off = c.seq % PERIOD;
    while c.sent < size {
        match sys_send(c.stream.as_raw_fd(), &tx[off + c.sent..off + size]) {
            Ok(k) => c.sent += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                c.dead = true;
                errors.add(|| format!("connection {i}: send: {e}"));
                return;
            }
        }
    }
    let want_out = c.sent < size;
    if want_out != c.want_out {
        c.want_out = want_out;
        let events = if want_out {
            libc::EPOLLIN | libc::EPOLLOUT
        } else {
            libc::EPOLLIN
        };
        if let Err(e) = ep.ctl(libc::EPOLL_CTL_MOD, c.stream.as_raw_fd(), events, i as u64) {
            c.dead = true;
            errors.add(|| format!("connection {i}: epoll_ctl: {e}"));
        }
    }
}

/// Streaming: one connection, the client writes CHUNK-byte writes and reads the echo back.
pub fn stream<S>(
    addr: &str,
    warmup: Duration,
    measure: Duration,
    mut mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let s = connect_all(addr, 1)?.pop().expect("one connection");
    let fd = s.as_raw_fd();
    let ep = Epoll::new()?;
    ep.ctl(libc::EPOLL_CTL_ADD, fd, libc::EPOLLIN | libc::EPOLLOUT, 0)?;
    let tx = pattern(CHUNK);
    let mut rx = vec![0u8; CHUNK];
    let mut errors = Errors {
        count: 0,
        first: None,
    };
    let (mut sent, mut recvd, mut window_base) = (0u64, 0u64, 0u64);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 4];
    let mut last_progress = Instant::now();
    let mut phase_end = Instant::now() + warmup;
    let mut start_mark: Option<(S, Instant)> = None;
    'run: loop {
        let n = ep.wait(&mut events, 100)?;
        for ev in &events[..n] {
            let flags = ev.events as i32;
            if flags & libc::EPOLLOUT != 0 {
                let off = (sent % PERIOD as u64) as usize;
                match sys_send(fd, &tx[off..off + CHUNK]) {
                    Ok(k) => sent += k as u64,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        errors.add(|| format!("send: {e}"));
                        break 'run;
                    }
                }
            }
            if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
                match sys_read(fd, &mut rx) {
                    Ok(0) => {
                        errors.add(|| "server closed the connection".into());
                        break 'run;
                    }
                    Ok(k) => {
                        let off = (recvd % PERIOD as u64) as usize;
                        if rx[..k] != tx[off..off + k] || recvd + k as u64 > sent {
                            errors.add(|| "echo differs from the stream sent".into());
                            break 'run;
                        }
                        recvd += k as u64;
                        last_progress = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        errors.add(|| format!("read: {e}"));
                        break 'run;
                    }
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(last_progress) > STALL {
            errors.add(|| format!("no echo for {STALL:?}"));
            break;
        }
        if now >= phase_end {
            if start_mark.is_none() {
                let m = mark();
                window_base = recvd;
                let t = Instant::now();
                start_mark = Some((m, t));
                phase_end = t + measure;
            } else {
                break;
            }
        }
    }
    let end_t = Instant::now();
    let end = mark();
    let (start, start_t) = match start_mark {
        Some(m) => m,
        None => (mark(), end_t),
    };
    Ok(Outcome {
        units: recvd - window_base,
        elapsed: end_t.duration_since(start_t),
        hist: None,
        errors: errors.count,
        first_error: errors.first,
        start,
        end,
    })
}
