//! Timers on every backend: sleeps wake in deadline order and never early, sleep_until,
//! interval ticks, and timeout (elapsing and not elapsing). Only lower bounds are asserted
//! ("not before the deadline"); upper bounds are left to hang guards.
mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use corering::spawn;
use corering::time::{interval, sleep, sleep_until, timeout};
use support::*;

const MS: Duration = Duration::from_millis(1);

fn sleeps_wake_in_deadline_order(v: Variant) {
    v.block_on(async {
        let order = Rc::new(RefCell::new(Vec::new()));
        let mut handles = Vec::new();
        let mut deadlines = Vec::new();
        for ms in [30u64, 10, 20, 0] {
            // The deadline is fixed when `sleep` is called, before the task first runs (on a
            // stalled machine the calls may be far apart: the deadlines, not the durations,
            // say the order).
            let nap = sleep(Duration::from_millis(ms));
            let deadline = nap.deadline();
            deadlines.push(deadline);
            let order = order.clone();
            handles.push(spawn(async move {
                nap.await;
                order.borrow_mut().push(deadline);
            }));
        }
        for h in handles {
            within("sleeper", h).await.expect("sleeper task");
        }
        deadlines.sort();
        assert_eq!(*order.borrow(), deadlines);
    });
}
each_variant!(sleeps_wake_in_deadline_order);

/// 200 timers with scattered (and some equal) deadlines, spawned out of order: none wakes
/// early, and those armed before the earliest of them wake in deadline order. A timer whose
/// deadline passed before its task first ran fires at once, out of order, and rightly so:
/// where spawning took longer than the head start (a slow or emulated machine), the head
/// start grows and the round is run again.
fn sleep_until_wakes_in_deadline_order_and_never_early(v: Variant) {
    v.block_on(async {
        for head_start in [5 * MS, 50 * MS, 500 * MS, 5000 * MS] {
            let woke = deadline_order_round(head_start).await;
            let last_armed = woke.iter().map(|w| w.armed).max().expect("timers");
            let in_time: Vec<Instant> = woke
                .iter()
                .map(|w| w.deadline)
                .filter(|d| *d > last_armed)
                .collect();
            if in_time.len() < 150 {
                continue;
            }
            assert!(
                in_time.windows(2).all(|w| w[0] <= w[1]),
                "timers armed in time woke out of deadline order"
            );
            return;
        }
        panic!("arming 200 timers never fit in a 5 s head start");
    });
}

/// One timer's story: when its task first polled it, and its deadline.
struct Woke {
    armed: Instant,
    deadline: Instant,
}

/// Spawns 200 timers, due `head_start` and up to 40 ms more from now; returns them in the
/// order they woke, each checked not early.
async fn deadline_order_round(head_start: Duration) -> Vec<Woke> {
    let base = Instant::now() + head_start;
    let woke = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..200u64 {
        let deadline = base + Duration::from_millis(i * 7919 % 40);
        let timer = sleep_until(deadline);
        assert_eq!(timer.deadline(), deadline);
        let woke = woke.clone();
        handles.push(spawn(async move {
            let armed = Instant::now();
            timer.await;
            let now = Instant::now();
            assert!(now >= deadline, "woke {:?} early", deadline - now);
            woke.borrow_mut().push(Woke { armed, deadline });
        }));
    }
    for h in handles {
        within("timer", h).await.expect("timer task");
    }
    let woke = Rc::try_unwrap(woke).ok().expect("every task ended");
    let woke = woke.into_inner();
    assert_eq!(woke.len(), 200);
    woke
}
each_variant!(sleep_until_wakes_in_deadline_order_and_never_early);

fn sleep_and_sleep_until_never_return_early(v: Variant) {
    v.block_on(async {
        let start = Instant::now();
        sleep(15 * MS).await;
        assert!(start.elapsed() >= 15 * MS);
        let deadline = Instant::now() + 15 * MS;
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        // A deadline in the past completes at once.
        within("past deadline", sleep_until(start)).await;
        within("zero sleep", sleep(Duration::ZERO)).await;
    });
}
each_variant!(sleep_and_sleep_until_never_return_early);

fn interval_ticks(v: Variant) {
    v.block_on(async {
        let period = 10 * MS;
        let start = Instant::now();
        let mut ticker = interval(period);
        let mut ticks = Vec::new();
        for _ in 0..5 {
            ticks.push(within("tick", ticker.tick()).await);
        }
        // The first tick is immediate, then one per period: 5 ticks span at least 4 periods.
        assert!(
            start.elapsed() >= 4 * period,
            "5 ticks after {:?}",
            start.elapsed()
        );
        assert!(
            ticks.windows(2).all(|w| w[0] < w[1]),
            "ticks not increasing: {ticks:?}"
        );
    });
}
each_variant!(interval_ticks);

