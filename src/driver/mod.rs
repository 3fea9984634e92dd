//! The driver: the one place that matches on the backend.
//!
//! # The backend contract
//!
//! Both backends serve the same [`OpCode`] vocabulary through the same [`OpTable`]
//! lifecycle and give the runtime the same four things:
//!
//! * `poll_op` — drive one op's future. io_uring: on first poll push the op's entry (with its
//!   slot index as `user_data`) into the submission queue; later polls look at the slot.
//!   epoll: try the non-blocking syscall; on EAGAIN file the slot as a waiter on the fd's read
//!   or write side and retry only once readiness has arrived.
//! * `drop_op` — a future dropped mid-flight. io_uring: the op's resources move into the slot
//!   (`Orphaned`) and an ASYNC_CANCEL is queued; the completion frees them (the op's fd handle
//!   among them, so the fd number stays taken until then). epoll: nothing is in the kernel, so
//!   the waiter is unfiled and the resources are freed at once.
//! * `cancel_op` — a cancel scope asks for an op to end while its future waits on: io_uring
//!   queues an ASYNC_CANCEL and the op's own completion (`-ECANCELED`, or the result that won
//!   the race) answers the future; epoll completes the waiter with `-ECANCELED` at once.
//! * An op keeps one slot index from its first poll to its end (epoll re-arms the same slot
//!   after a readiness that the retried syscall did not use).
//! * `park(timeout)` — one loop turn: submit everything queued with one `io_uring_enter` (or
//!   one `epoll_wait`), wait at most `timeout`, and record completions. Wakers and orphaned
//!   resources are handed out by `take_ready` and acted on after the driver borrow is released.
//! * `settle` — enter the kernel until every orphaned op has been answered (`block_on` does
//!   this before it returns, so a dropped op never outlives the call that dropped it).
//! * `shutdown` — cancel everything in flight and wait until the kernel has answered it all,
//!   so no memory the kernel may touch is freed early.
//!
//! The choice between the two is made once, in [`select`].
use std::io;
use std::task::{Context, Poll, Waker};

use crate::buf::BufPool;
use std::time::{Duration, Instant};

pub(crate) mod blocking;
mod contract;
mod epoll;
mod fast_path;
mod info;
mod lane;
mod select;
mod slots;
mod tier;
mod uring;

pub(crate) use contract::{
    EpollOp, EpollStep, FdKey, FileOpcodes, Interest, OpCode, UringCaps, UringOp, UringStep,
};
pub use info::{BackendChoice, BackendInfo, BackendKind, UringInfo};
pub(crate) use select::{select, CoreLinks, DriverConfig, IoWorkers, TierRequest};
pub use tier::UringTier;

pub(crate) use epoll::EpollDriver;
pub(crate) use slots::{MultiOrphan, CQE_F_MORE};
use slots::{OnComplete, Orphan};
pub(crate) use uring::UringDriver;

/// Tokens that name no op slot. Slot indices stay far below them.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;
pub(crate) const CANCEL_TOKEN: u64 = u64::MAX - 1;
pub(crate) const TIMEOUT_TOKEN: u64 = u64::MAX - 2;

/// The driver-side state an [`Op`](crate::op::Op) future keeps: its slot (one index for the
/// op's whole life), and for epoll the fd and side it is filed under while parked.
#[derive(Debug, Default)]
pub(crate) struct OpSlot {
    pub index: Option<usize>,
    pub parked: Option<(FdKey, Interest)>,
}

/// What a dropped op leaves to release once the driver borrow is over.
pub(crate) enum Leftover<T> {
    None,
    /// The op's data, never in the kernel or no longer needed by it: drop it.
    Data(T),
    /// The completion had arrived before the drop: finish the resources with it.
    Finish(Box<dyn Orphan>, i32, u32),
}

impl<T> Leftover<T> {
    /// Releases whatever is left (call with no driver borrow held).
    pub fn release(self) {
        match self {
            Leftover::None => {}
            Leftover::Data(data) => drop(data),
            Leftover::Finish(resources, res, flags) => resources.finish(res, flags),
        }
    }
}

/// Wakers to wake and orphaned resources to finish, gathered while the driver was borrowed.
#[derive(Default)]
pub(crate) struct Ready {
    pub wakers: Vec<Waker>,
    pub orphans: Vec<(Box<dyn Orphan>, i32, u32)>,
    /// Multishot ops whose owner is gone and whose last completion came: dropped here.
    pub released: Vec<Box<dyn MultiOrphan>>,
    /// Blocking-pool calls cancelled before a thread took them: dropped here.
    pub discarded: Vec<blocking::BlockingCall>,
}

