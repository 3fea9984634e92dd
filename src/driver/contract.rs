//! The backend contract: what an operation must say to run on either backend.
//!
//! An operation is one plain struct that owns everything the kernel may touch while it runs
//! (its buffer, its socket address, its timespec, a clone of its fd handle). It implements
//! [`UringOp`] (the submission it becomes) and [`EpollOp`] (the non-blocking syscall to try, or
//! the readiness to wait for), and [`OpCode::complete`] turns the kernel's answer into the op's
//! output, handing owned resources back. `OpCode: UringOp + EpollOp` makes the compiler reject
//! an op that lacks either backend.
//!
//! Checklist for a new op:
//! * every pointer in its submission entry points into memory the op owns on the heap (or in
//!   `'static` memory): the op value is moved into the op table if its future is dropped;
//! * it holds the fd handle of the file it acts on (`op::SharedFd`), never a bare number, so
//!   the number cannot be closed and reused while the op is in flight;
//! * `complete` hands back every owned resource, on every result, `-ECANCELED` included;
//! * a call it hands to the blocking pool (`Blocking`) touches only memory the op owns, as an
//!   io_uring entry does, and answers a count or `-errno`;
//! * what a dropped op still produced (a cancelled accept's connection, a cancelled read's
//!   bytes) is released or handed on in `finish_orphaned`, never silently lost.
use std::io;
use std::os::fd::RawFd;

use bitflags::bitflags;
use io_uring::squeue;

use super::blocking::BlockingCall;
use super::slots::Orphan;
use crate::sys::cqe_result;

/// What the io_uring backend needs to know about the ring an op is submitted to.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct UringCaps {
    /// IORING_OP_SHUTDOWN is available (5.11).
    pub shutdown: bool,
    /// Multishot accept, buffer ring, multishot recv, SEND_ZC (see `driver::fast_path`).
    pub multishot_accept: bool,
    pub buf_ring: bool,
    pub multishot_recv: bool,
    pub send_zc: bool,
    /// The file opcodes the ring has (probed, behind the tier cap).
    pub files: FileOpcodes,
}

bitflags! {
    /// File opcodes; an op whose opcode the ring lacks runs on the blocking pool instead.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub(crate) struct FileOpcodes: u16 {
        const OPENAT = 1 << 0;
        const READ = 1 << 1;
        const WRITE = 1 << 2;
        const FSYNC = 1 << 3;
        const STATX = 1 << 4;
        const FALLOCATE = 1 << 5;
        /// 5.11.
        const RENAMEAT = 1 << 6;
        /// 5.11.
        const UNLINKAT = 1 << 7;
        /// 5.15.
        const MKDIRAT = 1 << 8;
        /// 6.9.
        const FTRUNCATE = 1 << 9;
    }
}

/// What an op becomes on io_uring.
pub(crate) enum UringStep {
    /// Submit this entry (its `user_data` is set by the driver).
    Submit(squeue::Entry),
    /// Done without the ring (e.g. an opcode this kernel lacks, done by a plain syscall that
    /// never blocks).
    Done(io::Result<u32>),
    /// Run this on the blocking pool (an opcode this kernel lacks, or a `spawn_blocking` job).
    /// Every pointer it uses points at memory the op owns, as for `Submit`.
    Blocking(BlockingCall),
}

/// The io_uring half of an op.
pub(crate) trait UringOp {
    /// The submission entry. Every pointer in it must point at memory the op owns on the heap
    /// (or in `'static` memory), so that it stays valid when the op is moved into the op table.
    fn uring_entry(&mut self, caps: &UringCaps) -> UringStep;
}

/// Which readiness an epoll op waits for; also the index of a side in `[T; 2]` arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Interest {
    /// EPOLLIN (and hang-ups and errors).
    Read = 0,
    /// EPOLLOUT (and hang-ups and errors).
    Write = 1,
}

/// The fd an epoll op waits on: its number and the identity of the open file behind it
/// (numbers are reused at once; the identity is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FdKey {
    pub fd: RawFd,
    pub id: u64,
}

/// What one non-blocking attempt of an op gave.
pub(crate) enum EpollStep {
    /// The syscall finished: a count, or the error.
    Done(io::Result<u32>),
    /// The syscall would block: park until the fd has this readiness, then try again.
    Wait(FdKey, Interest),
    /// The syscall would block and the op does not wait (a pooled read's try, which holds a
    /// buffer): that side is drained; the op ends with `EAGAIN`.
    WouldBlock(FdKey, Interest),
    /// The syscall moved fewer bytes than asked (a count above zero): that side of the fd is
    /// probably drained, so the next op on it may park without trying first.
    Drained(u32, FdKey, Interest),
    /// The syscall may sleep whatever the fd's readiness (a regular file's read, an fsync):
    /// run this on the blocking pool; the op stays filed until its answer comes, and keeps
    /// everything the call touches alive until then, as on io_uring.
    Blocking(BlockingCall),
}

/// The epoll half of an op: the non-blocking syscall to try.
pub(crate) trait EpollOp {
    /// Tries the syscall once, without blocking.
    fn epoll_try(&mut self) -> EpollStep;

    /// The fd and side this op needs ready, if the driver may skip a doomed first attempt
    /// when it knows that side is drained (the syscall would only say EAGAIN).
    fn readiness(&self) -> Option<(FdKey, Interest)> {
        None
    }

    /// Whether the op is a readiness wait (it tries no syscall itself): it parks on
    /// [`readiness`](EpollOp::readiness) when the side is known drained, and also after an
    /// EAGAIN there whatever the hang-up state.
    fn parks_after_eagain(&self) -> bool {
        false
    }
}

/// An operation, for both backends.
pub(crate) trait OpCode: UringOp + EpollOp + Sized + 'static {
    /// What the caller gets back, including every owned resource.
    type Output;

    /// Whether a cancel scope may cancel this op (a close, once started, always runs).
    const CANCELLABLE: bool = true;

    /// Its blocking-pool call owns everything it touches (a `spawn_blocking` job): dropped
    /// while a pool thread runs it, the op is let go at once (nothing waits for its answer)
    /// instead of keeping its resources until then.
    const DETACHED_ON_DROP: bool = false;

    /// Turns the kernel's answer into the output.
    fn complete(self, res: io::Result<u32>) -> Self::Output;

    /// The completion's flags (io_uring), given before `complete` or `finish_orphaned`: e.g.
    /// which provided buffer a buffer-select recv took.
    fn take_flags(&mut self, _flags: u32) {}

    /// The entry built by `uring_entry` could not be queued: take back whatever was handed
    /// over to it (e.g. an fd to close).
    fn submit_failed(&mut self) {}

    /// The future was dropped while the op is in the kernel; its resources are about to be
    /// parked until the completion arrives (which then calls
    /// [`finish_orphaned`](OpCode::finish_orphaned)).
    fn on_orphaned(&mut self) {}

    /// The completion of an op whose future was dropped. By default the op is completed and
    /// the output dropped, which releases what it produced (a cancelled accept's new
    /// connection is closed here).
    fn finish_orphaned(self, res: io::Result<u32>) {
        drop(self.complete(res));
    }
}

impl<T: OpCode> Orphan for T {
    fn finish(mut self: Box<Self>, res: i32, flags: u32) {
        self.take_flags(flags);
        (*self).finish_orphaned(cqe_result(res));
    }
}
