//! Standing ops (the listener's multishot accept, a stream's multishot recv) under hostile
//! use: a listener nobody accepts from and a stream nobody reads are bounded; the pool's
//! count of buffers in use includes queued ones; a starved stream does not re-arm into an
//! empty ring; a stream moved to another runtime of the thread gets an error, not another
//! ring's buffers; many runtimes per thread (the registered-ring table); and the op counters
//! agree once idle.
mod support;

use std::io::Write;
use std::time::Duration;

use corering::net::TcpListener;
use corering::time;
use support::*;

/// Nobody calls accept after the first: the standing accept is paused once ACCEPT_QUEUE_MAX
/// connections wait untaken (one kernel turn may take a whole burst from the backlog first,
/// which the listen backlog bounds); later connections wait in the kernel's backlog.
fn idle_listener_does_not_take_fds_without_bound(v: Variant) {
    // One at a time: the first test counts the process's open fds.
    let _serial = serial();
    raise_fd_limit();
    let burst = |addr| -> Vec<std::net::TcpStream> {
        (0..200)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect()
    };
    let turns = || async {
        for _ in 0..20 {
            time::sleep(Duration::from_millis(5)).await;
        }
    };
    v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let first = std::net::TcpStream::connect(addr).expect("connect");
        let _s = within("accept", listener.accept()).await.expect("accept");
        let start = count_open_fds();
        let one = burst(addr);
        turns().await;
        let after_one = count_open_fds() - start - one.len();
        assert!(
            after_one <= 200,
            "{after_one} server fds for 200 connections"
        );
        // Paused now (if the first burst reached the bound): the next burst is not taken.
        let two = burst(addr);
        turns().await;
        let held = count_open_fds() - start - one.len() - two.len();
        let bound = usize::from(corering::net::ACCEPT_QUEUE_MAX).max(after_one) + 16;
        assert!(
            held <= bound,
            "{held} accepted fds held by a listener nobody accepts from (bound {bound})"
        );
        drop((first, one, two, listener));
    });
}
each_variant!(idle_listener_does_not_take_fds_without_bound);

/// pool_in_use counts buffers queued on a stream, not only those handed out.
fn pool_in_use_counts_queued_buffers(v: Variant) {
    // One at a time: the first test counts the process's open fds.
    let _serial = serial();
    v.with_runtime(|rt| {
        rt.block_on(async {
            let multishot = rt
                .backend()
                .uring()
                .is_some_and(|u| u.fast_path.contains(&"MULTISHOT_RECV"));
            if !multishot {
                return; // only the multishot queue holds untaken buffers
            }
            let (mut server, mut peer) = std_peer_pair().await;
            peer.write_all(b"first").expect("send");
            let first = within("read", server.recv_pooled()).await.expect("read");
            drop(first);
            for _ in 0..4 {
                peer.write_all(&[9; 300]).expect("send");
                time::sleep(Duration::from_millis(2)).await;
            }
            let queued = rt.stats().driver.pool_in_use;
            // Take them.
            let mut got = 0;
            let mut held = Vec::new();
            while got < 1200 {
                let b = within("read", server.recv_pooled())
                    .await
                    .expect("r")
                    .expect("b");
                got += b.len();
                held.push(b);
            }
            let holding = rt.stats().driver.pool_in_use;
            assert_eq!(
                queued,
                holding,
                "pool_in_use: {queued} while {} buffers were queued, {holding} once taken",
                held.len()
            );
            drop(server);
        });
    });
}
each_variant!(pool_in_use_counts_queued_buffers);

/// A stream whose standing receive was armed on runtime A, read on runtime B of the same
/// thread: B refuses (A's ring holds its bytes and buffers), and A still reads them.
fn pooled_stream_moved_to_another_runtime_keeps_its_bytes(v: Variant) {
    // One at a time: the first test counts the process's open fds.
    let _serial = serial();
    let rt_a = v.runtime();
    let rt_b = v.runtime();
    let (mut server, mut peer) = rt_a.block_on(async {
        let (mut server, mut peer) = std_peer_pair().await;
        peer.write_all(b"one").expect("send");
        let one = within("read", server.recv_pooled()).await.expect("read");
        assert_eq!(&one.expect("bytes")[..], b"one");
        (server, peer)
    });
    peer.write_all(b"hello world").expect("send");
    // A's loop turns and reaps the completion into the stream's queue.
    rt_a.block_on(time::sleep(Duration::from_millis(5)));
    let on_b = rt_b.block_on(async { within("read on B", server.recv_pooled()).await });
    let mut got = match on_b {
        Ok(Some(buf)) => buf.to_vec(),
        Ok(None) => panic!("end of stream on B"),
        Err(e) => {
            assert_eq!(e.kind(), std::io::ErrorKind::Unsupported, "{e}");
            Vec::new()
        }
    };
    rt_a.block_on(async {
        while got.len() < 11 {
            let buf = within("read on A", server.recv_pooled())
                .await
                .expect("read");
            got.extend_from_slice(&buf.expect("bytes"));
        }
    });
    assert_eq!(got, b"hello world", "bytes read: {got:?}");
    drop((server, peer));
}
each_variant!(pooled_stream_moved_to_another_runtime_keeps_its_bytes);