impl Ready {
    pub fn push(&mut self, action: OnComplete) {
        match action {
            OnComplete::Wake(w) => self.wakers.push(w),
            OnComplete::Finish(r, res, flags) => self.orphans.push((r, res, flags)),
            OnComplete::Release(r) => self.released.push(r),
            OnComplete::Nothing => {}
        }
    }

    /// Wakes and finishes everything (with no driver borrow held).
    pub fn run(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
        for (r, res, flags) in self.orphans.drain(..) {
            r.finish(res, flags);
        }
        self.released.clear();
        self.discarded.clear();
    }

    fn is_empty(&self) -> bool {
        self.wakers.is_empty()
            && self.orphans.is_empty()
            && self.released.is_empty()
            && self.discarded.is_empty()
    }
}

/// When a write is a zero-copy send (io_uring 6.0+).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZeroCopy {
    /// Writes of at least this many bytes; `None`: never.
    pub threshold: Option<usize>,
    /// Also to loopback peers (where the kernel copies anyway: for tests and measurements).
    pub on_loopback: bool,
}

impl Default for ZeroCopy {
    fn default() -> ZeroCopy {
        ZeroCopy {
            threshold: Some(ZERO_COPY_FROM),
            on_loopback: false,
        }
    }
}

/// The default zero-copy threshold (see `Builder::zero_copy_sends`).
pub(crate) const ZERO_COPY_FROM: usize = 64 * 1024;
/// Below this no write is a zero-copy send, whatever the threshold (its two completions and
/// page pinning cost more than copying a few bytes).
pub(crate) const ZERO_COPY_MIN: usize = 1024;

/// How a pooled read gets its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadMode {
    /// A multishot recv stays armed on the stream, the kernel picking ring buffers (6.0).
    Multishot,
    /// One recv with buffer select per read (5.19).
    Select,
    /// Wait for readiness holding nothing (a POLL_ADD), then take a buffer and read (io_uring
    /// before 5.19, or capped below it).
    Readiness,
    /// The same on epoll, where the read never parks (it is tried after readiness).
    Epoll,
}

/// Counters one core's driver keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Operations handed to the kernel (io_uring entries, or epoll syscall attempts that
    /// finished or parked), or to the blocking pool (file ops on epoll, opcodes the kernel
    /// lacks, `spawn_blocking` jobs).
    pub ops_submitted: u64,
    /// Operations that finished: completed, failed, or cancelled (their future dropped) and
    /// confirmed by the kernel. Equal to `ops_submitted` once nothing is in flight.
    pub ops_completed: u64,
    /// `io_uring_enter` or `epoll_wait` calls.
    pub waits: u64,
    /// Loop turns that found completions held back by the kernel because the completion
    /// queue was full (`IORING_SQ_CQ_OVERFLOW`); they are delivered by the next enter.
    pub cq_overflows: u64,
    /// Completions the kernel dropped for good (its overflow counter; only when it could not
    /// even hold them back, which `IORING_FEAT_NODROP` kernels avoid).
    pub cq_dropped: u64,
    /// Non-blocking I/O syscalls the epoll backend made itself (0 on io_uring).
    pub io_syscalls: u64,
    /// Pooled reads that found the buffer pool empty and read into a fresh allocation.
    pub pool_overflows: u64,
    /// Multishot receives ended by an empty buffer ring (`-ENOBUFS`).
    pub pool_exhausted: u64,
    /// Writes sent as zero-copy sends (`SEND_ZC`).
    pub zero_copy_sends: u64,
    /// Pool buffers out of the pool now (held by the application or queued on a stream);
    /// 0 once every pooled buffer has been dropped.
    pub pool_in_use: u64,
}

/// One core's backend.
// One per core, made once and never moved after: boxing the larger variant would only add an
// indirection to every op.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Driver {
    Uring(UringDriver),
    Epoll(EpollDriver),
}

impl Driver {
    pub fn poll_op<T: OpCode>(
        &mut self,
        slot: &mut OpSlot,
        op: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        match self {
            Driver::Uring(d) => d.poll_op(slot, op, cx),
            Driver::Epoll(d) => d.poll_op(slot, op, cx),
        }
    }

    pub fn drop_op<T: OpCode>(&mut self, slot: &mut OpSlot, data: T) -> Leftover<T> {
        match self {
            Driver::Uring(d) => d.drop_op(slot, data),
            Driver::Epoll(d) => d.drop_op(slot, data),
        }
    }

