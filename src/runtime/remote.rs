//! Cross-core work: build a task on another core and await it from anywhere.
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::join::JoinSlot;
use super::JoinError;

/// The state a remote task and its handle share across threads.
struct Slot<T> {
    inner: Mutex<SlotInner<T>>,
    /// Set by [`RemoteJoinHandle::abort`]; read by the forwarding task on the target core.
    abort: AtomicBool,
}

struct SlotInner<T> {
    /// The outcome, and the handle's waker (any thread).
    join: JoinSlot<T>,
    /// The forwarding task's waker (the target core), woken by `abort`.
    task_waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotInner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, result: Result<T, JoinError>) {
        let waker = self.lock().join.finish(result);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Sends the outcome when dropped unsent: a job dropped by a stopped core cancels its handle.
struct Sender<T>(Arc<Slot<T>>);

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.0.finish(Err(JoinError::cancelled()));
    }
}

/// Spawns a task on core `core` of the current runtime: `make` runs there and builds the
/// future, which therefore need not be `Send` (only `make` and the output cross cores).
///
/// ```
/// # corering::Runtime::new().unwrap().block_on(async {
/// let handle = corering::spawn_on(0, || async { corering::core_id() });
/// assert_eq!(handle.await.unwrap(), 0);
/// # });
/// ```
///
/// # Panics
///
/// Outside a runtime, or if `core` is not below [`cores()`](crate::cores).
pub fn spawn_on<F, Fut>(core: usize, make: F) -> RemoteJoinHandle<Fut::Output>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future + 'static,
    Fut::Output: Send + 'static,
{
    let target = super::with_current(|c| {
        let n = c.set.cores.len();
        assert!(
            core < n,
            "spawn_on: core {core} does not exist (this runtime has {n})"
        );
        c.set.cores[core].clone()
    })
    .expect("spawn_on must be called from inside a corering runtime");
    let slot = Arc::new(Slot {
        inner: Mutex::new(SlotInner {
            join: JoinSlot::new(),
            task_waker: None,
        }),
        abort: AtomicBool::new(false),
    });
    let sender = Sender(slot.clone());
    let job = Box::new(
        move || match std::panic::catch_unwind(AssertUnwindSafe(make)) {
            Ok(future) => {
                let local = super::spawn(future);
                super::spawn(forward(local, sender));
            }
            Err(payload) => sender.0.finish(Err(JoinError::panic(payload))),
        },
    );
    // A stopped core gives the job back; dropping it cancels the handle.
    drop(target.send_job(job));
    RemoteJoinHandle { slot }
}

/// On the target core: waits for the local task (aborting it when asked) and sends its result.
async fn forward<T>(mut local: super::JoinHandle<T>, sender: Sender<T>) {
    let slot = sender.0.clone();
    let result = std::future::poll_fn(|cx| {
        // Waker first, then the flag: an `abort` in between either sees the waker or its
        // flag is seen here.
        slot.lock().task_waker = Some(cx.waker().clone());
        if slot.abort.load(Ordering::Acquire) {
            local.abort();
        }
        Pin::new(&mut local).poll(cx)
    })
    .await;
    sender.0.finish(result);
}

/// The handle of a task started with [`spawn_on`]: `Send`, awaitable from any core or
/// thread. Dropping it detaches the task.
pub struct RemoteJoinHandle<T> {
    slot: Arc<Slot<T>>,
}

impl<T> RemoteJoinHandle<T> {
    /// Asks the task to stop; awaiting the handle then gives a cancelled [`JoinError`] (unless
    /// it had already finished).
    pub fn abort(&self) {
        self.slot.abort.store(true, Ordering::Release);
        let waker = self.slot.lock().task_waker.take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the task has finished.
    pub fn is_finished(&self) -> bool {
        self.slot.lock().join.is_finished()
    }
}

impl<T> Future for RemoteJoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.lock().join.poll(cx)
    }
}

impl<T> fmt::Debug for RemoteJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteJoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
