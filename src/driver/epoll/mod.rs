//! The readiness backend: one epoll instance per core, the model of Go's netpoller.
//!
//! Every fd is non-blocking and registered once, edge-triggered, for
//! IN | OUT | RDHUP. An op tries its syscall; on EAGAIN its slot is filed as a waiter on the
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

use super::{DriverStats, Leftover, OpSlot, Ready, WAKE_TOKEN};
use crate::op::slot::OpTable;
use crate::op::{EpollStep, Interest, OpCode};
use crate::sys::syscall;

/// How many events one `epoll_wait` returns at most.
const EVENTS: usize = 1024;

/// Waiters of one fd, indexed by the fd number.
#[derive(Default)]
struct FdState {
    registered: bool,
    /// Whether a side may have something for us. Cleared when a syscall on that side says
    /// EAGAIN or moves fewer bytes than asked (drained); set by an edge. While cleared, a new
    /// op on that side parks without trying its syscall first, which would only say EAGAIN.
    /// Sound for the same reason as the rest: edges after the clearing syscall stay queued in
    /// the kernel until our next `epoll_wait`.
    read_drained: bool,
    write_drained: bool,
    /// An edge reported a hang-up or error (RDHUP, HUP, ERR). That state persists without
    /// new edges (an EOF behind the last short read raises none), so from then on every op
    /// tries its syscall.
    hung_up: bool,
    readers: Vec<usize>,
    writers: Vec<usize>,
}

impl FdState {
    fn drained(&mut self, interest: Interest) -> &mut bool {
        match interest {
            Interest::Read => &mut self.read_drained,
            Interest::Write => &mut self.write_drained,
        }
    }
}

pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    pub(super) ops: OpTable,
    pub(super) ready: Ready,
    pub(super) stats: DriverStats,
    fds: Vec<FdState>,
    events: Vec<libc::epoll_event>,
    wake_fd: RawFd,
}

impl EpollDriver {
    pub fn new(wake_fd: RawFd) -> io::Result<EpollDriver> {
        let fd = syscall!(epoll_create1(libc::EPOLL_CLOEXEC))?;
        // SAFETY: epoll_create1 just returned this fd and nothing else owns it.
        let epfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: WAKE_TOKEN,
        };
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
        })
    }

    pub fn poll_op<T: OpCode>(
        &mut self,
        slot: &mut OpSlot,
        op: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        match slot.index {
            // Still parked: no readiness since the last attempt, so no new attempt.
            Some(index) => match self.ops.poll(index, cx.waker()) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(_) => slot.index = None,
            },
            None => self.stats.ops_submitted += 1,
        }
        // A fresh op on a side known to be drained parks straight away.
        let skip = slot.index.is_none()
            && op.readiness().is_some_and(|(fd, interest)| {
                self.fds
                    .get_mut(fd as usize)
                    .is_some_and(|st| st.registered && !st.hung_up && *st.drained(interest))
            });
        let step = if skip {
            let (fd, interest) = op.readiness().expect("checked above");
            EpollStep::Wait(fd, interest)
        } else {
            self.stats.io_syscalls += 1;
            op.epoll_try()
        };
        match step {
            EpollStep::Done(res) => {
                self.stats.ops_completed += 1;
                Poll::Ready(res)
            }
            EpollStep::Drained(n, fd, interest) => {
                if let Some(st) = self.fds.get_mut(fd as usize) {
                    *st.drained(interest) = true;
                }
                self.stats.ops_completed += 1;
                Poll::Ready(Ok(n))
            }
            EpollStep::Wait(fd, interest) => {
                if let Err(e) = self.register(fd) {
                    self.stats.ops_completed += 1;
                    return Poll::Ready(Err(e));
                }
                let index = self.ops.insert(cx.waker());
                let state = &mut self.fds[fd as usize];
                *state.drained(interest) = true;
                match interest {
                    Interest::Read => state.readers.push(index),
                    Interest::Write => state.writers.push(index),
                }
                *slot = OpSlot {
                    index: Some(index),
                    fd,
                    interest,
                };
                Poll::Pending
            }
        }
    }

    pub fn drop_op<T: OpCode>(&mut self, slot: &mut OpSlot, data: T) -> Leftover<T> {
        if let Some(index) = slot.index.take() {
            // Nothing is in the kernel: unfile the waiter and free everything now.
            if let Some(state) = self.fds.get_mut(slot.fd as usize) {
                let list = match slot.interest {
                    Interest::Read => &mut state.readers,
                    Interest::Write => &mut state.writers,
                };
                list.retain(|&i| i != index);
            }
            self.ops.remove(index);
            // Counted as completed (cancelled), so that submitted == completed once idle.
            self.stats.ops_completed += 1;
        }
        Leftover::Data(data)
    }

    /// Registers `fd` once, edge-triggered, for both directions.
    fn register(&mut self, fd: RawFd) -> io::Result<()> {
        let i = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        if i >= self.fds.len() {
            self.fds.resize_with(i + 1, FdState::default);
        }
        if self.fds[i].registered {
            return Ok(());
        }
        let events = libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET;
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: fd as u64,
        };
        match syscall!(epoll_ctl(
            self.epfd.as_raw_fd(),
            libc::EPOLL_CTL_ADD,
            fd,
            &mut ev
        )) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.fds[i].registered = true;
        Ok(())
    }

    /// `fd` is about to be closed: unregister it and wake its waiters (their retry fails).
    pub fn forget_fd(&mut self, fd: RawFd) {
        let Some(state) = usize::try_from(fd).ok().and_then(|i| self.fds.get_mut(i)) else {
            return;
        };
        let state = std::mem::take(state);
        if state.registered {
            // SAFETY: a plain epoll_ctl on fds we hold; DEL takes no event argument.
            let _ = unsafe {
                libc::epoll_ctl(
                    self.epfd.as_raw_fd(),
                    libc::EPOLL_CTL_DEL,
                    fd,
                    std::ptr::null_mut(),
                )
            };
        }
        for index in state.readers.into_iter().chain(state.writers) {
            self.ready.push(self.ops.complete(index, 0, 0));
        }
    }

    pub fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
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
            let (flags, token) = (ev.events as i32, ev.u64);
            if token == WAKE_TOKEN {
                drain_eventfd(self.wake_fd);
                continue;
            }
            let Some(state) = self.fds.get_mut(token as usize) else {
                continue;
            };
            let broken = flags & (libc::EPOLLERR | libc::EPOLLHUP) != 0;
            if broken || flags & libc::EPOLLRDHUP != 0 {
                state.hung_up = true;
            }
            if broken || flags & (libc::EPOLLIN | libc::EPOLLRDHUP) != 0 {
                state.read_drained = false;
                for index in state.readers.drain(..) {
                    self.ready.push(self.ops.complete(index, 0, 0));
                }
            }
            if broken || flags & libc::EPOLLOUT != 0 {
                state.write_drained = false;
                for index in state.writers.drain(..) {
                    self.ready.push(self.ops.complete(index, 0, 0));
                }
            }
        }
        Ok(())
    }

    /// Nothing is in the kernel on epoll: waiters simply stop waiting.
    pub fn shutdown(&mut self) {
        for state in &mut self.fds {
            state.readers.clear();
            state.writers.clear();
        }
    }
}

fn drain_eventfd(fd: RawFd) {
    let mut value: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64; the eventfd is non-blocking.
    let _ = unsafe { libc::read(fd, (&mut value as *mut u64).cast(), 8) };
}
