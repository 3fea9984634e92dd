//! Shutdown: ask every core to stop accepting, drain, then cancel what is left.
//!
//! A request sets one deadline for all cores and wakes each of them. Each core then
//! resolves its [`shutdown_requested`] futures, makes pending and new
//! [`TcpListener::accept`](crate::net::TcpListener::accept) calls fail with [`ShuttingDown`],
//! and keeps running its tasks until they have all finished or the deadline passes; then it
//! drops what is left (cancelling in-flight ops and waiting for the kernel to confirm).
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::inbox::Shared;

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    cores: Vec<Arc<Shared>>,
}

/// Shared by a runtime's cores and its shutdown handles.
#[derive(Default)]
pub(crate) struct ShutdownState {
    state: Mutex<State>,
}

impl ShutdownState {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn register(&self, core: &Arc<Shared>) {
        self.lock().cores.push(core.clone());
    }

    pub fn unregister(&self, core: &Arc<Shared>) {
        self.lock().cores.retain(|c| !Arc::ptr_eq(c, core));
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    fn request(&self, grace: Duration) {
        let cores = {
            let mut state = self.lock();
            if state.deadline.is_some() {
                return;
            }
            state.deadline = Some(Instant::now() + grace);
            state.cores.clone()
        };
        for core in cores {
            core.notify();
        }
    }
}

/// Asks a runtime's cores to shut down; `Clone + Send + Sync`, usable from any thread.
///
/// ```
/// use std::time::Duration;
/// let rt = corering::Runtime::new().unwrap();
/// let stop = rt.shutdown_handle();
/// let served = rt.block_on(async move {
///     corering::spawn(async move { stop.shutdown(Duration::from_secs(1)) });
///     corering::shutdown_requested().await;
///     "stopped"
/// });
/// assert_eq!(served, "stopped");
/// ```
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) state: Arc<ShutdownState>,
}

impl ShutdownHandle {
    /// Requests shutdown: cores stop accepting at once and have `grace` to finish their
    /// tasks; whatever is still running then is cancelled. Later calls do nothing.
    pub fn shutdown(&self, grace: Duration) {
        self.state.request(grace);
    }

    /// Whether shutdown has been requested.
    pub fn is_requested(&self) -> bool {
        self.state.deadline().is_some()
    }
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle")
            .field("requested", &self.is_requested())
            .finish()
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
    super::with_current(|c| c.shutdown_deadline.get().is_some()).unwrap_or(false)
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
            if core.shutdown_deadline.get().is_some() {
                return (Poll::Ready(()), None);
            }
            let mut waiters = core.shutdown_waiters.borrow_mut();
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
                let mut waiters = core.shutdown_waiters.borrow_mut();
                if waiters.contains(key) {
                    waiters.remove(key);
                }
            });
        }
    }
}
