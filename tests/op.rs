//! Raw ops on every backend: `op::nop` and `op::kernel_timeout` complete, a kernel timeout
//! never completes early, and dropping kernel timeouts in flight frees their slots.
mod support;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use corering::op::{kernel_timeout, nop};
use corering::spawn;
use corering::time::timeout;
use support::*;

fn nop_completes(v: Variant) {
    v.block_on(async {
        within("nop", nop()).await.expect("nop");
        let handles: Vec<_> = (0..1000).map(|_| spawn(nop())).collect();
        for h in handles {
            within("nop task", h).await.expect("join").expect("nop");
        }
    });
}
each_variant!(nop_completes);

fn kernel_timeout_completes_and_never_early(v: Variant) {
    v.block_on(async {
        let start = Instant::now();
        within("kernel_timeout", kernel_timeout(Duration::from_millis(20)))
            .await
            .expect("kernel_timeout");
        assert!(start.elapsed() >= Duration::from_millis(20), "fired early");
        within("zero kernel_timeout", kernel_timeout(Duration::ZERO))
            .await
            .expect("zero kernel_timeout");
        let handles: Vec<_> = (0..200u64)
            .map(|i| spawn(kernel_timeout(Duration::from_millis(i % 10))))
            .collect();
        for h in handles {
            within("kernel_timeout task", h)
                .await
                .expect("join")
                .expect("kernel_timeout");
        }
    });
}
each_variant!(kernel_timeout_completes_and_never_early);

fn dropping_kernel_timeout_in_flight_is_fine(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            // Dropped by an expiring runtime timeout.
            let res = timeout(
                Duration::from_millis(5),
                kernel_timeout(Duration::from_secs(3600)),
            )
            .await;
            assert!(res.is_err(), "an hour-long kernel timeout completed");
            // Dropped right after its first poll.
            let mut fut = pin!(kernel_timeout(Duration::from_secs(3600)));
            let ready = poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_ready())).await;
            assert!(!ready);
            // Dropped by aborting the tasks that own them.
            let handles: Vec<_> = (0..500)
                .map(|_| spawn(kernel_timeout(Duration::from_secs(3600))))
                .collect();
            for _ in 0..5 {
                corering::yield_now().await;
            }
            for h in &handles {
                h.abort();
            }
            for h in handles {
                let err = within("aborted", h)
                    .await
                    .expect_err("aborted timeout finished");
                assert!(err.is_cancelled(), "{err}");
            }
        });
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "dropped kernel timeouts kept {} slots",
            rt.live_ops()
        );
        // The backend still works afterwards.
        rt.block_on(async {
            within("nop", nop()).await.expect("nop after drops");
            within("kernel_timeout", kernel_timeout(Duration::from_millis(1)))
                .await
                .expect("kernel_timeout after drops");
        });
    });
}
each_variant!(dropping_kernel_timeout_in_flight_is_fine);
