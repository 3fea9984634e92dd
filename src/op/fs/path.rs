//! The file ops that name paths: unlink (and rmdir), rename, mkdir.
use std::ffi::CString;
use std::io;

use io_uring::{opcode, squeue, types};

use super::pool_call;
use crate::driver::blocking::{BlockingCall, SendPtr};
use crate::driver::{EpollOp, EpollStep, FileOpcodes, OpCode, UringCaps, UringOp, UringStep};

/// What a [`PathCall`] does.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// `unlinkat(2)`; `AT_REMOVEDIR` in `flags` removes an empty directory.
    Unlink { flags: i32 },
    /// `renameat(2)` from the first path to the second.
    Rename,
    /// `mkdirat(2)`.
    Mkdir { mode: libc::mode_t },
}

/// A syscall on one or two paths, relative to the working directory. The op owns the path
/// strings (their heap memory does not move with the op).
pub(crate) struct PathCall {
    path: CString,
    to: CString,
    call: Call,
}

impl PathCall {
    pub fn unlink(path: CString, dir: bool) -> PathCall {
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        PathCall {
            path,
            to: CString::default(),
            call: Call::Unlink { flags },
        }
    }

    pub fn rename(from: CString, to: CString) -> PathCall {
        PathCall {
            path: from,
            to,
            call: Call::Rename,
        }
    }

    pub fn mkdir(path: CString, mode: libc::mode_t) -> PathCall {
        PathCall {
            path,
            to: CString::default(),
            call: Call::Mkdir { mode },
        }
    }

    fn blocking_call(&self) -> BlockingCall {
        let (path, to) = (
            SendPtr(self.path.as_ptr().cast_mut()),
            SendPtr(self.to.as_ptr().cast_mut()),
        );
        let call = self.call;
        pool_call(move || {
            let (path, to) = (path.get().cast_const(), to.get().cast_const());
            const HERE: libc::c_int = libc::AT_FDCWD;
            // SAFETY: the paths are NUL-terminated strings owned by the op, which stays filed
            // until this call's answer is taken.
            let res = unsafe {
                match call {
                    Call::Unlink { flags } => libc::unlinkat(HERE, path, flags),
                    Call::Rename => libc::renameat(HERE, path, HERE, to),
                    Call::Mkdir { mode } => libc::mkdirat(HERE, path, mode),
                }
            };
            res as isize
        })
    }

    /// The io_uring entry, if the ring has the opcode (5.11 and 5.15).
    fn entry(&self, files: FileOpcodes) -> Option<squeue::Entry> {
        let here = types::Fd(libc::AT_FDCWD);
        let path = self.path.as_ptr();
        match self.call {
            Call::Unlink { flags } if files.contains(FileOpcodes::UNLINKAT) => {
                Some(opcode::UnlinkAt::new(here, path).flags(flags).build())
            }
            Call::Rename if files.contains(FileOpcodes::RENAMEAT) => {
                Some(opcode::RenameAt::new(here, path, here, self.to.as_ptr()).build())
            }
            Call::Mkdir { mode } if files.contains(FileOpcodes::MKDIRAT) => {
                Some(opcode::MkDirAt::new(here, path).mode(mode).build())
            }
            _ => None,
        }
    }
}

impl UringOp for PathCall {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        match self.entry(caps.files) {
            Some(entry) => UringStep::Submit(entry),
            None => UringStep::Blocking(self.blocking_call()),
        }
    }
}

impl EpollOp for PathCall {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl OpCode for PathCall {
    type Output = io::Result<()>;

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }
}
