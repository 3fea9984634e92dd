//! The fd handle every op holds.
//!
//! A socket or file is one [`SharedFd`]; the stream (or each of its halves) and every op in
//! flight on it hold a clone. The fd number is closed only when the last clone is gone, and an
//! op dropped in flight keeps its clone in the op table until its completion arrives, so no
//! drop, `mem::forget` or misuse can make an op touch a number the kernel has reused: a
//! forgotten op leaks its fd (with its buffer), it never aims at another file.
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};

use crate::driver::{Driver, FdKey};

/// Identities of open files, unique in the process (0 is "none").
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A shared, reference-counted fd.
#[derive(Debug)]
pub(crate) struct SharedFd {
    inner: Rc<Inner>,
}

struct Inner {
    /// Open until `Inner` drops (unless `released`).
    fd: RawFd,
    id: u64,
    /// The driver of the core the fd was made on (its epoll may have registered it).
    driver: Weak<RefCell<Driver>>,
    /// A task waiting to hold the only handle (close, into_std).
    sole_waiter: RefCell<Option<Waker>>,
    /// The fd was taken out by `try_into_owned`: not closed here.
    released: Cell<bool>,
}

impl SharedFd {
    /// Wraps `fd`, made on the current core (if any).
    pub fn new(fd: OwnedFd) -> SharedFd {
        let driver = crate::context::with_current(|c| Rc::downgrade(&c.driver)).unwrap_or_default();
        SharedFd {
            inner: Rc::new(Inner {
                fd: fd.into_raw_fd(),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                driver,
                sole_waiter: RefCell::new(None),
                released: Cell::new(false),
            }),
        }
    }

    pub fn raw(&self) -> RawFd {
        self.inner.fd
    }

    /// The number and the identity of the open file.
    pub fn key(&self) -> FdKey {
        FdKey {
            fd: self.inner.fd,
            id: self.inner.id,
        }
    }

    /// Whether `other` is a handle of the same open file.
    pub fn same(&self, other: &SharedFd) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }

    /// Waits until this is the only handle: every op that held the fd has completed.
    pub async fn sole(&self) {
        poll_fn(|cx| {
            if Rc::strong_count(&self.inner) == 1 {
                return Poll::Ready(());
            }
            *self.inner.sole_waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Takes the fd out, unregistered and open, if this is the only handle.
    pub fn try_into_owned(self) -> Result<OwnedFd, SharedFd> {
        if Rc::strong_count(&self.inner) != 1 {
            return Err(self);
        }
        self.inner.forget();
        self.inner.released.set(true);
        // SAFETY: this is the only handle and `released` keeps `Inner` from closing the fd,
        // so ownership of the open fd passes to the returned value.
        Ok(unsafe { OwnedFd::from_raw_fd(self.inner.fd) })
    }
}

impl Clone for SharedFd {
    fn clone(&self) -> SharedFd {
        SharedFd {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for SharedFd {
    fn drop(&mut self) {
        if Rc::strong_count(&self.inner) == 2 {
            // The handle left is about to be the only one.
            let waiter = self.inner.sole_waiter.borrow_mut().take();
            if let Some(w) = waiter {
                w.wake();
            }
        }
    }
}

impl Inner {
    /// Drops the registration in the driver of the fd's core. Where that driver is gone or
    /// busy, a stale registration is harmless: the kernel drops it when the file closes and a
    /// new file under the same number has a new identity.
    fn forget(&self) {
        if let Some(driver) = self.driver.upgrade() {
            if let Ok(mut d) = driver.try_borrow_mut() {
                d.forget_fd(FdKey {
                    fd: self.fd,
                    id: self.id,
                });
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.released.get() {
            return;
        }
        self.forget();
        // SAFETY: the last handle is gone; nothing else owns the fd, and no op is in flight
        // on it (each would hold a handle).
        drop(unsafe { OwnedFd::from_raw_fd(self.fd) });
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedFd")
            .field("fd", &self.fd)
            .field("id", &self.id)
            .finish()
    }
}
