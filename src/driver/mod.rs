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
//!   (`Orphaned`) and an ASYNC_CANCEL is queued; the completion frees them. epoll: nothing is in
//!   the kernel, so the waiter is unfiled and the resources are freed at once.
//! * `park(timeout)` — one loop turn: submit everything queued with one `io_uring_enter` (or
//!   one `epoll_wait`), wait at most `timeout`, and record completions. Wakers and orphaned
//!   resources are handed out by `take_ready` and acted on after the driver borrow is released.
//! * `shutdown` — cancel everything in flight and wait until the kernel has answered it all,
//!   so no memory the kernel may touch is freed early.
//!
//! The choice between the two is made once, in [`select`].
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

mod epoll;
mod info;
mod select;
mod uring;

pub use info::{BackendChoice, BackendInfo, BackendKind, UringInfo};
pub(crate) use select::{select, DriverConfig};

use crate::op::slot::{OnComplete, Orphan};
use crate::op::{Interest, OpCode};
pub(crate) use epoll::EpollDriver;
pub(crate) use uring::UringDriver;

/// Tokens that name no op slot. Slot indices stay far below them.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;
pub(crate) const CANCEL_TOKEN: u64 = u64::MAX - 1;
pub(crate) const TIMEOUT_TOKEN: u64 = u64::MAX - 2;

/// The driver-side state an [`Op`](crate::op::Op) future keeps: its slot, and for epoll the fd
/// and side it is filed under.
#[derive(Debug)]
pub(crate) struct OpSlot {
    pub index: Option<usize>,
    pub fd: RawFd,
    pub interest: Interest,
}

impl Default for OpSlot {
    fn default() -> Self {
        OpSlot {
            index: None,
            fd: -1,
            interest: Interest::Read,
        }
    }
}

/// What a dropped op leaves to release once the driver borrow is over.
pub(crate) enum Leftover<T> {
    None,
    /// The op's data, never in the kernel or no longer needed by it: drop it.
    Data(T),
    /// The completion had arrived before the drop: finish the resources with it.
    Finish(Box<dyn Orphan>, i32),
}

impl<T> Leftover<T> {
    /// Releases whatever is left (call with no driver borrow held).
    pub fn release(self) {
        match self {
            Leftover::None => {}
            Leftover::Data(data) => drop(data),
            Leftover::Finish(resources, res) => resources.finish(res),
        }
    }
}

/// Wakers to wake and orphaned resources to finish, gathered while the driver was borrowed.
#[derive(Default)]
pub(crate) struct Ready {
    pub wakers: Vec<Waker>,
    pub orphans: Vec<(Box<dyn Orphan>, i32)>,
}

impl Ready {
    pub fn push(&mut self, action: OnComplete) {
        match action {
            OnComplete::Wake(w) => self.wakers.push(w),
            OnComplete::Finish(r, res) => self.orphans.push((r, res)),
            OnComplete::Nothing => {}
        }
    }

    /// Wakes and finishes everything (with no driver borrow held).
    pub fn run(&mut self) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
        for (r, res) in self.orphans.drain(..) {
            r.finish(res);
        }
    }
}

/// Counters one core's driver keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Operations handed to the kernel (io_uring entries, or epoll syscall attempts that
    /// finished or parked).
    pub ops_submitted: u64,
    /// Operations that finished: completed, failed, or cancelled (their future dropped) and
    /// confirmed by the kernel. Equal to `ops_submitted` once nothing is in flight.
    pub ops_completed: u64,
    /// `io_uring_enter` or `epoll_wait` calls.
    pub waits: u64,
    /// Completions the kernel had to hold back because the completion queue was full.
    pub cq_overflows: u64,
    /// Non-blocking I/O syscalls the epoll backend made itself (0 on io_uring).
    pub io_syscalls: u64,
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

    /// Moves the gathered wakers and orphans into `into` (which the caller then runs).
    pub fn take_ready(&mut self, into: &mut Ready) {
        let ready = match self {
            Driver::Uring(d) => &mut d.ready,
            Driver::Epoll(d) => &mut d.ready,
        };
        into.wakers.append(&mut ready.wakers);
        into.orphans.append(&mut ready.orphans);
    }

    pub fn forget_fd(&mut self, fd: RawFd) {
        if let Driver::Epoll(d) = self {
            d.forget_fd(fd);
        }
    }

    pub fn live_ops(&self) -> usize {
        match self {
            Driver::Uring(d) => d.ops.len(),
            Driver::Epoll(d) => d.ops.len(),
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

    /// Whether sockets made for this backend are non-blocking (epoll needs it; io_uring ops
    /// work on blocking sockets and are not handed EAGAIN that way on any kernel).
    pub fn nonblocking_sockets(&self) -> bool {
        matches!(self, Driver::Epoll(_))
    }

    pub fn stats(&self) -> DriverStats {
        match self {
            Driver::Uring(d) => d.stats,
            Driver::Epoll(d) => d.stats,
        }
    }
}

/// An fd that a driver may have registered: dropping it unregisters it from *that* driver
/// (wherever and whenever the drop happens), then closes it.
#[derive(Debug)]
pub(crate) struct DriverFd {
    fd: OwnedFd,
    driver: std::rc::Weak<std::cell::RefCell<Driver>>,
}

impl DriverFd {
    /// Wraps `fd`, made on the current core (whose driver may register it).
    pub fn new(fd: OwnedFd) -> DriverFd {
        let driver =
            crate::runtime::with_current(|c| std::rc::Rc::downgrade(&c.driver)).unwrap_or_default();
        DriverFd { fd, driver }
    }

    fn forget(&self) {
        if let Some(driver) = self.driver.upgrade() {
            let fd = self.fd.as_raw_fd();
            match driver.try_borrow_mut() {
                Ok(mut d) => d.forget_fd(fd),
                // Every path that drops an fd does so with the driver unborrowed; a busy
                // driver here would leave a stale epoll registration behind.
                Err(_) => debug_assert!(false, "fd {fd} dropped while its driver was borrowed"),
            }
        }
    }

    /// Takes the fd back, unregistered, without closing it.
    pub fn into_owned(self) -> OwnedFd {
        self.forget();
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so each field is moved out exactly once.
        unsafe {
            drop(std::ptr::read(&this.driver));
            std::ptr::read(&this.fd)
        }
    }
}

impl AsRawFd for DriverFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for DriverFd {
    fn drop(&mut self) {
        self.forget();
    }
}
