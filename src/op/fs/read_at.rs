//! Read from a file at an offset into an owned buffer.
use std::io;

use io_uring::{opcode, types};

use super::{io_len, pool_call};
use crate::buf::{BufResult, IoBufMut};
use crate::driver::blocking::{BlockingCall, SendPtr};
use crate::driver::{EpollOp, EpollStep, FileOpcodes, OpCode, UringCaps, UringOp, UringStep};
use crate::op::SharedFd;

/// Reads up to `buf.bytes_total()` bytes at `pos` into the start of `buf` (`pread(2)`).
pub(crate) struct ReadAt<B> {
    fd: SharedFd,
    buf: B,
    pos: u64,
}

impl<B: IoBufMut> ReadAt<B> {
    pub fn new(fd: SharedFd, buf: B, pos: u64) -> ReadAt<B> {
        ReadAt { fd, buf, pos }
    }

    fn blocking_call(&mut self) -> BlockingCall {
        let (fd, len, pos) = (self.fd.raw(), io_len(self.buf.bytes_total()), self.pos);
        let ptr = SendPtr(self.buf.stable_mut_ptr());
        pool_call(move || {
            // SAFETY: the buffer is writable for `len` bytes (IoBufMut) and owned by the op,
            // which stays filed until this call's answer is taken; the op's fd handle keeps
            // `fd` open as long.
            unsafe { libc::pread(fd, ptr.get().cast(), len as usize, pos as libc::off_t) }
        })
    }
}

impl<B: IoBufMut> UringOp for ReadAt<B> {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        if self.pos > i64::MAX as u64 {
            // io_uring reads offset -1 as "the file position"; pread(2) calls it EINVAL.
            return UringStep::Done(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        if !caps.files.contains(FileOpcodes::READ) {
            return UringStep::Blocking(self.blocking_call());
        }
        let len = io_len(self.buf.bytes_total());
        let entry = opcode::Read::new(types::Fd(self.fd.raw()), self.buf.stable_mut_ptr(), len)
            .offset(self.pos)
            .build();
        UringStep::Submit(entry)
    }
}

impl<B: IoBufMut> EpollOp for ReadAt<B> {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl<B: IoBufMut> OpCode for ReadAt<B> {
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
    }

    fn finish_orphaned(self, _: io::Result<u32>) {
        self.fd.answered();
    }
}
