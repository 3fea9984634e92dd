//! The current core, as the layers below the runtime see it: its driver, its timers, its
//! backend and its shutdown signal.
//!
//! The runtime sets this thread-local while a core's loop runs (and while a core is being
//! closed); `net`, `time`, `op` and the fd handle read it. Nothing here knows about tasks or
//! run queues, so data flows one way: net/time → op → driver, with this module beside the
//! driver layer and the runtime on top.
mod shutdown;
mod timers;

pub(crate) use shutdown::ShutdownSignal;
pub use shutdown::{is_shutting_down, shutdown_requested, ShutdownRequested, ShuttingDown};
pub(crate) use timers::{TimerKey, Timers};

use std::cell::RefCell;
use std::rc::Rc;

use crate::driver::{BackendKind, Driver};

/// What one core shares with the layers below the runtime.
pub(crate) struct CoreContext {
    pub driver: Rc<RefCell<Driver>>,
    pub timers: Rc<RefCell<Timers>>,
    pub kind: BackendKind,
    pub shutdown: ShutdownSignal,
}

impl CoreContext {
    pub fn new(driver: Driver) -> CoreContext {
        let kind = driver.kind();
        CoreContext {
            driver: Rc::new(RefCell::new(driver)),
            timers: Rc::default(),
            kind,
            shutdown: ShutdownSignal::default(),
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<CoreContext>>> = const { RefCell::new(None) };
}

const OUTSIDE: &str =
    "this must be called from inside a corering runtime (Runtime::block_on or run)";

/// Runs `f` with the current core's context, if there is one.
pub(crate) fn with_current<R>(f: impl FnOnce(&CoreContext) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_ref().map(|ctx| f(ctx)))
}

/// The current core's driver. Panics outside a runtime.
pub(crate) fn current_driver() -> Rc<RefCell<Driver>> {
    with_current(|c| c.driver.clone()).expect(OUTSIDE)
}

/// The current core's driver and backend, in one look-up. Panics outside a runtime.
pub(crate) fn current_driver_and_kind() -> (Rc<RefCell<Driver>>, BackendKind) {
    with_current(|c| (c.driver.clone(), c.kind)).expect(OUTSIDE)
}

/// The current core's timers. Panics outside a runtime.
pub(crate) fn current_timers() -> Rc<RefCell<Timers>> {
    with_current(|c| c.timers.clone()).expect(OUTSIDE)
}

/// The current core's backend. Panics outside a runtime.
pub(crate) fn current_kind() -> BackendKind {
    with_current(|c| c.kind).expect(OUTSIDE)
}

/// Whether sockets made now must be non-blocking (the current backend is epoll). Panics
/// outside a runtime.
pub(crate) fn current_wants_nonblocking() -> bool {
    current_kind() == BackendKind::Epoll
}

/// Makes `ctx` the thread's current context until dropped (restoring the previous one).
pub(crate) struct EnterContext {
    prev: Option<Rc<CoreContext>>,
}

impl EnterContext {
    pub fn new(ctx: &Rc<CoreContext>) -> EnterContext {
        let prev = CURRENT.with(|c| c.borrow_mut().replace(ctx.clone()));
        EnterContext { prev }
    }
}

impl Drop for EnterContext {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // The replaced handle is dropped outside the thread-local borrow.
        let _old = CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
    }
}
