//! Multishot ops and the provided buffer ring, on the io_uring driver.
//!
//! A multishot op is armed once and answers many times (`driver::slots` keeps its completions
//! in order for its owner). It ends at a completion without `IORING_CQE_F_MORE`: an error, a
//! cancel, end of stream, an empty buffer ring (`-ENOBUFS`), or the kernel's own choice; its
//! owner re-arms it when it wants more.
use std::io;
use std::task::{Context, Poll};

use io_uring::squeue;

use super::UringDriver;
use crate::buf::{BufPool, BGID};
use crate::driver::MultiOrphan;

impl UringDriver {
    /// Queues a multishot `entry`, paused (cancelled) once `limit` completions wait untaken
    /// (0: never); its slot index names it from then on.
    pub fn arm_multi(&mut self, entry: squeue::Entry, limit: u16) -> io::Result<usize> {
        if self.leaked {
            return Err(io::Error::other("the io_uring driver was abandoned"));
        }
        let index = self.ops.insert_multi(limit);
        if let Err(e) = self.push(entry.user_data(self.ops.user_data(index))) {
            self.ops.remove(index);
            return Err(e);
        }
        self.stats.ops_submitted += 1;
        Ok(index)
    }

    /// The next completion of the multishot op in `index`: `(res, flags, last)`. After the
    /// last one the index names nothing.
    pub fn poll_multi(&mut self, index: usize, cx: &mut Context<'_>) -> Poll<(i32, u32, bool)> {
        self.ops.poll_multi(index, cx.waker())
    }

    /// The owner of the multishot op in `index` is gone: `rest` releases what it produced
    /// and still produces; the op is cancelled. Returns `rest` if the op had already ended
    /// (drop it after the driver borrow is released).
    pub fn drop_multi(
        &mut self,
        index: usize,
        rest: Box<dyn MultiOrphan>,
    ) -> Option<Box<dyn MultiOrphan>> {
        if self.leaked {
            std::mem::forget(rest);
            return None;
        }
        let ended = self.ops.orphan_multi(index, rest);
        if ended.is_none() {
            self.cancel(index);
        }
        ended
    }

    /// Asks the multishot op in `index` to end (its owner keeps taking its completions up to
    /// the last, `-ECANCELED` or whatever won the race).
    pub fn cancel_multi(&mut self, index: usize) {
        if !self.leaked && self.ops.is_multi_armed(index) {
            self.cancel(index);
        }
    }

    /// The core's buffer pool: a provided buffer ring where the kernel (and the tier cap)
    /// allow, else a plain pool. Made on first use.
    pub fn pool(&mut self) -> io::Result<BufPool> {
        if let Some(pool) = &self.pool {
            return Ok(pool.clone());
        }
        let config = self.pool_config;
        let pool = match self.caps.buf_ring {
            true => {
                let ring = &self.ring;
                let register = |addr: u64, entries: u16| {
                    // SAFETY: the ring memory stays mapped until the pool drops, which is
                    // after this ring is closed (`UringDriver::drop`).
                    unsafe {
                        ring.submitter()
                            .register_buf_ring_with_flags(addr, entries, BGID, 0)
                    }
                };
                match BufPool::ring(config, register) {
                    Ok(pool) => pool,
                    Err(_) => {
                        self.caps.buf_ring = false;
                        BufPool::plain(config)?
                    }
                }
            }
            false => BufPool::plain(config)?,
        };
        self.pool = Some(pool.clone());
        Ok(pool)
    }
}
