//! The cancellation promise against a hostile peer and a careless user, on every backend:
//! nothing lost, nothing leaked, no hang, whatever the peer does and whenever a future is
//! dropped or forgotten. Each test is one proven defect of an earlier model (issue #7).
mod support;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use corering::net::TcpStream;
use corering::time::timeout;
use corering::{spawn, yield_now, IoBuf};
use support::*;

/// Sends one byte of TCP urgent data.
fn send_oob(peer: &std::net::TcpStream, byte: u8) {
    // SAFETY: `peer` is an open socket; the pointer and length describe one live byte.
    let n = unsafe {
        libc::send(
            peer.as_raw_fd(),
            (&byte as *const u8).cast(),
            1,
            libc::MSG_OOB,
        )
    };
    assert_eq!(n, 1, "send(MSG_OOB): {}", std::io::Error::last_os_error());
}

/// Defect 1: TCP stops a read short at the urgent mark with data queued behind it; a reader
/// that took the short read for "drained" parked forever (epoll).
fn urgent_data_mid_stream_cannot_stall_a_reader(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut stream, mut peer) = std_peer_pair().await;
            let reader = spawn(async move {
                let mut got = Vec::new();
                while got.len() < 6 {
                    let (res, buf) = stream.read(Vec::with_capacity(64)).await;
                    match res.expect("read") {
                        0 => panic!("EOF after {:?}", got),
                        n => got.extend_from_slice(&buf[..n]),
                    }
                }
                got
            });
            // Let the reader park (registered, side known drained) before the peer sends.
            for _ in 0..5 {
                yield_now().await;
            }
            peer.write_all(b"abc").expect("send abc");
            send_oob(&peer, b'!');
            peer.write_all(b"def").expect("send def");
            let got = within("a read behind the urgent mark", reader)
                .await
                .expect("reader");
            assert_eq!(
                got, b"abcdef",
                "urgent byte is out of band, the rest in order"
            );
        });
    });
}
each_variant!(urgent_data_mid_stream_cannot_stall_a_reader);

/// Defect 2: on rings without DEFER_TASKRUN a core whose tasks stay runnable never entered
/// the kernel, so completions the kernel held in its overflow list (CQ full) never came.
fn completions_held_back_by_a_full_cq_arrive_while_tasks_keep_yielding(v: Variant) {
    const OPS: usize = 1000;
    {
        let kind = v.kind;
        let rt = v.builder().entries(16).build().expect("small ring");
        let stats = rt.block_on(async {
            let done = Rc::new(Cell::new(0usize));
            for _ in 0..OPS {
                let done = done.clone();
                spawn(async move {
                    corering::op::nop().await.expect("nop");
                    done.set(done.get() + 1);
                });
            }
            // A task that never lets the core go idle, bounded so a failure is not a hang.
            for _ in 0..200_000 {
                if done.get() == OPS {
                    break;
                }
                yield_now().await;
            }
            assert_eq!(done.get(), OPS, "completions left in the kernel while busy");
            corering::stats()
        });
        if kind == corering::BackendKind::Uring {
            assert!(
                stats.driver.cq_overflows > 0,
                "{OPS} completions on a 32-entry CQ: held back at least once ({stats:?})"
            );
            assert_eq!(stats.driver.cq_dropped, 0, "nothing dropped for good");
        }
    }
}
each_variant!(completions_held_back_by_a_full_cq_arrive_while_tasks_keep_yielding);

/// Defect 5: a cancelled read whose completion carried ECONNRESET dropped the error, and the
/// next read returned Ok(0): a reset became a clean end of stream (io_uring).
fn a_reset_seen_by_a_cancelled_read_reaches_the_next_read(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut stream, peer) = std_peer_pair().await;
            // In the kernel (io_uring) when dropped; the reset below completes it before the
            // cancel goes out.
            let res = timeout(
                Duration::from_millis(5),
                stream.read(Vec::with_capacity(64)),
            )
            .await;
            assert!(res.is_err(), "nothing was sent");
            set_linger_zero(peer.as_raw_fd());
            drop(peer);
            let (res, _) = within("read after reset", stream.read(Vec::with_capacity(64))).await;
            match res {
                Err(e) => assert!(is_reset(&e), "{e:?}"),
                Ok(n) => panic!("a reset peer read as Ok({n})"),
            }
        });
    });
}
each_variant!(a_reset_seen_by_a_cancelled_read_reaches_the_next_read);

