//! One core: its task slab and run queue, its timers, its driver, and its loop.
//!
//! One loop turn: poll the tasks that were queued when the turn began (tasks woken meanwhile
//! wait for the next turn, so the I/O they queue goes out together), take in what other
//! threads sent (wake-ups, jobs, a shutdown request), then park in the driver — one
//! `io_uring_enter` or one `epoll_wait` that submits everything queued and waits no longer
//! than the next timer (not at all if tasks are ready) — then wake what completed and fire
//! the timers that are due.
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use super::inbox::Shared;
use super::join::TaskSlot;
use super::shutdown::ShutdownState;
use super::waker::{TaskWaker, ROOT_KEY};
use super::{Enter, JoinError, RuntimeStats};
use crate::context::CoreContext;
use crate::driver::blocking::BlockingPool;
use crate::driver::{self, BackendInfo, CoreLinks, DriverConfig, Ready};

/// How long `block_on` waits, at most, for the kernel to answer the cancels of dropped ops
/// before it returns anyway (they stay in the op table, answered on a later turn).
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// The cores that run together (one for a plain runtime, `n` inside [`Runtime::run`]).
///
/// [`Runtime::run`]: crate::Runtime::run
pub(crate) struct CoreSet {
    pub cores: Vec<Arc<Shared>>,
    /// The blocking pool the cores share.
    pub blocking: Arc<BlockingPool>,
}

/// How the loop treats the end of the root future.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum RootMode {
    /// `block_on`: return as soon as the root future is ready.
    BlockOn,
    /// A core of `Runtime::run`: after the root, drain the other tasks if shutting down.
    Run,
}

pub(crate) struct Core {
    /// What the layers below the runtime see of this core: driver, timers, shutdown signal.
    pub ctx: Rc<CoreContext>,
    pub tasks: RefCell<Slab<TaskSlot>>,
    pub run_queue: RefCell<VecDeque<Arc<TaskWaker>>>,
    pub shared: Arc<Shared>,
    pub info: BackendInfo,
    pub stats: RefCell<RuntimeStats>,
    /// This core's index in its set, and the set.
    pub index: usize,
    pub set: Arc<CoreSet>,
    pub shutdown: Arc<ShutdownState>,
    root_woken: Cell<bool>,
    root_waker: Arc<TaskWaker>,
    closed: Cell<bool>,
    /// The loop is running (a nested `block_on` on the same core is refused).
    running: Cell<bool>,
}

impl Core {
    /// Builds a core on this thread: its driver (backend per `config`) and queues.
    pub fn new(
        config: &DriverConfig,
        shared: Arc<Shared>,
        index: usize,
        set: Arc<CoreSet>,
        shutdown: Arc<ShutdownState>,
    ) -> io::Result<Core> {
        let notify = {
            let shared = shared.clone();
            Arc::new(move || shared.notify())
        };
        let links = CoreLinks {
            wake_fd: std::os::fd::AsRawFd::as_raw_fd(&shared.wake_fd),
            notify,
            blocking: set.blocking.clone(),
        };
        let (driver, info) = driver::select(config, &links)?;
        let root_waker = Arc::new(TaskWaker {
            key: ROOT_KEY,
            shared: shared.clone(),
            scheduled: AtomicBool::new(false),
        });
        Ok(Core {
            ctx: Rc::new(CoreContext::new(driver)),
            tasks: RefCell::new(Slab::new()),
            run_queue: RefCell::new(VecDeque::new()),
            shared,
            info,
            stats: RefCell::new(RuntimeStats::default()),
            index,
            set,
            shutdown,
            root_woken: Cell::new(false),
            root_waker,
            closed: Cell::new(false),
            running: Cell::new(false),
        })
    }

