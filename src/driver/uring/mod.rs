//! The completion backend: one io_uring ring per core.
//!
//! Ops are pushed into the submission queue as they are first polled and handed to the
//! kernel together, by the one `io_uring_enter` of each loop turn (or earlier only when the
//! submission queue is full). That enter also waits, bounded by the next timer: through
//! EXT_ARG's timeout (5.11), else through a TIMEOUT entry that completes on the first other
//! completion or at the deadline. The enter names the ring by its registered index where the
//! kernel has one (`enter`). Multishot ops and the buffer ring are in `multi`.
mod enter;
mod multi;
mod settle;

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::RawFd;
use std::task::{Context, Poll};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::lane::BlockingLane;
use super::slots::{OnDrop, OpTable, CQE_F_MORE};
use super::tier::TierCap;
use super::{
    DriverStats, Leftover, OpCode, OpSlot, Ready, UringCaps, UringStep, CANCEL_TOKEN,
    TIMEOUT_TOKEN, WAKE_TOKEN,
};
use crate::buf::{BufPool, PoolConfig};
use crate::driver::ZeroCopy;
use crate::sys::cqe_result;
use enter::Enter;

/// While tasks keep the core busy, a zero-timeout turn that has nothing to submit still enters
/// the kernel at least this often, so completions the kernel holds (task work on COOP_TASKRUN
/// rings, an overflow list) are never starved by a task that keeps yielding.
const ENTER_AT_LEAST_EVERY: u32 = 32;

/// How long shutdown waits for cancelled ops to answer before it gives up and leaks them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub(crate) struct UringDriver {
    /// Not dropped if shutdown had to abandon ops still in the kernel (see `leaked`).
    ring: ManuallyDrop<IoUring>,
    /// Dropped (unregistered) before the ring is closed.
    enter: ManuallyDrop<Enter>,
    /// The core's buffer pool, made on first use; kept until the ring is closed (the kernel
    /// may write into its buffers until then).
    pub(super) pool: Option<BufPool>,
    pool_config: PoolConfig,
    /// When writes are zero-copy sends.
    pub(super) zero_copy: ZeroCopy,
    /// Not dropped if the ring is leaked: orphaned buffers the kernel may still write to.
    pub(super) ops: ManuallyDrop<OpTable>,
    pub(super) ready: Ready,
    pub(crate) stats: DriverStats,
    pub(super) caps: UringCaps,
    ext_arg: bool,
    /// DEFER_TASKRUN rings post completions only when we enter with GETEVENTS.
    defer_taskrun: bool,
    /// The eventfd another thread writes to wake this core; a POLL_ADD on it stays armed.
    wake_fd: RawFd,
    wake_armed: bool,
    /// The timespec of the park TIMEOUT entry (kernels without EXT_ARG). The kernel copies it
    /// when the entry is prepared, inside the enter that submits it.
    park_ts: Box<types::Timespec>,
    /// Completions the kernel reported as dropped so far (to count new ones).
    last_dropped: u32,
    /// Zero-timeout turns since the last enter.
    turns_without_enter: u32,
    /// When the driver has leaked its ring (shutdown could not drain it), nothing more is done.
    leaked: bool,
    /// Ops whose opcode this kernel lacks, and `spawn_blocking` jobs, run on the blocking pool.
    pub(super) lane: BlockingLane,
}

impl UringDriver {
    pub fn new(
        ring: IoUring,
        caps: UringCaps,
        (ext_arg, defer_taskrun): (bool, bool),
        (cap, pool_config, zero_copy): (TierCap, PoolConfig, ZeroCopy),
        (wake_fd, lane): (RawFd, BlockingLane),
    ) -> io::Result<UringDriver> {
        use std::os::fd::AsRawFd;
        let enter = Enter::new(ring.as_raw_fd(), cap);
        Ok(UringDriver {
            ring: ManuallyDrop::new(ring),
            enter: ManuallyDrop::new(enter),
            pool: None,
            pool_config,
            zero_copy,
            ops: ManuallyDrop::new(OpTable::default()),
            ready: Ready::default(),
            stats: DriverStats::default(),
            caps,
            ext_arg,
            defer_taskrun,
            wake_fd,
            wake_armed: false,
            park_ts: Box::new(types::Timespec::new()),
            last_dropped: 0,
            turns_without_enter: 0,
            leaked: false,
            lane,
        })
    }

