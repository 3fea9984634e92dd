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
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::TcpStream;
use crate::context::ShutdownRequested;
use crate::op::accept_multi::{arm_accept, AcceptRest};
use crate::op::multi::Multishot;
use crate::op::{Accept, Op, SharedFd};
use crate::sys::{self, syscall};

/// Connections a standing multishot accept may queue before it is paused (cancelled, and
/// re-armed once `accept` has taken them): a listener nobody accepts from does not take up
/// fds without bound.
pub const ACCEPT_QUEUE_MAX: u16 = 128;

/// The accept in flight, if any.
enum Pending {
    Idle,
    Multi(Multishot<AcceptRest>),
    Single(Op<Accept>),
}

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
    fd: SharedFd,
    pending: RefCell<Pending>,
    /// Several tasks may accept on one listener: the op wakes them all, and one takes it.
    waiters: Arc<Waiters>,
    waker: Waker,
    _not_send: PhantomData<*const ()>,
}

/// The tasks waiting in `accept` on one listener.
#[derive(Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    fn add(&self, waker: &Waker) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let list = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for w in list {
            w.wake();
        }
    }
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
            stop: crate::context::shutdown_requested(),
            ended: false,
        }
    }

    fn poll_accept(
        &self,
        stop: &mut ShutdownRequested,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        if Pin::new(stop).poll(cx).is_ready() {
            return Poll::Ready(Err(crate::ShuttingDown::error()));
        }
        self.waiters.add(cx.waker());
        let mut all = Context::from_waker(&self.waker);
        let accepted = crate::op::cancel::poll_standing(|| self.poll_accepted(&mut all));
        let (fd, addr) = std::task::ready!(accepted)??;
        Poll::Ready(Ok((TcpStream::from_accepted(fd), addr)))
    }

    /// The next accepted connection, from the standing multishot accept or a one-shot one.
    fn poll_accepted(&self, cx: &mut Context<'_>) -> Poll<io::Result<(OwnedFd, SocketAddr)>> {
        let mut pending = self.pending.borrow_mut();
        loop {
            match &mut *pending {
                Pending::Idle => *pending = self.arm()?,
                Pending::Multi(multi) => {
                    let Some((res, _)) = std::task::ready!(multi.poll_next(cx)) else {
                        *pending = Pending::Idle;
                        continue;
                    };
                    // Our own pause (or shutdown, which `accept` reports itself) ended it.
                    if res == -libc::ECANCELED {
                        continue;
                    }
                    if res < 0 {
                        return Poll::Ready(Err(io::Error::from_raw_os_error(-res)));
                    }
                    // SAFETY: a successful accept's result is a new fd that nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(res) };
                    // A connection reset before we got here has no peer: it is gone, skip it.
                    if let Ok(addr) = sys::peer_addr(fd.as_raw_fd()) {
                        return Poll::Ready(Ok((fd, addr)));
                    }
                }
                Pending::Single(op) => {
                    let res = std::task::ready!(Pin::new(op).poll(cx));
                    *pending = Pending::Idle;
                    return Poll::Ready(res);
                }
            }
        }
    }

    fn arm(&self) -> io::Result<Pending> {
        let driver = crate::context::current_driver();
        let multishot = driver.borrow().multishot_accept()
            && self
                .fd
                .kind()
                .is_some_and(|k| k == crate::BackendKind::Uring);
        if multishot {
            return arm_accept(&self.fd, ACCEPT_QUEUE_MAX).map(Pending::Multi);
        }
        Ok(Pending::Single(Op::on(
            &self.fd,
            Accept::new(self.fd.clone()),
        )))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.fd.raw())
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
    let waiters = Arc::new(Waiters::default());
    Ok(TcpListener {
        fd: SharedFd::new(fd),
        pending: RefCell::new(Pending::Idle),
        waker: Waker::from(waiters.clone()),
        waiters,
        _not_send: PhantomData,
    })
}

/// The stream of [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    stop: ShutdownRequested,
    /// The shutdown error was handed out: the stream has ended.
    ended: bool,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<(TcpStream, SocketAddr)>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(this.listener.poll_accept(&mut this.stop, cx));
        this.ended = matches!(&item, Err(e) if crate::ShuttingDown::is(e));
        Poll::Ready(Some(item))
    }
}

impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Pending::Idle => "Idle",
            Pending::Multi(_) => "Multishot",
            Pending::Single(_) => "Single",
        })
    }
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

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("fd", &self.fd)
            .field("pending", &*self.pending.borrow())
            .finish()
    }
}
