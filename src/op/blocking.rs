//! A closure run on the blocking pool (`spawn_blocking`), on both backends.
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::driver::blocking::BlockingCall;
use crate::driver::{EpollOp, EpollStep, OpCode, UringCaps, UringOp, UringStep};

/// The closure's outcome, written by the pool thread and read by the op once answered.
type Outcome<T> = Arc<Mutex<Option<thread::Result<T>>>>;

/// Runs `f` on a pool thread; a panic in it is caught there and handed back as the outcome.
/// Dropped before a thread starts it, it never runs.
pub(crate) struct BlockingFn<F, T> {
    f: Option<F>,
    outcome: Outcome<T>,
}

impl<F: FnOnce() -> T + Send + 'static, T: Send + 'static> BlockingFn<F, T> {
    pub fn new(f: F) -> BlockingFn<F, T> {
        BlockingFn {
            f: Some(f),
            outcome: Arc::new(Mutex::new(None)),
        }
    }

    fn blocking_call(&mut self) -> BlockingCall {
        let f = self.f.take().expect("a blocking job is handed over once");
        let outcome = self.outcome.clone();
        Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            *outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
            0
        })
    }
}

impl<F: FnOnce() -> T + Send + 'static, T: Send + 'static> UringOp for BlockingFn<F, T> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Blocking(self.blocking_call())
    }
}

impl<F: FnOnce() -> T + Send + 'static, T: Send + 'static> EpollOp for BlockingFn<F, T> {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Blocking(self.blocking_call())
    }
}

impl<F: FnOnce() -> T + Send + 'static, T: Send + 'static> OpCode for BlockingFn<F, T> {
    /// The closure's value or its panic; an error if it never ran.
    type Output = io::Result<thread::Result<T>>;
    /// The call owns the closure and the outcome cell: nothing of the op's is touched.
    const DETACHED_ON_DROP: bool = true;

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        let outcome = self
            .outcome
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match (res, outcome) {
            (_, Some(result)) => Ok(result),
            (Err(e), None) => Err(e),
            (Ok(_), None) => Err(io::Error::other("the blocking job gave no outcome")),
        }
    }
}
