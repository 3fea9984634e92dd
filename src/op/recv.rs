//! Receive from a socket into an owned buffer.
use std::io;
use std::rc::Rc;

use io_uring::{opcode, types};

use super::rescue::{ReadRescue, RescueLink};
use super::SharedFd;
use crate::buf::{BufResult, IoBufMut};
use crate::driver::{EpollOp, EpollStep, FdKey, Interest, OpCode, UringCaps, UringOp, UringStep};

/// Receives up to `buf.bytes_total()` bytes at the start of `buf`. If its future is dropped
/// while it is in the kernel, what it still gets (bytes or an error) goes to `rescue`, and the
/// stream's next read returns it.
pub(crate) struct Recv<B> {
    fd: SharedFd,
    buf: B,
    rescue: RescueLink<ReadRescue>,
    /// epoll: end with `EAGAIN` instead of parking with the buffer (a pooled read's try,
    /// after a readiness wait).
    nowait: bool,
}

impl<B: IoBufMut> Recv<B> {
    pub fn new(fd: SharedFd, buf: B, rescue: Option<Rc<ReadRescue>>) -> Recv<B> {
        Recv {
            fd,
            buf,
            rescue: RescueLink::new(rescue),
            nowait: false,
        }
    }

    /// On epoll, ends with `EAGAIN` rather than wait holding the buffer.
    pub fn nowait(mut self) -> Recv<B> {
        self.nowait = true;
        self
    }

    fn len(&self) -> u32 {
        self.buf.bytes_total().min(u32::MAX as usize) as u32
    }
}

impl<B: IoBufMut> UringOp for Recv<B> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let len = self.len();
        UringStep::Submit(
            opcode::Recv::new(types::Fd(self.fd.raw()), self.buf.stable_mut_ptr(), len).build(),
        )
    }
}

impl<B: IoBufMut> EpollOp for Recv<B> {
    fn epoll_try(&mut self) -> EpollStep {
        let len = self.len() as usize;
        let ptr = self.buf.stable_mut_ptr();
        let fd = self.fd.raw();
        let step = super::nonblocking(self.fd.key(), Interest::Read, len, || {
            // SAFETY: `ptr` is writable for `len` bytes by the IoBufMut contract.
            unsafe { libc::recv(fd, ptr.cast(), len, 0) }
        });
        match step {
            EpollStep::Wait(key, interest) if self.nowait => EpollStep::WouldBlock(key, interest),
            step => step,
        }
    }

    fn readiness(&self) -> Option<(FdKey, Interest)> {
        (!self.nowait).then(|| (self.fd.key(), Interest::Read))
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
        self.fd.orphaned();
        self.rescue.orphaned();
    }

    fn finish_orphaned(self, res: io::Result<u32>) {
        self.fd.answered();
        let Some(rescue) = self.rescue.of_orphan() else {
            return;
        };
        let res = res.map(|n| {
            // SAFETY: the kernel wrote `n` bytes at the start of the buffer, which is
            // writable for `bytes_total() >= n` bytes.
            unsafe { std::slice::from_raw_parts(self.buf.stable_ptr(), n as usize) }
        });
        rescue.answered(res);
    }
}
