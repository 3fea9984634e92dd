//! The blocking pool: threads that run the syscalls a core must not wait in.
//!
//! A regular file cannot be waited on: epoll calls it always ready and a read of it may still
//! sleep on the disk. So on epoll every file op (and on io_uring an op whose opcode the kernel
//! lacks, and every [`spawn_blocking`](crate::spawn_blocking) job on either backend) is a
//! [`BlockingCall`] run on a thread of this pool. The op stays filed in its core's op table
//! like an io_uring submission; the pool thread's answer (an `i32` like a CQE's) comes back
//! through the core's [`DoneList`] and wake-up, and completes the slot the same way a CQE does.
//!
//! * One pool per runtime (all the cores of [`Runtime::run`](crate::Runtime::run) share it):
//!   at most `max_threads` threads, started when work arrives and none is idle, ended after
//!   [`IDLE_EXIT`] without work.
//! * A job not yet started can be cancelled ([`Ticket::cancel`]): it then never runs, and the
//!   op's memory is free at once. A started job cannot be stopped (a syscall on a regular file
//!   is not interruptible): the op keeps its resources until the answer comes, exactly like an
//!   orphaned io_uring op.
//! * A job that panics answers `-EIO`; the thread survives it.
use std::collections::VecDeque;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Work for a pool thread; its answer is a count or `-errno`, like a CQE's result.
pub(crate) type BlockingCall = Box<dyn FnOnce() -> i32 + Send>;

/// How long a pool thread waits for work before it ends.
pub(crate) const IDLE_EXIT: Duration = Duration::from_secs(10);

/// The default bound on pool threads (see `Builder::blocking_threads`).
pub(crate) const DEFAULT_THREADS: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a job is queued, running or cancelled: the core and the pool thread race for it
/// once, and exactly one wins.
pub(crate) struct Ticket(AtomicU8);

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const CANCELLED: u8 = 2;

impl Ticket {
    fn new() -> Ticket {
        Ticket(AtomicU8::new(QUEUED))
    }

    /// The pool thread claims the job; false if it was cancelled first.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The core cancels the job; false if a thread has started it (its answer will come).
    pub fn cancel(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Answers of pool jobs on their way back to one core, and how to wake it.
pub(crate) struct DoneList {
    answers: Mutex<Vec<(u64, i32)>>,
    /// Set with each answer, cleared by the core before it takes them: a cheap look per turn.
    pending: AtomicBool,
    /// For a core that waits on the list itself (shutdown, settling).
    arrived: Condvar,
    /// Wakes the core's loop (its eventfd, through the inbox's coalescing).
    notify: Arc<dyn Fn() + Send + Sync>,
}

impl DoneList {
    pub fn new(notify: Arc<dyn Fn() + Send + Sync>) -> DoneList {
        DoneList {
            answers: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            arrived: Condvar::new(),
            notify,
        }
    }

    fn push(&self, user_data: u64, res: i32) {
        lock(&self.answers).push((user_data, res));
        self.pending.store(true, Ordering::Release);
        self.arrived.notify_all();
        (self.notify)();
    }

    /// Whether answers wait to be taken.
    pub fn has_answers(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves the waiting answers into `into`.
    pub fn take(&self, into: &mut Vec<(u64, i32)>) {
        if self.pending.swap(false, Ordering::AcqRel) {
            into.append(&mut lock(&self.answers));
        }
    }

    /// Blocks until an answer waits or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let answers = lock(&self.answers);
        if answers.is_empty() {
            let _ = self.arrived.wait_timeout(answers, timeout);
        }
    }
}

/// One queued job.
struct Job {
    call: BlockingCall,
    ticket: Arc<Ticket>,
    user_data: u64,
    done: Arc<DoneList>,
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    /// The most threads alive at once so far.
    peak: usize,
    /// The last handle is gone: threads end once the queue is empty.
    closing: bool,
}

struct PoolInner {
    state: Mutex<PoolState>,
    work: Condvar,
    max_threads: usize,
    /// The CPUs the process could run on when the pool was made: a pool thread is started by
    /// a core's thread, which may be pinned to one CPU, and would inherit that.
    cpus: Option<nix::sched::CpuSet>,
    /// Jobs run so far.
    jobs_run: AtomicUsize,
}

/// The blocking pool of one runtime. Threads end when the last handle drops (after the queue
/// is empty; the cores have cancelled or awaited their jobs by then).
pub(crate) struct BlockingPool {
    inner: Arc<PoolInner>,
}

impl BlockingPool {
    pub fn new(max_threads: usize) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    peak: 0,
                    closing: false,
                }),
                work: Condvar::new(),
                max_threads: max_threads.max(1),
                cpus: allowed_cpus(),
                jobs_run: AtomicUsize::new(0),
            }),
        }
    }

    /// The bound on threads.
    pub fn max_threads(&self) -> usize {
        self.inner.max_threads
    }

    /// Threads alive now, and the most alive at once so far.
    pub fn threads(&self) -> (usize, usize) {
        let st = lock(&self.inner.state);
        (st.threads, st.peak)
    }

    /// Queues `call`; its answer goes to `done` under `user_data`. Fails (the call handed
    /// back, never run) only if no thread runs and none can be started.
    pub fn submit(
        &self,
        call: BlockingCall,
        user_data: u64,
        done: &Arc<DoneList>,
    ) -> Result<Arc<Ticket>, (std::io::Error, BlockingCall)> {
        let ticket = Arc::new(Ticket::new());
        let job = Job {
            call,
            ticket: ticket.clone(),
            user_data,
            done: done.clone(),
        };
        let mut st = lock(&self.inner.state);
        st.queue.push_back(job);
        if st.idle > 0 {
            self.inner.work.notify_one();
        }
        if st.queue.len() > st.idle && st.threads < self.inner.max_threads {
            match self.start_thread() {
                Ok(()) => {
                    st.threads += 1;
                    st.peak = st.peak.max(st.threads);
                }
                Err(e) if st.threads == 0 => {
                    let job = st.queue.pop_back().expect("pushed above");
                    return Err((e, job.call));
                }
                // Threads already run: the job waits for one of them.
                Err(_) => {}
            }
        }
        Ok(ticket)
    }

    /// Takes a cancelled job out of the queue, so that what its call owns is freed now rather
    /// than when a thread would have reached it. Its call is returned, to be dropped where no
    /// driver borrow is held (it may own anything `Send`).
    pub fn take_cancelled(&self, ticket: &Arc<Ticket>) -> Option<BlockingCall> {
        let mut st = lock(&self.inner.state);
        let at = st
            .queue
            .iter()
            .position(|job| Arc::ptr_eq(&job.ticket, ticket))?;
        st.queue.remove(at).map(|job| job.call)
    }

    fn start_thread(&self) -> std::io::Result<()> {
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name("corering-blocking".into())
            .spawn(move || inner.work_loop())
            .map(drop)
    }
}

