//! Write to a file at an offset from an owned buffer.
use std::io;

use io_uring::{opcode, types};

use super::{io_len, pool_call};
use crate::buf::{BufResult, IoBuf};
use crate::driver::blocking::{BlockingCall, SendPtr};
use crate::driver::{EpollOp, EpollStep, FileOpcodes, OpCode, UringCaps, UringOp, UringStep};
use crate::op::SharedFd;

/// Writes the initialised bytes of `buf` at `pos` (`pwrite(2)`).
pub(crate) struct WriteAt<B> {
    fd: SharedFd,
    buf: B,
    pos: u64,
}

impl<B: IoBuf> WriteAt<B> {
    pub fn new(fd: SharedFd, buf: B, pos: u64) -> WriteAt<B> {
        WriteAt { fd, buf, pos }
    }

    fn blocking_call(&mut self) -> BlockingCall {
        let (fd, len, pos) = (self.fd.raw(), io_len(self.buf.bytes_init()), self.pos);
        let ptr = SendPtr(self.buf.stable_ptr().cast_mut());
        pool_call(move || {
            // SAFETY: the buffer holds `len` initialised bytes (IoBuf) and is owned by the op,
            // which stays filed until this call's answer is taken; the op's fd handle keeps
            // `fd` open as long.
            unsafe { libc::pwrite(fd, ptr.get().cast(), len as usize, pos as libc::off_t) }
        })
    }
}

impl<B: IoBuf> UringOp for WriteAt<B> {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        if self.pos > i64::MAX as u64 {
            // io_uring reads offset -1 as "the file position"; pread(2) calls it EINVAL.
            return UringStep::Done(Err(io::Error::from_raw_os_error(libc::EINVAL)));
        }
        if !caps.files.contains(FileOpcodes::WRITE) {
            return UringStep::Blocking(self.blocking_call());
        }
        let len = io_len(self.buf.bytes_init());
        let entry = opcode::Write::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
            .offset(self.pos)
            .build();
        UringStep::Submit(entry)
    }
}

impl<B: IoBuf> EpollOp for WriteAt<B> {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl<B: IoBuf> OpCode for WriteAt<B> {
    type Output = BufResult<usize, B>;

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        (res.map(|n| n as usize), self.buf)
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, _: io::Result<u32>) {
        self.fd.answered();
    }
}
