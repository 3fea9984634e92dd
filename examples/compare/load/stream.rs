//! Streaming: every connection writes CHUNK-byte writes as fast as the server takes them and
//! reads the echo back, checking every byte; the figure is the bytes echoed.
use std::io;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::{
    connect_all, pattern, retry, sys_read, sys_send, Epoll, Errors, Outcome, Phase, Window, EVENTS,
    PERIOD, STALL,
};
use crate::report::STREAM_CHUNK as CHUNK;

/// One streaming connection: the bytes written so far, and the bytes echoed back.
struct Pipe {
    stream: TcpStream,
    sent: u64,
    recvd: u64,
}

/// Streams over `conns` connections at once; stops at the first broken connection.
pub fn stream<S>(
    addr: &str,
    conns: usize,
    warmup: Duration,
    measure: Duration,
    mut mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let (ep, mut pipes) = open(addr, conns)?;
    let (tx, mut rx) = (pattern(CHUNK), vec![0u8; CHUNK]);
    let mut errors = Errors::default();
    let (mut echoed, mut window_base) = (0u64, 0u64);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; conns.clamp(4, EVENTS)];
    let mut last_progress = Instant::now();
    let mut window = Window::new(warmup, measure);
    'run: loop {
        let n = ep.wait(&mut events, 100)?;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            match pump(&mut pipes[i], ev.events as i32, &tx, &mut rx) {
                Ok(0) => {}
                Ok(k) => {
                    echoed += k;
                    last_progress = Instant::now();
                }
                Err(e) => {
                    errors.add(|| format!("connection {i}: {e}"));
                    break 'run;
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(last_progress) > STALL {
            errors.add(|| format!("no echo for {STALL:?}"));
            break;
        }
        match window.tick(now, &mut mark) {
            Phase::Running => {}
            Phase::Begun => window_base = echoed,
            Phase::Over => break,
        }
    }
    let (start, end, elapsed) = window.finish(&mut mark);
    Ok(Outcome {
        units: echoed - window_base,
        elapsed,
        hist: None,
        errors: errors.count,
        first_error: errors.first,
        start,
        end,
        storm: None,
        open: None,
    })
}

/// Connects and registers every connection for reading and writing.
fn open(addr: &str, conns: usize) -> io::Result<(Epoll, Vec<Pipe>)> {
    let ep = Epoll::new()?;
    let mut pipes = Vec::with_capacity(conns);
    for (i, stream) in connect_all(addr, conns)?.into_iter().enumerate() {
        let fd = stream.as_raw_fd();
        ep.ctl(
            libc::EPOLL_CTL_ADD,
            fd,
            libc::EPOLLIN | libc::EPOLLOUT,
            i as u64,
        )?;
        pipes.push(Pipe {
            stream,
            sent: 0,
            recvd: 0,
        });
    }
    Ok((ep, pipes))
}

/// One turn of one connection: a write if it can take one, then a read if echo is waiting.
/// Returns the bytes echoed, or why the connection broke.
fn pump(p: &mut Pipe, flags: i32, tx: &[u8], rx: &mut [u8]) -> Result<u64, String> {
    let fd = p.stream.as_raw_fd();
    if flags & libc::EPOLLOUT != 0 {
        let off = (p.sent % PERIOD as u64) as usize;
        match sys_send(fd, &tx[off..off + CHUNK]) {
            Ok(k) => p.sent += k as u64,
            Err(e) if retry(&e) => {}
            Err(e) => return Err(format!("send: {e}")),
        }
    }
    if flags & (libc::EPOLLIN | libc::EPOLLERR | libc::EPOLLHUP) == 0 {
        return Ok(0);
    }
    match sys_read(fd, rx) {
        Ok(0) => Err("server closed the connection".into()),
        Ok(k) => {
            let off = (p.recvd % PERIOD as u64) as usize;
            if rx[..k] != tx[off..off + k] || p.recvd + k as u64 > p.sent {
                return Err("echo differs from the stream sent".into());
            }
            p.recvd += k as u64;
            Ok(k as u64)
        }
        Err(e) if retry(&e) => Ok(0),
        Err(e) => Err(format!("read: {e}")),
    }
}
