//! The accept machinery every listener shares (TCP and Unix): a standing multishot accept on
//! io_uring 5.19+, one-shot accepts otherwise, and the tasks waiting on one listener.
//!
//! It hands out the new fd and the peer's address in the kernel's layout; each listener
//! turns them into its own stream and address types.
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::ACCEPT_QUEUE_MAX;
use crate::context::ShutdownRequested;
use crate::op::accept_multi::{arm_accept, AcceptRest};
use crate::op::multi::Multishot;
use crate::op::{Accept, Op, SharedFd};
use crate::sys::{self, RawAddr};

/// The accept in flight, if any.
enum Pending {
    Idle,
    Multi(Multishot<AcceptRest>),
    Single(Op<Accept>),
}

/// A listening socket and its accept in flight.
pub(super) struct Acceptor {
    pub fd: SharedFd,
    pending: RefCell<Pending>,
    /// Several tasks may accept on one listener: the op wakes them all, and one takes it.
    waiters: Arc<Waiters>,
    waker: Waker,
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

impl Acceptor {
    /// Takes a socket that already listens.
    pub fn new(fd: OwnedFd) -> Acceptor {
        let waiters = Arc::new(Waiters::default());
        Acceptor {
            fd: SharedFd::new(fd),
            pending: RefCell::new(Pending::Idle),
            waker: Waker::from(waiters.clone()),
            waiters,
        }
    }

    pub fn raw(&self) -> RawFd {
        self.fd.raw()
    }

    /// The next connection (its fd and peer address), or `ShuttingDown` once `stop` fires.
    pub fn poll_accept(
        &self,
        stop: &mut ShutdownRequested,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(OwnedFd, Box<RawAddr>)>> {
        if Pin::new(stop).poll(cx).is_ready() {
            return Poll::Ready(Err(crate::ShuttingDown::error()));
        }
        self.waiters.add(cx.waker());
        let mut all = Context::from_waker(&self.waker);
        let accepted = crate::op::cancel::poll_standing(|| self.poll_accepted(&mut all));
        Poll::Ready(std::task::ready!(accepted)?)
    }

    /// The next accepted connection, from the standing multishot accept or a one-shot one.
    fn poll_accepted(&self, cx: &mut Context<'_>) -> Poll<io::Result<(OwnedFd, Box<RawAddr>)>> {
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
                    if let Ok(addr) = sys::raw_sockname(fd.as_raw_fd(), true) {
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

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("fd", &self.fd)
            .field("pending", &*self.pending.borrow())
            .finish()
    }
}

/// The state of a listener's `incoming()` stream: the shutdown request it watches, and
/// whether it has ended (it hands out the `ShuttingDown` error once, then ends).
#[derive(Debug)]
pub(super) struct IncomingState {
    stop: ShutdownRequested,
    ended: bool,
}

impl IncomingState {
    pub fn new() -> IncomingState {
        IncomingState {
            stop: crate::context::shutdown_requested(),
            ended: false,
        }
    }

    /// The stream's next item: `accept`'s answer, or the end after the shutdown error.
    pub fn poll_next<T>(
        &mut self,
        cx: &mut Context<'_>,
        accept: impl FnOnce(&mut ShutdownRequested, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<Option<io::Result<T>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let item = std::task::ready!(accept(&mut self.stop, cx));
        self.ended = matches!(&item, Err(e) if crate::ShuttingDown::is(e));
        Poll::Ready(Some(item))
    }
}
