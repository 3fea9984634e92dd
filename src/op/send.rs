//! Send an owned buffer on a socket.
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::{EpollOp, EpollStep, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::buf::{BufResult, IoBuf};

/// Sends the initialised bytes of `buf` (maybe not all: the count is returned). Always with
/// MSG_NOSIGNAL, so a peer that has gone away gives EPIPE, never SIGPIPE.
pub(crate) struct Send<B> {
    fd: RawFd,
    buf: B,
}

impl<B: IoBuf> Send<B> {
    pub fn new(fd: RawFd, buf: B) -> Send<B> {
        Send { fd, buf }
    }

    fn len(&self) -> u32 {
        self.buf.bytes_init().min(u32::MAX as usize) as u32
    }
}

impl<B: IoBuf> UringOp for Send<B> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Submit(
            opcode::Send::new(types::Fd(self.fd), self.buf.stable_ptr(), self.len())
                .flags(libc::MSG_NOSIGNAL)
                .build(),
        )
    }
}

impl<B: IoBuf> EpollOp for Send<B> {
    fn epoll_try(&mut self) -> EpollStep {
        let len = self.len() as usize;
        let ptr = self.buf.stable_ptr();
        super::nonblocking(self.fd, Interest::Write, len, || {
            // SAFETY: `ptr` points at `len` initialised bytes by the IoBuf contract.
            unsafe { libc::send(self.fd, ptr.cast(), len, libc::MSG_NOSIGNAL) }
        })
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Write))
    }
}

impl<B: IoBuf> OpCode for Send<B> {
    type Output = BufResult<usize, B>;

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        (res.map(|n| n as usize), self.buf)
    }
}
