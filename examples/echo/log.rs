//! Rate-limited logging: the cores count what happened (atomics, touched only on errors and
//! on connection open/close), and one task prints a summary line a second, only when
//! something changed, instead of a line per reset (an RST flood would print thousands).
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// The counts of all cores.
#[derive(Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    /// Connections that ended with a reset or broken pipe: the peer went away.
    pub resets: AtomicU64,
    /// Connections that ended with any other error.
    pub errors: AtomicU64,
    pub accept_errors: AtomicU64,
    /// The longest accept backoff of the last second, in ms.
    pub backoff_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_accept_error: Mutex<Option<String>>,
}

/// Whether a connection's error only says its peer went away.
fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

impl Counters {
    /// A connection ended, with its result.
    pub fn connection_ended(&self, res: &io::Result<()>) {
        self.closed.fetch_add(1, Relaxed);
        match res {
            Ok(()) => {}
            Err(e) if is_peer_gone(e) => {
                self.resets.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.errors.fetch_add(1, Relaxed);
                *lock(&self.last_error) = Some(e.to_string());
            }
        }
    }

    /// An accept failed; `backoff` is how long the core waits before the next.
    pub fn accept_failed(&self, e: &io::Error, backoff: Option<Duration>) {
        self.accept_errors.fetch_add(1, Relaxed);
        let ms = backoff.map_or(0, |d| d.as_millis() as u64);
        self.backoff_ms.fetch_max(ms, Relaxed);
        *lock(&self.last_accept_error) = Some(e.to_string());
    }

    fn snapshot(&self) -> [u64; 5] {
        [
            self.accepted.load(Relaxed),
            self.closed.load(Relaxed),
            self.resets.load(Relaxed),
            self.errors.load(Relaxed),
            self.accept_errors.load(Relaxed),
        ]
    }
}

fn lock(m: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Prints a summary line each second in which something happened, until shutdown is
/// requested; then the totals.
pub async fn summaries(counters: &Counters) {
    let mut last = counters.snapshot();
    loop {
        let stopping =
            corering::time::timeout(Duration::from_secs(1), corering::shutdown_requested())
                .await
                .is_ok();
        let now = counters.snapshot();
        if now != last {
            print_line(counters, last, now);
        }
        last = now;
        if stopping {
            let [accepted, closed, resets, errors, accept_errors] = now;
            eprintln!(
                "echo: totals: {accepted} accepted, {closed} closed ({resets} reset by the \
                 peer, {errors} other errors), {accept_errors} accept errors"
            );
            return;
        }
    }
}

fn print_line(counters: &Counters, last: [u64; 5], now: [u64; 5]) {
    let d: Vec<u64> = now.iter().zip(last).map(|(n, l)| n - l).collect();
    let open = now[0] - now[1];
    let mut line = format!("echo: 1s: +{} conns, -{} ({open} open)", d[0], d[1]);
    if d[2] > 0 {
        line += &format!(", {} reset by the peer", d[2]);
    }
    if d[3] > 0 {
        let why = lock(&counters.last_error).take().unwrap_or_default();
        line += &format!(", {} other errors (last: {why})", d[3]);
    }
    if d[4] > 0 {
        let why = lock(&counters.last_accept_error).take().unwrap_or_default();
        let backoff = counters.backoff_ms.swap(0, Relaxed);
        line += &format!(
            ", {} accept errors ({why}; backing off up to {backoff} ms)",
            d[4]
        );
    }
    eprintln!("{line}");
}
