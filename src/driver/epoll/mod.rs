//! The readiness backend: one epoll instance per core, the model of Go's netpoller.
//!
//! Every fd is non-blocking and registered once per open file, edge-triggered, for
//! IN | OUT | RDHUP | PRI. An op tries its syscall; on EAGAIN its slot is filed as a waiter on the
//! fd's read or write side and the task parks. An edge wakes every waiter of that side (errors
//! and hang-ups wake both), and each retries its syscall.
//!
//! Why no edge is lost: the core's thread both runs the syscalls and calls `epoll_wait`. An
//! EAGAIN seen by an op means all data that arrived before it has been consumed; any data
//! arriving after it raises a new edge, queued in the kernel until our next `epoll_wait`.
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};
use std::time::Duration;

use super::lane::BlockingLane;
use super::slots::OpTable;
use super::{DriverStats, EpollStep, FdKey, Interest, Leftover, OpCode, OpSlot, Ready, WAKE_TOKEN};
use crate::buf::{BufPool, PoolConfig};
use crate::sys::syscall;

mod registry;
mod settle;

/// How many events one `epoll_wait` returns at most.
const EVENTS: usize = 1024;

/// How long shutdown waits for running pool jobs before it leaks their memory.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// One side (read or write) of a registered fd.
#[derive(Default)]
struct Side {
    /// Cleared when a syscall on this side says EAGAIN or moves fewer bytes than asked
    /// (drained); set by an edge. While set, a new op on this side parks without trying its
    /// syscall first, which would only say EAGAIN. Sound for the same reason as the rest:
    /// edges after the clearing syscall stay queued in the kernel until our next `epoll_wait`.
    drained: bool,
    /// Cleared by an edge; set only by a syscall that said EAGAIN (a short count does not
    /// set it). A pooled read's readiness wait parks on it even where hang-ups or urgent data
    /// made short counts meaningless (`no_skip`): after an EAGAIN, any new data raises an edge.
    eagain: bool,
    /// Slots of the ops parked on this side.
    waiters: Vec<usize>,
}

/// The registration of one fd number, indexed by the number.
#[derive(Default)]
struct FdState {
    /// The identity of the open file registered under this number; 0: none. A number whose
    /// file was closed (the kernel drops its registration then) or that is used on another
    /// runtime's epoll is registered again when an op brings a different identity.
    id: u64,
    /// `[read, write]`, indexed by `Interest`.
    sides: [Side; 2],
    /// A short count may no longer mean "drained" on this fd: an edge reported a hang-up or
    /// an error (RDHUP, HUP, ERR: that state persists and raises no new edges, e.g. an EOF
    /// behind the last short read), or urgent data (PRI: TCP stops a read short at the urgent
    /// mark with more data queued behind it). From then on every op tries its syscall, so a
    /// peer can cost its own connection the saved syscall, never stall it.
    no_skip: bool,
}

pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    pub(super) ops: OpTable,
    pub(super) ready: Ready,
    pub(super) stats: DriverStats,
    fds: Vec<FdState>,
    events: Vec<libc::epoll_event>,
    wake_fd: RawFd,
    /// The core's buffer pool (a plain free list), made on first use.
    pub(super) pool: Option<BufPool>,
    pool_config: PoolConfig,
    /// File ops and `spawn_blocking` jobs run on the blocking pool. Invariant: a slot of this
    /// driver with an index but no `parked` fd is a pool job (a readiness waiter always has
    /// both while its future holds the slot).
    pub(super) lane: BlockingLane,
}

