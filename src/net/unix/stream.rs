//! A connected Unix stream socket.
use std::io;
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use super::split::{OwnedReadHalf, OwnedWriteHalf};
use super::{PeerCred, SocketAddr};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::net::half::{self, read_methods, write_methods, Reader, Writer};
use crate::net::{ReadHalf, Unread, WriteHalf};
use crate::sys;

/// A connected Unix stream socket (`AF_UNIX`, `SOCK_STREAM`). Its I/O is that of
/// [`TcpStream`](crate::net::TcpStream): owned buffers, cancel-safe reads, pooled reads, one
/// reader and one writer ([`split`](Self::split), [`into_split`](Self::into_split)). Writes
/// never go out as zero-copy sends (they gain nothing on a Unix socket).
///
/// ```no_run
/// use corering::net::UnixStream;
/// # corering::Runtime::new().unwrap().block_on(async {
/// let mut stream = UnixStream::connect("/run/app.sock").await?;
/// let (res, _) = stream.write_all(b"ping".to_vec()).await;
/// res?;
/// let (res, buf) = stream.read(Vec::with_capacity(64)).await;
/// println!("{} bytes: {:?}", res?, buf);
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// Dropping the stream closes it once no op of it is in the kernel any more;
/// [`close`](Self::close) closes it through the backend and reports the error, if any.
#[derive(Debug)]
pub struct UnixStream {
    pub(in crate::net) reader: Reader,
    pub(in crate::net) writer: Writer,
    pub(in crate::net) _not_send: PhantomData<*const ()>,
}

impl UnixStream {
    pub(super) fn from_fd(fd: OwnedFd) -> UnixStream {
        let (reader, writer) = half::sides(fd, false);
        UnixStream {
            reader,
            writer,
            _not_send: PhantomData,
        }
    }

    /// Connects to the socket bound at `path` (always a pathname; for an abstract name see
    /// [`connect_abstract`](Self::connect_abstract)).
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        Self::connect_addr(&SocketAddr::from_pathname(path)?).await
    }

    /// Connects to the socket bound to `name` in Linux's abstract namespace (without the
    /// leading NUL).
    pub async fn connect_abstract(name: impl AsRef<[u8]>) -> io::Result<UnixStream> {
        Self::connect_addr(&SocketAddr::from_abstract_name(name)?).await
    }

    /// Connects to `addr` (a pathname or an abstract name).
    ///
    /// An `AF_UNIX` connect never waits on the network: it is one non-blocking `connect(2)`
    /// on both backends, which succeeds at once or fails. A listener whose backlog is full
    /// refuses with `WouldBlock` at once (as tokio does; a blocking std connect would wait
    /// for room): retry later, or accept faster.
    pub async fn connect_addr(addr: &SocketAddr) -> io::Result<UnixStream> {
        if addr.is_unnamed() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot connect to an unnamed address",
            ));
        }
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, true)?;
        let raw = addr.to_raw();
        match sys::syscall!(connect(fd.as_raw_fd(), raw.as_ptr(), raw.len)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the listener's backlog is full",
                ))
            }
            Err(e) => return Err(e),
        }
        let nonblocking = crate::context::current_wants_nonblocking();
        if !nonblocking {
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(OFlag::empty()))?;
        }
        Ok(UnixStream::from_fd(fd))
    }

    /// A connected pair of unnamed sockets (`socketpair`).
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let (a, b) = sys::unix_pair(libc::SOCK_STREAM, nonblocking)?;
        Ok((UnixStream::from_fd(a), UnixStream::from_fd(b)))
    }

    /// Wraps a connected std stream, setting the blocking mode the current backend needs.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        stream.set_nonblocking(crate::context::current_wants_nonblocking())?;
        Ok(UnixStream::from_fd(stream.into()))
    }

    /// Turns the stream back into a std stream (in blocking mode), once every op of it still
    /// in the kernel has been answered, with what its cancelled ops left ([`Unread`]). If an op
    /// whose future was `mem::forget`-ten still holds the fd, the std stream gets a duplicate.
    pub async fn into_std(self) -> io::Result<(std::os::unix::net::UnixStream, Unread)> {
        let UnixStream { reader, writer, .. } = self;
        let (fd, unread) = half::into_owned(reader, writer).await?;
        let stream = std::os::unix::net::UnixStream::from(fd);
        stream.set_nonblocking(false)?;
        Ok((stream, unread))
    }

    read_methods!(reader);
    write_methods!(writer);

    /// Borrowed halves, to read and write at the same time from one task.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(&self.reader), WriteHalf(&self.writer))
    }

    /// Owned halves, for two tasks; [`OwnedReadHalf::reunite`] puts them back together.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        (
            OwnedReadHalf {
                reader: self.reader,
                _not_send: PhantomData,
            },
            OwnedWriteHalf {
                writer: self.writer,
                _not_send: PhantomData,
            },
        )
    }

    /// Shuts down reading, writing or both. After `Shutdown::Write` the peer reads end of
    /// stream, and this side can still read what the peer sends. On a connection the peer has
    /// already closed it is Ok (the kernel's `ENOTCONN`), as tokio reports it.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.writer.shutdown(how).await
    }

    /// Closes the socket through the backend and reports any error. Waits until every op of
    /// the stream still in the kernel (a cancelled one) has been answered. If an op whose
    /// future was `mem::forget`-ten still holds the fd, it stays open (leaked with that op) and
    /// this says so.
    pub async fn close(self) -> io::Result<()> {
        let UnixStream { reader, writer, .. } = self;
        half::close(reader, writer).await
    }

    /// The local address (unnamed unless the socket was bound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.as_raw_fd(), false)
    }

    /// The peer's address (unnamed unless the peer was bound, e.g. a listener's path for a
    /// client; a client that connected without binding, seen from the server).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.as_raw_fd(), true)
    }

    /// The process, user and group of the peer, as they were when it connected (or made the
    /// pair): `SO_PEERCRED`.
    pub fn peer_cred(&self) -> io::Result<PeerCred> {
        PeerCred::of(self.as_fd())
    }
}

impl AsRawFd for UnixStream {
    fn as_raw_fd(&self) -> RawFd {
        self.reader.fd.raw()
    }
}

impl AsFd for UnixStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` (which holds a handle) is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.reader.fd.raw()) }
    }
}