/// Defect 6: turning a stream into a raw fd dropped the bytes rescued from cancelled reads.
fn into_std_hands_over_rescued_bytes(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut stream, mut peer) = std_peer_pair().await;
            // In the kernel (io_uring) when dropped; it takes the bytes sent below before its
            // cancel goes out.
            let res = timeout(
                Duration::from_millis(5),
                stream.read(Vec::with_capacity(64)),
            )
            .await;
            assert!(res.is_err(), "nothing was sent");
            peer.write_all(b"hello").expect("send");
            yield_now().await;
            let (mut std_stream, unread) = stream.into_std().await.expect("into_std");
            assert!(unread.error.is_none(), "{:?}", unread.error);
            let mut got = unread.bytes;
            std_stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .expect("timeout");
            while got.len() < 5 {
                let mut buf = [0u8; 16];
                let n = std_stream.read(&mut buf).expect("std read");
                assert!(n > 0, "EOF after {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, b"hello");
        });
    });
}
each_variant!(into_std_hands_over_rescued_bytes);

/// Defect 7: a cancelled op outlived its runtime's work: the cancel was only queued and
/// `block_on` returned without entering the kernel, so a cancelled send went on (io_uring).
fn block_on_returns_only_after_every_cancel_is_answered(v: Variant) {
    v.with_runtime(|rt| {
        let drops = DropCounter::new();
        let mut peer = rt.block_on(async {
            let (mut stream, peer) = std_peer_pair().await;
            let big = TrackedBuf::from_vec(vec![7u8; 32 << 20], &drops);
            // The peer reads nothing: the write stalls and times out.
            let res = timeout(Duration::from_millis(50), stream.write_all(big)).await;
            assert!(
                res.is_err(),
                "a 32 MiB write to a peer that reads nothing finished"
            );
            drop(stream);
            peer
        });
        // Nothing of the cancelled write is left in the kernel once block_on has returned.
        assert_eq!(rt.live_ops(), 0, "an orphaned op outlived block_on");
        assert_eq!(
            drops.live(),
            0,
            "the cancelled write's buffer is still held"
        );
        // And its fd is closed: the peer reads what was sent, then a reset (the write was
        // cut part way: a clean end of stream would pass the cut message off as whole).
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => panic!("a clean end of stream after a cut write ({total} bytes)"),
                Ok(n) => total += n,
                Err(e) if is_reset(&e) => break,
                Err(e) => panic!("peer read after {total} bytes: {e}"),
            }
        }
        assert!(
            total < 32 << 20,
            "the cancelled write went on to send everything"
        );
    });
}
each_variant!(block_on_returns_only_after_every_cancel_is_answered);

/// Defect 9: a write polled once and then `mem::forget`-ed stayed queued; the stream was
/// dropped, its fd number reused, and the send went to the new connection (io_uring).
fn a_forgotten_write_never_reaches_the_socket_that_reuses_its_fd(v: Variant) {
    v.with_runtime(|rt| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        rt.block_on(async {
            let mut a = TcpStream::connect(addr).await.expect("connect");
            let (_pa, _) = l.accept().expect("accept a");
            let a_fd = a.as_raw_fd();
            let in_flight = {
                let mut w = Box::pin(a.write(b"SECRET-FOR-A".to_vec()));
                let ready = futures_poll_once(w.as_mut()).await;
                std::mem::forget(w);
                !ready
            };
            drop(a);
            let b = std::net::TcpStream::connect(addr).expect("connect b");
            let (mut pb, _) = l.accept().expect("accept b");
            if in_flight {
                // The forgotten op holds the fd: its number stays taken (leaked with it).
                assert_ne!(b.as_raw_fd(), a_fd, "a forgotten op's fd number was reused");
            }
            assert_nothing_arrives(&mut pb).await;
        });
    });
}
each_variant!(a_forgotten_write_never_reaches_the_socket_that_reuses_its_fd);

/// Polls a pinned future once.
async fn futures_poll_once<F: std::future::Future>(mut fut: std::pin::Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
}

