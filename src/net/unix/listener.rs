//! A listening Unix stream socket, on the accept machinery of `TcpListener`.
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{SocketAddr, UnixStream};
use crate::context::ShutdownRequested;
use crate::net::accept_core::{Acceptor, IncomingState};
use crate::sys::{self, syscall};

/// The accept backlog of a listener this module binds.
const BACKLOG: i32 = 1024;

/// A Unix stream listener. Accepting works as on [`TcpListener`](crate::net::TcpListener):
/// a standing multishot accept on io_uring 5.19+, and a dropped `accept` future loses no
/// connection.
///
/// ```no_run
/// # corering::Runtime::new().unwrap().block_on(async {
/// let listener = corering::net::UnixListener::bind("/tmp/app.sock")?;
/// let (stream, peer) = listener.accept().await?;
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// Binding a path creates the socket file; it fails with `AddrInUse` if the path exists,
/// even as a stale socket file left by an earlier process (remove it first, as with std).
/// Dropping the listener does not remove the file either.
pub struct UnixListener {
    core: Acceptor,
    _not_send: PhantomData<*const ()>,
}

impl UnixListener {
    /// Binds to the pathname `path` and listens (backlog 1024).
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        Self::bind_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Binds to `name` in Linux's abstract namespace (without the leading NUL) and listens.
    pub fn bind_abstract(name: impl AsRef<[u8]>) -> io::Result<UnixListener> {
        Self::bind_addr(&SocketAddr::from_abstract_name(name)?)
    }

    /// Binds to `addr` and listens. An unnamed `addr` autobinds: the kernel picks an
    /// abstract name ([`local_addr`](Self::local_addr) tells it).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixListener> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_STREAM, nonblocking)?;
        let raw = addr.to_raw();
        // SAFETY: `raw` is a live sockaddr_un of `raw.len` bytes.
        syscall!(bind(fd.as_raw_fd(), raw.as_ptr(), raw.len))?;
        syscall!(listen(fd.as_raw_fd(), BACKLOG))?;
        Ok(Self::from_fd(fd))
    }

    /// Wraps a listening std listener, setting the blocking mode the current backend needs.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        listener.set_nonblocking(crate::context::current_wants_nonblocking())?;
        Ok(Self::from_fd(listener.into()))
    }

    fn from_fd(fd: OwnedFd) -> UnixListener {
        UnixListener {
            core: Acceptor::new(fd),
            _not_send: PhantomData,
        }
    }

    /// Accepts a connection, with the peer's address (unnamed unless the peer bound one).
    ///
    /// Once the runtime is shutting down, a pending or new accept fails with
    /// [`ShuttingDown`](crate::ShuttingDown). Cancel-safe: a connection the kernel accepted
    /// for a dropped `accept` future goes to the next `accept`.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut stop = crate::context::shutdown_requested();
        std::future::poll_fn(|cx| self.poll_accept(&mut stop, cx)).await
    }

    /// The accepted connections and their peers' addresses as a [`futures_core::Stream`], as
    /// [`TcpListener::incoming`](crate::net::TcpListener::incoming): errors such as EMFILE are
    /// items (the stream goes on after them); once shutdown is requested, one last item is
    /// the [`ShuttingDown`](crate::ShuttingDown) error and the stream ends.
    ///
    /// ```no_run
    /// use futures_core::Stream;
    /// # corering::Runtime::new().unwrap().block_on(async {
    /// let listener = corering::net::UnixListener::bind("/tmp/app.sock")?;
    /// let mut incoming = std::pin::pin!(listener.incoming());
    /// while let Some(stream) = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx)).await {
    ///     let (stream, _peer) = stream?;
    ///     # drop(stream);
    /// }
    /// # Ok::<(), std::io::Error>(()) }).unwrap();
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            state: IncomingState::new(),
        }
    }

    fn poll_accept(
        &self,
        stop: &mut ShutdownRequested,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(UnixStream, SocketAddr)>> {
        let (fd, addr) = std::task::ready!(self.core.poll_accept(stop, cx))?;
        let addr = SocketAddr::from_raw(&addr)?;
        Poll::Ready(Ok((UnixStream::from_fd(fd), addr)))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.core.raw(), false)
    }
}

/// The stream of [`UnixListener::incoming`]: accepted connections.
pub struct Incoming<'a> {
    listener: &'a UnixListener,
    state: IncomingState,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<(UnixStream, SocketAddr)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let listener = this.listener;
        this.state
            .poll_next(cx, |stop, cx| listener.poll_accept(stop, cx))
    }
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

impl AsRawFd for UnixListener {
    fn as_raw_fd(&self) -> RawFd {
        self.core.raw()
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.core.raw()) }
    }
}

impl std::fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnixListener")
            .field("core", &self.core)
            .finish()
    }
}
