//! Request/response: a closed loop over every connection, each with one request in flight.
//! What a request is and when its response is complete is the `Exchange`'s business: the echo
//! of the `rr` cases here, an HTTP/1.1 GET in `crate::http::load`.
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::{
    connect_all, latency_histogram, pattern, retry, sys_read, sys_send, Epoll, Errors, Outcome,
    Phase, Window, EVENTS, PERIOD, STALL,
};

/// One kind of request and its response, as the closed loop sees them.
pub trait Exchange {
    /// What a connection keeps of the response it is reading.
    type State;
    /// The state of a connection before its first response.
    fn state(&self) -> Self::State;
    /// The bytes of request number `seq` of a connection.
    fn request(&self, seq: usize) -> &[u8];
    /// The most bytes the next read may take (at least 1 while a response is incomplete).
    fn read_limit(&self, st: &Self::State) -> usize;
    /// Takes `data`, just read in answer to request `seq` of which `sent` bytes are written:
    /// whether the response is complete now, or what is wrong with it.
    fn take(
        &self,
        st: &mut Self::State,
        seq: usize,
        sent: usize,
        data: &[u8],
    ) -> Result<bool, String>;
    /// Readies `st` for the next response.
    fn reset(&self, st: &mut Self::State);
}

/// The echo: a request of `size` bytes from the pattern, answered by the same bytes.
pub(super) struct Echo {
    size: usize,
    tx: Vec<u8>,
}

impl Echo {
    pub(super) fn new(size: usize) -> Echo {
        Echo {
            size,
            tx: pattern(size),
        }
    }
}

impl Exchange for Echo {
    /// The bytes echoed so far.
    type State = usize;

    fn state(&self) -> usize {
        0
    }

    fn request(&self, seq: usize) -> &[u8] {
        let off = seq % PERIOD;
        &self.tx[off..off + self.size]
    }

    fn read_limit(&self, recvd: &usize) -> usize {
        self.size - recvd
    }

    fn take(
        &self,
        recvd: &mut usize,
        seq: usize,
        sent: usize,
        data: &[u8],
    ) -> Result<bool, String> {
        let off = seq % PERIOD + *recvd;
        if data != &self.tx[off..off + data.len()] {
            return Err("echo differs from request".into());
        }
        if *recvd + data.len() > sent {
            return Err("echo ahead of request".into());
        }
        *recvd += data.len();
        Ok(*recvd == self.size)
    }

    fn reset(&self, recvd: &mut usize) {
        *recvd = 0;
    }
}

struct Conn<T> {
    stream: TcpStream,
    seq: usize,
    /// Bytes of the current request written, and what has come of its response.
    sent: usize,
    st: T,
    started: Instant,
    want_out: bool,
    dead: bool,
}

/// The state of a request/response run.
struct Rr<E: Exchange> {
    ex: E,
    cs: Vec<Conn<E::State>>,
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
    mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let streams = connect_all(addr, conns)?;
    echo_loop(streams, size, warmup, measure, mark)
}

/// Request/response echo with messages of `size` bytes over `streams` (connected by
/// `connect_all`, non-blocking).
pub fn echo_loop<S>(
    streams: Vec<TcpStream>,
    size: usize,
    warmup: Duration,
    measure: Duration,
    mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    closed_loop(streams, Echo::new(size), size.max(1), warmup, measure, mark)
}

/// Runs `ex` in a closed loop over `streams` (connected, non-blocking), reading at most
/// `rx_len` bytes at a time.
pub fn closed_loop<E: Exchange, S>(
    streams: Vec<TcpStream>,
    ex: E,
    rx_len: usize,
    warmup: Duration,
    measure: Duration,
    mut mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let (ep, mut rr) = start(streams, ex, rx_len)?;
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
        storm: None,
        open: None,
    })
}

/// Registers every connection and sends each one's first request.
fn start<E: Exchange>(streams: Vec<TcpStream>, ex: E, rx_len: usize) -> io::Result<(Epoll, Rr<E>)> {
    let ep = Epoll::new()?;
    let now = Instant::now();
    let conns = streams.len();
    let cs = streams
        .into_iter()
        .map(|stream| Conn {
            stream,
            seq: 0,
            sent: 0,
            st: ex.state(),
            started: now,
            want_out: false,
            dead: false,
        })
        .collect();
    let mut rr = Rr {
        ex,
        cs,
        rx: vec![0u8; rx_len],
        hist: latency_histogram()?,
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
        send_rest(&ep, c, i, &rr.ex, &mut rr.errors);
    }
    rr.last_progress = Instant::now();
    Ok((ep, rr))
}

impl<E: Exchange> Rr<E> {
    /// Handles the readiness of connection `i`; returns the time a request completed, if one
    /// did.
    fn on_event(&mut self, ep: &Epoll, i: usize, flags: i32) -> Option<Instant> {
        let c = &mut self.cs[i];
        if c.dead {
            return None;
        }
        if c.want_out && flags & (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) != 0 {
            send_rest(ep, c, i, &self.ex, &mut self.errors);
        }
        let mut completed = None;
        if !c.dead
            && flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) != 0
            && read_response(&self.ex, c, i, &mut self.rx, &mut self.errors)
        {
            let now = Instant::now();
            self.hist
                .saturating_record((now - c.started).as_nanos() as u64);
            self.done += 1;
            self.last_progress = now;
            c.seq += 1;
            c.sent = 0;
            self.ex.reset(&mut c.st);
            c.started = now;
            send_rest(ep, c, i, &self.ex, &mut self.errors);
            completed = Some(now);
        }
        if c.dead {
            self.alive -= 1;
            let _ = ep.ctl(libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
        }
        completed
    }
}

/// Reads what the server sent of connection `i`'s response and hands it to the exchange;
/// returns whether the response is complete.
fn read_response<E: Exchange>(
    ex: &E,
    c: &mut Conn<E::State>,
    i: usize,
    rx: &mut [u8],
    errors: &mut Errors,
) -> bool {
    let limit = ex.read_limit(&c.st).min(rx.len());
    match sys_read(c.stream.as_raw_fd(), &mut rx[..limit]) {
        Ok(0) => {
            c.dead = true;
            errors.add(|| format!("connection {i}: server closed it"));
        }
        Ok(k) => match ex.take(&mut c.st, c.seq, c.sent, &rx[..k]) {
            Ok(done) => return done,
            Err(why) => {
                c.dead = true;
                errors.add(|| format!("connection {i}: {why}"));
            }
        },
        Err(e) if retry(&e) => {}
        Err(e) => {
            c.dead = true;
            errors.add(|| format!("connection {i}: read: {e}"));
        }
    }
    false
}

/// Writes what is left of the current request; waits for EPOLLOUT if the socket is full.
fn send_rest<E: Exchange>(
    ep: &Epoll,
    c: &mut Conn<E::State>,
    i: usize,
    ex: &E,
    errors: &mut Errors,
) {
    let req = ex.request(c.seq);
    while c.sent < req.len() {
        match sys_send(c.stream.as_raw_fd(), &req[c.sent..]) {
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
    let want_out = c.sent < req.len();
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
