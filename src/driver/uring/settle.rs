//! Settling and shutdown of the io_uring driver: cancels go out, answers come in, and memory
//! the kernel or a pool thread may still use is never freed under it.
use std::io;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use io_uring::opcode;

use super::{UringDriver, SHUTDOWN_GRACE};
use crate::driver::{Ready, CANCEL_TOKEN, WAKE_TOKEN};

impl UringDriver {
    /// One turn towards every orphaned op answered, waiting until `deadline` at most.
    /// Returns whether any are left.
    pub fn settle_step(&mut self, deadline: Instant) -> io::Result<bool> {
        let left = deadline.saturating_duration_since(Instant::now());
        if self.leaked || self.ops.orphaned() == 0 || left.is_zero() {
            return Ok(!self.leaked && self.ops.orphaned() > 0);
        }
        if self.lane.in_flight() > 0 {
            // Pool answers wake the ring only through the inbox, which is not read while
            // settling: look for them every few milliseconds.
            self.lane.wait(Duration::from_millis(5));
            self.park(Some(Duration::ZERO))?;
        } else {
            self.park(Some(left.min(Duration::from_millis(100))))?;
        }
        Ok(self.ops.orphaned() > 0)
    }

    /// Cancels everything in flight and waits until the kernel has answered all of it.
    pub fn shutdown(&mut self) {
        if self.leaked {
            return;
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        let entry = opcode::AsyncCancel::new(WAKE_TOKEN)
            .build()
            .user_data(CANCEL_TOKEN);
        if self.wake_armed {
            let _ = self.push(entry);
        }
        self.lane
            .cancel_all(&mut self.ops, &mut self.ready, &mut self.stats);
        for index in self.ops.in_flight() {
            if !self.lane.is_running(index) {
                self.cancel(index);
            }
        }
        while !self.ops.in_flight().is_empty() || self.wake_armed {
            // Only pool jobs left: their answers do not wake the ring.
            let only_pool = self.ops.in_flight().len() == self.lane.in_flight() && !self.wake_armed;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && only_pool {
                eprintln!(
                    "corering: {} blocking-pool jobs still run after {SHUTDOWN_GRACE:?}; \
                     their memory will be leaked rather than freed under them",
                    self.lane.in_flight()
                );
                return;
            }
            if left.is_zero() {
                eprintln!(
                    "corering: {} io_uring ops did not answer their cancel within {:?}; \
                     leaking the ring and their memory rather than freeing memory the kernel may use",
                    self.ops.len(),
                    SHUTDOWN_GRACE
                );
                self.leaked = true;
                return;
            }
            if only_pool {
                self.lane.wait(left.min(Duration::from_millis(100)));
            } else if self
                .wait(Some(left.min(Duration::from_millis(10))))
                .is_err()
            {
                self.leaked = true;
                return;
            }
            // Orphans whose completion arrives land in `ready`, which the runtime runs after
            // this returns.
            self.reap();
            self.lane
                .take_answers(&mut self.ops, &mut self.ready, &mut self.stats);
        }
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        if !self.leaked {
            let mut ready = Ready::default();
            self.lane
                .take_answers(&mut self.ops, &mut ready, &mut self.stats);
            // A pool thread may still use memory of ops in the table (jobs that outlived the
            // shutdown grace, or ops dropped after it): then the table is kept for good.
            let pool_busy = self.lane.in_flight() > 0;
            // SAFETY: dropped once, here; when `leaked` is set the ring stays mapped and open,
            // and the op table (with the orphaned buffers, addresses and timespecs the kernel
            // may still write to) stays allocated, for good; so does the table while pool
            // jobs run.
            unsafe {
                if !pool_busy {
                    ManuallyDrop::drop(&mut self.ops);
                }
                ManuallyDrop::drop(&mut self.enter);
                ManuallyDrop::drop(&mut self.ring);
            }
            // The pool (a field) drops after this: the ring that could write into it is closed.
        } else {
            std::mem::forget(self.pool.take());
        }
    }
}
