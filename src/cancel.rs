//! Cancellation that hands the buffer back.
//!
//! Dropping a future cancels its ops too, safely (their buffers stay alive until the kernel is
//! done, and what a read still got goes to the next read), but the dropped future's buffer and
//! result are gone with it. A **cancel scope** ends ops without dropping anything: the ops the
//! future has in the kernel are cancelled there, each waits for the kernel's answer, and the
//! future runs on to its own end, with every buffer back and every result honest. An op that
//! lost the race (its bytes arrived first) returns them; one that was cancelled fails with an
//! error that [`Cancelled::is`] recognises, of kind `TimedOut` after a deadline and `Other`
//! after a [`CancelToken`]; ops started after the cancel fail at once.
//!
//! ```
//! use std::time::Duration;
//! use corering::cancel::{CancelExt, Cancelled};
//! use corering::net::{TcpListener, TcpStream};
//! # corering::Runtime::new().unwrap().block_on(async {
//! # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//! # let mut stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
//! let buf = Vec::with_capacity(4096);
//! let (res, buf) = stream.read(buf).cancel_after(Duration::from_millis(5)).await;
//! match res {
//!     Ok(n) => println!("{n} bytes: {:?}", &buf[..n]),
//!     Err(e) if Cancelled::is(&e) => println!("nothing within 5 ms; buffer of {} back", buf.capacity()),
//!     Err(e) => println!("error: {e}"),
//! }
//! # });
//! ```
//!
//! A `write_all` cut short says how much went out: its error carries a
//! [`PartialWrite`](crate::net::PartialWrite). The guarded future must end once its ops fail
//! (a loop that retries every error would not); what it waits on other than corering's ops
//! (a channel, a sleep) is not cut short.
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::op::cancel::{self as scope, Scope};
pub use crate::op::Cancelled;
use crate::time::Sleep;
use slab::Slab;

/// A handle that cancels the scopes made with it ([`CancelExt::cancel_on`]); clones cancel
/// the same scopes.
#[derive(Clone, Default)]
pub struct CancelToken {
    state: Rc<TokenState>,
}

#[derive(Default)]
struct TokenState {
    cancelled: Cell<bool>,
    /// The scope of each live `cancel_on` future, and its waker (to finish once cancelled).
    guarded: RefCell<Slab<(Rc<Scope>, Option<Waker>)>>,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels: every op running under the token's live scopes is cancelled in the kernel,
    /// and the futures they guard are woken to finish; scopes made later start cancelled.
    pub fn cancel(&self) {
        if self.state.cancelled.replace(true) {
            return;
        }
        let guarded: Vec<_> = self
            .state
            .guarded
            .borrow_mut()
            .iter_mut()
            .map(|(_, (scope, waker))| (scope.clone(), waker.take()))
            .collect();
        for (scope, waker) in guarded {
            scope.cancel(io::ErrorKind::Other);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.cancelled.get()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Cancel scopes for any future.
pub trait CancelExt: Future + Sized {
    /// Runs the future; once `duration` has passed its ops are cancelled (error kind
    /// `TimedOut`) and it runs on to its end, returning its own output.
    fn cancel_after(self, duration: Duration) -> WithCancel<Self> {
        WithCancel {
            future: self,
            scope: Rc::default(),
            trigger: Trigger::Deadline(crate::time::sleep(duration)),
        }
    }

    /// Runs the future; once `token` is cancelled its ops are cancelled (error kind `Other`)
    /// and it runs on to its end, returning its own output.
    fn cancel_on(self, token: &CancelToken) -> WithCancel<Self> {
        WithCancel {
            future: self,
            scope: Rc::default(),
            trigger: Trigger::Token(token.clone(), None),
        }
    }
}

impl<F: Future> CancelExt for F {}

/// The future of [`CancelExt::cancel_after`] and [`CancelExt::cancel_on`].
///
/// Each has a scope of its own: once it is dropped, ops it had filed are no longer cancelled
/// by its deadline or token.
#[must_use = "futures do nothing unless awaited"]
pub struct WithCancel<F> {
    future: F,
    scope: Rc<Scope>,
    trigger: Trigger,
}

enum Trigger {
    /// `cancel_after`: fires once; `None` after it has.
    Deadline(Sleep),
    Fired,
    /// `cancel_on`: the token, and this future's entry with it once polled.
    Token(CancelToken, Option<usize>),
}

impl<F: Future> Future for WithCancel<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned (never moved out while `self` is pinned,
        // and `Drop` does not touch it); the other fields are not, and are Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let mut future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Trigger::Token(token, _) = &this.trigger {
            if token.is_cancelled() {
                this.scope.cancel(io::ErrorKind::Other);
            }
        }
        let polled = {
            let _entered = scope::enter(&this.scope);
            future.as_mut().poll(cx)
        };
        if polled.is_ready() || this.scope.is_cancelled() {
            return polled;
        }
        match &mut this.trigger {
            Trigger::Deadline(sleep) => {
                if Pin::new(sleep).poll(cx).is_ready() {
                    this.trigger = Trigger::Fired;
                    this.scope.cancel(io::ErrorKind::TimedOut);
                    // Ops not yet in the kernel fail at once; the others are answered soon.
                    let _entered = scope::enter(&this.scope);
                    return future.poll(cx);
                }
            }
            Trigger::Fired => {}
            // Cancelled by the future itself during this first poll, before it was guarded.
            Trigger::Token(token, _) if token.is_cancelled() => {
                this.scope.cancel(io::ErrorKind::Other);
                let _entered = scope::enter(&this.scope);
                return future.poll(cx);
            }
            Trigger::Token(token, key) => {
                let mut guarded = token.state.guarded.borrow_mut();
                match key.and_then(|k| guarded.get_mut(k)) {
                    Some((_, waker)) => match waker {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    },
                    None => {
                        *key = Some(guarded.insert((this.scope.clone(), Some(cx.waker().clone()))))
                    }
                }
            }
        }
        Poll::Pending
    }
}

impl<F> Drop for WithCancel<F> {
    fn drop(&mut self) {
        if let Trigger::Token(token, Some(key)) = &self.trigger {
            token.state.guarded.borrow_mut().try_remove(*key);
        }
    }
}

impl<F> fmt::Debug for WithCancel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithCancel")
            .field("cancelled", &self.scope.is_cancelled())
            .finish()
    }
}
