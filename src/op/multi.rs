//! The owner of one multishot op (io_uring only): armed once, it answers many times.
//!
//! The owner (a listener's standing accept, a stream's standing receive) takes the op's
//! completions in order with [`Multishot::poll_next`]; a future that polls it and is dropped
//! loses nothing, as the completions stay queued for the next poll. When the owner itself is
//! dropped, the op is cancelled and `R` releases what it produced meanwhile and after
//! (`driver::MultiOrphan`): the op's fd handle and any buffers it names stay alive until the
//! kernel's last completion.
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::squeue;

use super::SharedFd;
use crate::driver::{Driver, MultiOrphan, CQE_F_MORE};

/// An armed multishot op and what its completions need.
pub(crate) struct Multishot<R: MultiOrphan + 'static> {
    driver: Rc<RefCell<Driver>>,
    /// `None` once the last completion has been taken.
    index: Option<usize>,
    /// Released into the driver when the owner drops the op before its end.
    rest: Option<R>,
}

impl<R: MultiOrphan + 'static> Multishot<R> {
    /// Arms `entry` on the current core's io_uring driver, paused once `limit` completions
    /// wait untaken (its owner re-arms it when it wants more).
    pub fn arm(entry: squeue::Entry, rest: R, limit: u16) -> io::Result<Multishot<R>> {
        let driver = crate::context::current_driver();
        let index = match driver.borrow_mut().uring() {
            Some(uring) => uring.arm_multi(entry, limit)?,
            None => return Err(io::Error::from(io::ErrorKind::Unsupported)),
        };
        Ok(Multishot {
            driver,
            index: Some(index),
            rest: Some(rest),
        })
    }

    /// The next completion, `(res, flags)`; `None` once the op has ended and its last
    /// completion was taken (re-arm to get more).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(i32, u32)>> {
        let Some(index) = self.index else {
            return Poll::Ready(None);
        };
        let polled = match self.driver.borrow_mut().uring() {
            Some(uring) => uring.poll_multi(index, cx),
            None => Poll::Ready((-libc::ECANCELED, 0, true)),
        };
        let (res, flags, last) = std::task::ready!(polled);
        if last {
            self.index = None;
            // The kernel is done with the op: what it held can go.
            drop(self.rest.take());
        }
        Poll::Ready(Some((res, flags)))
    }

    /// Whether the op runs on `driver`.
    pub fn is_on(&self, driver: &Rc<RefCell<Driver>>) -> bool {
        Rc::ptr_eq(&self.driver, driver)
    }

    /// Whether the op runs on the driver at `driver`.
    pub fn is_on_ptr(&self, driver: *const RefCell<Driver>) -> bool {
        std::ptr::eq(Rc::as_ptr(&self.driver), driver)
    }

    /// Asks the op to end; its owner takes its completions up to the last.
    pub fn cancel(&self) {
        if let Some(index) = self.index {
            if let Some(uring) = self.driver.borrow_mut().uring() {
                uring.cancel_multi(index);
            }
        }
    }
}

impl<R: MultiOrphan + 'static> Drop for Multishot<R> {
    fn drop(&mut self) {
        if let (Some(index), Some(rest)) = (self.index.take(), self.rest.take()) {
            give_up(&self.driver, index, rest);
        }
    }
}

/// Hands a multishot op whose owner is gone to the driver: `rest` is told so, then releases
/// what the op produced and still produces, and the op is cancelled.
pub(crate) fn give_up(
    driver: &Rc<RefCell<Driver>>,
    index: usize,
    mut rest: impl MultiOrphan + 'static,
) {
    rest.orphaned();
    let ended = match driver.try_borrow_mut() {
        Ok(mut driver) => match driver.uring() {
            Some(uring) => uring.drop_multi(index, Box::new(rest)),
            None => None,
        },
        Err(_) => {
            // Only reachable from inside the driver, which never drops an owner: leaking is
            // the one choice that cannot free memory the kernel may use.
            std::mem::forget(rest);
            None
        }
    };
    // Released after the driver borrow ends (dropping an fd handle may call into it).
    drop(ended);
}

/// The fd handle a multishot op holds. Once the op's owner is gone, the handle counts the op
/// as in the kernel until its last completion (so `close` and `into_std` wait for it).
pub(crate) struct HeldFd {
    fd: SharedFd,
    orphaned: bool,
}

impl HeldFd {
    pub fn new(fd: &SharedFd) -> HeldFd {
        HeldFd {
            fd: fd.clone(),
            orphaned: false,
        }
    }

    /// The owner gave the op up.
    pub fn orphaned(&mut self) {
        self.orphaned = true;
        self.fd.orphaned();
    }

    /// A completion of the op with `flags` was released: the last one answers the handle.
    pub fn released(&mut self, flags: u32) {
        if flags & CQE_F_MORE == 0 && std::mem::take(&mut self.orphaned) {
            self.fd.answered();
        }
    }
}
