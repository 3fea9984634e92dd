//! Accept one connection on a listening socket.
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::SharedFd;

use io_uring::{opcode, types};

use crate::driver::{EpollOp, EpollStep, FdKey, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::sys::RawAddr;

/// Accepts a connection; the new fd is close-on-exec (and non-blocking for epoll). If the
/// future is dropped but the kernel still accepts, the orphaned op closes the new fd.
pub(crate) struct Accept {
    fd: SharedFd,
    /// Written by the kernel; boxed so it does not move while the accept is in flight.
    addr: Box<RawAddr>,
}

impl Accept {
    pub fn new(fd: SharedFd) -> Accept {
        Accept {
            fd,
            addr: RawAddr::empty(),
        }
    }
}

impl UringOp for Accept {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let addr = self.addr.as_mut_ptr();
        UringStep::Submit(
            opcode::Accept::new(types::Fd(self.fd.raw()), addr, &mut self.addr.len)
                .flags(libc::SOCK_CLOEXEC)
                .build(),
        )
    }
}

impl EpollOp for Accept {
    fn epoll_try(&mut self) -> EpollStep {
        let fd = self.fd.raw();
        super::nonblocking(self.fd.key(), Interest::Read, 0, || {
            self.addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let addr = self.addr.as_mut_ptr();
            // SAFETY: `addr` and `len` point into our boxed RawAddr, sized by `len`.
            unsafe {
                libc::accept4(
                    fd,
                    addr,
                    &mut self.addr.len,
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                ) as isize
            }
        })
    }

    fn readiness(&self) -> Option<(FdKey, Interest)> {
        Some((self.fd.key(), Interest::Read))
    }
}

impl OpCode for Accept {
    /// The new fd and the peer's address as the kernel wrote it (any family).
    type Output = io::Result<(OwnedFd, Box<RawAddr>)>;

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, res: io::Result<u32>) {
        self.fd.answered();
        drop(self.complete(res));
    }

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        // SAFETY: a successful accept returns a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(res? as RawFd) };
        Ok((fd, self.addr))
    }
}