    pub fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Driver::Uring(d) => d.park(timeout),
            Driver::Epoll(d) => d.park(timeout),
        }
    }

    /// Whether wakers or orphans were gathered outside `park` (a cancel scope's epoll cancel,
    /// a reap while pushing): the next park must not block before they are run.
    pub fn has_ready(&self) -> bool {
        let ready = match self {
            Driver::Uring(d) => &d.ready,
            Driver::Epoll(d) => &d.ready,
        };
        !ready.is_empty()
    }

    /// Moves the gathered wakers and orphans into `into` (which the caller then runs).
    pub fn take_ready(&mut self, into: &mut Ready) {
        let ready = match self {
            Driver::Uring(d) => &mut d.ready,
            Driver::Epoll(d) => &mut d.ready,
        };
        into.wakers.append(&mut ready.wakers);
        into.orphans.append(&mut ready.orphans);
        into.released.append(&mut ready.released);
        into.discarded.append(&mut ready.discarded);
    }

    /// Asks the op in `index` to end early (see the contract above). Nothing happens if it
    /// has already completed.
    pub fn cancel_op(&mut self, index: usize) {
        match self {
            Driver::Uring(d) => d.cancel_op(index),
            Driver::Epoll(d) => d.cancel_op(index),
        }
    }

    /// The fd behind `key` is about to be closed (or handed out): forget its registration.
    pub fn forget_fd(&mut self, key: FdKey) {
        if let Driver::Epoll(d) = self {
            d.forget_fd(key);
        }
    }

    pub fn live_ops(&self) -> usize {
        match self {
            Driver::Uring(d) => d.ops.len(),
            Driver::Epoll(d) => d.ops.len(),
        }
    }

    /// One step of settling orphaned ops: enter the kernel (waiting until `deadline` at most)
    /// so their cancels go out and their answers come in. Returns whether any are left.
    pub fn settle_step(&mut self, deadline: Instant) -> io::Result<bool> {
        match self {
            Driver::Uring(d) => d.settle_step(deadline),
            Driver::Epoll(d) => d.settle_step(deadline),
        }
    }

    pub fn shutdown(&mut self) {
        match self {
            Driver::Uring(d) => d.shutdown(),
            Driver::Epoll(d) => d.shutdown(),
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            Driver::Uring(_) => BackendKind::Uring,
            Driver::Epoll(_) => BackendKind::Epoll,
        }
    }

    pub fn stats(&self) -> DriverStats {
        let (mut stats, pool) = match self {
            Driver::Uring(d) => (d.stats, d.pool.as_ref()),
            Driver::Epoll(d) => (d.stats, d.pool.as_ref()),
        };
        stats.pool_overflows = pool.map_or(0, |p| p.overflows());
        stats.pool_exhausted = pool.map_or(0, |p| p.exhausted());
        stats.pool_in_use = pool.map_or(0, |p| p.in_use());
        stats
    }

    /// The core's buffer pool (made on first use).
    pub fn pool(&mut self) -> io::Result<BufPool> {
        match self {
            Driver::Uring(d) => d.pool(),
            Driver::Epoll(d) => d.pool(),
        }
    }

    /// How pooled reads work on this driver.
    pub fn read_mode(&self) -> ReadMode {
        match self {
            Driver::Uring(d) if d.caps.multishot_recv && d.caps.buf_ring => ReadMode::Multishot,
            Driver::Uring(d) if d.caps.buf_ring => ReadMode::Select,
            Driver::Uring(_) => ReadMode::Readiness,
            Driver::Epoll(_) => ReadMode::Epoll,
        }
    }

    /// Whether accepts may be multishot.
    pub fn multishot_accept(&self) -> bool {
        matches!(self, Driver::Uring(d) if d.caps.multishot_accept)
    }

    /// From how many bytes a write to a peer is a zero-copy send (`None`: never).
    pub fn zero_copy_from(&self, loopback: bool) -> Option<usize> {
        match self {
            Driver::Uring(d) if d.caps.send_zc && (!loopback || d.zero_copy.on_loopback) => {
                d.zero_copy.threshold
            }
            _ => None,
        }
    }

    /// The io_uring driver, for multishot ops (which only it runs).
    pub fn uring(&mut self) -> Option<&mut UringDriver> {
        match self {
            Driver::Uring(d) => Some(d),
            Driver::Epoll(_) => None,
        }
    }
}
