//! Thread-per-core on every backend: per-core SO_REUSEPORT listeners that both accept, core
//! ids and pinning, and panic isolation (a task among echoing tasks, a root future).
mod support;

use std::sync::Arc;
use std::time::Duration;

use corering::net::{TcpListener, TcpStream};
use corering::{core_id, cores, spawn, yield_now, ShuttingDown};
use support::*;

const GRACE: Duration = Duration::from_secs(30);

fn reuseport_listeners_on_2_cores_both_accept_of_64_connections(v: Variant) {
    const CONNS: usize = 64;
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(true).build().expect("build");
        let ports = Arc::new(ReusePort::default());
        let client = {
            let (ports, stop) = (ports.clone(), rt.shutdown_handle());
            std::thread::spawn(move || {
                let _stop = ShutdownOnDrop {
                    handle: stop,
                    grace: GRACE,
                };
                let addr = ports.wait_bound(2);
                // 64 connections, so 64 distinct source ports: the kernel hashes each 4-tuple
                // onto one of the two listeners.
                let mut conns: Vec<_> = (0..CONNS)
                    .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
                    .collect();
                for (i, c) in conns.iter_mut().enumerate() {
                    std_echo_round(c, &(i as u64).to_le_bytes());
                }
            })
        };
        let reports = rt
            .run(|core| {
                let ports = ports.clone();
                async move {
                    let listener = ports.bind(core).await;
                    let mut served = 0usize;
                    loop {
                        match listener.accept().await {
                            Ok((stream, peer)) => {
                                assert!(peer.ip().is_loopback());
                                served += 1;
                                spawn(echo_stream(stream));
                            }
                            Err(e) if ShuttingDown::is(&e) => return served,
                            Err(e) => panic!("core {core}: accept: {e}"),
                        }
                    }
                }
            })
            .expect("run");
        client.join().expect("client thread");
        let served: Vec<usize> = reports
            .into_iter()
            .map(|r| r.output.expect("core output"))
            .collect();
        eprintln!("connections per core: {served:?}");
        assert_eq!(served.iter().sum::<usize>(), CONNS);
        assert!(
            served.iter().all(|&n| n >= 1),
            "a core accepted nothing: {served:?}"
        );
    });
}
each_variant!(reuseport_listeners_on_2_cores_both_accept_of_64_connections);

fn core_ids_and_pinning(v: Variant) {
    v.with_builder(|_, builder| {
        for pin in [true, false] {
            let rt = builder
                .clone()
                .cores(2)
                .pin_cores(pin)
                .build()
                .expect("build");
            assert_eq!(rt.cores(), 2);
            let reports = rt
                .run(|core| async move {
                    yield_now().await;
                    // SAFETY: sched_getcpu has no preconditions.
                    let cpu = unsafe { libc::sched_getcpu() };
                    let name = std::thread::current().name().map(str::to_owned);
                    (core, core_id(), cores(), cpu, name)
                })
                .expect("run");
            assert_eq!(reports.len(), 2);
            for (i, r) in reports.iter().enumerate() {
                let (arg, id, n, cpu, name) = r.output.as_ref().expect("output").clone();
                assert_eq!((r.core, arg, id, n), (i, i, i, 2));
                assert_eq!(name.as_deref(), Some(format!("corering-core-{i}").as_str()));
                match r.cpu {
                    // A pinned thread runs only on its CPU.
                    Some(pinned) => assert_eq!(cpu, pinned as i32, "core {i}"),
                    None => assert!(!pin || cpu >= 0, "core {i}: pinning was off"),
                }
                if !pin {
                    assert_eq!(r.cpu, None);
                }
            }
        }
    });
}
each_variant!(core_ids_and_pinning);

/// One connection echo round from a core task.
async fn round(stream: &mut TcpStream, msg: Vec<u8>) {
    let len = msg.len();
    let (res, msg) = stream.write_all(msg).await;
    res.expect("client write");
    let (res, back) = stream.read_exact(vec![0u8; len].into_boxed_slice()).await;
    res.expect("client read");
    assert_eq!(&back[..], &msg[..]);
}

fn panicking_task_leaves_the_other_echo_tasks_of_its_core_running(v: Variant) {
    const CONNS: usize = 4;
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let reports = rt
            .run(|_| async move {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let mut clients = Vec::new();
                let mut servers = Vec::new();
                for _ in 0..CONNS {
                    clients.push(TcpStream::connect(addr).await.expect("connect"));
                    servers.push(listener.accept().await.expect("accept").0);
                }
                // One server task panics in the middle of its conversation.
                let mut doomed = servers.pop().unwrap();
                let echoers: Vec<_> = servers.into_iter().map(|s| spawn(echo_stream(s))).collect();
                let boom = spawn(async move {
                    let (res, _buf) = doomed.read(Vec::with_capacity(16)).await;
                    res.expect("doomed read");
                    panic!("boom on core {}", core_id());
                });
                for (i, c) in clients[..CONNS - 1].iter_mut().enumerate() {
                    round(c, vec![i as u8; 32]).await;
                }
                let (res, _) = clients[CONNS - 1].write_all(b"x".to_vec()).await;
                res.expect("write to doomed");
                let err = within("boom", boom).await.expect_err("panicked task");
                assert!(err.is_panic(), "{err}");
                assert!(err.to_string().contains("boom on core"), "{err}");
                // The panicking task's stream was dropped: its client reads end of stream.
                let (res, _) = clients[CONNS - 1].read(Vec::with_capacity(16)).await;
                assert!(
                    matches!(res, Ok(0)) || res.as_ref().is_err_and(is_reset),
                    "{res:?}"
                );
                // The other connections keep echoing.
                for r in 0..10u8 {
                    for (i, c) in clients[..CONNS - 1].iter_mut().enumerate() {
                        round(c, vec![r ^ i as u8; 100]).await;
                    }
                }
                let n = clients.len();
                drop(clients);
                let mut bytes = 0;
                for h in echoers {
                    bytes += within("echoer", h).await.expect("echoer");
                }
                (n, bytes)
            })
            .expect("run");
        for r in reports {
            let bytes = (CONNS - 1) * (32 + 10 * 100);
            assert_eq!(r.output.expect("core output"), (CONNS, bytes));
        }
    });
}
each_variant!(panicking_task_leaves_the_other_echo_tasks_of_its_core_running);

