//! Tasks and their join handles.
//!
//! A task lives in its core's task slab and never leaves that core, so its future need not be
//! `Send`. Its outcome reaches its [`JoinHandle`] through a [`JoinSlot`].
use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::waker::TaskWaker;
use super::Core;

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

/// A task's future, which hands its output to the join state. Written by hand: an
/// `async move { done.finish(future.await) }` block keeps the moved-in future twice (as the
/// captured value and as the awaited one), doubling every task's memory.
struct Finishing<F: Future> {
    future: F,
    done: Option<Rc<JoinState<F::Output>>>,
}

impl<F: Future> Future for Finishing<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned (never moved while `self` is pinned, and
        // not touched by a Drop impl); `done` is not pinned and is Unpin.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let out = std::task::ready!(future.poll(cx));
        if let Some(done) = this.done.take() {
            done.finish(Ok(out));
        }
        Poll::Ready(())
    }
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
    let task = Finishing {
        future,
        done: Some(state.clone()),
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
