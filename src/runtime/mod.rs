//! The runtime of one core: its task slab and run queue, its timers, and its driver.
//!
//! One loop turn of [`Runtime::block_on`]: poll the tasks that were queued when the turn began
//! (tasks woken meanwhile wait for the next turn, so the I/O they queue goes out together),
//! take in wake-ups from other threads, then park in the driver — one `io_uring_enter` or one
//! `epoll_wait` that submits everything queued and waits no longer than the next timer (not at
//! all if tasks are ready) — then wake what completed and fire the timers that are due.
mod task;

pub use task::{yield_now, JoinError, JoinHandle};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::driver::{
    self, BackendChoice, BackendInfo, BackendKind, Driver, DriverConfig, DriverStats, Ready,
};
use crate::time::Timers;
use task::{Shared, TaskSlot, TaskWaker, ROOT_KEY};

/// Counters of one core (a snapshot from [`Runtime::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Tasks spawned so far.
    pub tasks_spawned: u64,
    /// Tasks alive now.
    pub tasks_alive: u64,
    /// Wake-ups that came from other threads.
    pub remote_wakes: u64,
    /// The driver's counters.
    pub driver: DriverStats,
}

/// One core's runtime state, reachable from its thread through a thread-local.
pub(crate) struct Core {
    pub driver: Rc<RefCell<Driver>>,
    tasks: RefCell<Slab<TaskSlot>>,
    run_queue: RefCell<VecDeque<Arc<TaskWaker>>>,
    pub timers: Rc<RefCell<Timers>>,
    shared: Arc<Shared>,
    info: BackendInfo,
    root_woken: Cell<bool>,
    root_waker: Arc<TaskWaker>,
    stats: RefCell<RuntimeStats>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
    static CURRENT_ID: Cell<Option<u64>> = const { Cell::new(None) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn current_id() -> Option<u64> {
    CURRENT_ID.with(Cell::get)
}

/// Runs `f` with the current core, if there is one.
pub(crate) fn with_current<R>(f: impl FnOnce(&Core) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(|core| f(core)))
}

fn current() -> Rc<Core> {
    CURRENT
        .with(|c| c.borrow().clone())
        .expect("this must be called from inside a corering runtime (Runtime::block_on)")
}

/// The current core's driver. Panics outside a runtime.
pub(crate) fn current_driver() -> Rc<RefCell<Driver>> {
    current().driver.clone()
}

/// Whether sockets made now must be non-blocking (the current backend is epoll). Panics
/// outside a runtime.
pub(crate) fn current_wants_nonblocking() -> bool {
    current().driver.borrow().nonblocking_sockets()
}

/// The current core's timers. Panics outside a runtime.
pub(crate) fn current_timers() -> Rc<RefCell<Timers>> {
    current().timers.clone()
}

/// Runs `f` on the current core's driver: `None` outside a runtime, `Some(false)` if the
/// driver was busy (borrowed) and `f` did not run.
pub(crate) fn with_current_driver(f: impl FnOnce(&mut Driver)) -> Option<bool> {
    with_current(|core| match core.driver.try_borrow_mut() {
        Ok(mut d) => {
            f(&mut d);
            true
        }
        Err(_) => false,
    })
}

/// Makes `core` the thread's current core until dropped.
struct Enter {
    prev: Option<Rc<Core>>,
    prev_id: Option<u64>,
}

impl Enter {
    fn new(core: &Rc<Core>) -> Enter {
        let prev = CURRENT.with(|c| c.borrow_mut().replace(core.clone()));
        let prev_id = CURRENT_ID.with(|c| c.replace(Some(core.shared.id)));
        Enter { prev, prev_id }
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
    task::spawn_on_core(&current(), future)
}

/// The backend of the current runtime.
///
/// # Panics
///
/// Outside a runtime.
pub fn backend() -> BackendKind {
    current().info.kind()
}

/// Configures and builds a [`Runtime`].
///
/// ```
/// use corering::{BackendChoice, Builder};
/// let rt = Builder::new().backend(BackendChoice::Epoll).build().unwrap();
/// assert_eq!(rt.backend().kind(), corering::BackendKind::Epoll);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    config: DriverConfig,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: DriverConfig {
                backend: BackendChoice::Auto,
                entries: 256,
                uring_baseline: false,
            },
        }
    }
}

