//! Close a file descriptor.
use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use io_uring::{opcode, types};

use super::{EpollOp, EpollStep, OpCode, UringCaps, UringOp, UringStep};

/// Closes an fd the op owns (already unregistered from epoll by its owner). Once submitted the kernel closes it even if the future is
/// dropped; an op dropped before it was submitted closes the fd synchronously.
pub(crate) struct Close {
    fd: Option<OwnedFd>,
}

impl Close {
    pub fn new(fd: OwnedFd) -> Close {
        Close { fd: Some(fd) }
    }

    fn take(&mut self) -> RawFd {
        self.fd.take().expect("close submitted twice").into_raw_fd()
    }
}

impl UringOp for Close {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Submit(opcode::Close::new(types::Fd(self.take())).build())
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

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }
}
