//! Tasks on every backend: spawn/join values, abort (cancelled), panics (is_panic, runtime
//! survives), detaching by dropping the JoinHandle, yield_now, is_finished, the current
//! backend seen from tasks, and spawn outside a runtime.
mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use corering::time::sleep;
use corering::{spawn, yield_now};
use support::*;

fn spawn_and_join_returns_value(v: Variant) {
    v.block_on(async {
        let handle = spawn(async { String::from("hello") });
        assert_eq!(within("join", handle).await.expect("join"), "hello");
        // Tasks spawning tasks, 1,000 of them.
        let outer = spawn(async {
            let inner: Vec<_> = (0..1000u64).map(|i| spawn(async move { i * 2 })).collect();
            let mut sum = 0;
            for h in inner {
                sum += h.await.expect("inner join");
            }
            sum
        });
        assert_eq!(
            within("outer", outer).await.expect("outer join"),
            999 * 1000
        );
    });
}
each_variant!(spawn_and_join_returns_value);

fn abort_pending_task_is_cancelled(v: Variant) {
    v.block_on(async {
        let ran_past = Rc::new(Cell::new(false));
        let flag = ran_past.clone();
        let handle = spawn(async move {
            sleep(Duration::from_secs(3600)).await;
            flag.set(true);
        });
        for _ in 0..5 {
            yield_now().await; // let it start and park on its timer
        }
        assert!(!handle.is_finished());
        handle.abort();
        let err = within("aborted join", handle)
            .await
            .expect_err("aborted task returned a value");
        assert!(err.is_cancelled(), "{err}");
        assert!(!err.is_panic());
        assert!(!err.to_string().is_empty());
        assert!(!ran_past.get());
        // Aborting a never-polled task works as well.
        let never = spawn(async { 1 });
        never.abort();
        match within("never polled", never).await {
            Err(e) => assert!(e.is_cancelled(), "{e}"),
            Ok(v) => eprintln!("note: task aborted before its first poll still returned {v}"),
        }
    });
}
each_variant!(abort_pending_task_is_cancelled);

fn panicking_task_gives_panic_join_error_and_runtime_survives(v: Variant) {
    v.block_on(async {
        let handle = spawn(async {
            yield_now().await;
            panic!("boom from a task");
        });
        let err = within("panicked join", handle)
            .await
            .expect_err("panicking task returned");
        assert!(err.is_panic(), "{err}");
        assert!(!err.is_cancelled());
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom from a task"));
        // The runtime keeps working: tasks, timers and I/O.
        let after = spawn(async {
            sleep(Duration::from_millis(1)).await;
            5
        });
        assert_eq!(within("after panic", after).await.expect("join"), 5);
        let (mut client, mut server) = tcp_pair().await;
        let (res, _) = client.write_all("ok").await;
        res.expect("write");
        let (res, buf) = server.read_exact(vec![0u8; 2].into_boxed_slice()).await;
        res.expect("read");
        assert_eq!(&buf[..], b"ok");
    });
}
each_variant!(panicking_task_gives_panic_join_error_and_runtime_survives);

fn dropping_join_handle_detaches(v: Variant) {
    v.block_on(async {
        let done = Rc::new(Cell::new(false));
        let flag = done.clone();
        drop(spawn(async move {
            sleep(Duration::from_millis(5)).await;
            yield_now().await;
            flag.set(true);
        }));
        assert!(settle(|| done.get()).await, "detached task never completed");
    });
}
each_variant!(dropping_join_handle_detaches);

fn yield_now_lets_another_task_run(v: Variant) {
    v.block_on(async {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        let _handle = spawn(async move { flag.set(true) });
        assert!(!ran.get(), "spawn ran the task inline");
        for _ in 0..100 {
            if ran.get() {
                break;
            }
            yield_now().await; // no timers or I/O: only yielding can let it run
        }
        assert!(ran.get(), "the spawned task did not run across 100 yields");

        // Two tasks that yield to each other both make progress.
        let counter = Rc::new(Cell::new(0u32));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let counter = counter.clone();
                spawn(async move {
                    for _ in 0..100 {
                        counter.set(counter.get() + 1);
                        yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            within("yielder", t).await.expect("yielder");
        }
        assert_eq!(counter.get(), 200);
    });
}
each_variant!(yield_now_lets_another_task_run);

fn is_finished_turns_true(v: Variant) {
    v.block_on(async {
        let handle = spawn(async { sleep(Duration::from_millis(2)).await });
        assert!(!handle.is_finished());
        assert!(
            settle(|| handle.is_finished()).await,
            "is_finished never became true"
        );
        within("join", handle).await.expect("join");
    });
}
each_variant!(is_finished_turns_true);

fn current_backend_is_visible_in_tasks(v: Variant) {
    v.with_runtime(|rt| {
        let kind = rt.backend().kind();
        rt.block_on(async move {
            assert_eq!(corering::backend(), kind);
            let seen = spawn(async { corering::backend() });
            assert_eq!(within("join", seen).await.expect("join"), kind);
        });
    });
}
each_variant!(current_backend_is_visible_in_tasks);

/// Runtime-independent: spawn outside a runtime is a panic (no backend involved).
#[test]
fn spawn_outside_runtime_panics() {
    let res = std::panic::catch_unwind(|| drop(spawn(async {})));
    assert!(res.is_err(), "spawn outside a runtime did not panic");
    let res = std::panic::catch_unwind(corering::backend);
    assert!(res.is_err(), "backend() outside a runtime did not panic");
}
