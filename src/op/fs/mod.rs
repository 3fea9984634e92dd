//! File operations: each runs on io_uring where the ring has its opcode, else (and always on
//! epoll, where a regular file cannot be waited for) as one syscall on the blocking pool.
//!
//! Every op owns what the kernel or the pool thread touches (the buffer, the path, the statx
//! record, a clone of the file's fd handle), so a dropped op keeps it all until its answer
//! comes, on both backends.
mod fd_call;
mod open;
mod path;
mod read_at;
mod statx;
mod write_at;

pub(crate) use fd_call::FdCall;
pub(crate) use open::Open;
pub(crate) use path::PathCall;
pub(crate) use read_at::ReadAt;
pub(crate) use statx::Statx;
pub(crate) use write_at::WriteAt;

use std::io;

use crate::driver::blocking::BlockingCall;

/// A syscall for a pool thread, answered as a CQE would be (a count or `-errno`), retried on
/// EINTR.
pub(crate) fn pool_call(mut call: impl FnMut() -> isize + Send + 'static) -> BlockingCall {
    Box::new(move || loop {
        let res = call();
        if res >= 0 {
            return res.min(i32::MAX as isize) as i32;
        }
        let errno = io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
        if errno != libc::EINTR {
            return -errno;
        }
    })
}

/// The length of an I/O on `len` bytes, as one io_uring entry or syscall takes it (the kernel
/// moves at most `MAX_RW_COUNT`, just under 2 GiB, per call anyway).
pub(crate) fn io_len(len: usize) -> u32 {
    len.min(i32::MAX as usize) as u32
}
