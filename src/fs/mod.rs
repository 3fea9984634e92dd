//! Files: `File`, `OpenOptions`, `Metadata`, and whole-file and path functions.
//!
//! On io_uring a read or write of a regular file is one submission: served from the page
//! cache it completes inline (no thread anywhere), and what must wait for the disk the kernel
//! runs on its own io-wq workers (bounded with [`Builder::io_workers`](crate::Builder::io_workers)).
//! On epoll a regular file cannot be waited for (epoll reports it always ready, and a read may
//! still sleep on the disk), so each file op runs as one syscall on the runtime's blocking
//! pool ([`Builder::blocking_threads`](crate::Builder::blocking_threads)) and its answer comes
//! back to the core that asked. Opcodes a kernel lacks (RENAMEAT and UNLINKAT before 5.11,
//! MKDIRAT before 5.15, FTRUNCATE before 6.9) take the pool on io_uring too.
//!
//! Buffers are owned, as for sockets: `(result, buf)` on every path. A dropped op keeps its
//! buffer (and the file open) until the kernel or the pool thread is done with it; a pool job
//! no thread has started yet is not run at all.
//!
//! ```
//! # corering::Runtime::new().unwrap().block_on(async {
//! use corering::fs::{self, OpenOptions};
//! let dir = std::env::temp_dir().join(format!("corering-doc-{}", std::process::id()));
//! fs::create_dir(&dir).await.unwrap();
//! let path = dir.join("hello.txt");
//! let file = OpenOptions::new().read(true).write(true).create(true).open(&path).await.unwrap();
//! let (res, _) = file.write_all_at(b"hello, file".to_vec(), 0).await;
//! res.unwrap();
//! file.sync_all().await.unwrap();
//! let (res, buf) = file.read_at(Vec::with_capacity(5), 7).await;
//! assert_eq!((res.unwrap(), &buf[..]), (4, &b"file"[..]));
//! file.close().await.unwrap();
//! assert_eq!(fs::metadata(&path).await.unwrap().len(), 11);
//! fs::remove_file(&path).await.unwrap();
//! fs::remove_dir(&dir).await.unwrap();
//! # });
//! ```
mod file;
mod metadata;
mod open_options;

pub use file::File;
pub use metadata::Metadata;
pub use open_options::OpenOptions;

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::buf::{BufResult, IoBuf};
use crate::op::fs::{PathCall, Statx};
use crate::op::Op;

/// A path as the kernel takes it.
pub(crate) fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("path {} contains a NUL byte", path.display()),
        )
    })
}

/// Reads the whole file at `path`.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let file = File::open(path).await?;
    let size = file.metadata().await?.len() as usize;
    let mut data = Vec::with_capacity(size + 1);
    loop {
        if data.len() == data.capacity() {
            data.reserve(data.capacity().max(4096));
        }
        let filled = data.len();
        let (res, slice) = file.read_at(data.slice(filled..), filled as u64).await;
        data = slice.into_inner();
        match res {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    file.close().await?;
    Ok(data)
}

/// Creates (or truncates) the file at `path` and writes `buf`'s initialised bytes to it.
pub async fn write<B: IoBuf>(path: impl AsRef<Path>, buf: B) -> BufResult<(), B> {
    let file = match File::create(path).await {
        Ok(f) => f,
        Err(e) => return (Err(e), buf),
    };
    let (res, buf) = file.write_all_at(buf, 0).await;
    let closed = file.close().await;
    (res.and(closed), buf)
}

/// Removes the file at `path` (`unlinkat`).
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    Op::new(PathCall::unlink(c_path(path.as_ref())?, false)).await
}

/// Removes the empty directory at `path` (`unlinkat` with `AT_REMOVEDIR`).
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    Op::new(PathCall::unlink(c_path(path.as_ref())?, true)).await
}

/// Renames `from` to `to`, replacing `to` if it exists (`renameat`).
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (c_path(from.as_ref())?, c_path(to.as_ref())?);
    Op::new(PathCall::rename(from, to)).await
}

/// Creates the directory `path` (mode 0o777 less the umask; `mkdirat`).
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    Op::new(PathCall::mkdir(c_path(path.as_ref())?, 0o777)).await
}

/// The metadata of `path`, following symlinks (`statx`).
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    Op::new(Statx::of_path(c_path(path.as_ref())?))
        .await
        .map(Metadata::from_statx)
}
