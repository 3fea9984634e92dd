//! Cross-core work on every backend: `spawn_on` round trips (with non-`Send` futures built on
//! the target core), remote abort, `spawn_on` to a stopped core, a remote task still running
//! at the shutdown deadline, and a panicking `make` closure.
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corering::time::sleep;
use corering::{core_id, shutdown_requested, spawn, spawn_on, yield_now, RemoteJoinHandle};
use support::*;

const GRACE: Duration = Duration::from_secs(30);

/// Sets its flag when dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn assert_send<T: Send>(_: &T) {}

fn spawn_on_round_trip_between_cores(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        let reports = rt
            .run(|core| {
                let stop = stop.clone();
                async move {
                    if core != 0 {
                        shutdown_requested().await;
                        return Vec::new();
                    }
                    let _stop = ShutdownOnDrop {
                        handle: stop,
                        grace: GRACE,
                    };
                    // There and back: core 0 -> core 1 -> core 0.
                    let there = spawn_on(1, || async {
                        let back = spawn_on(0, || async { core_id() });
                        (core_id(), within("back", back).await.expect("back"))
                    });
                    assert_send(&there);
                    assert_eq!(within("there", there).await.expect("there"), (1, 0));
                    // A future that is not Send (an Rc held across an await) built on core 1.
                    let rc = spawn_on(1, || async {
                        let seen = Rc::new(Cell::new(0));
                        let inner = seen.clone();
                        spawn(async move { inner.set(core_id() + 10) })
                            .await
                            .unwrap();
                        yield_now().await;
                        seen.get()
                    });
                    assert_eq!(within("rc", rc).await.expect("rc"), 11);
                    // To this core, and many at once.
                    let own = spawn_on(0, || async { core_id() });
                    assert_eq!(own.await.expect("own"), 0);
                    let many: Vec<RemoteJoinHandle<usize>> = (0..1000)
                        .map(|i| spawn_on(i % 2, move || async move { i }))
                        .collect();
                    let mut sum = 0;
                    for h in many {
                        sum += within("many", h).await.expect("many");
                    }
                    assert_eq!(sum, 999 * 1000 / 2);
                    // A remote task that panics: its handle says so, core 1 carries on.
                    let boom = spawn_on(1, || async {
                        yield_now().await;
                        panic!("remote boom")
                    });
                    let err: corering::JoinError = within("boom", boom).await.expect_err("boom");
                    assert!(err.is_panic(), "{err}");
                    let after = spawn_on(1, || async { core_id() });
                    vec![within("after", after).await.expect("after")]
                }
            })
            .expect("run");
        assert_eq!(reports[0].output.as_ref().expect("core 0"), &vec![1]);
        assert!(reports[1].output.is_ok());
    });
}
each_variant!(spawn_on_round_trip_between_cores);

fn remote_abort_cancels_the_task_on_its_core(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        let reports = rt
            .run(|core| {
                let stop = stop.clone();
                async move {
                    if core != 0 {
                        shutdown_requested().await;
                        return;
                    }
                    let _stop = ShutdownOnDrop {
                        handle: stop,
                        grace: GRACE,
                    };
                    let (started, dropped, ran_past) = Default::default();
                    let (s, d, r): (Arc<AtomicBool>, Arc<AtomicBool>, Arc<AtomicBool>) = (
                        Arc::clone(&started),
                        Arc::clone(&dropped),
                        Arc::clone(&ran_past),
                    );
                    let handle = spawn_on(1, move || async move {
                        let _guard = SetOnDrop(d);
                        let _local = Rc::new(()); // not Send
                        s.store(true, Ordering::SeqCst);
                        sleep(Duration::from_secs(3600)).await;
                        r.store(true, Ordering::SeqCst);
                    });
                    let up = settle(|| started.load(Ordering::SeqCst)).await;
                    assert!(up, "the remote task never started");
                    assert!(!handle.is_finished());
                    handle.abort();
                    let err = within("aborted", handle).await.expect_err("aborted task");
                    assert!(err.is_cancelled(), "{err}");
                    let gone = settle(|| dropped.load(Ordering::SeqCst)).await;
                    assert!(gone, "the aborted task was not dropped on core 1");
                    assert!(!ran_past.load(Ordering::SeqCst));
                    // Aborted before core 1 ran it: cancelled too.
                    let early = spawn_on(1, || async {
                        sleep(Duration::from_secs(3600)).await;
                    });
                    early.abort();
                    let err = within("early", early).await.expect_err("early abort");
                    assert!(err.is_cancelled(), "{err}");
                    // Abort after it finished: the result stands.
                    let done = spawn_on(1, || async { 7 });
                    let finished = settle(|| done.is_finished()).await;
                    assert!(finished);
                    done.abort();
                    assert_eq!(done.await.expect("finished before abort"), 7);
                }
            })
            .expect("run");
        for r in reports {
            r.output.expect("core output");
        }
    });
}
each_variant!(remote_abort_cancels_the_task_on_its_core);

