//! [`File`]: an open file, read and written at offsets with owned buffers.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use super::{Metadata, OpenOptions};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::op::fs::{FdCall, ReadAt, Statx, WriteAt};
use crate::op::{Close, Op, SharedFd};

/// An open file. Reads and writes name their offset (`pread`/`pwrite`), so one `File` can
/// serve many reads at once from one task or several; the file has no cursor to share.
///
/// Dropping a `File` closes it at once (a `close(2)` on the core, after any op still using
/// it is answered); [`close`](File::close) closes it as an op and reports the error.
#[derive(Debug)]
pub struct File {
    fd: SharedFd,
}

impl File {
    /// Opens `path` for reading.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens `path` for writing, creating it or truncating it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    pub(crate) fn from_owned(fd: OwnedFd) -> File {
        File {
            fd: SharedFd::new(fd),
        }
    }

    /// Wraps a file opened by the standard library.
    pub fn from_std(file: std::fs::File) -> File {
        File::from_owned(file.into())
    }

    /// Reads up to `buf.bytes_total()` bytes at offset `pos` into the start of `buf`: the
    /// count (0 at or past the end of the file) and the buffer.
    pub async fn read_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        Op::new(ReadAt::new(self.fd.clone(), buf, pos)).await
    }

    /// Writes `buf`'s initialised bytes at offset `pos`: the count written (maybe fewer) and
    /// the buffer.
    pub async fn write_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<usize, B> {
        Op::new(WriteAt::new(self.fd.clone(), buf, pos)).await
    }

    /// Fills `buf` (all of `bytes_total()`) from offset `pos`; `UnexpectedEof` if the file
    /// ends first (the buffer then holds what was read).
    pub async fn read_exact_at<B: IoBufMut>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let (mut buf, mut filled) = (buf, 0);
        while filled < total {
            let (res, slice) = self
                .read_at(buf.slice(filled..total), pos + filled as u64)
                .await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of file before the buffer was full",
                    );
                    return (Err(e), buf);
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Writes all of `buf`'s initialised bytes from offset `pos`.
    pub async fn write_all_at<B: IoBuf>(&self, buf: B, pos: u64) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let (mut buf, mut written) = (buf, 0);
        while written < total {
            let (res, slice) = self
                .write_at(buf.slice(written..total), pos + written as u64)
                .await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let e = io::Error::new(io::ErrorKind::WriteZero, "the file took no bytes");
                    return (Err(e), buf);
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Flushes data and metadata to the device (`fsync`).
    pub async fn sync_all(&self) -> io::Result<()> {
        Op::new(FdCall::sync(self.fd.clone(), false)).await
    }

    /// Flushes data, and the metadata needed to read it back, to the device (`fdatasync`).
    pub async fn sync_data(&self) -> io::Result<()> {
        Op::new(FdCall::sync(self.fd.clone(), true)).await
    }

    /// Sets the size, cutting or zero-extending (`ftruncate`; io_uring 6.9+, else the pool).
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        Op::new(FdCall::truncate(self.fd.clone(), len)).await
    }

    /// Allocates disk space for `len` bytes from `pos` (`fallocate`, mode 0: the size grows
    /// to cover them).
    pub async fn allocate(&self, pos: u64, len: u64) -> io::Result<()> {
        Op::new(FdCall::allocate(self.fd.clone(), pos, len, 0)).await
    }

    /// The file's metadata (`statx`).
    pub async fn metadata(&self) -> io::Result<Metadata> {
        Op::new(Statx::of_fd(self.fd.clone()))
            .await
            .map(Metadata::from_statx)
    }

    /// Closes the file as an op, once every op still using it (dropped ones included) has
    /// been answered, and reports `close`'s error. An op that was `mem::forget`-ten keeps the
    /// file open for good (it may still be in the kernel): `close` then says so
    /// (`ResourceBusy`) and the file stays open.
    pub async fn close(self) -> io::Result<()> {
        self.fd.settled().await;
        match self.fd.try_into_owned() {
            Ok(fd) => Op::new(Close::new(fd)).await,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "the file is still held by an operation that was forgotten (mem::forget); \
                 it stays open",
            )),
        }
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}
