//! Send an owned buffer on a socket.
use std::io;
use std::rc::Rc;

use io_uring::{opcode, types};

use super::rescue::{RescueLink, WriteRescue};
use super::SharedFd;
use crate::buf::{BufResult, IoBuf};
use crate::driver::{EpollOp, EpollStep, FdKey, Interest, OpCode, UringCaps, UringOp, UringStep};

/// Sends the initialised bytes of `buf` (maybe not all: the count is returned). Always with
/// MSG_NOSIGNAL, so a peer that has gone away gives EPIPE, never SIGPIPE. If its future is
/// dropped while it is in the kernel, its answer goes to `rescue` (a partial send poisons the
/// stream's write side; an error goes to the next write).
pub(crate) struct Send<B> {
    fd: SharedFd,
    buf: B,
    rescue: RescueLink<WriteRescue>,
}

impl<B: IoBuf> Send<B> {
    pub fn new(fd: SharedFd, buf: B, rescue: Option<Rc<WriteRescue>>) -> Send<B> {
        Send {
            fd,
            buf,
            rescue: RescueLink::new(rescue),
        }
    }

    fn len(&self) -> u32 {
        self.buf.bytes_init().min(u32::MAX as usize) as u32
    }
}

impl<B: IoBuf> UringOp for Send<B> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Submit(
            opcode::Send::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), self.len())
                .flags(libc::MSG_NOSIGNAL)
                .build(),
        )
    }
}

impl<B: IoBuf> EpollOp for Send<B> {
    fn epoll_try(&mut self) -> EpollStep {
        let len = self.len() as usize;
        let ptr = self.buf.stable_ptr();
        let fd = self.fd.raw();
        super::nonblocking(self.fd.key(), Interest::Write, len, || {
            // SAFETY: `ptr` points at `len` initialised bytes by the IoBuf contract.
            unsafe { libc::send(fd, ptr.cast(), len, libc::MSG_NOSIGNAL) }
        })
    }

    fn readiness(&self) -> Option<(FdKey, Interest)> {
        Some((self.fd.key(), Interest::Write))
    }
}

impl<B: IoBuf> OpCode for Send<B> {
    type Output = BufResult<usize, B>;

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        (res.map(|n| n as usize), self.buf)
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
        self.rescue.orphaned();
    }

    fn finish_orphaned(self, res: io::Result<u32>) {
        self.fd.answered();
        if let Some(rescue) = self.rescue.of_orphan() {
            rescue.answered(res);
        }
    }
}
