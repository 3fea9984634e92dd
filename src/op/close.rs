//! Close a file descriptor.
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use crate::driver::{EpollOp, EpollStep, OpCode, UringCaps, UringOp, UringStep};

/// Closes an fd the op owns (already unregistered from epoll by its owner). Once submitted the
/// kernel closes it even if the future is dropped; an op dropped before it was submitted, or
/// whose entry could not be queued, or whose close was cancelled before it ran, closes the fd
/// synchronously: the fd is never leaked.
pub(crate) struct Close {
    fd: Option<OwnedFd>,
    /// The fd handed to a queued CLOSE entry.
    handed: Option<RawFd>,
}

impl Close {
    pub fn new(fd: OwnedFd) -> Close {
        Close {
            fd: Some(fd),
            handed: None,
        }
    }

    fn take(&mut self) -> RawFd {
        self.fd.take().expect("close submitted twice").into_raw_fd()
    }
}

impl UringOp for Close {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let fd = self.take();
        self.handed = Some(fd);
        UringStep::Submit(opcode::Close::new(types::Fd(fd)).build())
    }
}

impl EpollOp for Close {
    fn epoll_try(&mut self) -> EpollStep {
        let fd = self.take();
        // close(2) is not retried on EINTR: on Linux the fd is released either way.
        EpollStep::Done(crate::sys::syscall!(close(fd)).map(|_| 0))
    }
}

impl OpCode for Close {
    type Output = io::Result<()>;
    /// A close, once started, runs: a cancelled one would leave the fd to close here anyway.
    const CANCELLABLE: bool = false;

    fn submit_failed(&mut self) {
        if let Some(fd) = self.handed.take() {
            // SAFETY: the entry carrying `fd` never reached the queue, so we still own it; it
            // is closed when `self.fd` drops.
            self.fd = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        if let (Err(e), Some(fd)) = (&res, self.handed) {
            if e.raw_os_error() == Some(libc::ECANCELED) {
                // The CLOSE was cancelled before it ran: the fd is still ours to close.
                // SAFETY: the kernel did not close `fd`, and nothing else owns it.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        res.map(drop)
    }
}
