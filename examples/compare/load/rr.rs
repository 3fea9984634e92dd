//! Request/response: a closed loop over every connection, each with one request in flight.
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    connect_all, pattern, retry, sys_read, sys_send, Epoll, Errors, Outcome, Phase, Window, EVENTS,
    PERIOD, STALL,
};

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

impl Conn {
    fn new(stream: TcpStream, now: Instant) -> Conn {
        Conn {
            stream,
            seq: 0,
            sent: 0,
            recvd: 0,
            started: now,
            want_out: false,
            dead: false,
        }
    }
}

/// The state of a request/response run.
struct Rr {
    cs: Vec<Conn>,
    size: usize,
    tx: Vec<u8>,
    rx: Vec<u8>,
    hist: Histogram<u64>,
    /// Requests completed (in the window, once it has begun).
    done: u64,
    last_progress: Instant,
    alive: usize,
    errors: Errors,
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
    let (ep, mut rr) = start(addr, conns, size)?;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut window = Window::new(warmup, measure);
    loop {
        let n = ep.wait(&mut events, 100)?;
        let mut now = Instant::now();
        for ev in &events[..n] {
            if let Some(t) = rr.on_event(&ep, ev.u64 as usize, ev.events as i32) {
                now = t;
            }
        }
        if rr.alive == 0 {
            rr.errors.add(|| "every connection failed".into());
            break;
        }
        if now.duration_since(rr.last_progress) > STALL {
            rr.errors.add(|| format!("no response for {STALL:?}"));
            break;
        }
        match window.tick(now, &mut mark) {
            Phase::Running => {}
            Phase::Begun => {
                rr.hist.reset();
                rr.done = 0;
            }
            Phase::Over => break,
        }
    }
    let (start, end, elapsed) = window.finish(&mut mark);
    Ok(Outcome {
        units: rr.done,
        elapsed,
        hist: Some(rr.hist),
        errors: rr.errors.count,
        first_error: rr.errors.first,
        start,
        end,
    })
}

/// Connects, registers every connection and sends each one's first request.
fn start(addr: &str, conns: usize, size: usize) -> io::Result<(Epoll, Rr)> {
    let streams = connect_all(addr, conns)?;
    let ep = Epoll::new()?;
    let now = Instant::now();
    let mut rr = Rr {
        cs: streams.into_iter().map(|s| Conn::new(s, now)).collect(),
        size,
        tx: pattern(size),
        rx: vec![0u8; size.max(1)],
        hist: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| io::Error::other(e.to_string()))?,
        done: 0,
        last_progress: now,
        alive: conns,
        errors: Errors::default(),
    };
    for (i, c) in rr.cs.iter_mut().enumerate() {
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            c.stream.as_raw_fd(),
            libc::EPOLLIN,
            i as u64,
        )?;
        c.started = Instant::now();
        send_rest(&ep, c, i, &rr.tx, size, &mut rr.errors);
    }
    rr.last_progress = Instant::now();
    Ok((ep, rr))
}

impl Rr {
    /// Handles the readiness of connection `i`; returns the time a request completed, if one
    /// did.
    fn on_event(&mut self, ep: &Epoll, i: usize, flags: i32) -> Option<Instant> {
        let c = &mut self.cs[i];
        if c.dead {
            return None;
        }
        if c.want_out && flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
            send_rest(ep, c, i, &self.tx, self.size, &mut self.errors);
        }
        let mut completed = None;
        if !c.dead && flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
            let echoed = read_echo(c, i, &self.tx, &mut self.rx, self.size, &mut self.errors);
            if echoed == self.size {
                let now = Instant::now();
                self.hist
                    .saturating_record((now - c.started).as_nanos() as u64);
                self.done += 1;
                self.last_progress = now;
                c.seq += 1;
                c.sent = 0;
                c.recvd = 0;
                c.started = now;
                send_rest(ep, c, i, &self.tx, self.size, &mut self.errors);
                completed = Some(now);
            }
        }
        if c.dead {
            self.alive -= 1;
            let _ = ep.ctl(libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
        }
        completed
    }
}

/// Reads what the server echoed of connection `i`'s request and checks it; returns the bytes
/// of the request echoed so far.
fn read_echo(
    c: &mut Conn,
    i: usize,
    tx: &[u8],
    rx: &mut [u8],
    size: usize,
    errors: &mut Errors,
) -> usize {
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
            }
        }
        Err(e) if retry(&e) => {}
        Err(e) => {
            c.dead = true;
            errors.add(|| format!("connection {i}: read: {e}"));
        }
    }
    c.recvd
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
