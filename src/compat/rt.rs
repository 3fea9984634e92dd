//! hyper's runtime hooks: [`HyperExecutor`] (spawn) and [`HyperTimer`] (sleeps).
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

/// hyper's [`Executor`](hyper::rt::Executor): spawns each future on the current core with
/// [`spawn`](crate::spawn), detached (its output is dropped). hyper asks for no `Send`, and
/// none is needed: the task stays on this core.
///
/// # Panics
///
/// `execute` panics outside a runtime, as [`spawn`](crate::spawn) does.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F: Future + 'static> hyper::rt::Executor<F> for HyperExecutor {
    fn execute(&self, fut: F) {
        drop(crate::spawn(async move {
            fut.await;
        }));
    }
}

/// hyper's [`Timer`](hyper::rt::Timer) on corering's timers ([`time`](crate::time)): set it
/// with `http1::Builder::timer` for header-read and keep-alive timeouts.
///
/// hyper wants its sleeps `Send + Sync`; corering's timers belong to one core. A sleep made
/// here creates its corering timer when first polled, on that thread, and from then on
/// touches it only there: polled on another thread it panics, dropped on another thread it
/// leaks the timer rather than touch it (the timer fires once, then is gone). hyper polls a
/// connection's sleeps in the connection's task, which never leaves its core.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // corering's `sleep` saturates a too-long duration; so does this.
        self.sleep_until(crate::time::sleep(duration).deadline())
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep {
            deadline,
            timer: None,
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(ours) => ours.get_mut().reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}

/// The sleep [`HyperTimer`] hands hyper: a deadline, and the corering timer, bound to the
/// thread that first polled it.
struct HyperSleep {
    deadline: Instant,
    timer: Option<ThreadBound<crate::time::Sleep>>,
}

impl HyperSleep {
    fn reset(&mut self, deadline: Instant) {
        self.deadline = deadline;
        match &mut self.timer {
            Some(timer) if timer.on_owner() => timer.get_mut().reset(deadline),
            // Made again at the next poll (on another thread the old one is leaked).
            _ => self.timer = None,
        }
    }
}

impl Future for HyperSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| ThreadBound::new(crate::time::sleep_until(deadline)));
        Pin::new(timer.get_mut()).poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

/// A value touched only on the thread that made it: [`get_mut`](ThreadBound::get_mut)
/// panics elsewhere, and dropped elsewhere it is leaked (its own `Drop` never runs there).
struct ThreadBound<T> {
    owner: ThreadId,
    value: ManuallyDrop<T>,
}

impl<T> ThreadBound<T> {
    fn new(value: T) -> ThreadBound<T> {
        ThreadBound {
            owner: thread::current().id(),
            value: ManuallyDrop::new(value),
        }
    }

    fn on_owner(&self) -> bool {
        thread::current().id() == self.owner
    }

    /// # Panics
    ///
    /// On any thread but the one that made it.
    fn get_mut(&mut self) -> &mut T {
        assert!(
            self.on_owner(),
            "a corering::compat::HyperTimer sleep was polled on a thread other than the one \
             that first polled it: corering timers belong to one core"
        );
        &mut self.value
    }
}

impl<T> Drop for ThreadBound<T> {
    fn drop(&mut self) {
        if self.on_owner() {
            // SAFETY: `value` is dropped only here, once, and not used after.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}

// SAFETY: the value is only ever touched (borrowed, polled, dropped) on the `owner` thread:
// `get_mut` checks the thread, `Drop` leaks it elsewhere, and nothing else reaches it. Moving
// it to another thread moves its bytes only, which a !Send value allows as long as nothing
// there uses it; thread ids are never reused, so "the owner" cannot come to mean another
// thread.
unsafe impl<T> Send for ThreadBound<T> {}

// SAFETY: `&ThreadBound<T>` gives no access to the value at all (`on_owner` reads only the
// thread id), so sharing one between threads shares nothing of `T`.
unsafe impl<T> Sync for ThreadBound<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops (it is `Send` itself; `ThreadBound` must still not drop it abroad).
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn the_owner_uses_and_drops_the_value() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut bound = ThreadBound::new(Counted(drops.clone()));
        assert!(bound.on_owner());
        assert_eq!(bound.get_mut().0.load(Ordering::SeqCst), 0);
        drop(bound);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn another_thread_may_not_touch_the_value() {
        let drops = Arc::new(AtomicUsize::new(0));
        let bound = ThreadBound::new(Counted(drops.clone()));
        let res = thread::spawn(move || {
            let mut bound = bound;
            assert!(!bound.on_owner());
            let _ = bound.get_mut();
        })
        .join();
        let panic = res.expect_err("get_mut on another thread panics");
        let msg = (panic.downcast_ref::<&str>().copied())
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .expect("a message");
        assert!(msg.contains("polled on a thread other than"), "{msg}");
        // Unwinding dropped it there: leaked, not dropped.
        assert_eq!(drops.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn dropped_on_another_thread_it_is_leaked() {
        let drops = Arc::new(AtomicUsize::new(0));
        let bound = ThreadBound::new(Counted(drops.clone()));
        thread::spawn(move || drop(bound)).join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        // Sent back home, it may be used and dropped again.
        let bound = ThreadBound::new(Counted(drops.clone()));
        let mut bound = thread::spawn(move || bound).join().unwrap();
        let _ = bound.get_mut();
        drop(bound);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_sleep_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HyperSleep>();
    }
}
