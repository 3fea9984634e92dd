//! The idle-connection case: how much resident memory a server keeps per connection that is
//! open but quiet.
//!
//! After a warm-up (a few connections make some round trips, then close), the runner reads
//! the server's resident set, opens N connections that each make one small echo round trip
//! (after the load generator's one-byte handshake; so the server has set up whatever it
//! keeps per connection: a task, a buffer, a slab entry), waits a moment, and reads it
//! again. The figure is the growth ÷ N. It is user-space memory only: the kernel's socket
//! buffers are not in a process's RSS.
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::report::{Rss, RunResult, Sample, IDLE_ECHO};
use crate::{load, sys, ServerProc};

/// The warm-up: this many connections make this many round trips each.
const WARM_CONNS: usize = 4;
const WARM_ROUNDS: usize = 50;
/// How long the server gets to settle before each reading of its memory.
const SETTLE: Duration = Duration::from_millis(250);

/// What one measurement found.
struct Measured {
    before: u64,
    after: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Measures the memory per idle connection of the server `srv` (which is stopped after).
pub fn run(mut srv: ServerProc, conns: usize) -> RunResult {
    let started = Instant::now();
    let measured = measure(&srv.data, srv.child.id(), conns);
    let exited = srv.child.try_wait().ok().flatten();
    drop(srv);
    let mut m = match measured {
        Ok(m) => m,
        Err(e) => return RunResult::Failed(format!("idle connections: {e}")),
    };
    if let Some(status) = exited {
        m.errors += 1;
        m.first_error
            .get_or_insert(format!("server exited during the run: {status}"));
    }
    RunResult::Ok(sample(m, conns, started.elapsed()))
}

fn measure(addr: &str, pid: u32, conns: usize) -> io::Result<Measured> {
    warm(addr)?;
    std::thread::sleep(SETTLE);
    let before = sys::rss_bytes(pid)?;
    let streams = open(addr, conns)?;
    let (errors, first_error) = echo_each(&streams);
    std::thread::sleep(SETTLE);
    let after = sys::rss_bytes(pid)?;
    drop(streams);
    Ok(Measured {
        before,
        after,
        errors,
        first_error,
    })
}

/// The figures of a run: only the memory, the connection count and the time it took.
fn sample(m: Measured, conns: usize, took: Duration) -> Sample {
    let (before, after) = (m.before as f64, m.after as f64);
    Sample {
        rate: f64::NAN,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        p999_us: f64::NAN,
        cpu_us: f64::NAN,
        sys_share: f64::NAN,
        server_busy: f64::NAN,
        server_wait: f64::NAN,
        client_busy: f64::NAN,
        client_wait: f64::NAN,
        syscalls: None,
        waits: None,
        ops: None,
        cq_overflows: 0,
        units: conns as u64,
        secs: took.as_secs_f64(),
        errors: m.errors,
        first_error: m.first_error,
        rss: Some(Rss {
            before,
            after,
            per_conn: (after - before) / conns.max(1) as f64,
        }),
        file: None,
        storm: None,
        open: None,
    }
}

/// A few connections make some round trips each, then close.
fn warm(addr: &str) -> io::Result<()> {
    let streams = open(addr, WARM_CONNS)?;
    for _ in 0..WARM_ROUNDS {
        if let (_, Some(e)) = echo_each(&streams) {
            return Err(io::Error::other(format!("warm-up: {e}")));
        }
    }
    Ok(())
}

/// Opens `n` connections (as the load generator does), blocking with a read timeout.
fn open(addr: &str, n: usize) -> io::Result<Vec<TcpStream>> {
    let streams = load::connect_all(addr, n)?;
    for s in &streams {
        s.set_nonblocking(false)?;
    }
    Ok(streams)
}

/// Sends an IDLE_ECHO-byte message on every connection, then reads every echo back and
/// checks it. Returns the count of connections that failed, and the first failure.
fn echo_each(streams: &[TcpStream]) -> (u64, Option<String>) {
    // Each connection's message differs, so an echo on the wrong connection shows.
    let msg = |i: usize| -> Vec<u8> { (0..IDLE_ECHO).map(|k| (i + k) as u8).collect() };
    let mut ok = vec![true; streams.len()];
    let mut first: Option<String> = None;
    let mut fail = |i: usize, ok: &mut [bool], why: String| {
        ok[i] = false;
        first.get_or_insert(format!("connection {i}: {why}"));
    };
    for (i, mut s) in streams.iter().enumerate() {
        if let Err(e) = s.write_all(&msg(i)) {
            fail(i, &mut ok, format!("send: {e}"));
        }
    }
    let mut buf = [0u8; IDLE_ECHO];
    for (i, mut s) in streams.iter().enumerate() {
        if !ok[i] {
            continue;
        }
        match s.read_exact(&mut buf) {
            Ok(()) if buf[..] == msg(i)[..] => {}
            Ok(()) => fail(i, &mut ok, "echo differs from the message".into()),
            Err(e) => fail(i, &mut ok, format!("read: {e}")),
        }
    }
    (ok.iter().filter(|x| !**x).count() as u64, first)
}
