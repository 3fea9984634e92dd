//! The fd handle every op holds.
//!
//! A socket or file is one [`SharedFd`]; the stream (or each of its halves) and every op in
//! flight on it hold a clone. The fd number is closed only when the last clone is gone, and an
//! op dropped in flight keeps its clone in the op table until its completion arrives, so no
//! drop, `mem::forget` or misuse can make an op touch a number the kernel has reused: a
//! forgotten op leaks its fd (with its buffer), it never aims at another file.
//!
//! The handle also remembers the backend it was made for (sockets are non-blocking on epoll
//! only), so an op on another backend's runtime of the same thread is refused with an error
//! instead of blocking the thread in a syscall; and it counts the ops holding it that were
//! dropped in flight, so that `close` and `into_std` wait for those (and only those).
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};

use crate::driver::{BackendKind, Driver, FdKey};

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
    /// The driver of the core the fd was made on (its epoll may have registered it), and its
    /// backend.
    driver: Weak<RefCell<Driver>>,
    kind: Option<BackendKind>,
    /// Ops holding a handle that were dropped in flight and not yet answered by the kernel.
    in_kernel: Cell<usize>,
    /// A task waiting for `in_kernel` to drop to zero (close, into_std).
    waiter: RefCell<Option<Waker>>,
    /// The fd was taken out by `try_into_owned`: not closed here.
    released: Cell<bool>,
}

impl SharedFd {
    /// Wraps `fd`, made on the current core (if any).
    pub fn new(fd: OwnedFd) -> SharedFd {
        let here = crate::context::with_current(|c| (Rc::downgrade(&c.driver), c.kind));
        let (driver, kind) = match here {
            Some((driver, kind)) => (driver, Some(kind)),
            None => (Weak::new(), None),
        };
        SharedFd {
            inner: Rc::new(Inner {
                fd: fd.into_raw_fd(),
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                driver,
                kind,
                in_kernel: Cell::new(0),
                waiter: RefCell::new(None),
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

    /// The backend the fd was made for (`None`: made outside a runtime).
    pub fn kind(&self) -> Option<BackendKind> {
        self.inner.kind
    }

    /// An op holding this handle was dropped while the kernel has it.
    pub fn orphaned(&self) {
        self.inner.in_kernel.set(self.inner.in_kernel.get() + 1);
    }

    /// The kernel answered such an op (its handle is released right after).
    pub fn answered(&self) {
        let left = self.inner.in_kernel.get().saturating_sub(1);
        self.inner.in_kernel.set(left);
        if left == 0 {
            let waiter = self.inner.waiter.borrow_mut().take();
            if let Some(w) = waiter {
                w.wake();
            }
        }
    }

    /// Waits until every op holding the fd that was dropped in flight has been answered.
    pub async fn settled(&self) {
        poll_fn(|cx| {
            if self.inner.in_kernel.get() == 0 {
                return Poll::Ready(());
            }
            *self.inner.waiter.borrow_mut() = Some(cx.waker().clone());
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
