//! A connected TCP socket.
use std::io;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};

use super::ReadRescue;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::DriverFd;
use crate::op::{self, Op};
use crate::sys;
use std::rc::Rc;

/// A TCP connection. Reads and writes take owned buffers and give them back.
///
/// ```no_run
/// use corering::{net::TcpStream, IoBuf};
/// # corering::Runtime::new().unwrap().block_on(async {
/// let stream = TcpStream::connect("127.0.0.1:7000").await?;
/// let (res, _) = stream.write_all(b"ping".to_vec()).await;
/// res?;
/// let (res, buf) = stream.read(Vec::with_capacity(64)).await;
/// println!("{} bytes: {:?}", res?, buf);
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// Dropping the stream closes it at once; [`close`](TcpStream::close) closes it through the
/// backend and reports the error, if any.
#[derive(Debug)]
pub struct TcpStream {
    fd: DriverFd,
    /// Bytes rescued from cancelled reads (io_uring only; `None` on epoll).
    rescue: Option<Rc<ReadRescue>>,
    _not_send: PhantomData<*const ()>,
}

impl TcpStream {
    pub(crate) fn from_accepted(fd: OwnedFd) -> TcpStream {
        let uring = crate::runtime::with_current(|c| c.info.kind() == crate::BackendKind::Uring);
        TcpStream {
            fd: DriverFd::new(fd),
            rescue: uring.unwrap_or(false).then(Rc::default),
            _not_send: PhantomData,
        }
    }

    /// Connects to `addr`, trying each resolved address in turn.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let nonblocking = crate::runtime::current_wants_nonblocking();
        let mut last = None;
        for addr in super::resolve(addr)? {
            let fd = sys::tcp_socket(&addr, nonblocking)?;
            let stream = TcpStream::from_accepted(fd);
            match Op::new(op::Connect::new(stream.as_raw_fd(), &addr)).await {
                Ok(()) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Wraps a connected std stream, setting the blocking mode the current backend needs.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        stream.set_nonblocking(crate::runtime::current_wants_nonblocking())?;
        Ok(TcpStream::from_accepted(stream.into()))
    }

    /// Reads into `buf` (at its start, up to its capacity); `Ok(0)` is end of stream.
    ///
    /// Cancel-safe: if a read's future is dropped (say by a timeout) after the kernel had
    /// already received bytes into its buffer, those bytes are returned by the next read, in
    /// order; none are lost.
    pub async fn read<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        if let Some(rescue) = self.rescue.as_ref().filter(|r| r.is_pending()) {
            let n = rescue.take_into(&mut buf).await;
            if n > 0 {
                return (Ok(n), buf);
            }
        }
        Op::new(op::Recv::new(self.as_raw_fd(), buf, self.rescue.clone())).await
    }

    /// Writes the initialised bytes of `buf`; may write fewer (the count is returned).
    /// A peer that has gone away gives `BrokenPipe` or `ConnectionReset`, never SIGPIPE.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::new(op::Send::new(self.as_raw_fd(), buf)).await
    }

    /// Fills `buf` up to its capacity (`bytes_total`), reading as often as needed. End of
    /// stream first gives `UnexpectedEof`.
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut filled = 0;
        let mut buf = buf;
        while filled < total {
            let (res, slice) = self.read(buf.slice(filled..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of stream before the buffer was full",
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

    /// Writes every initialised byte of `buf`, as many writes as it takes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let total = buf.bytes_init();
        let mut written = 0;
        let mut buf = buf;
        while written < total {
            let (res, slice) = self.write(buf.slice(written..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let e =
                        io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes");
                    return (Err(e), buf);
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    /// Shuts down reading, writing or both. After `Shutdown::Write` the peer reads end of
    /// stream, and this side can still read what the peer sends.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        Op::new(op::Shutdown::new(self.as_raw_fd(), how)).await
    }

    /// Closes the connection through the backend and reports any error.
    pub async fn close(self) -> io::Result<()> {
        Op::new(op::Close::new(self.fd.into_owned())).await
    }

    /// Sets TCP_NODELAY.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        sys::setsockopt_int(
            self.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            on as i32,
        )
    }

    /// Whether TCP_NODELAY is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        sys::getsockopt_int(self.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY).map(|v| v != 0)
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
        self.fd.as_raw_fd()
    }
}

impl AsFd for TcpStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.fd.as_raw_fd()) }
    }
}

impl IntoRawFd for TcpStream {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_owned().into_raw_fd()
    }
}