impl EpollDriver {
    pub fn new(
        wake_fd: RawFd,
        pool_config: PoolConfig,
        lane: BlockingLane,
    ) -> io::Result<EpollDriver> {
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 just returned this fd and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: WAKE_TOKEN,
        };
        // SAFETY: `ev` is a live epoll_event for the duration of the call.
        syscall!(epoll_ctl(
            epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            wake_fd,
            &mut ev
        ))?;
        Ok(EpollDriver {
            epfd,
            ops: OpTable::default(),
            ready: Ready::default(),
            stats: DriverStats::default(),
            fds: Vec::new(),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS],
            wake_fd,
            pool: None,
            pool_config,
            lane,
        })
    }

    /// The core's buffer pool, made on first use.
    pub fn pool(&mut self) -> io::Result<BufPool> {
        if self.pool.is_none() {
            self.pool = Some(BufPool::plain(self.pool_config)?);
        }
        Ok(self.pool.clone().expect("just made"))
    }

    pub fn poll_op<T: OpCode>(
        &mut self,
        slot: &mut OpSlot,
        op: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        match slot.index {
            // A pool job: its answer is the op's.
            Some(index) if slot.parked.is_none() => {
                return self.ops.poll(index, cx.waker()).map(|(res, _)| {
                    slot.index = None;
                    self.lane.freed(index);
                    crate::sys::cqe_result(res)
                });
            }
            // Parked: retry only once readiness (res 0) or a cancel (-errno) arrived.
            Some(index) => match self.ops.poll_keep(index, cx.waker()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready((res, _)) if res < 0 => {
                    self.finish(slot);
                    return Poll::Ready(Err(io::Error::from_raw_os_error(-res)));
                }
                // The edge that said so took the waiter off its list.
                Poll::Ready(_) => slot.parked = None,
            },
            None => self.stats.ops_submitted += 1,
        }
        let step = match op.readiness() {
            Some((key, interest))
                if slot.index.is_none()
                    && self.known_drained(key, interest, op.parks_after_eagain()) =>
            {
                EpollStep::Wait(key, interest)
            }
            _ => {
                let step = op.epoll_try();
                // A readiness wait tries no syscall of its own; a pool job's is the pool's.
                if !op.parks_after_eagain() && !matches!(step, EpollStep::Blocking(_)) {
                    self.stats.io_syscalls += 1;
                }
                step
            }
        };
        self.act_on(slot, step, cx)
    }

    /// What one attempt's step means for the op in `slot`.
    #[inline]
    fn act_on(
        &mut self,
        slot: &mut OpSlot,
        step: EpollStep,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        match step {
            EpollStep::Done(res) => {
                self.finish(slot);
                Poll::Ready(res)
            }
            EpollStep::Blocking(call) => self.submit_blocking(slot, call, cx),
            EpollStep::WouldBlock(key, interest) => {
                // Registered now, so that the next op on this side parks until an edge
                // (unregistered, it would try again at once: a spin).
                let registered = self.register(key);
                if let Some(st) = self.state_of(key) {
                    let side = &mut st.sides[interest as usize];
                    (side.drained, side.eagain) = (true, true);
                }
                self.finish(slot);
                Poll::Ready(Err(registered
                    .err()
                    .unwrap_or_else(|| io::Error::from_raw_os_error(libc::EAGAIN))))
            }
            EpollStep::Drained(n, key, interest) => {
                if let Some(st) = self.state_of(key) {
                    st.sides[interest as usize].drained = true;
                }
                self.finish(slot);
                Poll::Ready(Ok(n))
            }
            EpollStep::Wait(key, interest) => self.park_on(slot, (key, interest), cx),
        }
    }

    /// Files the op in `slot` as a waiter on `key`'s `interest` side.
    fn park_on(
        &mut self,
        slot: &mut OpSlot,
        (key, interest): (FdKey, Interest),
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        if let Err(e) = self.register(key) {
            self.finish(slot);
            return Poll::Ready(Err(e));
        }
        let index = match slot.index {
            Some(index) => {
                self.ops.rearm(index, cx.waker());
                index
            }
            None => self.ops.insert(cx.waker()),
        };
        let side = &mut self.fds[key.fd as usize].sides[interest as usize];
        (side.drained, side.eagain) = (true, true);
        side.waiters.push(index);
        slot.index = Some(index);
        slot.parked = Some((key, interest));
        Poll::Pending
    }

    /// Files a pool job (the slot gets an index and no fd: the invariant on `lane`).
    fn submit_blocking(
        &mut self,
        slot: &mut OpSlot,
        call: crate::driver::blocking::BlockingCall,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        debug_assert!(slot.index.is_none(), "a pool job after a readiness wait");
        let index = self.ops.insert(cx.waker());
        let named = (index, self.ops.user_data(index));
        if let Err(e) = self.lane.submit(named, call, &mut self.ready) {
            self.ops.remove(index);
            self.stats.ops_completed += 1;
            return Poll::Ready(Err(e));
        }
        slot.index = Some(index);
        Poll::Pending
    }

    /// Whether a fresh op on this side may park without trying its syscall: the side is
    /// drained (a short count, where short counts still mean that), or (`after_eagain`, a
    /// readiness wait) a syscall said EAGAIN there, whatever the hang-up state.
    fn known_drained(&self, key: FdKey, interest: Interest, after_eagain: bool) -> bool {
        self.fds.get(key.fd as usize).is_some_and(|st| {
            let side = &st.sides[interest as usize];
            st.id == key.id && ((after_eagain && side.eagain) || (!st.no_skip && side.drained))
        })
    }

    /// The registration of `key`'s file, if it is the one registered under its number.
    fn state_of(&mut self, key: FdKey) -> Option<&mut FdState> {
        self.fds
            .get_mut(key.fd as usize)
            .filter(|st| st.id == key.id)
    }

    /// The op in `slot` is over: unfile its waiter, free its slot, count it.
    fn finish(&mut self, slot: &mut OpSlot) {
        self.stats.ops_completed += 1;
        let Some(index) = slot.index.take() else {
            return;
        };
        if let Some((key, interest)) = slot.parked.take() {
            if let Some(st) = self.state_of(key) {
                st.sides[interest as usize].waiters.retain(|&i| i != index);
            }
        }
        self.ops.remove(index);
    }

    pub fn drop_op<T: OpCode>(&mut self, slot: &mut OpSlot, data: T) -> Leftover<T> {
        if let (Some(index), None) = (slot.index, slot.parked) {
            // A pool job (the invariant on `lane`).
            slot.index = None;
            let table = (&mut self.ops, &mut self.ready, &mut self.stats);
            return match self.lane.drop_op(index, data, table) {
                Ok(leftover) => leftover,
                Err(data) => {
                    debug_assert!(false, "slot {index} has no fd and is no pool job");
                    self.ops.remove(index);
                    Leftover::Data(data)
                }
            };
        }
        if slot.index.is_some() {
            // Nothing is in the kernel: unfile the waiter and free everything now. Counted as
            // completed (cancelled), so that submitted == completed once idle.
            self.finish(slot);
        }
        Leftover::Data(data)
    }

    /// A cancel scope ends a parked op: it completes with `-ECANCELED` (nothing is in the
    /// kernel, so nothing was transferred), also when a readiness it has not acted on yet had
    /// come (its retry could only park it again); the future unfiles it when it takes the result.
    /// A pool job is cancelled only if no thread has started it, and its answer, once come,
    /// stands (`BlockingLane::cancel_scope`).
    pub fn cancel_op(&mut self, index: usize) {
        let table = (&mut self.ops, &mut self.ready, &mut self.stats);
        if self.lane.cancel_scope(index, table) {
            return;
        }
        let action = self.ops.override_result(index, -libc::ECANCELED);
        self.ready.push(action);
    }

    pub fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let timeout = match self.lane.has_answers() {
            true => Some(Duration::ZERO),
            false => timeout,
        };
        let ms = match timeout {
            None => -1,
            // Round up: waking before the deadline would only make the runtime wait again.
            Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        self.stats.waits += 1;
        // SAFETY: `events` is a live buffer of EVENTS entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                self.events.as_mut_ptr(),
                EVENTS as i32,
                ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(())
            } else {
                Err(e)
            };
        }
        for i in 0..n as usize {
            let ev = self.events[i];
            if ev.u64 == WAKE_TOKEN {
                drain_eventfd(self.wake_fd);
            } else {
                self.edge(ev.u64 as usize, ev.events as i32);
            }
        }
        self.lane
            .take_answers(&mut self.ops, &mut self.ready, &mut self.stats);
        Ok(())
    }

    /// An edge on fd number `fd`: wake the waiters of the sides it concerns.
    fn edge(&mut self, fd: usize, flags: i32) {
        let Some(state) = self.fds.get_mut(fd).filter(|st| st.id != 0) else {
            return;
        };
        let broken = flags & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
        if broken || flags & (libc::EPOLLRDHUP | libc::EPOLLPRI) != 0 {
            state.no_skip = true;
        }
        let readable = libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLPRI;
        for (side, bits) in state.sides.iter_mut().zip([readable, libc::EPOLLOUT]) {
            if broken || flags & bits != 0 {
                (side.drained, side.eagain) = (false, false);
                for index in side.waiters.drain(..) {
                    self.ready.push(self.ops.complete(index, 0, 0));
                }
            }
        }
    }
}

fn drain_eventfd(fd: RawFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; the eventfd is non-blocking.
    let _ = unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
}
