//! The fault suite, on every backend variant: hostile peers, resource exhaustion and
//! cancellation storms, each bounded in time and count, loopback only.
//!
//! - `flood`: thousands of idle connections held at once, one echo each, all closed.
//! - `emfile`: a listener out of file descriptors keeps accepting, without a busy loop.
//! - `hostile`: resets, half-closes, vanishing and slow peers beside a well-behaved client.
//! - the cancellation storm is `tests/soak.rs` (1,000 echo streams under random cancels of
//!   read and write_all, every byte checked).
//! - `cq`: a 16-entry ring under thousands of concurrent completions.
//! - `drain`: a shutdown under load: what was answered is whole on the wire.
//!
//! `CORERING_FAULT_SCALE=F` scales the counts (default 1; the kernel matrix's emulated guests
//! run with a fifth).
mod support;

#[path = "faults/cq.rs"]
mod cq;
#[path = "faults/drain.rs"]
mod drain;
#[path = "faults/emfile.rs"]
mod emfile;
#[path = "faults/flood.rs"]
mod flood;
#[path = "faults/hostile.rs"]
mod hostile;

/// `n` scaled by `CORERING_FAULT_SCALE` (at least 1).
pub fn scaled(n: usize) -> usize {
    let scale = std::env::var("CORERING_FAULT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(1)
}
