//! Receive from a socket into an owned buffer.
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use io_uring::{opcode, types};

use super::{EpollOp, EpollStep, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::buf::{BufResult, IoBufMut};
use crate::net::ReadRescue;

/// Receives up to `buf.bytes_total()` bytes at the start of `buf`. If its future is dropped
/// while it is in the kernel and bytes arrive anyway, they go to `rescue` (the stream's next
/// read returns them).
pub(crate) struct Recv<B> {
    fd: RawFd,
    buf: B,
    rescue: Option<Rc<ReadRescue>>,
    orphaned: bool,
}

impl<B: IoBufMut> Recv<B> {
    pub fn new(fd: RawFd, buf: B, rescue: Option<Rc<ReadRescue>>) -> Recv<B> {
        Recv {
            fd,
            buf,
            rescue,
            orphaned: false,
        }
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
        super::nonblocking(self.fd, Interest::Read, len, || {
            // SAFETY: `ptr` is writable for `len` bytes by the IoBufMut contract.
            unsafe { libc::recv(self.fd, ptr.cast(), len, 0) }
        })
    }

    fn readiness(&self) -> Option<(RawFd, Interest)> {
        Some((self.fd, Interest::Read))
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

    fn on_orphaned(&mut self) {
        if let Some(r) = &self.rescue {
            self.orphaned = true;
            r.orphaned();
        }
    }

    fn finish_orphaned(self, res: io::Result<u32>) {
        let (Some(rescue), true) = (self.rescue, self.orphaned) else {
            return;
        };
        let n = res.map_or(0, |n| n as usize);
        // SAFETY: the kernel wrote `n` bytes at the start of the buffer, which is
        // writable for `bytes_total() >= n` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(self.buf.stable_ptr(), n) };
        rescue.answered(bytes);
    }
}
