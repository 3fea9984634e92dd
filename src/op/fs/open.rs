//! Open a file (`openat(2)`).
use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, types};

use super::pool_call;
use crate::driver::blocking::{BlockingCall, SendPtr};
use crate::driver::{EpollOp, EpollStep, FileOpcodes, OpCode, UringCaps, UringOp, UringStep};

/// Opens `path` (relative to the working directory) with `flags` (`O_CLOEXEC` always added)
/// and `mode`. A dropped open whose file was opened anyway closes it when the answer comes.
pub(crate) struct Open {
    path: CString,
    flags: i32,
    mode: libc::mode_t,
}

impl Open {
    pub fn new(path: CString, flags: i32, mode: libc::mode_t) -> Open {
        Open {
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        }
    }

    fn blocking_call(&self) -> BlockingCall {
        let (path, flags, mode) = (
            SendPtr(self.path.as_ptr().cast_mut()),
            self.flags,
            self.mode,
        );
        pool_call(move || {
            // SAFETY: the path is a NUL-terminated string owned by the op, which stays filed
            // until this call's answer is taken.
            unsafe {
                libc::openat(libc::AT_FDCWD, path.get(), flags, mode as libc::c_uint) as isize
            }
        })
    }
}

impl UringOp for Open {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        if !caps.files.contains(FileOpcodes::OPENAT) {
            return UringStep::Blocking(self.blocking_call());
        }
        let entry = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build();
        UringStep::Submit(entry)
    }
}

impl EpollOp for Open {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl OpCode for Open {
    type Output = io::Result<OwnedFd>;

    fn complete(self, res: io::Result<u32>) -> io::Result<OwnedFd> {
        // SAFETY: a successful open answers a new fd that nothing else owns.
        res.map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}