/// Defect 10: a stream used on a second runtime of the same thread left a stale epoll
/// registration there; the next socket that reused its fd number was never added (hang).
fn a_stream_used_on_a_second_runtime_leaves_no_stale_registration(v: Variant) {
    v.with_builder(|_, builder| {
        let rt1 = builder.clone().build().expect("runtime 1");
        let rt2 = builder.build().expect("runtime 2");
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut s = rt1.block_on(async { TcpStream::connect(addr).await.expect("connect") });
        let (_p1, _) = l.accept().expect("accept 1");
        rt2.block_on(async {
            // Parks on runtime 2 (epoll: registers the fd there), then times out.
            let _ = timeout(Duration::from_millis(5), s.read(Vec::with_capacity(16))).await;
            drop(s);
            let mut s2 = TcpStream::from_std(std::net::TcpStream::connect(addr).expect("c2"))
                .expect("from_std");
            let (mut p2, _) = l.accept().expect("accept 2");
            // Park first so that only an epoll edge can wake the read.
            let reader = spawn(async move { s2.read(Vec::with_capacity(16)).await });
            for _ in 0..5 {
                yield_now().await;
            }
            p2.write_all(b"hi").expect("write");
            let (res, buf) = within("read on the reused fd", reader)
                .await
                .expect("reader");
            assert_eq!(res.expect("read"), 2);
            assert_eq!(&buf[..], b"hi");
        });
    });
}
each_variant!(a_stream_used_on_a_second_runtime_leaves_no_stale_registration);

/// Minor: a read into a buffer with no room waited for data and then returned Ok(0), which
/// looks like end of stream; it is refused at once.
fn a_read_into_no_room_is_refused_at_once(v: Variant) {
    v.block_on(async {
        let (mut stream, _peer) = std_peer_pair().await;
        let (res, _) = within("zero-capacity read", stream.read(Vec::new())).await;
        assert_eq!(res.expect_err("no room").kind(), ErrorKind::InvalidInput);
        let full = b"full".to_vec().slice(4..4);
        let (res, _) = stream.read(full).await;
        assert_eq!(res.expect_err("no room").kind(), ErrorKind::InvalidInput);
    });
}
each_variant!(a_read_into_no_room_is_refused_at_once);

/// A socket made on one backend is refused, with an error, by a runtime of the other backend
/// on the same thread (its blocking mode would block the thread there). The other backend of
/// an io_uring variant is epoll; of epoll, io_uring as the kernel allows.
fn a_socket_of_the_other_backend_is_refused(v: Variant) {
    let other = if v.is_uring() {
        Variant::EPOLL
    } else if let Some(why) = skip_reason(Variant::URING) {
        eprintln!("SKIP a_socket_of_the_other_backend_is_refused::epoll: {why}");
        return;
    } else {
        Variant::URING
    };
    let (this, other) = (v.runtime(), other.runtime());
    for (made, used) in [(&this, &other), (&other, &this)] {
        let (mut stream, _peer) = made.block_on(std_peer_pair());
        used.block_on(async {
            let (res, _) = within(
                "a read on the other backend",
                stream.read(Vec::with_capacity(8)),
            )
            .await;
            assert_eq!(res.expect_err("refused").kind(), ErrorKind::Unsupported);
        });
        made.block_on(async {
            let (res, _) = stream.write_all(b"x".to_vec()).await;
            res.expect("its own backend still works");
        });
    }
}
each_variant!(a_socket_of_the_other_backend_is_refused);

/// `close` and `into_std` do not wait for an op whose future was `mem::forget`-ten.
fn close_and_into_std_do_not_wait_for_a_forgotten_op(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            for into_std in [false, true] {
                let (mut stream, mut peer) = std_peer_pair().await;
                let in_flight = {
                    let mut r = Box::pin(stream.read(Vec::with_capacity(8)));
                    let ready = futures_poll_once(r.as_mut()).await;
                    std::mem::forget(r);
                    !ready
                };
                yield_now().await;
                if into_std {
                    let (mut s, _) = within("into_std", stream.into_std())
                        .await
                        .expect("into_std");
                    s.write_all(b"ok").expect("the std stream works");
                    let mut got = [0u8; 2];
                    peer.read_exact(&mut got).expect("peer");
                } else {
                    let res = within("close", stream.close()).await;
                    assert_eq!(res.is_err(), in_flight, "{res:?}");
                }
            }
        });
    });
}
each_variant!(close_and_into_std_do_not_wait_for_a_forgotten_op);