/// The calling thread's CPU affinity.
fn allowed_cpus() -> Option<nix::sched::CpuSet> {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()
}

impl PoolInner {
    fn work_loop(&self) {
        if let Some(set) = &self.cpus {
            // A failure only leaves the inherited affinity.
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), set);
        }
        while let Some(job) = self.next_job() {
            if !job.ticket.start() {
                // Cancelled while queued: never run; its op's memory is already free. What
                // the call owns is dropped here, and a panic in that drop ends nothing.
                let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(job)));
                continue;
            }
            let res = panic::catch_unwind(AssertUnwindSafe(job.call)).unwrap_or(-libc::EIO);
            self.jobs_run.fetch_add(1, Ordering::Relaxed);
            job.done.push(job.user_data, res);
        }
    }

    /// The next job, or `None` when this thread should end (idle too long, or closing).
    fn next_job(&self) -> Option<Job> {
        let mut st = lock(&self.state);
        loop {
            if let Some(job) = st.queue.pop_front() {
                return Some(job);
            }
            if st.closing {
                st.threads -= 1;
                return None;
            }
            st.idle += 1;
            let (guard, waited) = self
                .work
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if waited.timed_out() && st.queue.is_empty() {
                st.threads -= 1;
                return None;
            }
        }
    }
}

impl Drop for BlockingPool {
    fn drop(&mut self) {
        lock(&self.inner.state).closing = true;
        self.inner.work.notify_all();
    }
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool")
            .field("max_threads", &self.inner.max_threads)
            .finish()
    }
}

/// A pointer into memory an op owns, carried to a pool thread. The op stays filed (or
/// orphaned) in its core's op table until the thread's answer is taken, and a driver dropped
/// while its lane has jobs in flight leaks its op table rather than free it, so the memory
/// outlives every use the thread makes of it.
pub(crate) struct SendPtr<T>(pub *mut T);

// SAFETY: the pointee is owned by an op that is neither used nor freed by its core while the
// pool thread holds the pointer (see the type's doc); only that thread touches it meanwhile.
unsafe impl<T> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that a closure captures the whole `Send` wrapper).
    pub fn get(&self) -> *mut T {
        self.0
    }
}