/// Many live runtimes on one thread (the registered-ring table holds 16 per thread), dropped
/// out of order, then more: every one keeps working.
fn many_runtimes_on_one_thread(v: Variant) {
    // One at a time: the first test counts the process's open fds.
    let _serial = serial();
    let round = |rt: &corering::Runtime| {
        rt.block_on(async {
            let (mut server, mut peer) = std_peer_pair().await;
            peer.write_all(b"x").expect("send");
            let b = within("read", server.recv_pooled())
                .await
                .expect("read")
                .expect("b");
            assert_eq!(&b[..], b"x");
        })
    };
    let mut rts: Vec<_> = (0..20).map(|_| v.runtime()).collect();
    for rt in &rts {
        round(rt);
    }
    for i in [3, 0, 7, 1] {
        drop(rts.remove(i));
    }
    for _ in 0..6 {
        rts.push(v.runtime());
    }
    for rt in &rts {
        round(rt);
    }
}
each_variant!(many_runtimes_on_one_thread);

/// After multishot accepts, pooled reads, zero-copy sends and closes, nothing is in flight
/// and the counters agree ("Equal to ops_submitted once nothing is in flight").
fn counters_agree_after_standing_ops(v: Variant) {
    // One at a time: the first test counts the process's open fds.
    let _serial = serial();
    let rt = v
        .builder()
        .zero_copy_sends(Some(4096))
        .zero_copy_on_loopback(true)
        .build()
        .expect("rt");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        for _ in 0..3 {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            let (mut s, _) = within("accept", listener.accept()).await.expect("accept");
            c.write_all(b"hello").expect("send");
            let b = within("read", s.recv_pooled())
                .await
                .expect("r")
                .expect("b");
            assert_eq!(&b[..], b"hello");
            drop(b);
            let (res, _) = s.write_all(vec![1u8; 64 * 1024]).await;
            res.expect("write");
            within("close", s.close()).await.expect("close");
            drop(c);
        }
        drop(listener);
    });
    assert!(turn_until(&rt, |rt| rt.live_ops() == 0), "ops left");
    let s = rt.stats().driver;
    assert_eq!(s.ops_submitted, s.ops_completed, "{s:?}");
}
each_variant!(counters_agree_after_standing_ops);

/// After ENOBUFS a stream re-arms only once the ring has buffers again: another stream's
/// untaken completions hold every buffer, so the starved stream reads by readiness.
fn starved_stream_does_not_rearm_into_an_empty_ring(v: Variant) {
    // One at a time: the first test counts the process's open fds.
    let _serial = serial();
    let rt = v.builder().buffer_pool(4, 512).build().expect("rt");
    rt.block_on(async {
        let multishot = rt
            .backend()
            .uring()
            .is_some_and(|u| u.fast_path.contains(&"MULTISHOT_RECV"));
        if !multishot {
            return;
        }
        // X takes every ring buffer into its queue and never reads them.
        let (mut x, mut xp) = std_peer_pair().await;
        xp.write_all(b"x").expect("send");
        drop(within("read x", x.recv_pooled()).await.expect("r"));
        for _ in 0..6 {
            xp.write_all(&[1; 400]).expect("send");
            time::sleep(Duration::from_millis(2)).await;
        }
        let (mut y, mut yp) = std_peer_pair().await;
        let before = rt.stats().driver.pool_exhausted;
        for i in 0..10 {
            yp.write_all(&[2; 100]).expect("send");
            time::sleep(Duration::from_millis(2)).await;
            let b = within("read y", y.recv_pooled())
                .await
                .expect("r")
                .expect("b");
            assert!(b.is_overflow(), "read {i}: the ring had a buffer after all");
        }
        let rearms = rt.stats().driver.pool_exhausted - before;
        assert!(
            rearms <= 1,
            "{rearms} ENOBUFS for 10 reads: re-armed into an empty ring (in_use {})",
            rt.stats().driver.pool_in_use
        );
        drop((x, y));
    });
}
each_variant!(starved_stream_does_not_rearm_into_an_empty_ring);
