//! The hostile cases (`--hostile`, `--hostile-only`): how a server serves a well-behaved
//! client while other connections misbehave. The client is the request/response echo of the
//! `rr` cases (`crate::load`: a closed loop, GOOD_CONNS connections, GOOD_SIZE-byte messages,
//! warm-up then the measured window); it runs alone (storm `none`) and beside each storm of
//! `storm::Storm` (reset, vanish, slowloris), whose threads (`workers`) start once the
//! client's connections are open and stop when its window ends.
//!
//! Each run also checks that nothing is left behind: after the storm's threads are joined,
//! the runner holds no more file descriptors than before the run, and within SERVER_SETTLE
//! the server holds no more than before the client connected (a server that never closes
//! the sockets of reset or abandoned connections shows here as an error).
//!
//! The servers are corering on either backend and tokio; the figure that matters is each
//! corering server's p99 ÷ tokio's under each storm (target: at most TARGET_P99).
mod storm;
mod workers;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::load::{self, Outcome};
use crate::report::Case;
use crate::Config;
use storm::Tally;
pub use storm::{Storm, StormFigures};
use workers::Until;

/// The servers of the hostile cases, as far as `--servers` names them.
pub const SERVERS: &[&str] = &["corering-uring", "corering-epoll", "tokio"];
/// The server the p99 ratios are taken against.
pub const BASE: &str = "tokio";
/// The well-behaved client: its connections and message size.
pub const GOOD_CONNS: usize = 16;
pub const GOOD_SIZE: usize = 64;
/// The target: a corering server's p99 at most this many times tokio's, under each storm.
pub const TARGET_P99: f64 = 1.5;
/// The most connections a hostile run opens at once (for the fd limit check).
pub const MAX_CONNS: usize = GOOD_CONNS + workers::SLOWLORIS_CONNS + workers::CHURN_THREADS;
/// How long the server may take, once every connection is closed, to close its sockets.
const SERVER_SETTLE: Duration = Duration::from_secs(2);
/// The storm's deadline comes this long after the client's window should end (the window
/// starts after the marks of its start are read), in case the stop flag is late.
const MARK_SLACK: Duration = Duration::from_millis(200);

/// The hostile cases of this invocation (none without `--hostile`).
pub fn cases(cfg: &Config) -> Vec<Case> {
    match cfg.hostile {
        true => Storm::ALL.map(|storm| Case::Hostile { storm }).to_vec(),
        false => Vec::new(),
    }
}

/// One hostile run against the server `pid` listening on `addr`: the client's outcome, with
/// the storm's figures and any leftover sockets counted as errors.
pub fn run<S>(
    addr: &str,
    pid: u32,
    storm: Storm,
    warmup: Duration,
    measure: Duration,
    mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let target: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::other(format!("server address {addr:?}: {e}")))?;
    let own_before = fd_count("self")?;
    let good = load::connect_all(addr, GOOD_CONNS)?;
    // Counted with the client's connections open, so anything the server sets up at its
    // first connections is in it; once they are closed it should be GOOD_CONNS fewer.
    let server_before = fd_count(&pid.to_string())?;
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let until = Until {
        deadline: started + warmup + measure + MARK_SLACK,
        stop: &stop,
    };
    let (out, tallies) = std::thread::scope(|s| {
        let workers = workers::spawn(s, storm, target, until);
        let out = match &workers {
            Ok(_) => load::echo_loop(good, GOOD_SIZE, warmup, measure, mark),
            Err(e) => Err(io::Error::new(e.kind(), format!("storm threads: {e}"))),
        };
        stop.store(true, Ordering::Relaxed);
        let tallies: Vec<Option<Tally>> = workers
            .into_iter()
            .flatten()
            .map(|h| h.join().ok())
            .collect();
        (out, tallies)
    });
    let secs = started.elapsed().as_secs_f64();
    let mut out = out?;
    let mut error = |msg: String| {
        out.errors += 1;
        out.first_error.get_or_insert(msg);
    };
    if tallies.iter().any(Option::is_none) {
        error("a storm thread panicked".into());
    }
    let own_after = fd_count("self")?;
    if own_after > own_before {
        error(format!(
            "the runner holds {} more fds after the {} storm than before it",
            own_after - own_before,
            storm.name()
        ));
    }
    let want = server_before.saturating_sub(GOOD_CONNS);
    if let Some(left) = server_leftover(pid, want) {
        error(format!(
            "the server holds {left} more fds {SERVER_SETTLE:?} after every connection of the \
             {} storm closed",
            storm.name()
        ));
    }
    let tally = Tally::sum(&tallies.into_iter().flatten().collect::<Vec<_>>());
    out.storm = Some(StormFigures::of(tally, secs));
    Ok(out)
}

/// The open file descriptors of a process (`self`, or a pid).
fn fd_count(who: &str) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{who}/fd"))?.count())
}

/// Waits up to SERVER_SETTLE for the server's fd count to come down to `want`; returns how
/// many it holds above that if it does not (none if the count cannot be read: it exited).
fn server_leftover(pid: u32, want: usize) -> Option<usize> {
    let started = Instant::now();
    loop {
        let n = fd_count(&pid.to_string()).ok()?;
        if n <= want {
            return None;
        }
        if started.elapsed() >= SERVER_SETTLE {
            return Some(n - want);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
