//! [`Builder`] and [`Runtime`].
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::core::{Core, CoreSet, RootMode};
use super::inbox::Shared;
use super::shutdown::{ShutdownHandle, ShutdownState};
use super::RuntimeStats;
use crate::buf::PoolConfig;
use crate::driver::blocking::{BlockingPool, DEFAULT_THREADS};
use crate::driver::{
    BackendChoice, BackendInfo, BackendKind, DriverConfig, IoWorkers, TierRequest, UringTier,
    ZeroCopy,
};

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
    cores: Option<usize>,
    pin: bool,
    signal_grace: Option<Duration>,
    stack_size: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: DriverConfig {
                backend: BackendChoice::Auto,
                entries: 256,
                uring_tier: TierRequest::FromEnv,
                pool: PoolConfig::default(),
                zero_copy: ZeroCopy::default(),
                blocking_threads: DEFAULT_THREADS,
                io_workers: IoWorkers::default(),
                chosen_by: None,
            },
            cores: None,
            pin: true,
            signal_grace: None,
            stack_size: None,
        }
    }
}

impl Builder {
    /// The defaults: `Auto` backend, 256 ring entries, one core per CPU the process may run
    /// on, pinned; no signal handling.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Which backend to run. `Auto` (the default) is overridden by `CORERING_BACKEND`.
    pub fn backend(mut self, backend: BackendChoice) -> Builder {
        self.config.backend = backend;
        self
    }

