//! Shutdown on every backend: with connections still open at the deadline `run` returns, the
//! connections are closed and no fd is left behind; connections drain before the deadline;
//! a root future that ignores the request is cancelled; a request made before `run`; accept
//! failing with `ShuttingDown` under `block_on`; `incoming()` ending after that error; per-core
//! stats after shutdown.
//!
//! The tests of this binary count /proc/self/fd, so they run one at a time (`SERIAL`).
mod support;

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corering::net::TcpListener;
use corering::{
    is_shutting_down, shutdown_requested, spawn, BackendKind, CoreReport, RuntimeStats,
    ShuttingDown,
};
use support::*;

/// Each core's accept loop: echo tasks for what it accepts (counted in `finished` when they
/// end on their own), until accept fails with `ShuttingDown`. Returns the count accepted;
/// with `wait`, only once this core's echo tasks have ended.
async fn serve(
    ports: Arc<ReusePort>,
    core: usize,
    finished: Arc<AtomicUsize>,
    wait: bool,
) -> usize {
    let listener = ports.bind(core).await;
    let here = Rc::new(Cell::new(0));
    let mut served = 0;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                served += 1;
                let (finished, here) = (finished.clone(), here.clone());
                spawn(async move {
                    echo_stream(stream).await;
                    assert!(is_shutting_down(), "clients close only after the request");
                    finished.fetch_add(1, Ordering::SeqCst);
                    here.set(here.get() + 1);
                });
            }
            Err(e) if ShuttingDown::is(&e) => break,
            Err(e) => panic!("core {core}: accept: {e}"),
        }
    }
    if wait {
        within("this core's echo tasks", async {
            while here.get() < served {
                corering::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }
    served
}

/// Checks what every backend must give after shutdown; returns the stats of each core.
fn check_stats(kind: BackendKind, reports: &[CoreReport<usize>]) -> Vec<RuntimeStats> {
    let stats: Vec<RuntimeStats> = reports.iter().map(|r| r.stats).collect();
    for (i, s) in stats.iter().enumerate() {
        eprintln!("{kind} core {i}: {s:?}");
        assert_eq!(s.tasks_alive, 0, "core {i}: tasks left after shutdown");
        assert!(s.driver.waits > 0, "core {i}: never waited");
        assert!(s.driver.ops_submitted > 0, "core {i}: no op submitted");
        assert_eq!(s.driver.cq_overflows, 0, "core {i}: CQ overflow");
        assert_eq!(
            s.driver.ops_submitted, s.driver.ops_completed,
            "{kind} core {i}: ops submitted != completed after shutdown"
        );
    }
    stats
}

fn shutdown_with_open_connections_returns_and_leaves_no_fd(v: Variant) {
    const CONNS: usize = 16;
    let _serial = serial();
    raise_fd_limit();
    v.with_builder(|kind, builder| {
        let before = open_fds();
        let rt = builder.cores(2).build().expect("build");
        let ports = Arc::new(ReusePort::default());
        let finished = Arc::new(AtomicUsize::new(0));
        let client = {
            let (ports, stop) = (ports.clone(), rt.shutdown_handle());
            std::thread::spawn(move || {
                let addr = ports.wait_bound(2);
                let mut conns: Vec<_> = (0..CONNS)
                    .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
                    .collect();
                for (i, c) in conns.iter_mut().enumerate() {
                    std_echo_round(c, &[i as u8; 64]);
                }
                // Every connection is open and its server task parked in a read.
                stop.shutdown(Duration::from_millis(100));
                // The servers' streams are dropped at the deadline: each client reads EOF.
                for c in &mut conns {
                    let mut buf = [0u8; 16];
                    match c.read(&mut buf) {
                        Ok(0) => {}
                        Err(e) if is_reset(&e) => {}
                        other => panic!("after shutdown: {other:?}"),
                    }
                }
            })
        };
        let reports = rt
            .run(|core| serve(ports.clone(), core, finished.clone(), false))
            .expect("run");
        client.join().expect("client thread");
        let served: Vec<usize> = reports
            .iter()
            .map(|r| *r.output.as_ref().expect("root"))
            .collect();
        assert_eq!(served.iter().sum::<usize>(), CONNS, "{served:?}");
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "tasks ran past the deadline"
        );
        check_stats(kind, &reports);
        drop(rt);
        let after = open_fds();
        assert_eq!(before, after, "{kind}: fds before and after the runtime");
    });
}
each_variant!(shutdown_with_open_connections_returns_and_leaves_no_fd);

fn connections_drain_before_the_deadline(v: Variant) {
    const CONNS: usize = 8;
    let _serial = serial();
    v.with_builder(|kind, builder| {
        let before = open_fds();
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let ports = Arc::new(ReusePort::default());
        let finished = Arc::new(AtomicUsize::new(0));
        let client = {
            let (ports, stop) = (ports.clone(), rt.shutdown_handle());
            std::thread::spawn(move || {
                let addr = ports.wait_bound(2);
                let mut conns: Vec<_> = (0..CONNS)
                    .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
                    .collect();
                for c in &mut conns {
                    std_echo_round(c, b"before");
                }
                assert!(!stop.is_requested());
                // A deadline far away: `run` returns because the connections end.
                stop.shutdown(Duration::from_secs(3600));
                assert!(stop.is_requested());
                for c in &mut conns {
                    std_echo_round(c, b"while draining");
                }
            })
        };
        let reports = rt
            // The roots return after their echo tasks: `run` does not depend on a core noticing
            // that its last task ended (see `run_returns_once_the_last_task_has_drained`).
            .run(|core| serve(ports.clone(), core, finished.clone(), true))
            .expect("run");
        client.join().expect("client thread");
        let served: usize = reports.iter().map(|r| r.output.as_ref().unwrap()).sum();
        assert_eq!(served, CONNS);
        assert_eq!(
            finished.load(Ordering::SeqCst),
            CONNS,
            "echo tasks cut short"
        );
        check_stats(kind, &reports);
        drop(rt);
        assert_eq!(
            before,
            open_fds(),
            "{kind}: fds before and after the runtime"
        );
    });
}
each_variant!(connections_drain_before_the_deadline);

/// A core whose last task ends while draining must stop then, not sleep until the deadline.
fn run_returns_once_the_last_task_has_drained(v: Variant) {
    let _serial = serial();
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        let reports = rt
            .run(|_| {
                let stop = stop.clone();
                async move {
                    spawn(corering::time::sleep(Duration::from_millis(10)));
                    stop.shutdown(Duration::from_secs(3600)); // the watchdog catches a hang
                    shutdown_requested().await;
                }
            })
            .expect("run");
        assert!(reports
            .iter()
            .all(|r| r.output.is_ok() && r.stats.tasks_alive == 0));
    });
}
each_variant!(run_returns_once_the_last_task_has_drained);

