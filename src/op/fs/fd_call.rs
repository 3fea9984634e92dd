//! The file ops that name only an fd and numbers: fsync, fdatasync, fallocate, ftruncate.
use std::io;

use io_uring::{opcode, squeue, types};

use super::pool_call;
use crate::driver::blocking::BlockingCall;
use crate::driver::{EpollOp, EpollStep, FileOpcodes, OpCode, UringCaps, UringOp, UringStep};
use crate::op::SharedFd;

/// What an [`FdCall`] does.
#[derive(Clone, Copy, Debug)]
enum Call {
    /// `fsync(2)`, or `fdatasync(2)` when `data_only`.
    Sync { data_only: bool },
    /// `fallocate(2)`.
    Allocate { pos: u64, len: u64, mode: i32 },
    /// `ftruncate(2)`.
    Truncate { len: u64 },
}

/// A syscall on a file that touches no memory of ours; its handle keeps the fd open.
pub(crate) struct FdCall {
    fd: SharedFd,
    call: Call,
}

impl FdCall {
    pub fn sync(fd: SharedFd, data_only: bool) -> FdCall {
        FdCall {
            fd,
            call: Call::Sync { data_only },
        }
    }

    pub fn allocate(fd: SharedFd, pos: u64, len: u64, mode: i32) -> FdCall {
        FdCall {
            fd,
            call: Call::Allocate { pos, len, mode },
        }
    }

    pub fn truncate(fd: SharedFd, len: u64) -> FdCall {
        FdCall {
            fd,
            call: Call::Truncate { len },
        }
    }

    fn blocking_call(&self) -> BlockingCall {
        let (fd, call) = (self.fd.raw(), self.call);
        pool_call(move || {
            // SAFETY: plain syscalls on an fd the op's handle keeps open; they touch no memory.
            let res = unsafe {
                match call {
                    Call::Sync { data_only: true } => libc::fdatasync(fd),
                    Call::Sync { data_only: false } => libc::fsync(fd),
                    Call::Allocate { pos, len, mode } => {
                        libc::fallocate(fd, mode, pos as libc::off_t, len as libc::off_t)
                    }
                    Call::Truncate { len } => libc::ftruncate(fd, len as libc::off_t),
                }
            };
            res as isize
        })
    }

    /// The io_uring entry, if the ring has the opcode.
    fn entry(&self, files: FileOpcodes) -> Option<squeue::Entry> {
        let fd = types::Fd(self.fd.raw());
        match self.call {
            Call::Sync { data_only } if files.contains(FileOpcodes::FSYNC) => {
                let flags = match data_only {
                    true => types::FsyncFlags::DATASYNC,
                    false => types::FsyncFlags::empty(),
                };
                Some(opcode::Fsync::new(fd).flags(flags).build())
            }
            Call::Allocate { pos, len, mode } if files.contains(FileOpcodes::FALLOCATE) => Some(
                opcode::Fallocate::new(fd, len)
                    .offset(pos)
                    .mode(mode)
                    .build(),
            ),
            Call::Truncate { len } if files.contains(FileOpcodes::FTRUNCATE) => {
                Some(opcode::Ftruncate::new(fd, len).build())
            }
            _ => None,
        }
    }
}

impl UringOp for FdCall {
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep {
        match self.entry(caps.files) {
            Some(entry) => UringStep::Submit(entry),
            None => UringStep::Blocking(self.blocking_call()),
        }
    }
}

impl EpollOp for FdCall {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl OpCode for FdCall {
    type Output = io::Result<()>;

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, _: io::Result<u32>) {
        self.fd.answered();
    }
}