impl Builder {
    /// The defaults: `Auto` backend, 256 ring entries.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Which backend to run. `Auto` (the default) is overridden by `CORERING_BACKEND`.
    pub fn backend(mut self, backend: BackendChoice) -> Builder {
        self.config.backend = backend;
        self
    }

    /// Submission queue entries of the io_uring ring (rounded up to a power of two by the
    /// kernel; the completion queue gets twice as many).
    pub fn entries(mut self, entries: u32) -> Builder {
        self.config.entries = entries.clamp(1, 32768);
        self
    }

    /// Restricts io_uring to what a 5.10 kernel offers: no setup flags, no wait timeout on
    /// `io_uring_enter` (a TIMEOUT entry bounds waits), no SHUTDOWN opcode (the syscall is
    /// used). For testing, on a new kernel, the paths that old kernels take.
    pub fn uring_baseline(mut self, on: bool) -> Builder {
        self.config.uring_baseline = on;
        self
    }

    /// Chooses the backend and builds the runtime on this thread.
    ///
    /// # Errors
    ///
    /// A forced `Uring` where io_uring is unavailable (the error says why), an invalid
    /// `CORERING_BACKEND`, or the epoll instance or eventfd could not be made (e.g. EMFILE).
    pub fn build(self) -> io::Result<Runtime> {
        let wake_fd = crate::sys::eventfd()?;
        let (driver, info) =
            driver::select(&self.config, std::os::fd::AsRawFd::as_raw_fd(&wake_fd))?;
        let shared = Arc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            inbox: Mutex::new(Vec::new()),
            wake_fd,
            notified: AtomicBool::new(false),
        });
        let root_waker = Arc::new(TaskWaker {
            key: ROOT_KEY,
            shared: shared.clone(),
            scheduled: AtomicBool::new(false),
        });
        let core = Core {
            driver: Rc::new(RefCell::new(driver)),
            tasks: RefCell::new(Slab::new()),
            run_queue: RefCell::new(VecDeque::new()),
            timers: Rc::new(RefCell::new(Timers::default())),
            shared,
            info,
            root_woken: Cell::new(false),
            root_waker,
            stats: RefCell::new(RuntimeStats::default()),
        };
        Ok(Runtime {
            core: Rc::new(core),
        })
    }
}

/// A runtime on one core: runs futures with [`block_on`](Runtime::block_on) on the thread that
/// built it.
///
/// ```
/// let rt = corering::Runtime::new().unwrap();
/// println!("{}", rt.backend());
/// let n = rt.block_on(async { corering::spawn(async { 1 }).await.unwrap() + 1 });
/// assert_eq!(n, 2);
/// ```
pub struct Runtime {
    core: Rc<Core>,
}

impl Runtime {
    /// A runtime with the default [`Builder`] settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// The backend that runs and why it was chosen.
    pub fn backend(&self) -> &BackendInfo {
        &self.core.info
    }

    /// Op slots still occupied: in flight, or orphaned and waiting for their completion.
    pub fn live_ops(&self) -> usize {
        self.core.driver.borrow().live_ops()
    }

    /// A snapshot of this core's counters.
    pub fn stats(&self) -> RuntimeStats {
        let mut s = *self.core.stats.borrow();
        s.tasks_alive = self.core.tasks.borrow().len() as u64;
        s.driver = self.core.driver.borrow().stats();
        s
    }

