//! The runtime: one executor per core, each with its own backend instance.
//!
//! * [`core`]: one core's state and loop (run queue, timers, park).
//! * [`join`]: tasks and join handles.
//! * [`waker`]: task wakers, [`yield_now`].
//! * [`inbox`]: what other threads leave for a core (wakes, jobs) and its wake-up.
//! * [`builder`]: [`Builder`] and [`Runtime`] (one core on the calling thread: `block_on`).
//! * [`run`]: thread-per-core, [`Runtime::run`].
//! * [`remote`]: cross-core [`spawn_on`].
//! * [`shutdown`]: shutdown requests and draining.
//!
//! A core is reached from its thread through a thread-local, set while its loop runs.
mod builder;
mod core;
mod inbox;
mod join;
mod remote;
mod run;
mod shutdown;
mod signals;
mod waker;

pub use crate::context::{is_shutting_down, shutdown_requested, ShutdownRequested, ShuttingDown};
pub use builder::{Builder, Runtime};
pub use join::{JoinError, JoinHandle};
pub use remote::{spawn_on, RemoteJoinHandle};
pub use run::CoreReport;
pub use shutdown::ShutdownHandle;
pub use waker::yield_now;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use self::core::Core;
use crate::context::EnterContext;
use crate::driver::{BackendKind, DriverStats};

/// Counters of one core (a snapshot from [`Runtime::stats`], [`stats`] or a [`CoreReport`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Tasks spawned so far.
    pub tasks_spawned: u64,
    /// Tasks alive now.
    pub tasks_alive: u64,
    /// Wake-ups that came from other threads (other cores included).
    pub remote_wakes: u64,
    /// Threads of the runtime's blocking pool alive now (shared by its cores).
    pub blocking_threads: u64,
    /// The most blocking-pool threads alive at once so far.
    pub blocking_threads_peak: u64,
    /// The driver's counters.
    pub driver: DriverStats,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    static CURRENT_ID: Cell<Option<u64>> = const { Cell::new(None) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_core_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

fn current_id() -> Option<u64> {
    CURRENT_ID.with(Cell::get)
}

/// Runs `f` with the current core, if there is one.
pub(crate) fn with_current<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(|core| f(core)))
}

const OUTSIDE: &str =
    "this must be called from inside a corering runtime (Runtime::block_on or run)";

fn current() -> Rc<Core> {
    CURRENT.with(|c| c.borrow().clone()).expect(OUTSIDE)
}

/// Makes `core` the thread's current core until dropped.
pub(crate) struct Enter {
    prev: Option<Rc<Core>>,
    prev_id: Option<u64>,
    /// Restored after the fields above (fields drop in order).
    _ctx: EnterContext,
    _scopes: crate::op::cancel::SetAside,
}

impl Enter {
    pub(crate) fn new(core: &Rc<Core>) -> Enter {
        let ctx = EnterContext::new(&core.ctx);
        let prev = CURRENT.with(|c| c.borrow_mut().replace(core.clone()));
        let prev_id = CURRENT_ID.with(|c| c.replace(Some(core.shared.id)));
        Enter {
            prev,
            prev_id,
            _ctx: ctx,
            _scopes: crate::op::cancel::set_aside(),
        }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // Dropping the core handle happens outside the thread-local borrow.
        let _old = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
        CURRENT_ID.with(|c| c.set(self.prev_id));
    }
}

/// Spawns a task on the current core. The future need not be `Send`: a task never leaves the
/// core it was spawned on.
///
/// ```
/// # corering::Runtime::new().unwrap().block_on(async {
/// let shared = std::rc::Rc::new(5); // not Send, and that is fine
/// let task = corering::spawn(async move { *shared + 1 });
/// assert_eq!(task.await.unwrap(), 6);
/// # });
/// ```
///
/// # Panics
///
/// Outside a runtime.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    join::spawn_on_core(&current(), future)
}

/// Runs `f` on the runtime's blocking pool (a thread that may block: a slow syscall, a
/// CPU-heavy computation, a library without async) and gives its value to the task that
/// awaits the handle, on this core. The pool is bounded
/// ([`Builder::blocking_threads`](crate::Builder::blocking_threads)); jobs beyond the bound wait
/// their turn. A panic in `f` ends only that job: the handle gives a panic [`JoinError`].
///
/// The job is handed to the pool when its task first runs (the next loop turn).
/// [`JoinHandle::abort`] (or the runtime shutting down) before a thread has started it means
/// it never runs; a job already running is let go (nothing waits for it, the runtime's drop
/// included) and runs to its end on its thread. The pool is shared with file operations on
/// epoll: jobs that block until this runtime's own file I/O completes can fill it and wait
/// forever; keep such waits off the pool. A pool thread that cannot be started fails the job
/// (the handle reports a panic that says so).
///
/// ```
/// # corering::Runtime::new().unwrap().block_on(async {
/// let sum = corering::spawn_blocking(|| (1..=100u64).sum::<u64>()).await.unwrap();
/// assert_eq!(sum, 5050);
/// let failed = corering::spawn_blocking(|| -> u8 { panic!("only this job") }).await;
/// assert!(failed.unwrap_err().is_panic());
/// # });
/// ```
///
/// # Panics
///
/// Outside a runtime.
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let job = crate::op::Op::new(crate::op::blocking::BlockingFn::new(f));
    spawn(async move {
        match job.await {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => std::panic::resume_unwind(payload),
            Err(e) => panic!("spawn_blocking: the job could not run: {e}"),
        }
    })
}

/// The backend of the current runtime.
///
/// # Panics
///
/// Outside a runtime.
pub fn backend() -> BackendKind {
    current().info.kind()
}

/// The index of the current core: `0..cores()` inside [`Runtime::run`], 0 in `block_on`.
///
/// # Panics
///
/// Outside a runtime.
pub fn core_id() -> usize {
    current().index
}

/// How many cores run together (those of [`Runtime::run`]; 1 in `block_on`).
///
/// # Panics
///
/// Outside a runtime.
pub fn cores() -> usize {
    current().set.cores.len()
}

/// A snapshot of the current core's counters.
///
/// # Panics
///
/// Outside a runtime.
pub fn stats() -> RuntimeStats {
    current().stats()
}
