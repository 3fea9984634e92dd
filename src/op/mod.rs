//! One operation vocabulary for both backends.
//!
//! An operation (accept, connect, recv, send, shutdown, close, timeout, nop) is one plain struct
//! that owns everything the kernel may touch while it runs: its buffer, its socket address, its
//! timespec. It implements `UringOp` (the submission it becomes) and `EpollOp` (the
//! non-blocking syscall to try, or the readiness to wait for), and `OpCode::complete` turns the
//! kernel's answer into the op's output, handing owned resources back. `OpCode: UringOp +
//! EpollOp` makes the compiler reject an op that lacks either backend.
//!
//! `Op<T>` is the future over one in-flight operation. It submits on first poll, and on
//! drop gives the op's resources to the driver, which keeps them until the kernel is done (see
//! `op::slot` for the lifecycle).
//!
//! The public functions here run single raw operations, for tests and benchmarks:
//!
//! ```
//! # corering::Runtime::new().unwrap().block_on(async {
//! corering::op::nop().await.unwrap();
//! corering::op::kernel_timeout(std::time::Duration::from_millis(1)).await.unwrap();
//! # });
//! ```
mod accept;
mod close;
mod connect;
mod nop;
mod recv;
mod send;
mod shutdown;
pub(crate) mod slot;
mod timeout;

pub(crate) use accept::Accept;
pub(crate) use close::Close;
pub(crate) use connect::Connect;
pub(crate) use nop::Nop;
pub(crate) use recv::Recv;
pub(crate) use send::Send;
pub(crate) use shutdown::Shutdown;
pub(crate) use timeout::Timeout;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use io_uring::squeue;

use crate::driver::{Driver, Leftover, OpSlot};
use crate::sys::cqe_result;
use slot::Orphan;

/// What the io_uring backend needs to know about the ring an op is submitted to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UringCaps {
    /// IORING_OP_SHUTDOWN is available (5.11).
    pub shutdown: bool,
}

/// What an op becomes on io_uring.
pub(crate) enum UringStep {
    /// Submit this entry (its `user_data` is set by the driver).
    Submit(squeue::Entry),
    /// Done without the ring (e.g. an opcode this kernel lacks, done by a plain syscall that
    /// never blocks).
    Done(io::Result<u32>),
}

/// The io_uring half of an op.
pub(crate) trait UringOp {
    /// The submission entry. Every pointer in it must point at memory the op owns on the heap
    /// (or in `'static` memory), so that it stays valid when the op is moved into the op table.
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep;
}

/// Which readiness an epoll op waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// EPOLLIN (and hang-ups and errors).
    Read,
    /// EPOLLOUT (and hang-ups and errors).
    Write,
}

/// What one non-blocking attempt of an op gave.
pub(crate) enum EpollStep {
    /// The syscall finished: a count, or the error.
    Done(io::Result<u32>),
    /// The syscall would block: park until `fd` has this readiness, then try again.
    Wait(RawFd, Interest),
    /// The syscall moved fewer bytes than asked (a count above zero): that side of `fd` is
    /// drained, so the next op on it can park without trying first.
    Drained(u32, RawFd, Interest),
}

/// The epoll half of an op: the non-blocking syscall to try.
pub(crate) trait EpollOp {
    /// Tries the syscall once, without blocking.
    fn epoll_try(&mut self) -> EpollStep;

    /// The fd and side this op needs ready, if the driver may skip a doomed first attempt
    /// when it knows that side is drained (the syscall would only say EAGAIN).
    fn readiness(&self) -> Option<(RawFd, Interest)> {
        None
    }
}