fn timeout_that_does_not_elapse_returns_ok(v: Variant) {
    v.block_on(async {
        assert_eq!(timeout(Duration::from_secs(30), async { 42 }).await, Ok(42));
        let res = timeout(Duration::from_secs(30), sleep(5 * MS)).await;
        assert!(
            res.is_ok(),
            "timeout elapsed around a 5 ms sleep with a 30 s limit"
        );
        let handle = spawn(async { 7 });
        let joined = timeout(Duration::from_secs(30), handle).await;
        assert_eq!(joined.expect("timeout elapsed").expect("join"), 7);
    });
}
each_variant!(timeout_that_does_not_elapse_returns_ok);

fn timeout_on_pending_future_elapses(v: Variant) {
    v.block_on(async {
        let start = Instant::now();
        let first = timeout(20 * MS, std::future::pending::<()>()).await;
        assert!(start.elapsed() >= 20 * MS, "timeout fired early");
        let first = first.expect_err("pending future completed");
        assert!(!first.to_string().is_empty());
        let second = timeout(MS, sleep(Duration::from_secs(3600))).await;
        assert_eq!(second.expect_err("hour-long sleep completed"), first);
    });
}
each_variant!(timeout_on_pending_future_elapses);

fn many_timers_across_tasks_all_fire(v: Variant) {
    v.block_on(async {
        let fired = Rc::new(RefCell::new(0usize));
        let handles: Vec<_> = (0..2000u64)
            .map(|i| {
                let fired = fired.clone();
                spawn(async move {
                    sleep(Duration::from_millis(i % 25)).await;
                    *fired.borrow_mut() += 1;
                })
            })
            .collect();
        for h in handles {
            within("timer task", h).await.expect("timer task");
        }
        assert_eq!(*fired.borrow(), 2000);
    });
}
each_variant!(many_timers_across_tasks_all_fire);

fn duration_max_waits_forever_without_panicking(v: Variant) {
    v.block_on(async {
        // A sleep of Duration::MAX never fires; the short timeout around it does.
        assert!(timeout(5 * MS, sleep(Duration::MAX)).await.is_err());
        let forever = sleep(Duration::MAX);
        assert!(forever.deadline() > Instant::now() + Duration::from_secs(365 * 24 * 3600));
        // A timeout of Duration::MAX lets the future finish.
        assert_eq!(timeout(Duration::MAX, async { 7 }).await, Ok(7));
        assert_eq!(
            timeout(Duration::MAX, async {
                sleep(MS).await;
                8
            })
            .await,
            Ok(8)
        );
        // An interval of Duration::MAX ticks once, then never again.
        let mut every = interval(Duration::MAX);
        every.tick().await;
        assert!(timeout(5 * MS, every.tick()).await.is_err());
    });
}
each_variant!(duration_max_waits_forever_without_panicking);

fn kernel_timeout_of_duration_max_is_cancelled_cleanly(v: Variant) {
    v.with_runtime(|rt| {
        let res = rt.block_on(timeout(5 * MS, corering::op::kernel_timeout(Duration::MAX)));
        assert!(
            res.is_err(),
            "a kernel timeout of Duration::MAX ended: {res:?}"
        );
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "the cancelled kernel timeout's slot was never freed: {} live",
            rt.live_ops()
        );
        // The runtime still works, kernel timers included.
        rt.block_on(async {
            corering::op::kernel_timeout(MS)
                .await
                .expect("a short kernel timeout");
        });
    });
}
each_variant!(kernel_timeout_of_duration_max_is_cancelled_cleanly);

/// A sleep first polled under one runtime and awaited under a later one on the same thread
/// (a future carried from one `block_on` to the next) registers with the runtime polling it
/// and fires there; the first runtime's timers never run again.
fn a_sleep_moves_to_the_runtime_that_polls_it(v: Variant) {
    use std::future::Future;
    use std::task::Poll;
    let mut carried = None;
    v.block_on(async {
        let mut s = Box::pin(sleep(Duration::from_millis(50)));
        let polled = std::future::poll_fn(|cx| Poll::Ready(s.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "a 50 ms sleep was ready at once");
        carried = Some(s);
    });
    let mut pending = carried.expect("the sleep");
    v.block_on(async move {
        // In a spawned task: only the timer can wake it (the root future is polled anyway).
        let task = spawn(async move { pending.as_mut().await });
        within("the carried sleep", task).await.expect("task");
    });
}
each_variant!(a_sleep_moves_to_the_runtime_that_polls_it);
