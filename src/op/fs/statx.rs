//! File metadata (`statx(2)`).
use std::ffi::CString;
use std::io;

use io_uring::{opcode, types};

use super::pool_call;
use crate::driver::blocking::{BlockingCall, SendPtr};
use crate::driver::{EpollOp, EpollStep, FileOpcodes, OpCode, UringCaps, UringOp, UringStep};
use crate::op::SharedFd;

/// What `statx` is asked for: the basic fields and the birth time.
const MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// The metadata of an open file, or of a path (following symlinks). The op owns the record
/// the kernel writes into and the path string.
pub(crate) struct Statx {
    /// The file, for an fd's metadata (`AT_EMPTY_PATH`); its handle keeps the fd open.
    fd: Option<SharedFd>,
    path: CString,
    flags: i32,
    record: Box<libc::statx>,
}

impl Statx {
    pub fn of_fd(fd: SharedFd) -> Statx {
        Statx::new(Some(fd), CString::default(), libc::AT_EMPTY_PATH)
    }

    pub fn of_path(path: CString) -> Statx {
        Statx::new(None, path, 0)
    }

    fn new(fd: Option<SharedFd>, path: CString, flags: i32) -> Statx {
        Statx {
            fd,
            path,
            flags: flags | libc::AT_STATX_SYNC_AS_STAT,
            // SAFETY: statx is plain integers, for which all zeroes is a valid value.
            record: Box::new(unsafe { std::mem::zeroed() }),
        }
    }

    fn dirfd(&self) -> i32 {
        self.fd.as_ref().map_or(libc::AT_FDCWD, |fd| fd.raw())
    }

    fn blocking_call(&mut self) -> BlockingCall {
        let (dirfd, flags) = (self.dirfd(), self.flags);
        let path = SendPtr(self.path.as_ptr().cast_mut());
        let record = SendPtr(&mut *self.record as *mut libc::statx);
        pool_call(move || {
            // SAFETY: the path string and the record are owned by the op, which stays filed
            // until this call's answer is taken; its fd handle keeps `dirfd` open as long.
            unsafe { libc::statx(dirfd, path.get(), flags, MASK, record.get()) as isize }
        })
    }
}

impl UringOp for Statx {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        if !caps.files.contains(FileOpcodes::STATX) {
            return UringStep::Blocking(self.blocking_call());
        }
        let record = (&mut *self.record as *mut libc::statx).cast::<types::statx>();
        let entry = opcode::Statx::new(types::Fd(self.dirfd()), self.path.as_ptr(), record)
            .flags(self.flags)
            .mask(MASK)
            .build();
        UringStep::Submit(entry)
    }
}

impl EpollOp for Statx {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl OpCode for Statx {
    type Output = io::Result<libc::statx>;

    fn complete(self, res: io::Result<u32>) -> io::Result<libc::statx> {
        res.map(|_| *self.record)
    }

    fn on_orphaned(&mut self) {
        if let Some(fd) = &self.fd {
            fd.orphaned();
        }
    }

    fn finish_orphaned(self, _: io::Result<u32>) {
        if let Some(fd) = &self.fd {
            fd.answered();
        }
    }
}
