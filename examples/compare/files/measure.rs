//! What every file workload shares (the Rust runners; the Go runner does the same by hand):
//! the sizes, the phases of a run and the marks of its measured window, the per-task tally,
//! the offset generator, and the one JSON line a runner prints at the end.
use std::cell::Cell;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;

/// The random-read file: its size, the size and alignment of each read, reads in flight.
pub const READ_FILE: u64 = 256 * 1024 * 1024;
pub const READ_SIZE: usize = 4096;
pub const IN_FLIGHT: usize = 64;
/// The write case: bytes per write, writes between fsyncs, and the most bytes written in
/// the measured window (the run ends there if `--seconds` has not passed).
pub const WRITE_CHUNK: usize = 64 * 1024;
pub const SYNC_EVERY: u64 = 16;
pub const WRITE_CAP: u64 = 256 * 1024 * 1024;

/// CPU time of this process (all its threads) and the clock, at one moment.
#[derive(Clone, Copy)]
pub struct Mark {
    at: Instant,
    user_s: f64,
    sys_s: f64,
}

impl Mark {
    pub fn now() -> Mark {
        let at = Instant::now();
        // SAFETY: a zeroed rusage is a valid buffer for getrusage to fill.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a live rusage; RUSAGE_SELF counts every thread, live or ended.
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Mark {
            at,
            user_s: secs(ru.ru_utime),
            sys_s: secs(ru.ru_stime),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Warmup,
    Measure,
    Stop,
}

/// The phase of a run and the marks of its window, shared by the tasks of one thread.
pub struct Meter {
    phase: Cell<Phase>,
    start: Cell<Option<Mark>>,
    end: Cell<Option<Mark>>,
}

impl Meter {
    pub fn new() -> Meter {
        Meter {
            phase: Cell::new(Phase::Warmup),
            start: Cell::new(None),
            end: Cell::new(None),
        }
    }

    /// Whether the workload should go on.
    pub fn running(&self) -> bool {
        self.phase.get() != Phase::Stop
    }

    /// Whether an op that completes now counts.
    pub fn measuring(&self) -> bool {
        self.phase.get() == Phase::Measure
    }

    pub fn begin(&self) {
        self.start.set(Some(Mark::now()));
        self.phase.set(Phase::Measure);
    }

    /// Ends the window (the first call only): at the deadline, or when the writer is done.
    pub fn finish(&self) {
        if self.phase.get() == Phase::Measure {
            self.end.set(Some(Mark::now()));
        }
        self.phase.set(Phase::Stop);
    }

    /// How long the main task sleeps between looks at the phase: the writer may end the
    /// window before the deadline.
    pub const POLL: Duration = Duration::from_millis(20);

    /// The time left before `deadline`, at most `POLL`; `None` once the window is over.
    pub fn next_nap(&self, deadline: Instant) -> Option<Duration> {
        let left = deadline.saturating_duration_since(Instant::now());
        (self.measuring() && !left.is_zero()).then(|| left.min(Meter::POLL))
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// What one task did in the window.
pub struct Tally {
    ops: u64,
    bytes: u64,
    lat: Histogram<u64>,
    syncs: u64,
    sync_lat: Histogram<u64>,
    pub errors: u64,
    first_error: Option<String>,
}

impl Tally {
    pub fn new() -> Tally {
        Tally {
            ops: 0,
            bytes: 0,
            lat: histogram(),
            syncs: 0,
            sync_lat: histogram(),
            errors: 0,
            first_error: None,
        }
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }

    /// A read or write of `bytes` that began at `t0` and has just completed.
    pub fn op(&mut self, meter: &Meter, t0: Instant, bytes: usize) {
        if meter.measuring() {
            self.ops += 1;
            self.bytes += bytes as u64;
            let _ = self.lat.record(t0.elapsed().as_nanos().max(1) as u64);
        }
    }

    /// An fsync that began at `t0` and has just completed.
    pub fn sync(&mut self, meter: &Meter, t0: Instant) {
        if meter.measuring() {
            self.syncs += 1;
            let _ = self.sync_lat.record(t0.elapsed().as_nanos().max(1) as u64);
        }
    }

    /// Bytes written in the window so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn merge(&mut self, other: Tally) {
        self.ops += other.ops;
        self.bytes += other.bytes;
        self.syncs += other.syncs;
        let _ = self.lat.add(&other.lat);
        let _ = self.sync_lat.add(&other.sync_lat);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A small xorshift64* generator: the offsets of the random reads.
pub struct Rng(u64);

impl Rng {
    /// The generator of task `i`.
    pub fn new(i: usize) -> Rng {
        Rng((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A random `READ_SIZE`-aligned offset inside the read file.
    pub fn offset(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (r % (READ_FILE / READ_SIZE as u64)) * READ_SIZE as u64
    }
}

/// A write buffer: `WRITE_CHUNK` bytes that are not all zero.
pub fn chunk() -> Vec<u8> {
    (0..WRITE_CHUNK).map(|i| (i % 251) as u8).collect()
}

/// Threads of this process whose allowed CPUs differ from the main thread's (on some
/// kernels io_uring's io-wq workers take the cpuset of the cgroup, not the task's affinity,
/// and may run on another core).
fn unpinned_threads() -> Option<u64> {
    let allowed = |path: &str| -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        let line = text.lines().find(|l| l.starts_with("Cpus_allowed_list:"))?;
        Some(line.split_once(':')?.1.trim().to_string())
    };
    let own = allowed("/proc/self/status")?;
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = entry.path().join("status");
        if allowed(path.to_str()?).is_some_and(|a| a != own) {
            n += 1;
        }
    }
    Some(n)
}

/// The result line: what the runner reads from a file runner's stdout.
pub fn result_line(meter: &Meter, t: &Tally, pool_peak: Option<u64>) -> String {
    let (start, end) = match (meter.start.get(), meter.end.get()) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            let now = Mark::now();
            (now, now)
        }
    };
    let q = |h: &Histogram<u64>, p: f64| {
        (!h.is_empty()).then(|| h.value_at_quantile(p) as f64 / 1000.0)
    };
    json!({
        "ops": t.ops,
        "bytes": t.bytes,
        "secs": end.at.duration_since(start.at).as_secs_f64(),
        "user_s": end.user_s - start.user_s,
        "sys_s": end.sys_s - start.sys_s,
        "p50_us": q(&t.lat, 0.5),
        "p99_us": q(&t.lat, 0.99),
        "p999_us": q(&t.lat, 0.999),
        "syncs": t.syncs,
        "sync_p50_us": q(&t.sync_lat, 0.5),
        "sync_p99_us": q(&t.sync_lat, 0.99),
        "errors": t.errors,
        "first_error": t.first_error,
        "pool_peak": pool_peak,
        "unpinned_threads": unpinned_threads(),
    })
    .to_string()
}
