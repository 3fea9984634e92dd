//! What a cancelled read or write left behind is not lost.
//!
//! On io_uring a read whose future is dropped (a `select`, a plain timeout) is cancelled, but
//! the cancel can lose the race: the kernel may already have copied bytes into the read's
//! buffer, or the read may have failed with the connection's error. Both are gone from the
//! socket. The orphaned read hands them here, and the stream's next reads return them first:
//! the bytes, then the error. A write dropped in flight may have sent part of its buffer; the
//! orphaned write reports here whether it did, and if so the write side refuses every later
//! write (the stream's offset is unknown; a retry would duplicate or skip bytes); if it failed,
//! its error goes to the next write; if the kernel says nothing was sent, nothing changes.
//!
//! To keep the order, a new op on a side first waits until every cancelled op of that side has
//! been answered by the kernel (one loop turn, typically). A stream has one reader and one
//! writer by type, so each side has at most one task waiting here. On epoll nothing is in the
//! kernel unless a future is being polled, so nothing needs rescuing and none of this exists.
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::buf::IoBufMut;

/// Cancelled ops of one side that the kernel has not answered yet, and the op waiting on them.
#[derive(Default)]
struct Unanswered {
    count: Cell<usize>,
    waiter: RefCell<Option<Waker>>,
}

impl Unanswered {
    fn add(&self) {
        self.count.set(self.count.get() + 1);
    }

    fn answered(&self) {
        self.count.set(self.count.get().saturating_sub(1));
        if self.count.get() == 0 {
            let waiter = self.waiter.borrow_mut().take();
            if let Some(w) = waiter {
                w.wake();
            }
        }
    }

    fn any(&self) -> bool {
        self.count.get() > 0
    }

