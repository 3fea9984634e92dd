//! The current core's view of a shutdown request: the drain deadline once this core has seen
//! the request, the tasks waiting for it, and the error accepts fail with.
//!
//! The request itself (one deadline for every core) is the runtime's; each core copies the
//! deadline here when it sees it, so the layers below the runtime (accept) can react.
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use slab::Slab;

/// One core's shutdown state.
#[derive(Default)]
pub(crate) struct ShutdownSignal {
    /// When this core saw the shutdown request: the drain deadline.
    pub deadline: Cell<Option<Instant>>,
    /// Tasks waiting in `shutdown_requested()` (and accepts).
    pub waiters: RefCell<Slab<Waker>>,
}

impl ShutdownSignal {
    /// Records the deadline and wakes every waiter.
    pub fn begin(&self, deadline: Instant) {
        self.deadline.set(Some(deadline));
        let waiters: Vec<Waker> = self.waiters.borrow_mut().drain().collect();
        for w in waiters {
            w.wake();
        }
    }
}

/// The error of an accept made while the runtime shuts down (`io::ErrorKind::Other` with
/// this as its inner error; test with [`ShuttingDown::is`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShuttingDown;

impl ShuttingDown {
    /// Whether `err` says the runtime is shutting down.
    pub fn is(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|e| e.is::<ShuttingDown>())
    }

    pub(crate) fn error() -> io::Error {
        io::Error::other(ShuttingDown)
    }
}

impl fmt::Display for ShuttingDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the corering runtime is shutting down")
    }
}

impl std::error::Error for ShuttingDown {}

/// Resolves when this core has seen a shutdown request.
///
/// # Panics
///
/// When polled outside a runtime.
pub fn shutdown_requested() -> ShutdownRequested {
    ShutdownRequested {
        key: None,
        _not_send: PhantomData,
    }
}

/// Whether this core has seen a shutdown request. `false` outside a runtime.
pub fn is_shutting_down() -> bool {
    super::with_current(|c| c.shutdown.deadline.get().is_some()).unwrap_or(false)
}

/// The future of [`shutdown_requested`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ShutdownRequested {
    /// Its waiter's key in the current core's list (so it must stay on that core).
    key: Option<usize>,
    _not_send: PhantomData<*const ()>,
}

impl Future for ShutdownRequested {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let key = self.key;
        let out = super::with_current(|core| {
            if core.shutdown.deadline.get().is_some() {
                return (Poll::Ready(()), None);
            }
            let mut waiters = core.shutdown.waiters.borrow_mut();
            match key.and_then(|k| waiters.get_mut(k)) {
                Some(w) => {
                    w.clone_from(cx.waker());
                    (Poll::Pending, key)
                }
                None => (Poll::Pending, Some(waiters.insert(cx.waker().clone()))),
            }
        });
        let (poll, key) = out.expect("shutdown_requested() polled outside a corering runtime");
        self.key = key;
        poll
    }
}

impl Drop for ShutdownRequested {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            super::with_current(|core| {
                let mut waiters = core.shutdown.waiters.borrow_mut();
                if waiters.contains(key) {
                    waiters.remove(key);
                }
            });
        }
    }
}