    pub fn poll_op<T: OpCode>(
        &mut self,
        slot: &mut OpSlot,
        op: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        if let Some(index) = slot.index {
            return self.ops.poll(index, cx.waker()).map(|(res, flags)| {
                slot.index = None;
                self.lane.freed(index);
                op.take_flags(flags);
                cqe_result(res)
            });
        }
        let entry = match op.uring_entry(&self.caps) {
            UringStep::Submit(entry) => entry,
            UringStep::Done(res) => return Poll::Ready(res),
            UringStep::Blocking(call) => return self.submit_blocking(slot, call, cx),
        };
        let index = self.ops.insert(cx.waker());
        if let Err(e) = self.push(entry.user_data(self.ops.user_data(index))) {
            // The entry never reached the queue: nothing of the op is in the kernel.
            self.ops.remove(index);
            op.submit_failed();
            return Poll::Ready(Err(e));
        }
        self.stats.ops_submitted += 1;
        slot.index = Some(index);
        Poll::Pending
    }

    /// Files a pool job: its answer completes the slot as a CQE would.
    fn submit_blocking(
        &mut self,
        slot: &mut OpSlot,
        call: super::blocking::BlockingCall,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        let index = self.ops.insert(cx.waker());
        let named = (index, self.ops.user_data(index));
        if let Err(e) = self.lane.submit(named, call, &mut self.ready) {
            self.ops.remove(index);
            return Poll::Ready(Err(e));
        }
        self.stats.ops_submitted += 1;
        slot.index = Some(index);
        Poll::Pending
    }

    pub fn drop_op<T: OpCode>(&mut self, slot: &mut OpSlot, data: T) -> Leftover<T> {
        let Some(index) = slot.index.take() else {
            return Leftover::Data(data);
        };
        let table = (&mut *self.ops, &mut self.ready, &mut self.stats);
        let mut data = match self.lane.drop_op(index, data, table) {
            Ok(leftover) => return leftover,
            Err(data) => data,
        };
        if self.leaked {
            // The ring was abandoned with this op in it: its memory must never be freed.
            std::mem::forget(data);
            return Leftover::None;
        }
        data.on_orphaned();
        match self.ops.orphan(index, Box::new(data)) {
            OnDrop::AlreadyDone(resources, res, flags) => Leftover::Finish(resources, res, flags),
            OnDrop::Orphaned => {
                // The cancel goes out with the next enter: the op holds its fd handle, so the
                // fd number cannot be closed and reused before the op's completion arrives,
                // and `block_on` enters the kernel until every orphan has been answered.
                self.cancel(index);
                Leftover::None
            }
        }
    }

    /// Whether enters name the ring by its registered index (5.18).
    pub fn registered_ring(&self) -> bool {
        self.enter.is_registered()
    }

    /// A cancel scope ends the op in `index` early: its own completion answers its future.
    pub fn cancel_op(&mut self, index: usize) {
        let table = (&mut *self.ops, &mut self.ready, &mut self.stats);
        if self.lane.cancel_scope(index, table) {
            return;
        }
        if !self.leaked && (self.ops.is_waiting(index) || self.ops.is_multi_armed(index)) {
            self.cancel(index);
        }
    }

    /// Queues an ASYNC_CANCEL for the op in `index`. If it cannot be queued the op simply runs
    /// to completion; its resources are kept either way.
    fn cancel(&mut self, index: usize) {
        let entry = opcode::AsyncCancel::new(self.ops.user_data(index))
            .build()
            .user_data(CANCEL_TOKEN);
        let _ = self.push(entry);
    }