fn root_ignoring_shutdown_is_cancelled_at_the_deadline(v: Variant) {
    let _serial = serial();
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        let seen = Arc::new(AtomicUsize::new(0));
        let reports = rt
            .run(|core| {
                let (stop, seen) = (stop.clone(), seen.clone());
                async move {
                    // Only core 0 requests; core 1 may start before or after it did.
                    assert!(core != 0 || !is_shutting_down());
                    let watcher = spawn(async move {
                        shutdown_requested().await;
                        assert!(is_shutting_down());
                        seen.fetch_add(1, Ordering::SeqCst);
                    });
                    if core == 0 {
                        stop.shutdown(Duration::from_millis(50));
                    }
                    watcher.await.expect("watcher");
                    std::future::pending::<()>().await;
                }
            })
            .expect("run");
        assert_eq!(seen.load(Ordering::SeqCst), 2, "a core missed the request");
        for r in reports {
            let err = r.output.expect_err("a root that never ends");
            assert!(err.is_cancelled(), "core {}: {err}", r.core);
        }
    });
}
each_variant!(root_ignoring_shutdown_is_cancelled_at_the_deadline);

fn shutdown_requested_before_run(v: Variant) {
    let _serial = serial();
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let stop = rt.shutdown_handle();
        stop.shutdown(Duration::from_secs(3600));
        let reports = rt
            .run(|_| async {
                assert!(is_shutting_down());
                within("shutdown_requested", shutdown_requested()).await;
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let err = within("accept", listener.accept())
                    .await
                    .expect_err("accepted");
                assert!(ShuttingDown::is(&err), "{err}");
                assert_eq!(err.kind(), std::io::ErrorKind::Other);
                err.to_string()
            })
            .expect("run");
        for r in reports {
            assert!(r.output.expect("root").contains("shutting down"));
        }
    });
}
each_variant!(shutdown_requested_before_run);

