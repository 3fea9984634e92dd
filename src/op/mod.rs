//! One operation vocabulary for both backends.
//!
//! Each operation (accept, connect, recv, send, recvmsg, sendmsg, shutdown, close, timeout,
//! nop; the file ops in `fs`; a `spawn_blocking` job) is a small file here: one plain struct
//! that owns everything the kernel may touch while it runs and implements the backend contract
//! of `driver::contract` (its io_uring entry, its epoll syscall, and what a completion means).
//!
//! `Op<T>` is the future over one in-flight operation. It submits on first poll, files itself
//! with the cancel scopes it runs under, and on drop gives the op's resources to the driver,
//! which keeps them until the kernel is done (see `driver::slots` for the lifecycle). Beside
//! the ops live the two things every I/O object builds on: the fd handle ops hold
//! (`fd`) and what cancelled ops leave behind (`rescue`).
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
pub(crate) mod accept_multi;
pub(crate) mod blocking;
pub(crate) mod cancel;
mod close;
mod connect;
mod datagram_rescue;
pub(crate) mod fd;
pub(crate) mod fs;
pub(crate) mod multi;
mod nop;
pub(crate) mod pooled;
mod recv;
mod recv_msg;
pub(crate) mod rescue;
mod send;
mod send_msg;
pub(crate) mod send_zc;
mod shutdown;
mod timeout;

pub(crate) use accept::Accept;
pub use cancel::Cancelled;
pub(crate) use close::Close;
pub(crate) use connect::Connect;
pub(crate) use datagram_rescue::{recv_rescued, DatagramRescue};
pub(crate) use fd::SharedFd;
pub(crate) use nop::Nop;
pub(crate) use recv::Recv;
pub(crate) use recv_msg::Received;
pub(crate) use send::Send;
pub(crate) use send_msg::SendMsg;
pub(crate) use shutdown::Shutdown;
pub(crate) use timeout::Timeout;

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::driver::{Driver, EpollStep, FdKey, Interest, Leftover, OpCode, OpSlot};

/// The future over one operation.
pub(crate) struct Op<T: OpCode> {
    driver: Rc<RefCell<Driver>>,
    slot: OpSlot,
    data: Option<T>,
    /// The cancel scopes the op is filed with (while it is in the kernel). Boxed: rare, and
    /// every op future (so every parked connection's task) would carry its size.
    filed: Option<Box<cancel::Filed>>,
    /// Its fd was made for the other backend: the first poll fails.
    refused: bool,
}

// An Op is never structurally pinned: it only holds its data and a slot index.
impl<T: OpCode> Unpin for Op<T> {}

impl<T: OpCode> Op<T> {
    /// An op on the current core's driver. Panics outside a runtime.
    pub fn new(data: T) -> Op<T> {
        Op {
            driver: crate::context::current_driver(),
            slot: OpSlot::default(),
            data: Some(data),
            filed: None,
            refused: false,
        }
    }

    /// An op on `fd`, on the current core's driver. Panics outside a runtime. Refused (its
    /// first poll fails) if `fd` was made for the other backend: its blocking mode and its
    /// registration belong to that one.
    pub fn on(fd: &SharedFd, data: T) -> Op<T> {
        let (driver, kind) = crate::context::current_driver_and_kind();
        Op {
            driver,
            slot: OpSlot::default(),
            data: Some(data),
            filed: None,
            refused: fd.kind().is_some_and(|k| k != kind),
        }
    }

    /// The kernel's answer, as the future returns it: `-ECANCELED` (or `-EINTR`, an io-wq
    /// op's answer to a cancel) after a scope's cancel becomes that scope's error.
    fn answer(&mut self, res: io::Result<u32>) -> io::Result<u32> {
        let filed = self.filed.take();
        match res {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::EINTR)) => {
                Err(filed.and_then(|f| f.error()).unwrap_or(e))
            }
            res => res,
        }
    }
}

impl<T: OpCode> Future for Op<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T::Output> {
        let this = self.get_mut();
        let fresh = this.slot.index.is_none();
        let scoped = T::CANCELLABLE && fresh && cancel::any_entered();
        if fresh && (this.refused || scoped) {
            let err = match this.refused {
                true => Some(other_backend()),
                false => cancel::cancelled_now(),
            };
            if let Some(err) = err {
                let op = this.data.take().expect("op polled after it completed");
                return Poll::Ready(op.complete(Err(err)));
            }
        }
        let op = this.data.as_mut().expect("op polled after it completed");
        let polled = this.driver.borrow_mut().poll_op(&mut this.slot, op, cx);
        let res = match polled {
            Poll::Ready(res) => this.answer(res),
            Poll::Pending => {
                if let (true, Some(index)) = (scoped, this.slot.index) {
                    this.filed = cancel::file(&this.driver, index).map(Box::new);
                }
                return Poll::Pending;
            }
        };
        // Completing runs after the driver borrow ends: it may drop resources (e.g. a timerfd)
        // that unregister themselves from the driver.
        let op = this.data.take().expect("checked above");
        Poll::Ready(op.complete(res))
    }
}

impl<T: OpCode> Drop for Op<T> {
    fn drop(&mut self) {
        self.filed = None;
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

fn other_backend() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this socket was made on a runtime of the other backend (its blocking mode and \
         registration belong there); move it with into_std and from_std",
    )
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
/// probably drained (stream sockets); 0 means no such inference.
pub(crate) fn nonblocking(
    key: FdKey,
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
                return EpollStep::Drained(n, key, interest);
            }
            return EpollStep::Done(Ok(n));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return EpollStep::Wait(key, interest),
            _ => return EpollStep::Done(Err(err)),
        }
    }
}
