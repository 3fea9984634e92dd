//! Thread-per-core: one pinned thread, executor and ring (or epoll instance) per core.
use std::fmt;
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use super::core::{Core, CoreSet, RootMode};
use super::inbox::Shared;
use super::signals::SignalWatch;
use super::{JoinError, Runtime, RuntimeStats};
use crate::driver::blocking::BlockingPool;

/// How one core of [`Runtime::run`] ended.
pub struct CoreReport<T> {
    /// The core's index (`0..cores`).
    pub core: usize,
    /// The CPU its thread was pinned to, if pinning was on and succeeded.
    pub cpu: Option<usize>,
    /// The root future's output; an error if it panicked, or was cancelled at the shutdown
    /// deadline.
    pub output: Result<T, JoinError>,
    /// The core's counters after it stopped.
    pub stats: RuntimeStats,
}

impl<T: fmt::Debug> fmt::Debug for CoreReport<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreReport")
            .field("core", &self.core)
            .field("cpu", &self.cpu)
            .field("output", &self.output)
            .field("stats", &self.stats)
            .finish()
    }
}

/// The CPUs this process may run on, in order.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..n).collect()
        }
    }
}

fn pin_to(cpu: usize) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// The start line of [`Runtime::run`]: every core builds its backend, then waits here until
/// all `n` cores have built theirs (go) or one core, or the spawning of a core thread, failed
/// (give up). Unlike a `Barrier`, it can be told to give up by a thread that never arrives.
struct StartGate {
    n: usize,
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    built: usize,
    failed: bool,
}

impl StartGate {
    fn new(n: usize) -> StartGate {
        StartGate {
            n,
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // The state is two plain fields, consistent after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A core arrives, its backend built (`ok`) or not; waits until every core has built its
    /// backend (true) or something failed (false).
    fn arrive(&self, ok: bool) -> bool {
        let mut state = self.lock();
        if ok {
            state.built += 1;
        } else {
            state.failed = true;
        }
        self.changed.notify_all();
        loop {
            if state.failed {
                return false;
            }
            if state.built == self.n {
                return true;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Tells every core waiting, and every core still to arrive, to give up.
    fn give_up(&self) {
        self.lock().failed = true;
        self.changed.notify_all();
    }
}

/// Gives up the gate when dropped before [`StartGate::arrive`]: a core thread that unwinds on
/// its way to the gate releases the others.
struct GiveUpUnlessArrived<'a>(Option<&'a StartGate>);

impl GiveUpUnlessArrived<'_> {
    fn arrive(mut self, ok: bool) -> bool {
        self.0.take().is_some_and(|gate| gate.arrive(ok))
    }
}

impl Drop for GiveUpUnlessArrived<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.give_up();
        }
    }
}

/// Closes a core when dropped (its thread's end, normal or unwinding).
struct CloseOnDrop(Rc<Core>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Runtime {
    /// Runs `f(core)` on every core, each on a thread of its own (pinned unless
    /// [`Builder::pin_cores(false)`](crate::Builder::pin_cores)), with its own executor and its
    /// own backend instance (the backend this runtime chose, on every core). Returns when every
    /// core's root future has finished — or, after a shutdown request, when every core has
    /// drained its tasks or reached the deadline — with one report per core, in core order.
    ///
    /// A core whose root future finishes without a shutdown request stops at once, dropping
    /// its other tasks. A panicking root future ends only its core (its report says so).
    ///
    /// ```
    /// use corering::Builder;
    /// let rt = Builder::new().cores(2).pin_cores(false).build().unwrap();
    /// let reports = rt.run(|core| async move { core * 10 }).unwrap();
    /// let outputs: Vec<usize> = reports.into_iter().map(|r| r.output.unwrap()).collect();
    /// assert_eq!(outputs, vec![0, 10]);
    /// ```
    ///
    /// # Errors
    ///
    /// A core's backend could not be built (e.g. EMFILE, ENOMEM), or a core thread could not
    /// be spawned (e.g. EAGAIN from a thread limit, or a [`Builder::stack_size`](
    /// crate::Builder::stack_size) the system cannot give); no core runs then, and every core
    /// thread already started has ended when this returns.
    pub fn run<F, Fut>(&self, f: F) -> io::Result<Vec<CoreReport<Fut::Output>>>
    where
        F: Fn(usize) -> Fut + Send + Sync,
        Fut: Future + 'static,
        Fut::Output: Send,
    {
        let n = self.cores;
        let shared: Vec<Arc<Shared>> = (0..n)
            .map(|_| Shared::new(super::next_core_id()).map(Arc::new))
            .collect::<io::Result<_>>()?;
        let set = Arc::new(CoreSet {
            cores: shared.clone(),
            blocking: Arc::new(BlockingPool::new(self.config.blocking_threads)),
        });
        let config = self.per_core_config();
        // The cores below are the N rings (or epoll instances) of `cores(N)`.
        self.close_unused_core();
        let cpus = allowed_cpus();
        let _signals = match self.signal_grace {
            Some(grace) => Some(SignalWatch::start(self.shutdown_handle(), grace)?),
            None => None,
        };
        // Every core builds its backend first; none runs unless all could.
        let gate = StartGate::new(n);
        let f = &f;
        std::thread::scope(|scope| {
            let mut threads = Vec::with_capacity(n);
            let mut error = None;
            for index in 0..n {
                let spawned = {
                    let (shared, set, config) =
                        (shared[index].clone(), set.clone(), config.clone());
                    let shutdown = self.shutdown.clone();
                    let cpu = (self.pin && !cpus.is_empty()).then(|| cpus[index % cpus.len()]);
                    let gate = &gate;
                    let mut thread =
                        std::thread::Builder::new().name(format!("corering-core-{index}"));
                    if let Some(bytes) = self.stack_size {
                        thread = thread.stack_size(bytes);
                    }
                    thread.spawn_scoped(
                        scope,
                        move || -> io::Result<Option<CoreReport<Fut::Output>>> {
                            let arrival = GiveUpUnlessArrived(Some(gate));
                            let cpu = cpu.filter(|&c| pin_to(c).is_ok());
                            shutdown.register(&shared);
                            let core =
                                Core::new(&config, shared.clone(), index, set, shutdown.clone());
                            let go = arrival.arrive(core.is_ok());
                            let core = match core {
                                Ok(core) => Rc::new(core),
                                Err(e) => {
                                    shutdown.unregister(&shared);
                                    let why = format!("core {index} of {n}: {e}");
                                    return Err(io::Error::new(e.kind(), why));
                                }
                            };
                            // Closes the core even if this thread unwinds, so that jobs
                            // other cores send here are refused instead of hanging.
                            let _close = CloseOnDrop(core.clone());
                            if !go {
                                return Ok(None);
                            }
                            let output = core.run_root(f(index), RootMode::Run);
                            core.close();
                            Ok(Some(CoreReport {
                                core: index,
                                cpu,
                                output,
                                stats: core.stats(),
                            }))
                        },
                    )
                };
                match spawned {
                    Ok(t) => threads.push(t),
                    Err(e) => {
                        // The threads already started wait at the gate: release them.
                        gate.give_up();
                        error = Some(e);
                        break;
                    }
                }
            }
            let mut reports = Vec::with_capacity(n);
            for t in threads {
                match t.join() {
                    Ok(Ok(Some(r))) => reports.push(r),
                    Ok(Ok(None)) => {}
                    // A spawn error is kept: it is why the others gave up.
                    Ok(Err(e)) => {
                        error.get_or_insert(e);
                    }
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            match error {
                Some(e) => Err(e),
                None => Ok(reports),
            }
        })
    }
}
