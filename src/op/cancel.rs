//! Cancel scopes: ending in-flight ops early without losing what they did.
//!
//! A scope is entered around each poll of the future it guards (see [`crate::cancel`]). An op
//! that goes into the kernel while scopes are entered files its slot with each of them; when a
//! scope is cancelled it asks the driver to cancel every op filed with it, and each op's own
//! future then takes the kernel's answer: `-ECANCELED` (nothing happened; the future gets the
//! scope's error) or the result that won the race (bytes read or written, a connection
//! accepted), which the future returns as if no cancel had been asked. Either way the buffer
//! comes back. Ops first polled inside a cancelled scope fail at once, without a syscall.
use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};
use std::task::Poll;

use slab::Slab;

use crate::driver::Driver;

/// The error inner value of an op ended by a cancel scope (`ErrorKind::TimedOut` for a
/// deadline, `ErrorKind::Other` for a [`CancelToken`](crate::cancel::CancelToken)). Test with
/// [`Cancelled::is`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl Cancelled {
    /// Whether `err` (or the error a [`PartialWrite`](crate::net::PartialWrite) wraps) says
    /// its operation was cancelled.
    pub fn is(err: &io::Error) -> bool {
        // Walk the error's chain (io errors wrapping errors wrapping io errors).
        let mut cur: Option<&(dyn std::error::Error + 'static)> = err.get_ref().map(|e| e as _);
        while let Some(e) = cur {
            if e.is::<Cancelled>() {
                return true;
            }
            cur = match e.downcast_ref::<io::Error>() {
                Some(io) => io.get_ref().map(|e| e as _),
                None => e.source(),
            };
        }
        false
    }

    pub(crate) fn error(kind: io::ErrorKind) -> io::Error {
        io::Error::new(kind, Cancelled)
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// One cancel scope.
#[derive(Default)]
pub(crate) struct Scope {
    /// Once cancelled: the error kind its ops fail with.
    cancelled: Cell<Option<io::ErrorKind>>,
    /// Ops in the kernel under this scope: their driver and slot.
    ops: RefCell<Slab<(Weak<RefCell<Driver>>, usize)>>,
}

impl Scope {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.get().is_some()
    }

    /// Cancels the scope: every op filed with it is asked to end; later ops fail at once.
    pub fn cancel(&self, kind: io::ErrorKind) {
        if self.cancelled.get().is_some() {
            return;
        }
        self.cancelled.set(Some(kind));
        let ops: Vec<_> = self.ops.borrow().iter().map(|(_, op)| op.clone()).collect();
        for (driver, index) in ops {
            // A driver busy here (a cancel from inside the driver's own callbacks) cannot
            // take the request; the op then runs to its natural end.
            if let Some(driver) = driver.upgrade() {
                if let Ok(mut d) = driver.try_borrow_mut() {
                    d.cancel_op(index);
                }
            }
        }
    }

    fn error(&self) -> Option<io::Error> {
        self.cancelled.get().map(Cancelled::error)
    }
}

thread_local! {
    /// The scopes entered on this thread, outermost first.
    static ENTERED: RefCell<Vec<Rc<Scope>>> = const { RefCell::new(Vec::new()) };
    /// `ENTERED.len()`, readable without touching the list (the common case: no scope).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Enters `scope` until the guard drops.
pub(crate) fn enter(scope: &Rc<Scope>) -> Entered {
    ENTERED.with(|e| e.borrow_mut().push(scope.clone()));
    DEPTH.set(DEPTH.get() + 1);
    Entered(())
}

/// Leaves the scope entered last.
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        DEPTH.set(DEPTH.get() - 1);
        let left = ENTERED.with(|e| e.borrow_mut().pop());
        drop(left);
    }
}

/// Sets the entered scopes aside until the guard drops: a runtime's loop runs its tasks
/// outside whatever scope the code that called `block_on` was in (a second runtime on the
/// same thread, driven from inside a task of the first).
pub(crate) fn set_aside() -> SetAside {
    let saved = ENTERED.with(|e| std::mem::take(&mut *e.borrow_mut()));
    DEPTH.set(0);
    SetAside(saved)
}

/// Restores the scopes [`set_aside`] took.
pub(crate) struct SetAside(Vec<Rc<Scope>>);

impl Drop for SetAside {
    fn drop(&mut self) {
        let saved = std::mem::take(&mut self.0);
        DEPTH.set(saved.len());
        let inner = ENTERED.with(|e| std::mem::replace(&mut *e.borrow_mut(), saved));
        drop(inner);
    }
}

/// Whether any scope is entered (one thread-local read).
pub(crate) fn any_entered() -> bool {
    DEPTH.get() > 0
}

/// The error a new op gets if an entered scope is cancelled.
pub(crate) fn cancelled_now() -> Option<io::Error> {
    ENTERED.with(|e| e.borrow().iter().find_map(|s| s.error()))
}

/// Polls a standing op (a listener's accept, a stream's multishot recv: it belongs to the
/// object, not to the future polling it) outside the entered scopes, so that no scope cancels
/// it; while it has nothing, a cancelled scope ends the poll with its error instead. Nothing
/// is lost: what the op gets later goes to the next poll.
pub(crate) fn poll_standing<T>(poll: impl FnOnce() -> Poll<T>) -> Poll<io::Result<T>> {
    if !any_entered() {
        return poll().map(Ok);
    }
    let polled = {
        let _aside = set_aside();
        poll()
    };
    match polled {
        Poll::Ready(v) => Poll::Ready(Ok(v)),
        Poll::Pending => match any_entered().then(cancelled_now).flatten() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Pending,
        },
    }
}

/// An op's filing with the entered scopes; dropping it unfiles the op.
pub(crate) struct Filed {
    entries: Vec<(Rc<Scope>, usize)>,
}

/// Files the op in `index` of `driver` with every entered scope; `None` if there is none.
pub(crate) fn file(driver: &Rc<RefCell<Driver>>, index: usize) -> Option<Filed> {
    ENTERED.with(|e| {
        let scopes = e.borrow();
        if scopes.is_empty() {
            return None;
        }
        let entries = scopes
            .iter()
            .map(|s| {
                let key = s.ops.borrow_mut().insert((Rc::downgrade(driver), index));
                (s.clone(), key)
            })
            .collect();
        Some(Filed { entries })
    })
}

impl Filed {
    /// The error of the first of its scopes that was cancelled.
    pub fn error(&self) -> Option<io::Error> {
        self.entries.iter().find_map(|(s, _)| s.error())
    }
}

impl Drop for Filed {
    fn drop(&mut self) {
        for (scope, key) in self.entries.drain(..) {
            scope.ops.borrow_mut().try_remove(key);
        }
    }
}
