//! The soak knob of the storms: `CORERING_SOAK=SECS` runs a storm round after round, each
//! with fresh randomness, until SECS have passed (off in CI: unset, a storm runs once).
use std::cell::Cell;
use std::time::{Duration, Instant};

use super::Pattern;

thread_local! {
    /// Mixed into every salted seed: each round runs fresh randomness. Each variant runs on
    /// its own thread, so variants side by side do not share it.
    static SALT: Cell<u64> = const { Cell::new(0) };
}

/// `CORERING_SOAK`, if set to a positive number of seconds.
pub fn soak_duration() -> Option<Duration> {
    std::env::var("CORERING_SOAK")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

/// Runs `round` once, or (`CORERING_SOAK`) until its time has passed, a fresh salt each
/// round; returns the rounds run and the time they took.
pub fn soak_rounds(mut round: impl FnMut()) -> (u64, Duration) {
    let soak = soak_duration();
    let start = Instant::now();
    let mut rounds = 0u64;
    loop {
        SALT.with(|s| s.set(rounds.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        round();
        rounds += 1;
        if soak.is_none_or(|d| start.elapsed() >= d) {
            return (rounds, start.elapsed());
        }
    }
}

/// The salt of this thread's round (0 outside `soak_rounds`' later rounds).
pub fn salt() -> u64 {
    SALT.with(|s| s.get())
}

impl Pattern {
    /// A pattern seeded with `seed` and this round's salt.
    pub fn salted(seed: u64) -> Pattern {
        Pattern::new(seed ^ salt())
    }
}
