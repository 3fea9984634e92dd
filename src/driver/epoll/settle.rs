//! Settling and shutdown of the epoll driver: the only ops it can leave running are pool jobs,
//! and their memory outlives them (waited for, or kept for good when a drop comes first).
use std::io;
use std::time::{Duration, Instant};

use super::{EpollDriver, SHUTDOWN_GRACE};
use crate::driver::Ready;

impl EpollDriver {
    /// One turn towards every orphaned op answered (only pool jobs can be orphaned here):
    /// waits for an answer until `deadline` at most. Returns whether any are left.
    pub fn settle_step(&mut self, deadline: Instant) -> io::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if self.ops.orphaned() > 0 && !left.is_zero() {
            self.lane.wait(left.min(Duration::from_millis(100)));
            self.lane
                .take_answers(&mut self.ops, &mut self.ready, &mut self.stats);
        }
        Ok(self.ops.orphaned() > 0)
    }

    /// Nothing is in the kernel on epoll: waiters simply stop waiting. Pool jobs not started
    /// are cancelled; running ones are waited for (their threads use the ops' memory), up to
    /// [`SHUTDOWN_GRACE`]; after that the driver keeps their memory for good (see `Drop`).
    pub fn shutdown(&mut self) {
        for state in &mut self.fds {
            for side in &mut state.sides {
                side.waiters.clear();
            }
        }
        let lane = &mut self.lane;
        lane.cancel_all(&mut self.ops, &mut self.ready, &mut self.stats);
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while lane.in_flight() > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!(
                    "corering: {} blocking-pool jobs still run after {SHUTDOWN_GRACE:?}; \
                     their memory will be leaked rather than freed under them",
                    lane.in_flight()
                );
                return;
            }
            lane.wait(left.min(Duration::from_millis(100)));
            lane.take_answers(&mut self.ops, &mut self.ready, &mut self.stats);
        }
    }
}

impl Drop for EpollDriver {
    /// A pool thread may still use memory of ops in the table (jobs that outlived the
    /// shutdown grace, or ops dropped after it): then the table is leaked, never freed.
    fn drop(&mut self) {
        let mut ready = Ready::default();
        self.lane
            .take_answers(&mut self.ops, &mut ready, &mut self.stats);
        if self.lane.in_flight() > 0 {
            std::mem::forget(std::mem::take(&mut self.ops));
        }
    }
}