    async fn wait_none(&self) {
        poll_fn(|cx| {
            if self.count.get() == 0 {
                return Poll::Ready(());
            }
            *self.waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// The answer of an op that the cancel reached before it transferred anything (an op running
/// in an io-wq worker answers a cancel with `-EINTR`).
fn is_cancel(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECANCELED) | Some(libc::EINTR)
    )
}

/// A rescue an op can be orphaned into (a dropped read's or write's answer goes there).
pub(crate) trait Rescue {
    /// An op of the stream was cancelled while in the kernel.
    fn orphaned(&self);
}

/// An op's link to its stream's rescue. Set when the op is orphaned, so that only an orphaned
/// op's answer is handed over (an op without a rescue, such as a plain `Op`, hands nothing).
pub(crate) struct RescueLink<R> {
    rescue: Option<Rc<R>>,
    orphaned: bool,
}

impl<R: Rescue> RescueLink<R> {
    pub fn new(rescue: Option<Rc<R>>) -> RescueLink<R> {
        RescueLink {
            rescue,
            orphaned: false,
        }
    }

    /// The op's future was dropped while the op was in the kernel.
    pub fn orphaned(&mut self) {
        if let Some(r) = &self.rescue {
            self.orphaned = true;
            r.orphaned();
        }
    }

    /// Where the answer of this orphaned op goes, if anywhere.
    pub fn of_orphan(&self) -> Option<&R> {
        self.rescue.as_deref().filter(|_| self.orphaned)
    }
}

/// What cancelled reads of one stream left: bytes, then an error, for the next reads.
#[derive(Default)]
pub(crate) struct ReadRescue {
    /// A read was cancelled since the side was last found empty: the one flag a read's fast
    /// path looks at.
    touched: Cell<bool>,
    pending: Unanswered,
    /// Bytes from cancelled reads, oldest first.
    stash: RefCell<VecDeque<u8>>,
    /// The error a cancelled read got (after its stashed bytes, nothing more comes).
    error: RefCell<Option<io::Error>>,
}

impl Rescue for ReadRescue {
    /// A read of the stream was cancelled while in the kernel.
    fn orphaned(&self) {
        self.touched.set(true);
        self.pending.add();
    }
}

impl ReadRescue {
    /// A cancelled read was answered: its bytes (maybe none) or its error.
    pub fn answered(&self, res: io::Result<&[u8]>) {
        match res {
            Ok(bytes) => self.stash.borrow_mut().extend(bytes),
            Err(e) if is_cancel(&e) => {}
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
            }
        }
        self.pending.answered();
    }

    /// Whether a read must go through [`take_into`](ReadRescue::take_into) first.
    pub fn is_pending(&self) -> bool {
        self.touched.get()
    }

    /// Clears `touched` once nothing is left.
    fn settle(&self) {
        let empty = !self.pending.any() && self.stash.borrow().is_empty();
        self.touched.set(!(empty && self.error.borrow().is_none()));
    }

    /// Waits for the cancelled reads, then moves rescued bytes into `buf` (at its start, up to
    /// its capacity), or hands out the rescued error once the bytes are all read. `None`:
    /// nothing was rescued and the caller reads from the socket.
    pub async fn take_into<B: IoBufMut>(&self, buf: &mut B) -> Option<io::Result<usize>> {
        self.pending.wait_none().await;
        let mut stash = self.stash.borrow_mut();
        let n = stash.len().min(buf.bytes_total());
        if n == 0 {
            drop(stash);
            let error = self.error.borrow_mut().take();
            self.settle();
            return error.map(Err);
        }
        let ptr = buf.stable_mut_ptr();
        for (i, byte) in stash.drain(..n).enumerate() {
            // SAFETY: `i < n <= bytes_total()`, so the write stays inside the buffer's
            // writable memory (IoBufMut contract).
            unsafe { ptr.add(i).write(byte) };
        }
        // SAFETY: the first `n` bytes were just written.
        unsafe { buf.set_init(n) };
        drop(stash);
        self.settle();
        Some(Ok(n))
    }

    /// Waits for the cancelled reads, then takes every rescued byte (and the error, if any).
    pub async fn take_all(&self) -> (Vec<u8>, Option<io::Error>) {
        self.pending.wait_none().await;
        let bytes = self.stash.borrow_mut().drain(..).collect();
        let error = self.error.borrow_mut().take();
        self.settle();
        (bytes, error)
    }
}

/// What cancelled writes of one stream left: whether one may have sent part of its data, or
/// the error one got.
#[derive(Default)]
pub(crate) struct WriteRescue {
    /// A write was cancelled or dropped since the side was last found clear: the one flag a
    /// write's fast path looks at.
    touched: Cell<bool>,
    pending: Unanswered,
    /// A cancelled write sent some bytes: the stream's offset is unknown for good.
    poisoned: Cell<bool>,
    error: RefCell<Option<io::Error>>,
}

impl Rescue for WriteRescue {
    /// A write of the stream was cancelled while in the kernel.
    fn orphaned(&self) {
        self.touched.set(true);
        self.pending.add();
    }
}

impl WriteRescue {
    /// A cancelled write was answered with the count it sent, or its error.
    pub fn answered(&self, res: io::Result<u32>) {
        match res {
            Ok(0) => {}
            Ok(_) => self.poisoned.set(true),
            Err(e) if is_cancel(&e) => {}
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
            }
        }
        self.pending.answered();
    }

    /// A `write_all` was dropped after part of its buffer went out: the offset is unknown.
    pub fn poison(&self) {
        self.touched.set(true);
        self.poisoned.set(true);
    }

    /// Whether a cancelled write sent bytes, or may still (the kernel has not answered it):
    /// the peer may hold a message cut part way.
    pub fn maybe_cut(&self) -> bool {
        self.poisoned.get() || self.pending.any()
    }

    /// Whether no cancelled write left anything: the next write goes ahead at once.
    pub fn is_clear(&self) -> bool {
        !self.touched.get()
    }

    /// Waits for the cancelled writes; then whether the next write may go ahead.
    pub async fn check(&self) -> io::Result<()> {
        if self.pending.any() {
            self.pending.wait_none().await;
        }
        if self.poisoned.get() {
            return Err(io::Error::other(
                "a write on this stream was dropped after the kernel had sent part of its \
                 data; the stream's write offset is unknown, so it takes no more writes",
            ));
        }
        let error = self.error.borrow_mut().take();
        self.touched.set(self.pending.any());
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for ReadRescue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRescue")
            .field("stashed", &self.stash.borrow().len())
            .field("unanswered", &self.pending.count.get())
            .finish()
    }
}

impl std::fmt::Debug for WriteRescue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteRescue")
            .field("poisoned", &self.poisoned.get())
            .field("unanswered", &self.pending.count.get())
            .finish()
    }
}
