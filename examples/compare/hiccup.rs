//! The machine's own stalls: a thread pinned to a core spins on the clock and records every
//! gap it sees. On a quiet machine the gaps are microseconds; on a VM whose vCPU the
//! hypervisor deschedules they are milliseconds, and an open-loop latency tail (`latency`)
//! cannot be better than that on this machine, whatever the server does. Measured before
//! the latency cases, with nothing else of ours running, on the servers' and the load
//! generator's cores at once.
use std::time::{Duration, Instant};

/// How long each core is sampled.
pub const SPAN: Duration = Duration::from_secs(2);
/// Gaps shorter than this are the loop itself, not a stall.
const GAP: Duration = Duration::from_micros(50);

/// What a spinning thread saw on one core.
#[derive(Clone, Copy, Debug)]
pub struct Hiccups {
    pub core: usize,
    /// Gaps over 1 ms per second sampled.
    pub over_1ms_s: f64,
    /// The longest gap, µs.
    pub max_us: f64,
    /// The share of the time lost in gaps over GAP.
    pub stalled: f64,
}

/// Samples every core of `cores` for SPAN, all at once (a core that cannot be pinned to is
/// left out).
pub fn measure(cores: &[usize]) -> Vec<Hiccups> {
    std::thread::scope(|s| {
        let threads: Vec<_> = cores
            .iter()
            .map(|&core| s.spawn(move || spin(core)))
            .collect();
        threads.into_iter().filter_map(|t| t.join().ok()?).collect()
    })
}

/// Spins on `core` for SPAN.
fn spin(core: usize) -> Option<Hiccups> {
    crate::sys::pin_to(core).ok()?;
    let start = Instant::now();
    let (mut last, mut over, mut max, mut lost) = (start, 0u32, Duration::ZERO, Duration::ZERO);
    while last - start < SPAN {
        let now = Instant::now();
        let gap = now - last;
        if gap > GAP {
            lost += gap;
            max = max.max(gap);
            over += u32::from(gap > Duration::from_millis(1));
        }
        last = now;
    }
    let secs = (last - start).as_secs_f64();
    Some(Hiccups {
        core,
        over_1ms_s: over as f64 / secs,
        max_us: max.as_secs_f64() * 1e6,
        stalled: lost.as_secs_f64() / secs,
    })
}