fn spawn_on_a_stopped_core_is_cancelled(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let core1_closed = Arc::new(AtomicBool::new(false));
        let reports = rt
            .run(|core| {
                let closed = core1_closed.clone();
                async move {
                    if core == 1 {
                        // Core 1 stops at once (no shutdown request); its tasks are dropped
                        // after its inbox is closed, which sets the flag.
                        let guard = SetOnDrop(closed);
                        spawn(async move {
                            let _guard = guard;
                            std::future::pending::<()>().await;
                        });
                        return None;
                    }
                    let stopped = within("core 1 to stop", async {
                        loop {
                            if closed.load(Ordering::SeqCst) {
                                return;
                            }
                            sleep(Duration::from_millis(1)).await;
                        }
                    });
                    stopped.await;
                    let handle = spawn_on(1, || async { 1 });
                    Some(within("spawn_on a stopped core", handle).await)
                }
            })
            .expect("run");
        let res = reports[0]
            .output
            .as_ref()
            .expect("core 0")
            .as_ref()
            .expect("some");
        let err = res.as_ref().expect_err("a stopped core ran the task");
        assert!(err.is_cancelled(), "{err}");
    });
}
each_variant!(spawn_on_a_stopped_core_is_cancelled);

fn remote_task_still_running_at_the_deadline_is_cancelled(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        let reports = rt
            .run(|core| {
                let stop = stop.clone();
                async move {
                    if core == 1 {
                        shutdown_requested().await;
                        return None;
                    }
                    let handle = spawn_on(1, || async {
                        sleep(Duration::from_secs(3600)).await;
                    });
                    stop.shutdown(Duration::from_millis(50));
                    Some(handle) // awaited after run returns, off the cores
                }
            })
            .expect("run");
        let mut reports = reports.into_iter();
        let handle = reports
            .next()
            .unwrap()
            .output
            .expect("core 0")
            .expect("handle");
        assert!(handle.is_finished(), "the remote task outlived its core");
        let rt = corering::Runtime::new().expect("runtime");
        let err = rt
            .block_on(within("handle", handle))
            .expect_err("cancelled");
        assert!(err.is_cancelled(), "{err}");
    });
}
each_variant!(remote_task_still_running_at_the_deadline_is_cancelled);

/// A `make` closure that panics on the target core must not take that core down.
fn panicking_make_closure_ends_only_its_task(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        let reports = rt
            .run(|core| {
                let stop = stop.clone();
                async move {
                    if core != 0 {
                        shutdown_requested().await;
                        return None;
                    }
                    let _stop = ShutdownOnDrop {
                        handle: stop,
                        grace: GRACE,
                    };
                    let bad = spawn_on(1, || -> std::future::Ready<usize> {
                        panic!("make panicked")
                    });
                    let res = within("bad", bad).await;
                    let after = within("after", spawn_on(1, || async { core_id() })).await;
                    Some((
                        res.map_err(|e| e.is_panic() || e.is_cancelled()),
                        after.ok(),
                    ))
                }
            })
            .expect("run");
        let (res, after) = reports[0].output.as_ref().expect("core 0").expect("some");
        assert_eq!(res, Err(true), "the handle of a panicking make closure");
        assert_eq!(
            after,
            Some(1),
            "core 1 stopped serving after a make closure panicked"
        );
        assert!(reports[1].output.is_ok(), "core 1: {:?}", reports[1].output);
    });
}
each_variant!(panicking_make_closure_ends_only_its_task);
