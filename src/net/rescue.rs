//! Bytes that reached a cancelled read are not lost.
//!
//! On io_uring a read whose future is dropped (a timeout, a `select`) is cancelled, but the
//! cancel can lose the race: the kernel may already have copied bytes into the read's buffer.
//! Those bytes are gone from the socket. The orphaned read hands them here, and the stream's
//! next reads return them first. To keep the byte order, a new read waits until every
//! cancelled read on the stream has been answered by the kernel (one loop turn, typically).
//! On epoll nothing is read unless a future is polled, so nothing needs rescuing.
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use crate::buf::IoBufMut;

#[derive(Default)]
pub(crate) struct ReadRescue {
    /// Bytes from cancelled reads, oldest first.
    stash: RefCell<VecDeque<u8>>,
    /// Cancelled reads the kernel has not yet answered.
    orphans: Cell<usize>,
    /// A read waiting for them.
    waiter: RefCell<Option<Waker>>,
}

impl ReadRescue {
    /// A read of the stream was cancelled while in the kernel.
    pub fn orphaned(&self) {
        self.orphans.set(self.orphans.get() + 1);
    }

    /// A cancelled read was answered with `bytes` (maybe none).
    pub fn answered(&self, bytes: &[u8]) {
        self.stash.borrow_mut().extend(bytes);
        self.orphans.set(self.orphans.get().saturating_sub(1));
        if self.orphans.get() == 0 {
            if let Some(w) = self.waiter.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Whether a read must go through [`take_into`](ReadRescue::take_into) first.
    pub fn is_pending(&self) -> bool {
        self.orphans.get() > 0 || !self.stash.borrow().is_empty()
    }

    /// Waits for the cancelled reads, then moves rescued bytes into `buf` (at its start, up to
    /// its capacity). Returns how many; 0 means nothing was rescued and the caller reads.
    pub async fn take_into<B: IoBufMut>(&self, buf: &mut B) -> usize {
        poll_fn(|cx| {
            if self.orphans.get() == 0 {
                return Poll::Ready(());
            }
            *self.waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let mut stash = self.stash.borrow_mut();
        let n = stash.len().min(buf.bytes_total());
        if n == 0 {
            return 0;
        }
        let ptr = buf.stable_mut_ptr();
        for (i, byte) in stash.drain(..n).enumerate() {
            // SAFETY: `i < n <= bytes_total()`, so the write stays inside the buffer's
            // writable memory (IoBufMut contract).
            unsafe { ptr.add(i).write(byte) };
        }
        // SAFETY: the first `n` bytes were just written.
        unsafe { buf.set_init(n) };
        n
    }
}

impl std::fmt::Debug for ReadRescue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadRescue")
            .field("stashed", &self.stash.borrow().len())
            .field("orphans", &self.orphans.get())
            .finish()
    }
}
