//! A listening TCP socket.
//!
//! On io_uring 5.19+ the listener keeps one multishot accept armed from its first `accept`
//! on: the kernel accepts connection after connection into a queue that `accept` takes from,
//! and a dropped `accept` future loses nothing (the next one gets the connection). The accept
//! is re-armed whenever it ends (an error such as EMFILE ends it; the error goes to the
//! `accept` that takes it), and paused (by the driver, as completions arrive) once
//! [`ACCEPT_QUEUE_MAX`] connections wait untaken; the next `accept` re-arms it. (One kernel
//! turn may first take a whole burst from the backlog, which the listen backlog bounds.) Below 5.19, and on epoll, each `accept` is one op; one left behind by a dropped
//! future is kept for the next `accept` too.
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::accept_core::{Acceptor, IncomingState};
use super::TcpStream;
use crate::context::ShutdownRequested;
use crate::sys::{self, syscall};

/// Connections a standing multishot accept may queue before it is paused (cancelled, and
/// re-armed once `accept` has taken them): a listener nobody accepts from does not take up
/// fds without bound.
pub const ACCEPT_QUEUE_MAX: u16 = 128;

/// Options for [`TcpListener::bind_with`].
#[derive(Clone, Debug, Default)]
pub struct ListenOptions {
    /// Set SO_REUSEPORT, so that several listeners (e.g. one per core) share the port and the
    /// kernel spreads new connections across them.
    pub reuse_port: bool,
    /// The accept backlog; 0 means 1024.
    pub backlog: i32,
}

/// A TCP listener.
///
/// ```no_run
/// # corering::Runtime::new().unwrap().block_on(async {
/// let listener = corering::net::TcpListener::bind("127.0.0.1:0")?;
/// let (stream, peer) = listener.accept().await?;
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// `accept` hands back errors such as EMFILE (out of fds) as they come: an accept loop should
/// back off (e.g. sleep briefly) on them rather than retry at once.
pub struct TcpListener {
    /// The listening socket and its accept in flight (shared with `UnixListener`).
    core: Acceptor,
    _not_send: PhantomData<*const ()>,
}

impl TcpListener {
    /// Binds with SO_REUSEADDR and a backlog of 1024. Tries each resolved address in turn.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Self::bind_with(addr, ListenOptions::default())
    }

    /// Binds with the given options.
    pub fn bind_with(addr: impl ToSocketAddrs, opts: ListenOptions) -> io::Result<TcpListener> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let mut last = None;
        for addr in super::resolve(addr)? {
            match bind_one(&addr, &opts, nonblocking) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Accepts a connection.
    ///
    /// Once the runtime is shutting down, a pending or new accept fails with
    /// [`ShuttingDown`](crate::ShuttingDown) (test with `ShuttingDown::is(&err)`): accept loops
    /// end there and the connections already accepted drain.
    ///
    /// Cancel-safe: a connection the kernel accepted for a dropped `accept` future goes to the
    /// next `accept`.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut stop = crate::context::shutdown_requested();
        std::future::poll_fn(|cx| self.poll_accept(&mut stop, cx)).await
    }

    /// The accepted connections as a stream. Errors such as EMFILE are items (the stream goes
    /// on after them); once shutdown is requested, one last item is the
    /// [`ShuttingDown`](crate::ShuttingDown) error and the stream ends.
    ///
    /// ```no_run
    /// use futures_core::Stream;
    /// # corering::Runtime::new().unwrap().block_on(async {
    /// let listener = corering::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut incoming = std::pin::pin!(listener.incoming());
    /// while let Some(conn) = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx)).await {
    ///     let (stream, peer) = conn?;
    ///     # drop((stream, peer));
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
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (fd, addr) = std::task::ready!(self.core.poll_accept(stop, cx))?;
        let addr = addr.to_std()?;
        Poll::Ready(Ok((TcpStream::from_accepted(fd), addr)))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.core.raw())
    }
}

fn bind_one(addr: &SocketAddr, opts: &ListenOptions, nonblocking: bool) -> io::Result<TcpListener> {
    let fd = sys::tcp_socket(addr, nonblocking)?;
    let raw = fd.as_raw_fd();
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if opts.reuse_port {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    let sa = sys::RawAddr::from_std(addr);
    syscall!(bind(raw, sa.as_ptr(), sa.len))?;
    let backlog = if opts.backlog > 0 { opts.backlog } else { 1024 };
    syscall!(listen(raw, backlog))?;
    Ok(TcpListener {
        core: Acceptor::new(fd),
        _not_send: PhantomData,
    })
}

/// The stream of [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    state: IncomingState,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<(TcpStream, SocketAddr)>;

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

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.core.raw()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.core.raw()) }
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("core", &self.core)
            .finish()
    }
}