    /// Each core's buffer pool for pooled reads
    /// ([`TcpStream::recv_pooled`](crate::net::TcpStream::recv_pooled)): `count` buffers of
    /// `size` bytes (default 1024 of 4 KiB). On io_uring 5.19+ they are a provided buffer ring
    /// (`count` rounded up to a power of two, at most 32768). The memory is allocated on the
    /// first pooled read. When every buffer is in use a read gets a fresh allocation instead
    /// (counted in [`DriverStats::pool_overflows`](crate::DriverStats::pool_overflows)).
    ///
    /// ```
    /// let rt = corering::Builder::new().buffer_pool(256, 16 * 1024).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn buffer_pool(mut self, count: u16, size: u32) -> Builder {
        self.config.pool = PoolConfig {
            count: count.clamp(1, 32768),
            size: size.max(1),
        };
        self
    }

    /// Writes of at least `threshold` bytes are zero-copy sends (`IORING_OP_SEND_ZC`, io_uring
    /// 6.0+): the kernel sends from the buffer without copying it, and the write returns once
    /// the network stack is done with the memory. `None` turns them off. Default: 64 KiB.
    /// Loopback peers never get them (the kernel copies to a loopback receiver anyway, so a
    /// zero-copy send only adds its second completion), unless
    /// [`zero_copy_on_loopback`](Builder::zero_copy_on_loopback) says so.
    pub fn zero_copy_sends(mut self, threshold: Option<usize>) -> Builder {
        self.config.zero_copy.threshold = threshold;
        self
    }

    /// Zero-copy sends to loopback peers too (for tests and measurements; default off).
    pub fn zero_copy_on_loopback(mut self, on: bool) -> Builder {
        self.config.zero_copy.on_loopback = on;
        self
    }

    /// Submission queue entries of each io_uring ring (default 256; 1 to 32768, rounded up to
    /// a power of two by the kernel; the completion queue gets twice as many). Where ring
    /// memory is short (ENOMEM, before 5.12), setup halves it, but not below 16; the size made
    /// is [`UringInfo::entries`](crate::UringInfo::entries).
    pub fn entries(mut self, entries: u32) -> Builder {
        self.config.entries = entries.clamp(1, 32768);
        self
    }

    /// Makes io_uring behave as on kernel `tier`: setup flags, opcodes, feature bits and
    /// register calls newer than it are treated as absent, through the code paths a real
    /// kernel of that version takes (see [`UringTier`] for what each tier adds). For testing
    /// and measuring, on a new kernel, what older kernels get. `None` asks for no cap at all,
    /// whatever the environment says. Without this option the `CORERING_URING_TIER`
    /// environment variable (e.g. `5.10`) sets the cap, and without either io_uring uses what
    /// the kernel offers. The tier in force is [`UringInfo::tier`](crate::UringInfo::tier).
    /// No effect on epoll (a forced epoll does not read the variable).
    ///
    /// ```
    /// use corering::{Builder, UringTier};
    /// let rt = Builder::new().uring_tier(UringTier::V5_10).build().unwrap();
    /// if let Some(ring) = rt.backend().uring() {
    ///     assert_eq!(ring.tier, UringTier::V5_10);
    ///     assert!(ring.setup_flags.is_empty() && !ring.ext_arg);
    /// }
    /// // What the kernel offers, even with CORERING_URING_TIER set:
    /// let rt = Builder::new().uring_tier(None).build().unwrap();
    /// ```
    pub fn uring_tier(mut self, tier: impl Into<Option<UringTier>>) -> Builder {
        self.config.uring_tier = match tier.into() {
            Some(tier) => TierRequest::Cap(tier),
            None => TierRequest::Uncapped,
        };
        self
    }

    /// The bound on the runtime's blocking-pool threads (default 64), shared by all its
    /// cores: file operations on epoll, file opcodes the kernel lacks on io_uring, and
    /// [`spawn_blocking`](crate::spawn_blocking) jobs run there. Threads start as work arrives
    /// and end after 10 s idle; jobs beyond the bound wait their turn. The bound in force is
    /// [`BackendInfo::blocking_threads`].
    ///
    /// ```
    /// let rt = corering::Builder::new().blocking_threads(4).build().unwrap();
    /// assert_eq!(rt.backend().blocking_threads(), 4);
    /// ```
    pub fn blocking_threads(mut self, n: usize) -> Builder {
        self.config.blocking_threads = n.max(1);
        self
    }

    /// io_uring's own worker limits per ring (`IORING_REGISTER_IOWQ_MAX_WORKERS`, 5.15+):
    /// at most `bounded` io-wq workers for regular files and block devices (file reads that
    /// miss the page cache, writes, fsync) and `unbounded` for everything else. 0 keeps the
    /// kernel's limit. Default: `(0, 64)`. The limits in force are
    /// [`UringInfo::io_workers`](crate::UringInfo::io_workers); kernels before 5.15 cannot
    /// bound io-wq, and ignore this.
    ///
    /// ```
    /// let rt = corering::Builder::new().io_workers(8, 64).build().unwrap();
    /// if let Some(limits) = rt.backend().uring().and_then(|u| u.io_workers) {
    ///     assert_eq!(limits[0], 8);
    /// }
    /// ```
    pub fn io_workers(mut self, bounded: u32, unbounded: u32) -> Builder {
        self.config.io_workers = IoWorkers { bounded, unbounded };
        self
    }

    /// How many cores [`Runtime::run`] runs (default: the CPUs this process may run on).
    pub fn cores(mut self, n: usize) -> Builder {
        self.cores = Some(n.max(1));
        self
    }

    /// Whether each core's thread is pinned to one CPU (default: yes).
    pub fn pin_cores(mut self, on: bool) -> Builder {
        self.pin = on;
        self
    }

    /// Stack size in bytes of each core thread that [`Runtime::run`] starts (default: the
    /// standard library's, 2 MiB unless `RUST_MIN_STACK` says otherwise). The thread of
    /// [`Runtime::block_on`] is the caller's and keeps its own stack. A size the system cannot
    /// give makes [`Runtime::run`] return the spawn error.
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = Some(bytes);
        self
    }

    /// Opt in: during [`Runtime::run`], SIGINT or SIGTERM requests shutdown with `grace` to
    /// drain (see [`ShutdownHandle::shutdown`]).
    pub fn shutdown_on_signals(mut self, grace: Duration) -> Builder {
        self.signal_grace = Some(grace);
        self
    }

    /// Chooses the backend and builds the runtime; its first core lives on this thread (for
    /// [`Runtime::block_on`]).
    ///
    /// # Errors
    ///
    /// A forced `Uring` where io_uring is unavailable (the error says why), an invalid
    /// `CORERING_BACKEND`, or the epoll instance or eventfd could not be made (e.g. EMFILE).
    pub fn build(self) -> io::Result<Runtime> {
        let shutdown = Arc::new(ShutdownState::default());
        let core = make_core(&self.config, &shutdown)?;
        let info = core.info.clone();
        let cores = self
            .cores
            .unwrap_or_else(|| super::run::allowed_cpus().len().max(1));
        Ok(Runtime {
            core: RefCell::new(Some(core)),
            used: Cell::new(false),
            info,
            config: self.config,
            cores,
            pin: self.pin,
            signal_grace: self.signal_grace,
            stack_size: self.stack_size,
            shutdown,
        })
    }
}

/// A core for this thread, with a blocking pool of its own, registered for shutdowns.
fn make_core(config: &DriverConfig, shutdown: &Arc<ShutdownState>) -> io::Result<Rc<Core>> {
    let shared = Arc::new(Shared::new(super::next_core_id())?);
    let set = Arc::new(CoreSet {
        cores: vec![shared.clone()],
        blocking: Arc::new(BlockingPool::new(config.blocking_threads)),
    });
    shutdown.register(&shared);
    match Core::new(config, shared.clone(), 0, set, shutdown.clone()) {
        Ok(core) => Ok(Rc::new(core)),
        Err(e) => {
            shutdown.unregister(&shared);
            Err(e)
        }
    }
}