/// An operation, for both backends.
pub(crate) trait OpCode: UringOp + EpollOp + Sized + 'static {
    /// What the caller gets back, including every owned resource.
    type Output;
    /// Turns the kernel's answer into the output.
    fn complete(self, res: io::Result<u32>) -> Self::Output;

    /// The entry built by `uring_entry` could not be queued: take back whatever was handed
    /// over to it (e.g. an fd to close).
    fn submit_failed(&mut self) {}

    /// The future was dropped while the op is in the kernel; its resources are about to be
    /// parked until the completion arrives (which then calls
    /// [`finish_orphaned`](OpCode::finish_orphaned)).
    fn on_orphaned(&mut self) {}

    /// The completion of an op whose future was dropped. By default the op is completed and
    /// the output dropped, which releases what it produced (a cancelled accept's new
    /// connection is closed here).
    fn finish_orphaned(self, res: io::Result<u32>) {
        drop(self.complete(res));
    }
}

impl<T: OpCode> Orphan for T {
    fn finish(self: Box<Self>, res: i32) {
        (*self).finish_orphaned(cqe_result(res));
    }
}

/// The future over one operation.
pub(crate) struct Op<T: OpCode> {
    driver: Rc<RefCell<Driver>>,
    slot: OpSlot,
    data: Option<T>,
}

// An Op is never structurally pinned: it only holds its data and a slot index.
impl<T: OpCode> Unpin for Op<T> {}

impl<T: OpCode> Op<T> {
    /// An op on the current core's driver. Panics outside a runtime.
    pub fn new(data: T) -> Op<T> {
        Op {
            driver: crate::runtime::current_driver(),
            slot: OpSlot::default(),
            data: Some(data),
        }
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        let op = this.data.as_mut().expect("op polled after it completed");
        let res = std::task::ready!(this.driver.borrow_mut().poll_op(&mut this.slot, op, cx));
        // Completing runs after the driver borrow ends: it may drop resources (e.g. a timerfd)
        // that unregister themselves from the driver.
        let op = this.data.take().expect("checked above");
        Poll::Ready(op.complete(res))
    }
}

impl<T: OpCode> Drop for Op<T> {
    fn drop(&mut self) {
        let Some(data) = self.data.take() else { return };
        let leftover = match self.driver.try_borrow_mut() {
            Ok(mut driver) => driver.drop_op(&mut self.slot, data),
            Err(_) => {
                // Only reachable if an op is dropped from inside the driver itself, which the
                // driver never does. Leaking is the only choice that cannot be a use-after-free.
                std::mem::forget(data);
                Leftover::None
            }
        };
        // Resources are released after the driver borrow ends: dropping them may call back
        // into the driver (e.g. a socket unregistering itself).
        leftover.release();
    }
}

/// Runs one no-op through the backend: on io_uring a NOP submission and its completion, on
/// epoll an immediate completion. The floor of per-op overhead, for benchmarks.
pub async fn nop() -> io::Result<()> {
    Op::new(Nop).await
}

/// Waits `duration` using a timer in the kernel: an IORING_OP_TIMEOUT on io_uring, a timerfd
/// on epoll. (Ordinary code wants [`crate::time::sleep`], which uses the runtime's own timers
/// and costs no syscall.) A duration longer than the kernel's timers hold (e.g.
/// `Duration::MAX`) waits forever.
pub async fn kernel_timeout(duration: Duration) -> io::Result<()> {
    Op::new(Timeout::new(duration)).await
}

/// Runs a non-blocking syscall: its count, `Wait` on EAGAIN, retried on EINTR.
///
/// `want` is the byte count asked for, where a shorter (non-zero) count means the side is
/// drained (stream sockets); 0 means no such inference.
pub(crate) fn nonblocking(
    fd: RawFd,
    interest: Interest,
    want: usize,
    mut call: impl FnMut() -> isize,
) -> EpollStep {
    loop {
        let res = call();
        if res >= 0 {
            let n = res.min(u32::MAX as isize) as u32;
            // 0 is end of stream (or an empty buffer): never "drained", or a reader would park
            // on an EOF that raises no new edge.
            if n > 0 && (n as usize) < want {
                return EpollStep::Drained(n, fd, interest);
            }
            return EpollStep::Done(Ok(n));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return EpollStep::Wait(fd, interest),
            _ => return EpollStep::Done(Err(err)),
        }
    }
}
