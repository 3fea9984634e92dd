//! A listening TCP socket.
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::Poll;

use super::TcpStream;
use crate::op::{Accept, Op, SharedFd};
use crate::sys::{self, syscall};

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
#[derive(Debug)]
pub struct TcpListener {
    fd: SharedFd,
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
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut accept = Op::on(&self.fd, Accept::new(self.fd.clone()));
        let mut stop = crate::context::shutdown_requested();
        let (fd, addr) = std::future::poll_fn(|cx| {
            if Pin::new(&mut stop).poll(cx).is_ready() {
                return Poll::Ready(Err(crate::ShuttingDown::error()));
            }
            Pin::new(&mut accept).poll(cx)
        })
        .await?;
        Ok((TcpStream::from_accepted(fd), addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.fd.raw())
    }
}

fn bind_one(addr: &SocketAddr, opts: &ListenOptions, nonblocking: bool) -> io::Result<TcpListener> {
    let fd = sys::tcp_socket(addr, nonblocking)?;
    let raw = fd.as_raw_fd();
    sys::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if opts.reuse_port {
        sys::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    let sa = sys::RawAddr::from_std(addr);
    syscall!(bind(raw, sa.as_ptr(), sa.len))?;
    let backlog = if opts.backlog > 0 { opts.backlog } else { 1024 };
    syscall!(listen(raw, backlog))?;
    Ok(TcpListener {
        fd: SharedFd::new(fd),
        _not_send: PhantomData,
    })
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for TcpListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.fd.raw()) }
    }
}