/// A corering runtime. [`block_on`](Runtime::block_on) runs a future on the calling thread
/// (one core); [`run`](Runtime::run) runs one executor per core.
///
/// ```
/// let rt = corering::Runtime::new().unwrap();
/// println!("{}", rt.backend());
/// let n = rt.block_on(async { corering::spawn(async { 1 }).await.unwrap() + 1 });
/// assert_eq!(n, 2);
/// ```
pub struct Runtime {
    /// The `block_on` core (its ring or epoll instance), made by `build`. `None` after
    /// [`run`](Runtime::run) closed it unused (so that `cores(N)` holds N rings, not N + 1);
    /// the next `block_on` makes it again.
    core: RefCell<Option<Rc<Core>>>,
    /// Whether `block_on` has run on `core`: its tasks and ops may still be parked there, so
    /// `run` keeps it.
    used: Cell<bool>,
    /// The backend `build` chose, for every core this runtime makes.
    pub(super) info: BackendInfo,
    /// The builder's settings, with the backend as the builder asked for it.
    pub(super) config: DriverConfig,
    pub(super) cores: usize,
    pub(super) pin: bool,
    pub(super) signal_grace: Option<Duration>,
    pub(super) stack_size: Option<usize>,
    pub(super) shutdown: Arc<ShutdownState>,
}

impl Runtime {
    /// A runtime with the default [`Builder`] settings.
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// The backend that runs and why it was chosen.
    pub fn backend(&self) -> &BackendInfo {
        &self.info
    }

    /// How many cores [`run`](Runtime::run) runs.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Op slots of the `block_on` core still occupied: in flight, or orphaned and waiting for
    /// their completion.
    pub fn live_ops(&self) -> usize {
        let core = self.core.borrow();
        core.as_ref()
            .map_or(0, |c| c.ctx.driver.borrow().live_ops())
    }

    /// A snapshot of the `block_on` core's counters.
    pub fn stats(&self) -> RuntimeStats {
        let core = self.core.borrow();
        core.as_ref()
            .map_or_else(RuntimeStats::default, |c| c.stats())
    }

    /// A handle that requests shutdown from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            state: self.shutdown.clone(),
        }
    }

    /// Runs `future` to completion on this thread, running spawned tasks and I/O meanwhile.
    /// A shutdown request makes accepts fail and resolves
    /// [`shutdown_requested`](crate::shutdown_requested), but never cancels this future.
    ///
    /// # Panics
    ///
    /// If `future` panics (a spawned task's panic only ends that task), if the kernel
    /// interface fails in a way that is not an I/O error (a bug), or if the `block_on` core
    /// that [`run`](Runtime::run) closed cannot be made again (e.g. EMFILE).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.used.set(true);
        let core = self.block_on_core();
        match core.run_root(future, RootMode::BlockOn) {
            Ok(out) => out,
            Err(_) => unreachable!("block_on's root future is never cancelled"),
        }
    }

    /// The `block_on` core, made again if `run` closed it.
    fn block_on_core(&self) -> Rc<Core> {
        if let Some(core) = self.core.borrow().as_ref() {
            return core.clone();
        }
        let config = self.per_core_config();
        let core = make_core(&config, &self.shutdown)
            .unwrap_or_else(|e| panic!("corering: the block_on core could not be made: {e}"));
        *self.core.borrow_mut() = Some(core.clone());
        core
    }

    /// Closes the `block_on` core if nothing has run on it, for the time of a `run`.
    pub(super) fn close_unused_core(&self) {
        if self.used.get() {
            return;
        }
        if let Some(core) = self.core.borrow_mut().take() {
            core.close();
        }
    }

    /// The settings every further core is made with: the backend `build` chose.
    pub(super) fn per_core_config(&self) -> DriverConfig {
        let mut config = self.config.clone();
        config.backend = match self.info.kind() {
            BackendKind::Uring => BackendChoice::Uring,
            BackendKind::Epoll => BackendChoice::Epoll,
        };
        if self.config.backend != config.backend {
            config.chosen_by = Some(if self.info.reason().contains("CORERING_BACKEND") {
                "asked for by CORERING_BACKEND"
            } else {
                "chosen by auto when the runtime was built"
            });
        }
        config
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(core) = self.core.get_mut().take() {
            core.close();
        }
    }
}
