//! Tasks: spawned futures, their wakers and their join handles.
//!
//! A task lives in its core's task slab and never leaves that core, so its future need not be
//! `Send`. Its waker, which may be sent anywhere, holds only the task's slab key and the core's
//! thread-safe [`Shared`] part: woken on the core's own thread it goes straight onto the local
//! run queue; woken from another thread it goes into the core's inbox and the core's eventfd
//! is signalled.
use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::Core;

/// Work sent to a core from another thread; it runs on that core, inside its runtime.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The part of a core that other threads may touch: its inbox and its wake-up eventfd.
pub(crate) struct Shared {
    /// Unique per core; compared with the thread's current core to route a wake.
    pub id: u64,
    pub inbox: Mutex<Inbox>,
    pub wake_fd: std::os::fd::OwnedFd,
    /// Set when the eventfd was signalled and the core has not yet drained the inbox, so
    /// that a burst of remote wakes costs one write.
    pub notified: AtomicBool,
}

/// What other threads left for a core.
#[derive(Default)]
pub(crate) struct Inbox {
    pub wakes: Vec<Arc<TaskWaker>>,
    pub jobs: Vec<Job>,
    /// The core has stopped: jobs sent now are dropped at once (their senders see that).
    pub closed: bool,
}

impl Shared {
    pub fn new(id: u64) -> std::io::Result<Shared> {
        Ok(Shared {
            id,
            inbox: Mutex::new(Inbox::default()),
            wake_fd: crate::sys::eventfd()?,
            notified: AtomicBool::new(false),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the core if it is parked (one eventfd write per burst).
    pub fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            crate::sys::eventfd_signal(std::os::fd::AsRawFd::as_raw_fd(&self.wake_fd));
        }
    }

    /// Sends `job` to run on this core; gives it back if the core has stopped.
    pub fn send_job(&self, job: Job) -> Result<(), Job> {
        {
            let mut inbox = self.lock();
            if inbox.closed {
                return Err(job);
            }
            inbox.jobs.push(job);
        }
        self.notify();
        Ok(())
    }
}

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

/// How a task ended abnormally.
pub struct JoinError {
    repr: Repr,
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }
    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(payload),
        }
    }
}

enum Repr {
    Cancelled,
    Panic(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// The task was aborted (or its runtime shut down) before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }
    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }
    /// The panic's payload, to resume it with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the task was cancelled rather than panicked.
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.repr {
            Repr::Panic(p) => p,
            Repr::Cancelled => panic!("JoinError::into_panic on a cancelled task"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panic(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .copied()
                    .or_else(|| p.downcast_ref::<String>().map(String::as_str))
                    .unwrap_or("(non-string payload)");
                write!(f, "task panicked: {msg}")
            }
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinError({self})")
    }
}

impl std::error::Error for JoinError {}

/// What the executor tells a task's join side, independent of the output type.
pub(crate) trait TaskControl {
    fn aborted(&self) -> bool;
    fn cancelled(&self);
    fn panicked(&self, payload: Box<dyn Any + Send>);
}

/// A task's outcome as its join handle sees it (shared by [`JoinHandle`] and
/// [`RemoteJoinHandle`](super::RemoteJoinHandle)).
///
/// State: `result` holds the outcome from when the task ends until the handle takes it;
/// `taken` then records that it was taken. The task has finished when either holds.
pub(crate) struct JoinSlot<T> {
    result: Option<Result<T, JoinError>>,
    taken: bool,
    /// The handle's waker.
    waker: Option<Waker>,
}

impl<T> JoinSlot<T> {
    pub const fn new() -> Self {
        JoinSlot {
            result: None,
            taken: false,
            waker: None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.result.is_some() || self.taken
    }

    /// Records the outcome (the first one wins). Returns the handle's waker, to be woken
    /// after the caller releases its lock or borrow.
    #[must_use]
    pub fn finish(&mut self, result: Result<T, JoinError>) -> Option<Waker> {
        if self.is_finished() {
            return None;
        }
        self.result = Some(result);
        self.waker.take()
    }

    /// The handle's poll: the outcome once, else records the waker.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        if let Some(result) = self.result.take() {
            self.taken = true;
            return Poll::Ready(result);
        }
        assert!(
            !self.taken,
            "join handle polled after it returned its result"
        );
        match &mut self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

struct JoinInner<T> {
    join: JoinSlot<T>,
    aborted: bool,
}

pub(crate) struct JoinState<T> {
    inner: RefCell<JoinInner<T>>,
    task: Arc<TaskWaker>,
}

impl<T> JoinState<T> {
    pub fn new(task: Arc<TaskWaker>) -> Self {
        JoinState {
            inner: RefCell::new(JoinInner {
                join: JoinSlot::new(),
                aborted: false,
            }),
            task,
        }
    }

    pub fn finish(&self, result: Result<T, JoinError>) {
        let waker = self.inner.borrow_mut().join.finish(result);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> TaskControl for JoinState<T> {
    fn aborted(&self) -> bool {
        self.inner.borrow().aborted
    }
    fn cancelled(&self) {
        self.finish(Err(JoinError::cancelled()));
    }
    fn panicked(&self, payload: Box<dyn Any + Send>) {
        self.finish(Err(JoinError::panic(payload)));
    }
}

/// A handle to a spawned task: await it for the task's output. Dropping it detaches the task,
/// which keeps running.
///
/// ```
/// # corering::Runtime::new().unwrap().block_on(async {
/// let handle = corering::spawn(async { 6 * 7 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # });
/// ```
pub struct JoinHandle<T> {
    state: Rc<JoinState<T>>,
    _not_send: PhantomData<*const ()>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Rc<JoinState<T>>) -> Self {
        JoinHandle {
            state,
            _not_send: PhantomData,
        }
    }

    /// Asks the task to stop: it is dropped at its next turn (releasing everything it holds) and
    /// awaiting the handle gives a cancelled [`JoinError`]. Does nothing if it has finished.
    pub fn abort(&self) {
        {
            let mut inner = self.state.inner.borrow_mut();
            if inner.join.is_finished() {
                return;
            }
            inner.aborted = true;
        }
        self.state.task.wake_by_ref();
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.state.inner.borrow().join.is_finished()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.state.inner.borrow_mut().join.poll(cx)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// A task in its core's slab.
pub(crate) struct TaskSlot {
    /// `None` while the task is being polled.
    pub future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    pub waker: Arc<TaskWaker>,
    pub control: Rc<dyn TaskControl>,
}

/// Spawns `future` on `core`.
pub(crate) fn spawn_on_core<F>(core: &Core, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let mut tasks = core.tasks.borrow_mut();
    let entry = tasks.vacant_entry();
    let waker = Arc::new(TaskWaker {
        key: entry.key(),
        shared: core.shared.clone(),
        scheduled: AtomicBool::new(false),
    });
    let state = Rc::new(JoinState::new(waker.clone()));
    let done = state.clone();
    let task = async move {
        let out = future.await;
        done.finish(Ok(out));
    };
    entry.insert(TaskSlot {
        future: Some(Box::pin(task)),
        waker: waker.clone(),
        control: state.clone(),
    });
    drop(tasks);
    core.stats.borrow_mut().tasks_spawned += 1;
    waker.wake_by_ref();
    JoinHandle::new(state)
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