    /// Pushes an entry, flushing the queue to the kernel first if it is full.
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry we build points only at memory owned by an op in the op table
            // (or by this driver), which stays alive until the entry's completion is reaped.
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            self.enter(0, None)?;
        }
    }

    /// One `io_uring_enter`: submits what is queued and waits for `want` completions (bounded
    /// by `timeout` when given with EXT_ARG). Transient errors are handled here.
    fn enter(&mut self, want: u32, timeout: Option<Duration>) -> io::Result<()> {
        self.turns_without_enter = 0;
        let timeout = timeout.filter(|_| want > 0 && self.ext_arg);
        loop {
            self.stats.waits += 1;
            let to_submit = self.ring.submission().len() as u32;
            match self.enter.enter(to_submit, want, timeout) {
                Ok(_) => return Ok(()),
                Err(e) => match e.raw_os_error() {
                    // Timed out, or a signal: the wait is over either way.
                    Some(libc::ETIME) | Some(libc::EINTR) => return Ok(()),
                    // 5.10–5.12 refuse submissions while completions overflow: reap, retry.
                    Some(libc::EBUSY) | Some(libc::EAGAIN) => {
                        if self.reap() == 0 {
                            // Nothing to reap yet: wait for one completion instead of spinning.
                            self.stats.waits += 1;
                            let _ = self.enter.enter(0, 1, None);
                        }
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// Records every completion in the queue; returns how many there were.
    fn reap(&mut self) -> usize {
        let mut n = 0;
        let mut cq = self.ring.completion();
        cq.sync();
        let dropped = cq.overflow();
        for cqe in &mut cq {
            n += 1;
            if let (Some(pool), Some(_)) = (&self.pool, cqueue::buffer_select(cqe.flags())) {
                // The kernel took this buffer from the ring (whoever gets it now).
                pool.note_consumed();
            }
            handle_cqe(
                &cqe,
                &mut self.ops,
                &mut self.ready,
                &mut self.stats,
                (&mut self.wake_armed, self.wake_fd),
                self.pool.as_ref(),
            );
        }
        drop(cq);
        for index in self.ops.take_pauses() {
            self.cancel(index);
        }
        if dropped != self.last_dropped {
            self.stats.cq_dropped += u64::from(dropped.wrapping_sub(self.last_dropped));
            self.last_dropped = dropped;
        }
        n
    }

    /// Arms a one-shot POLL_ADD on the wake eventfd. (A READ would complete at once with
    /// -EAGAIN on a non-blocking eventfd on some 5.10-5.12 kernels, and spin.)
    fn arm_wake(&mut self) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(self.wake_fd), libc::POLLIN as u32)
            .build()
            .user_data(WAKE_TOKEN);
        self.push(entry)?;
        self.wake_armed = true;
        Ok(())
    }

    /// Waits for one completion, or at most `timeout`; `None` waits with no bound.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match timeout {
            Some(d) if d.is_zero() => {
                // Without DEFER_TASKRUN completions reach the ring by themselves, except those
                // the kernel holds back: an overflow list (CQ full) and, on COOP_TASKRUN rings,
                // pending task work. Both need an enter; so does a periodic turn.
                let sq = self.ring.submission();
                let (queued, overflow) = (!sq.is_empty(), sq.cq_overflow());
                let held = overflow || sq.taskrun();
                drop(sq);
                self.turns_without_enter += 1;
                if queued
                    || held
                    || self.defer_taskrun
                    || self.turns_without_enter >= ENTER_AT_LEAST_EVERY
                {
                    self.enter(0, None)?;
                }
            }
            Some(d) if !self.ext_arg => {
                *self.park_ts = types::Timespec::from(d);
                // count = 1: the entry completes at the deadline or on the first other
                // completion, so it never outlives this wait by more than one turn.
                let entry = opcode::Timeout::new(&*self.park_ts)
                    .count(1)
                    .build()
                    .user_data(TIMEOUT_TOKEN);
                self.push(entry)?;
                self.enter(1, None)?;
            }
            timeout => self.enter(1, timeout)?,
        }
        Ok(())
    }

    /// One loop turn: submit, wait up to `timeout` (`None`: until something completes), reap.
    pub fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.leaked {
            return Ok(());
        }
        if !self.wake_armed {
            self.arm_wake()?;
        }
        if self.ring.submission().cq_overflow() {
            self.stats.cq_overflows += 1;
        }
        let timeout = match self.lane.has_answers() {
            true => Some(Duration::ZERO),
            false => timeout,
        };
        self.wait(timeout)?;
        self.reap();
        self.lane
            .take_answers(&mut self.ops, &mut self.ready, &mut self.stats);
        Ok(())
    }
}

fn handle_cqe(
    cqe: &cqueue::Entry,
    ops: &mut OpTable,
    ready: &mut Ready,
    stats: &mut DriverStats,
    (wake_armed, wake_fd): (&mut bool, RawFd),
    pool: Option<&BufPool>,
) {
    match cqe.user_data() {
        WAKE_TOKEN => {
            *wake_armed = false;
            drain_wake(wake_fd);
        }
        CANCEL_TOKEN | TIMEOUT_TOKEN => {}
        user_data => {
            // A multishot op (or a zero-copy send) is complete at its last completion.
            if cqe.flags() & CQE_F_MORE == 0 {
                stats.ops_completed += 1;
            }
            match ops.index_of(user_data) {
                Some(index) => ready.push(ops.complete(index, cqe.result(), cqe.flags())),
                // No op to take its buffer (none should be missing): back to the ring.
                None => {
                    if let (Some(pool), Some(bid)) = (pool, cqueue::buffer_select(cqe.flags())) {
                        drop(pool.kernel_filled(bid, 0));
                    }
                }
            }
        }
    }
}

/// Empties the wake eventfd (non-blocking) so its next poll waits for a new write.
fn drain_wake(fd: RawFd) {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; the eventfd is non-blocking.
    let _ = unsafe { libc::read(fd, (&mut count as *mut u64).cast(), 8) };
}
