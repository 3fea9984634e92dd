//! Task wakers: a waker, which may be sent anywhere, holds only the task's slab key and the
//! core's thread-safe [`Shared`] part: woken on the core's own thread it goes straight onto the
//! local run queue; woken from another thread it goes into the core's inbox and the core's
//! eventfd is signalled.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Wake};

use super::inbox::Shared;

/// The key a block_on root future is scheduled under (never a slab key).
pub(crate) const ROOT_KEY: usize = usize::MAX;

/// A task's waker.
///
/// State bit: `scheduled` is true from the moment the task is queued (locally or in the inbox)
/// until the executor takes it off the queue to poll it; a wake while it is set does nothing,
/// so a task is queued at most once.
pub(crate) struct TaskWaker {
    pub key: usize,
    pub shared: Arc<Shared>,
    pub scheduled: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if super::current_id() == Some(self.shared.id) {
            super::with_current(|core| core.run_queue.borrow_mut().push_back(self.clone()));
        } else {
            {
                let mut inbox = self.shared.lock();
                if inbox.closed {
                    return;
                }
                inbox.wakes.push(self.clone());
            }
            self.shared.notify();
        }
    }
}

/// Yields once to the other tasks of this core (and to I/O: the runtime completes a loop turn
/// before the task runs again).
///
/// ```
/// # corering::Runtime::new().unwrap().block_on(async {
/// corering::yield_now().await;
/// # });
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}