fn panicking_root_future_ends_only_its_core(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let reports = rt
            .run(|core| async move {
                yield_now().await;
                if core == 0 {
                    panic!("root of core 0");
                }
                let (mut client, server) = tcp_pair().await;
                let echo = spawn(echo_stream(server));
                for i in 0..10 {
                    round(&mut client, vec![i; 64]).await;
                }
                drop(client);
                within("echo", echo).await.expect("echo")
            })
            .expect("run");
        let err = reports[0].output.as_ref().expect_err("core 0 panicked");
        assert!(err.is_panic(), "{err}");
        assert_eq!(*reports[1].output.as_ref().expect("core 1"), 640);
    });
}
each_variant!(panicking_root_future_ends_only_its_core);

fn per_core_stats_count_tasks_ops_and_waits(v: Variant) {
    v.with_builder(|kind, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let reports = rt
            .run(|_| async move {
                let start = corering::stats();
                let (mut client, server) = tcp_pair().await;
                let echo = spawn(echo_stream(server));
                let idle = spawn(std::future::pending::<()>());
                let during = corering::stats();
                for i in 0..10 {
                    round(&mut client, vec![i; 64]).await;
                }
                drop(client);
                assert_eq!(within("echo", echo).await.expect("echo"), 640);
                idle.abort();
                assert!(idle.await.expect_err("aborted").is_cancelled());
                let quick: Vec<_> = (0..8).map(|i| spawn(async move { i })).collect();
                for q in quick {
                    q.await.expect("quick");
                }
                (start, during, corering::stats())
            })
            .expect("run");
        for r in &reports {
            let (start, during, end) = r.output.as_ref().expect("root");
            assert_eq!((start.tasks_spawned, start.tasks_alive), (0, 0));
            assert_eq!((during.tasks_spawned, during.tasks_alive), (2, 2));
            assert_eq!((end.tasks_spawned, end.tasks_alive), (10, 0));
            let s = r.stats;
            eprintln!("{kind} core {}: {s:?}", r.core);
            assert_eq!((s.tasks_spawned, s.tasks_alive), (10, 0));
            assert!(s.driver.waits > 0);
            // At least: connect, accept, and per round a send and a recv on each side.
            assert!(s.driver.ops_submitted >= 42, "{s:?}");
            assert_eq!(s.driver.ops_submitted, s.driver.ops_completed, "{s:?}");
            assert!(s.driver.ops_submitted >= end.driver.ops_submitted);
            assert_eq!(s.driver.cq_overflows, 0);
            match kind {
                corering::BackendKind::Uring => assert_eq!(s.driver.io_syscalls, 0),
                corering::BackendKind::Epoll => assert!(s.driver.io_syscalls > 0),
            }
        }
    });
}
each_variant!(per_core_stats_count_tasks_ops_and_waits);

/// The kernel objects of `kind` this process holds (`anon_inode:[io_uring]`, `[eventpoll]`).
fn backend_fds(kind: corering::BackendKind) -> usize {
    let target = match kind {
        corering::BackendKind::Uring => "anon_inode:[io_uring]",
        corering::BackendKind::Epoll => "anon_inode:[eventpoll]",
    };
    open_fds().values().filter(|t| *t == target).count()
}

/// `cores(N)` holds N rings (or epoll instances) while `run` runs, not N + 1: the one `build`
/// made is closed when unused and made again by a later `block_on`, which still works. In a
/// child process: the count is of the whole process.
fn cores_n_hold_n_backend_instances_during_run(v: Variant) {
    run_child("child_backend_instances", &v.label(), &[]);
}
each_variant!(cores_n_hold_n_backend_instances_during_run);

#[test]
#[ignore = "runs as a child process of cores_n_hold_n_backend_instances_during_run"]
fn child_backend_instances() {
    let v = Variant::from_label(&child_message().expect("from the parent")).expect("variant");
    if let Some(why) = skip_reason(v) {
        return println!("CHILD-SKIP: {why}");
    }
    let rt = v
        .builder()
        .cores(2)
        .pin_cores(false)
        .build()
        .expect("runtime");
    let kind = rt.backend().kind();
    let before = backend_fds(kind);
    // Each core counts once both have built theirs, and before either ends.
    let both = std::sync::Barrier::new(2);
    let reports = rt
        .run(|_| {
            both.wait();
            let held = backend_fds(kind);
            both.wait();
            async move { held }
        })
        .expect("run");
    for r in reports {
        let held = r.output.expect("core output");
        // Before `run`: the build core's instance. During: the 2 cores' instead.
        assert_eq!(
            held,
            before + 1,
            "instances held during run (core {})",
            r.core
        );
    }
    let n = rt.block_on(async { corering::spawn(async { 7 }).await.expect("task") });
    assert_eq!(n, 7, "block_on after run");
    assert_eq!(backend_fds(kind), before, "block_on made its core again");
    println!("CHILD-OK");
}