    /// Runs `future` to completion on this thread, running spawned tasks and I/O meanwhile.
    ///
    /// # Panics
    ///
    /// If `future` panics (a spawned task's panic only ends that task), or if the kernel
    /// interface fails in a way that is not an I/O error (a bug).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let core = &self.core;
        let _enter = Enter::new(core);
        let mut future = std::pin::pin!(future);
        let root_waker = Waker::from(core.root_waker.clone());
        let mut cx = Context::from_waker(&root_waker);
        core.root_woken.set(true);
        let mut ready = Ready::default();
        loop {
            if core.root_woken.replace(false) {
                core.root_waker.scheduled.store(false, Ordering::Release);
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            core.run_batch();
            core.take_inbox();
            let timeout = if core.root_woken.get() || !core.run_queue.borrow().is_empty() {
                Some(Duration::ZERO)
            } else {
                core.timers
                    .borrow()
                    .next_deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()))
            };
            {
                let mut driver = core.driver.borrow_mut();
                if let Err(e) = driver.park(timeout) {
                    panic!("corering: the {} driver failed to wait: {e}", driver.kind());
                }
                driver.take_ready(&mut ready);
            }
            ready.run();
            core.fire_timers();
        }
    }
}

impl Core {
    /// Polls the tasks queued when the batch began.
    fn run_batch(&self) {
        let n = self.run_queue.borrow().len();
        for _ in 0..n {
            let Some(waker) = self.run_queue.borrow_mut().pop_front() else {
                break;
            };
            if waker.key == ROOT_KEY {
                self.root_woken.set(true);
                continue;
            }
            self.run_task(waker);
        }
    }

    fn run_task(&self, waker: Arc<TaskWaker>) {
        waker.scheduled.store(false, Ordering::Release);
        let (mut future, control) = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(waker.key) {
                Some(t) if Arc::ptr_eq(&t.waker, &waker) => match t.future.take() {
                    Some(f) => (f, t.control.clone()),
                    None => return,
                },
                // A stale wake of a task that has finished (its key may be reused).
                _ => return,
            }
        };
        if control.aborted() {
            self.tasks.borrow_mut().remove(waker.key);
            drop(future);
            control.cancelled();
            return;
        }
        let task_waker = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&task_waker);
        match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => {
                if let Some(t) = self.tasks.borrow_mut().get_mut(waker.key) {
                    t.future = Some(future);
                }
            }
            Ok(Poll::Ready(())) => {
                self.tasks.borrow_mut().remove(waker.key);
                drop(future);
            }
            Err(payload) => {
                self.tasks.borrow_mut().remove(waker.key);
                // Dropping a future that panicked can panic again; that must not take the
                // core down either.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(future)));
                control.panicked(payload);
            }
        }
    }

    /// Moves wake-ups made on other threads onto the run queue.
    fn take_inbox(&self) {
        if !self.shared.notified.swap(false, Ordering::AcqRel) {
            return;
        }
        let woken =
            std::mem::take(&mut *self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner()));
        self.stats.borrow_mut().remote_wakes += woken.len() as u64;
        self.run_queue.borrow_mut().extend(woken);
    }

    fn fire_timers(&self) {
        let mut due = Vec::new();
        self.timers.borrow_mut().fire(Instant::now(), &mut due);
        for w in due {
            w.wake();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let core = &self.core;
        let _enter = Enter::new(core);
        // Drop every task (their in-flight ops become orphans with cancels queued). A task's
        // drop may spawn or wake; loop until nothing is left.
        loop {
            let tasks: Vec<TaskSlot> = core.tasks.borrow_mut().drain().collect();
            if tasks.is_empty() {
                break;
            }
            for t in tasks {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(t.future)));
                t.control.cancelled();
            }
        }
        // Wait until the kernel has answered every op, then release what it held.
        let mut ready = Ready::default();
        {
            let mut driver = core.driver.borrow_mut();
            driver.shutdown();
            driver.take_ready(&mut ready);
        }
        ready.run();
        core.run_queue.borrow_mut().clear();
        core.shared
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        core.timers.borrow_mut().clear();
    }
}