    pub fn stats(&self) -> RuntimeStats {
        let mut s = *self.stats.borrow();
        s.tasks_alive = self.tasks.borrow().len() as u64;
        let (threads, peak) = self.set.blocking.threads();
        (s.blocking_threads, s.blocking_threads_peak) = (threads as u64, peak as u64);
        s.driver = self.ctx.driver.borrow().stats();
        s
    }

    /// Runs `future` as this core's root, with the loop described in the module header.
    /// Returns its output, or why it has none (it panicked, in `Run` mode, or the shutdown
    /// deadline passed first).
    pub fn run_root<F: Future>(
        self: &Rc<Self>,
        future: F,
        mode: RootMode,
    ) -> Result<F::Output, JoinError> {
        assert!(
            !self.running.replace(true),
            "corering: block_on called from inside this runtime (a task cannot block its own core)"
        );
        let _running = RunningGuard(&self.running);
        let _enter = Enter::new(self);
        let mut future = std::pin::pin!(future);
        let root_waker = Waker::from(self.root_waker.clone());
        let mut cx = Context::from_waker(&root_waker);
        self.root_woken.set(true);
        if let Some(deadline) = self.shutdown.deadline() {
            self.begin_shutdown(deadline);
        }
        // The root's outcome once it has one (Run mode keeps looping to drain).
        let mut output: Option<Result<F::Output, JoinError>> = None;
        let mut ready = Ready::default();
        loop {
            if output.is_none() && self.root_woken.replace(false) {
                self.root_waker.scheduled.store(false, Ordering::Release);
                match mode {
                    RootMode::BlockOn => {
                        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                            self.settle_orphans();
                            return Ok(out);
                        }
                    }
                    RootMode::Run => {
                        let polled =
                            panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
                        match polled {
                            Ok(Poll::Pending) => {}
                            Ok(Poll::Ready(out)) => output = Some(Ok(out)),
                            Err(payload) => output = Some(Err(JoinError::panic(payload))),
                        }
                    }
                }
            }
            // A `Run` core ends with its root, unless shutting down: then it drains its
            // other tasks first, up to the deadline. (The root may itself just have asked for
            // shutdown: look at the shared state before deciding.)
            if output.is_some() && self.ctx.shutdown.deadline.get().is_none() {
                if let Some(deadline) = self.shutdown.deadline() {
                    self.begin_shutdown(deadline);
                }
            }
            let draining =
                self.ctx.shutdown.deadline.get().is_some() && !self.tasks.borrow().is_empty();
            if let Some(out) = output.take_if(|_| !draining) {
                return out;
            }
            let deadline_passed = self
                .ctx
                .shutdown
                .deadline
                .get()
                .is_some_and(|d| Instant::now() >= d);
            if mode == RootMode::Run && deadline_passed {
                return output.unwrap_or_else(|| Err(JoinError::cancelled()));
            }
            self.run_batch();
            self.take_inbox();
            let timeout = self.park_timeout(output.is_some());
            {
                let mut driver = self.ctx.driver.borrow_mut();
                if let Err(e) = driver.park(timeout) {
                    panic!("corering: the {} driver failed to wait: {e}", driver.kind());
                }
                driver.take_ready(&mut ready);
            }
            ready.run();
            self.fire_timers();
        }
    }

    /// Enters the kernel until every op whose future was dropped has been answered (bounded
    /// by [`SETTLE_LIMIT`]), so that `block_on` returns with no cancelled work of its own still
    /// running in the kernel: a cancelled send stops, a dropped stream's fd is closed.
    fn settle_orphans(&self) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut ready = Ready::default();
        loop {
            let more = {
                let mut driver = self.ctx.driver.borrow_mut();
                let more = driver.settle_step(deadline);
                driver.take_ready(&mut ready);
                more
            };
            ready.run();
            if !matches!(more, Ok(true)) || Instant::now() >= deadline {
                return;
            }
        }
    }

    fn park_timeout(&self, root_done: bool) -> Option<Duration> {
        // A finished root with nothing left to drain: only look for completions, then end.
        let drained = root_done && self.tasks.borrow().is_empty();
        let busy = drained
            || (!root_done && self.root_woken.get())
            || !self.run_queue.borrow().is_empty()
            || self.ctx.driver.borrow().has_ready();
        if busy {
            return Some(Duration::ZERO);
        }
        let timer = self.ctx.timers.borrow().next_deadline();
        let deadline = match (timer, self.ctx.shutdown.deadline.get()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        deadline.map(|d| d.saturating_duration_since(Instant::now()))
    }

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
        let key = waker.key;
        // The queue's reference becomes the poll's waker: no clone per poll.
        let task_waker = Waker::from(waker);
        let mut cx = Context::from_waker(&task_waker);
        match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => {
                if let Some(t) = self.tasks.borrow_mut().get_mut(key) {
                    t.future = Some(future);
                }
            }
            Ok(Poll::Ready(())) => {
                self.tasks.borrow_mut().remove(key);
                drop(future);
            }
            Err(payload) => {
                self.tasks.borrow_mut().remove(key);
                // Dropping a future that panicked can panic again; that must not take the
                // core down either.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(future)));
                control.panicked(payload);
            }
        }
    }

    /// Takes in what other threads sent: wake-ups, jobs, a shutdown request.
    fn take_inbox(&self) {
        if !self.shared.notified.swap(false, Ordering::AcqRel) {
            return;
        }
        let (wakes, jobs) = {
            let mut inbox = self.shared.lock();
            (
                std::mem::take(&mut inbox.wakes),
                std::mem::take(&mut inbox.jobs),
            )
        };
        self.stats.borrow_mut().remote_wakes += wakes.len() as u64;
        self.run_queue.borrow_mut().extend(wakes);
        for job in jobs {
            // A job only builds and spawns a task; if that panics (say `spawn_on`'s closure),
            // its handle reports it, and the core goes on.
            let _ = panic::catch_unwind(AssertUnwindSafe(job));
        }
        if self.ctx.shutdown.deadline.get().is_none() {
            if let Some(deadline) = self.shutdown.deadline() {
                self.begin_shutdown(deadline);
            }
        }
    }

    fn begin_shutdown(&self, deadline: Instant) {
        self.ctx.shutdown.begin(deadline);
    }

    fn fire_timers(&self) {
        let mut due = Vec::new();
        self.ctx.timers.borrow_mut().fire(Instant::now(), &mut due);
        for w in due {
            w.wake();
        }
    }

    /// Stops the core: drops every task (their in-flight ops are cancelled), waits until the
    /// kernel has answered every op, and refuses further work from other threads.
    pub fn close(self: &Rc<Self>) {
        if self.closed.replace(true) {
            return;
        }
        let _enter = Enter::new(self);
        // Jobs sent from now on are refused; jobs already sent are dropped (their senders
        // see a cancelled task).
        let jobs = {
            let mut inbox = self.shared.lock();
            inbox.closed = true;
            inbox.wakes.clear();
            std::mem::take(&mut inbox.jobs)
        };
        drop(jobs);
        // A task's drop may spawn or wake; loop until nothing is left.
        loop {
            let tasks: Vec<TaskSlot> = self.tasks.borrow_mut().drain().collect();
            if tasks.is_empty() {
                break;
            }
            for t in tasks {
                let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(t.future)));
                t.control.cancelled();
            }
        }
        let mut ready = Ready::default();
        {
            let mut driver = self.ctx.driver.borrow_mut();
            driver.shutdown();
            driver.take_ready(&mut ready);
        }
        ready.run();
        self.run_queue.borrow_mut().clear();
        self.ctx.timers.borrow_mut().clear();
        self.ctx.shutdown.waiters.borrow_mut().clear();
        self.shutdown.unregister(&self.shared);
    }
}

/// Clears `Core::running` when the loop ends, even by a panic.
struct RunningGuard<'a>(&'a Cell<bool>);

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}
