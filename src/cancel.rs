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
use std::cell::RefCell;
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

/// A handle that cancels the scopes made with it ([`CancelExt::cancel_on`]); clones cancel
/// the same scopes.
#[derive(Clone, Default)]
pub struct CancelToken {
    state: Rc<TokenState>,
}

#[derive(Default)]
struct TokenState {
    scope: Rc<Scope>,
    /// Guarded futures to wake when cancelled (they poll on to their end).
    waiters: RefCell<Vec<Waker>>,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Cancels: every op running under the token's scopes is cancelled in the kernel, and
    /// the futures they guard are woken to finish.
    pub fn cancel(&self) {
        self.state.scope.cancel(io::ErrorKind::Other);
        let waiters = std::mem::take(&mut *self.state.waiters.borrow_mut());
        for w in waiters {
            w.wake();
        }
    }

    /// Whether [`cancel`](CancelToken::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.state.scope.is_cancelled()
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
            token: CancelToken::new(),
            deadline: Some(crate::time::sleep(duration)),
        }
    }

    /// Runs the future; once `token` is cancelled its ops are cancelled (error kind `Other`)
    /// and it runs on to its end, returning its own output.
    fn cancel_on(self, token: &CancelToken) -> WithCancel<Self> {
        WithCancel {
            future: self,
            token: token.clone(),
            deadline: None,
        }
    }
}

impl<F: Future> CancelExt for F {}

/// The future of [`CancelExt::cancel_after`] and [`CancelExt::cancel_on`].
#[must_use = "futures do nothing unless awaited"]
pub struct WithCancel<F> {
    future: F,
    token: CancelToken,
    deadline: Option<Sleep>,
}

impl<F: Future> Future for WithCancel<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned (never moved out while `self` is pinned);
        // the other fields are not, and `Sleep` is Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let mut future = unsafe { Pin::new_unchecked(&mut this.future) };
        let state = &this.token.state;
        let polled = {
            let _entered = scope::enter(&state.scope);
            future.as_mut().poll(cx)
        };
        if polled.is_ready() || state.scope.is_cancelled() {
            return polled;
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if Pin::new(deadline).poll(cx).is_ready() {
                this.deadline = None;
                state.scope.cancel(io::ErrorKind::TimedOut);
                // Ops not yet in the kernel fail at once; the others are answered soon.
                let _entered = scope::enter(&state.scope);
                return future.poll(cx);
            }
        } else {
            let mut waiters = state.waiters.borrow_mut();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

impl<F> fmt::Debug for WithCancel<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithCancel")
            .field("token", &self.token)
            .finish()
    }
}
