//! Receive from a socket into an owned buffer.
use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, types};

use super::{EpollOp, EpollStep, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::buf::{BufResult, IoBufMut};

/// Receives up to `buf.bytes_total()` bytes at the start of `buf`.
pub(crate) struct Recv<B> {
    fd: RawFd,
    buf: B,
}

impl<B: IoBufMut> Recv<B> {
    pub fn new(fd: RawFd, buf: B) -> Recv<B> {
        Recv { fd, buf }
    }

    fn len(&self) -> u32 {
        self.buf.bytes_total().min(u32::MAX as usize) as u32
    }
}

impl<B: IoBufMut> UringOp for Recv<B> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let len = self.len();
        UringStep::Submit(
            opcode::Recv::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len).build(),
        )
    }
}

impl<B: IoBufMut> EpollOp for Recv<B> {
    fn epoll_try(&mut self) -> EpollStep {
        let len = self.len() as usize;
        let ptr = self.buf.stable_mut_ptr();
        super::nonblocking(self.fd, Interest::Read, || {
            // SAFETY: `ptr` is writable for `len` bytes by the IoBufMut contract.
            unsafe { libc::recv(self.fd, ptr.cast(), len, 0) }
        })
    }
}

impl<B: IoBufMut> OpCode for Recv<B> {
    type Output = BufResult<usize, B>;

    fn complete(mut self, res: io::Result<u32>) -> Self::Output {
        let res = res.map(|n| {
            // SAFETY: the kernel wrote `n` bytes at the start of the buffer.
            unsafe { self.buf.set_init(n as usize) };
            n as usize
        });
        (res, self.buf)
    }
}
