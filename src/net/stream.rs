//! A connected TCP socket.
use std::io;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::half::{self, read_methods, write_methods, Reader, Writer};
use super::split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::op::{self, Op};
use crate::sys;

/// A TCP connection. Reads and writes take owned buffers and give them back.
///
/// ```no_run
/// use corering::{net::TcpStream, IoBuf};
/// # corering::Runtime::new().unwrap().block_on(async {
/// let mut stream = TcpStream::connect("127.0.0.1:7000").await?;
/// let (res, _) = stream.write_all(b"ping".to_vec()).await;
/// res?;
/// let (res, buf) = stream.read(Vec::with_capacity(64)).await;
/// println!("{} bytes: {:?}", res?, buf);
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// A stream has one reader and one writer: reads and writes take `&mut self`, so two reads
/// (or two writes) can never be in flight at once, and bytes keep their order. To read and
/// write at the same time, [`split`](TcpStream::split) it (borrowed halves) or
/// [`into_split`](TcpStream::into_split) it (owned halves, for two tasks). Two concurrent
/// reads do not compile:
///
/// ```compile_fail
/// # corering::Runtime::new().unwrap().block_on(async {
/// # let mut stream = corering::net::TcpStream::connect("127.0.0.1:7000").await.unwrap();
/// let a = stream.read(Vec::with_capacity(8));
/// let b = stream.read(Vec::with_capacity(8)); // error: `stream` is already borrowed
/// # drop((a, b)); });
/// ```
///
/// Dropping the stream closes it once no op of it is in the kernel any more;
/// [`close`](TcpStream::close) closes it through the backend and reports the error, if any.
#[derive(Debug)]
pub struct TcpStream {
    pub(super) reader: Reader,
    pub(super) writer: Writer,
    pub(super) _not_send: PhantomData<*const ()>,
}

/// What a stream's cancelled ops had left when it was turned into a std stream: bytes
/// rescued from cancelled reads and the error one of them got, and the state of the write side.
#[derive(Debug, Default)]
pub struct Unread {
    /// To be read before anything the std stream reads.
    pub bytes: Vec<u8>,
    /// The connection's error, reported by a cancelled read after those bytes.
    pub error: Option<io::Error>,
    /// Why the write side took no more writes: a dropped write had sent part of its data (the
    /// offset is unknown), or a cancelled write failed.
    pub write_error: Option<io::Error>,
}

impl TcpStream {
    pub(crate) fn from_accepted(fd: OwnedFd) -> TcpStream {
        let (reader, writer) = half::sides(fd, true);
        TcpStream {
            reader,
            writer,
            _not_send: PhantomData,
        }
    }

    /// Connects to `addr`, trying each resolved address in turn.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let mut last = None;
        for addr in super::resolve(addr)? {
            let fd = sys::tcp_socket(&addr, nonblocking)?;
            let stream = TcpStream::from_accepted(fd);
            let fd = &stream.reader.fd;
            match Op::on(fd, op::Connect::new(fd.clone(), &addr)).await {
                Ok(()) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Wraps a connected std stream, setting the blocking mode the current backend needs.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(crate::context::current_wants_nonblocking())?;
        Ok(TcpStream::from_accepted(stream.into()))
    }

    /// Turns the stream back into a std stream (in blocking mode), once every op of it still
    /// in the kernel has been answered, with what its cancelled ops left ([`Unread`]). If an op
    /// whose future was `mem::forget`-ten still holds the fd, the std stream gets a duplicate.
    pub async fn into_std(self) -> io::Result<(std::net::TcpStream, Unread)> {
        let TcpStream { reader, writer, .. } = self;
        let (fd, unread) = half::into_owned(reader, writer).await?;
        let stream = std::net::TcpStream::from(fd);
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
    /// already closed or reset it is Ok (the kernel's `ENOTCONN`), as tokio reports it.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.writer.shutdown(how).await
    }

    /// Closes the connection through the backend and reports any error. Waits until every op
    /// of the stream still in the kernel (a cancelled one) has been answered. If an op whose
    /// future was `mem::forget`-ten still holds the fd, it stays open (leaked with that op) and
    /// this says so.
    pub async fn close(self) -> io::Result<()> {
        let TcpStream { reader, writer, .. } = self;
        half::close(reader, writer).await
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        Ok(nix::sys::socket::setsockopt(
            self,
            nix::sys::socket::sockopt::TcpNoDelay,
            &on,
        )?)
    }

    /// Whether TCP_NODELAY is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(nix::sys::socket::getsockopt(
            self,
            nix::sys::socket::sockopt::TcpNoDelay,
        )?)
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.as_raw_fd())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.as_raw_fd())
    }
}

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.reader.fd.raw()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` (which holds a handle) is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.reader.fd.raw()) }
    }
}
