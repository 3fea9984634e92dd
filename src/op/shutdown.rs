//! Shut down one or both directions of a socket.
use std::io;

use super::SharedFd;

use io_uring::{opcode, types};

use crate::driver::{EpollOp, EpollStep, OpCode, UringCaps, UringOp, UringStep};

/// `shutdown(2)`; on io_uring an IORING_OP_SHUTDOWN where the kernel has it (5.11), else the
/// plain syscall, which never blocks.
pub(crate) struct Shutdown {
    fd: SharedFd,
    how: i32,
}

impl Shutdown {
    pub fn new(fd: SharedFd, how: std::net::Shutdown) -> Shutdown {
        let how = match how {
            std::net::Shutdown::Read => libc::SHUT_RD,
            std::net::Shutdown::Write => libc::SHUT_WR,
            std::net::Shutdown::Both => libc::SHUT_RDWR,
        };
        Shutdown { fd, how }
    }

    fn syscall(&self) -> io::Result<u32> {
        crate::sys::syscall!(shutdown(self.fd.raw(), self.how)).map(|_| 0)
    }
}

impl UringOp for Shutdown {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        if caps.shutdown {
            UringStep::Submit(opcode::Shutdown::new(types::Fd(self.fd.raw()), self.how).build())
        } else {
            UringStep::Done(self.syscall())
        }
    }
}

impl EpollOp for Shutdown {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Done(self.syscall())
    }
}

impl OpCode for Shutdown {
    type Output = io::Result<()>;

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, res: io::Result<u32>) {
        self.fd.answered();
        drop(self.complete(res));
    }

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }
}
