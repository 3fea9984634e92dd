//! What one side of a stream (its reads, or its writes) knows across its ops: whether an op
//! of it is running, and, for the read side, whether a dropped `read_exact` took bytes with
//! it. Either makes the side refuse further ops with an error that says why, the same on
//! both backends, rather than hand out bytes out of place.
use std::cell::Cell;
use std::io;

/// The state of one side. Its ops take `&mut self` of their stream or half, so at most one
/// runs at a time; a side found running when an op starts had its last op's future
/// forgotten (`mem::forget`, a leaked box) while in flight. That op may still move bytes
/// (io_uring completes it in the kernel) that nothing will ever see or count, so the side
/// takes no more ops.
#[derive(Debug, Default)]
pub(super) struct SideState {
    /// Set while an op of this side runs (by [`Running`]); left set by a forgotten one.
    running: Cell<bool>,
    /// Bytes a `read_exact` dropped part way took with its buffer (read side; 0: none).
    lost: Cell<usize>,
}

/// Marks a side running for as long as it lives: dropping the op's future clears it,
/// forgetting it does not.
pub(super) struct Running<'a>(&'a Cell<bool>);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl SideState {
    /// Starts an op (`what`: "read" or "write"), or says why this side takes no more.
    pub fn start(&self, what: &str) -> io::Result<Running<'_>> {
        if self.running.replace(true) {
            return Err(io::Error::other(format!(
                "an earlier {what} of this stream was forgotten (mem::forget) while in flight: \
                 what it moves is never reported, so the stream takes no more {what}s"
            )));
        }
        if let Err(e) = self.check_lost() {
            self.running.set(false);
            return Err(e);
        }
        Ok(Running(&self.running))
    }

    /// Refuses if a dropped `read_exact` took bytes with it (for pooled reads, which run
    /// inside a plain read's guard too and so do not take one themselves).
    pub fn check_lost(&self) -> io::Result<()> {
        match self.lost.get() {
            0 => Ok(()),
            n => Err(io::Error::other(format!(
                "a read_exact of this stream was dropped after it had read {n} bytes, which \
                 went with its buffer: the stream takes no more reads (cancel a read_exact \
                 through a cancel scope to keep what it read)"
            ))),
        }
    }

    /// Whether an op's future was forgotten in flight (the side is still marked running
    /// once every live op has ended).
    pub fn forgotten(&self) -> bool {
        self.running.get()
    }

    /// A `read_exact` was dropped after reading `n` bytes.
    pub fn lost(&self, n: usize) {
        self.lost.set(self.lost.get() + n);
    }
}
