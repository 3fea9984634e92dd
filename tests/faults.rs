//! The fault suite, on every backend variant: hostile peers, resource exhaustion and
//! cancellation storms, each bounded in time and count, loopback only.
//!
//! - `flood`: thousands of idle connections held at once, one echo each, all closed.
//! - `emfile`: a listener out of file descriptors keeps accepting, without a busy loop.
//! - `hostile`: resets, half-closes, vanishing and slow peers beside a well-behaved client.
//! - `storm`, `storm_conn`: cancellation storms of `read_exact`, `write`, `accept` and
//!   `connect` (the storm of `read` and `write_all` is `tests/soak.rs`: 1,000 echo streams,
//!   every byte checked); `forget`: ops whose futures are `mem::forget`-ten in flight.
//! - `cq`: a 16-entry ring under thousands of concurrent completions.
//! - `drain`: a shutdown under load: what was answered is whole on the wire.
//!
//! `CORERING_FAULT_SCALE=F` scales the counts (default 1; the kernel matrix's emulated guests
//! run with a fifth). `CORERING_SOAK=SECS` runs each storm round after round, fresh seeds
//! each, for SECS (off in CI).
mod support;

#[path = "faults/cq.rs"]
mod cq;
#[path = "faults/drain.rs"]
mod drain;
#[path = "faults/emfile.rs"]
mod emfile;
#[path = "faults/flood.rs"]
mod flood;
#[path = "faults/forget.rs"]
mod forget;
#[path = "faults/hostile.rs"]
mod hostile;
#[path = "faults/storm.rs"]
mod storm;
#[path = "faults/storm_conn.rs"]
mod storm_conn;

/// `n` scaled by `CORERING_FAULT_SCALE` (at least 1).
pub fn scaled(n: usize) -> usize {
    let scale = std::env::var("CORERING_FAULT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}

/// Runs a storm's rounds (`CORERING_SOAK`, else once: `support::soak_rounds`); when soaking,
/// prints the rounds it ran.
pub fn storm_rounds(what: &str, v: support::Variant, round: impl FnMut()) {
    let (rounds, took) = support::soak_rounds(round);
    if support::soak_duration().is_some() {
        eprintln!(
            "FIGURE soak {what}::{}: {rounds} rounds in {:.0} s, every check held",
            v.label(),
            took.as_secs_f64()
        );
    }
}

/// Prints a storm's figure line, in its first round only.
pub fn first_round_figure(line: String) {
    if support::salt() == 0 {
        eprintln!("{line}");
    }
}
