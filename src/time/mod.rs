//! Time: sleeps, timeouts and intervals on the runtime's own timers.
//!
//! Timers live in an ordered map per core and bound how long the core parks in its backend,
//! so both backends time out the same way and a sleep costs no syscall of its own.
//!
//! ```
//! use std::time::Duration;
//! use corering::time::{sleep, timeout};
//! # corering::Runtime::new().unwrap().block_on(async {
//! sleep(Duration::from_millis(1)).await;
//! let r = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
//! assert!(r.is_err());
//! # });
//! ```
use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::context::{TimerKey, Timers};

/// Longer waits than this are "forever": their deadline is this far away (beyond any
/// process's life, and small enough for every clock and kernel timeout to hold).
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `start + duration`, saturated: a duration too long for an `Instant` (`Duration::MAX`, say)
/// gives a far-future deadline instead of panicking.
fn deadline_after(start: Instant, duration: Duration) -> Instant {
    let mut wait = duration.min(FOREVER);
    loop {
        match start.checked_add(wait) {
            Some(deadline) => return deadline,
            // Only a clock near the end of its range gets here; 100 years halve to nothing in
            // about 62 steps, and a zero wait always fits, so this ends.
            None => wait /= 2,
        }
    }
}

/// Waits for `duration`. A duration too long to represent (e.g. `Duration::MAX`) waits
/// forever.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(Instant::now(), duration))
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        entry: None,
    }
}

/// The future of [`sleep`] and [`sleep_until`]. Dropping it removes its timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    entry: Option<(Rc<RefCell<Timers>>, TimerKey)>,
}

impl Sleep {
    /// When it fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (the sleep waits again if it had fired).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
    }

    fn cancel(&mut self) {
        if let Some((timers, key)) = self.entry.take() {
            timers.borrow_mut().remove(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            this.cancel();
            return Poll::Ready(());
        }
        // Filed with this core's timers (the usual case: no Rc clone, one thread-local read)?
        let filed_here = this.entry.as_ref().is_some_and(|(timers, _)| {
            crate::context::with_current(|c| Rc::ptr_eq(&c.timers, timers)).unwrap_or(false)
        });
        match &this.entry {
            Some((timers, key)) if filed_here => timers.borrow_mut().set_waker(*key, cx.waker()),
            _ => {
                // First poll, or polled under another runtime than the last time (the old
                // one's timers never fire again): register with this core's timers.
                this.cancel();
                let current = crate::context::current_timers();
                let key = current
                    .borrow_mut()
                    .insert(this.deadline, cx.waker().clone());
                this.entry = Some((current, key));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The error of a [`timeout`] whose time ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed;

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

/// Runs `future` for at most `duration`. When time runs out the future is dropped, which
/// cancels any operation it had in flight (its buffer is freed once the kernel is done). A
/// duration too long to represent (e.g. `Duration::MAX`) never runs out.
///
/// ```
/// use std::time::Duration;
/// # corering::Runtime::new().unwrap().block_on(async {
/// let fast = corering::time::timeout(Duration::from_secs(5), async { 7 }).await;
/// assert_eq!(fast, Ok(7));
/// # });
/// ```
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    let mut future = std::pin::pin!(future);
    let mut sleep = sleep(duration);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        Pin::new(&mut sleep).poll(cx).map(|()| Err(Elapsed))
    })
    .await
}

/// Ticks every `period`; the first tick is immediate (a `period` too long to represent ticks
/// once, then waits forever). Missed ticks are not made up: after a
/// stall the next tick is one period after the late one.
///
/// ```
/// use std::time::Duration;
/// # corering::Runtime::new().unwrap().block_on(async {
/// let mut every = corering::time::interval(Duration::from_millis(1));
/// every.tick().await;
/// every.tick().await;
/// # });
/// ```
///
/// # Panics
///
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period,
        sleep: sleep_until(Instant::now()),
    }
}

/// The ticker of [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick; returns when it was due.
    pub async fn tick(&mut self) -> Instant {
        (&mut self.sleep).await;
        let due = self.sleep.deadline();
        let next = deadline_after(due, self.period).max(Instant::now());
        let next = if next > deadline_after(due, self.period) {
            deadline_after(Instant::now(), self.period)
        } else {
            next
        };
        self.sleep.reset(next);
        due
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