fn block_on_accept_fails_after_shutdown_request(v: Variant) {
    let _serial = serial();
    v.with_runtime(|rt| {
        let stop = rt.shutdown_handle();
        let accepted = Arc::new(AtomicBool::new(false));
        let flag = accepted.clone();
        let out = rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let pending = spawn(async move {
                let res = listener.accept().await;
                flag.store(res.is_ok(), Ordering::SeqCst);
                res.map(|_| ())
            });
            corering::yield_now().await;
            assert!(!is_shutting_down());
            stop.shutdown(Duration::from_secs(1));
            let err = within("accept", pending)
                .await
                .unwrap()
                .expect_err("accepted");
            assert!(ShuttingDown::is(&err), "{err}");
            assert!(!ShuttingDown::is(&std::io::Error::other("other")));
            assert!(is_shutting_down());
            "block_on is not cancelled"
        });
        assert_eq!(out, "block_on is not cancelled");
        assert!(!accepted.load(Ordering::SeqCst));
    });
}
each_variant!(block_on_accept_fails_after_shutdown_request);

/// `incoming()` as a Stream: once shutdown is requested it yields the `ShuttingDown` error
/// once, then ends, so `while let Some(..)` loops over it finish.
fn incoming_ends_after_the_shutdown_error(v: Variant) {
    let _serial = serial();
    v.with_runtime(|rt| {
        let stop = rt.shutdown_handle();
        rt.block_on(async move {
            use futures_core::Stream;
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let mut incoming = std::pin::pin!(listener.incoming());
            stop.shutdown(Duration::from_secs(1));
            let first = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx));
            match within("first item", first).await {
                Some(Err(e)) => assert!(ShuttingDown::is(&e), "{e}"),
                other => panic!("expected the ShuttingDown error, got {other:?}"),
            }
            let next = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx));
            assert!(within("end", next).await.is_none(), "stream went on");
        });
    });
}
each_variant!(incoming_ends_after_the_shutdown_error);

/// The close rule at the deadline, the same on both backends: a connection whose task the
/// deadline cancels, with bytes from its peer still unread, gives the peer a clean end of
/// stream (FIN first), not a bare reset: its last whole message is not made to look lost.
fn connections_cut_at_the_deadline_end_cleanly_despite_unread_bytes(v: Variant) {
    const CONNS: usize = 8;
    let _serial = serial();
    let rt = v.builder().cores(1).build().expect("build");
    let (bound, addr) = std::sync::mpsc::channel();
    let stop = rt.shutdown_handle();
    let client = std::thread::spawn(move || {
        let addr: std::net::SocketAddr = addr.recv().expect("bound");
        let mut conns: Vec<_> = (0..CONNS)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        for c in &mut conns {
            std::io::Write::write_all(c, &[9u8; 100]).expect("send"); // never read
        }
        std::thread::sleep(Duration::from_millis(50)); // bytes in the server's queue
        stop.shutdown(Duration::from_millis(50));
        conns
            .iter_mut()
            .map(|c| {
                let mut buf = [0u8; 16];
                match c.read(&mut buf) {
                    Ok(0) => "eof".to_string(),
                    other => format!("{other:?}"),
                }
            })
            .collect::<Vec<_>>()
    });
    rt.run(|_| {
        let bound = bound.clone();
        async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            bound
                .send(listener.local_addr().expect("addr"))
                .expect("send");
            for _ in 0..CONNS {
                let (stream, _) = listener.accept().await.expect("accept");
                spawn(async move {
                    corering::time::sleep(Duration::from_secs(3600)).await;
                    drop(stream);
                });
            }
            shutdown_requested().await;
        }
    })
    .expect("run");
    let seen = client.join().expect("client");
    assert!(seen.iter().all(|s| s == "eof"), "peers saw: {seen:?}");
}
each_variant!(connections_cut_at_the_deadline_end_cleanly_despite_unread_bytes);
