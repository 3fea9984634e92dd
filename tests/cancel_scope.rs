//! Cancellation that hands the buffer back, on every backend: a cancel scope (a deadline or
//! a token) ends the ops of a future in the kernel, and the future returns its buffer and an
//! honest result: what was read or written before the cancel took effect, nothing lost.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use corering::cancel::{CancelExt, CancelToken, Cancelled};
use corering::net::PartialWrite;
use corering::{spawn, yield_now};
use support::*;

fn a_read_cancelled_by_a_deadline_gives_its_buffer_back(v: Variant) {
    v.with_runtime(|rt| {
        let drops = DropCounter::new();
        rt.block_on(async {
            let (mut stream, mut peer) = std_peer_pair().await;
            let buf = TrackedBuf::with_capacity(64, &drops);
            let (res, buf) = stream
                .read(buf)
                .cancel_after(Duration::from_millis(5))
                .await;
            let err = res.expect_err("nothing was sent");
            assert!(Cancelled::is(&err), "{err:?}");
            assert_eq!(err.kind(), ErrorKind::TimedOut);
            assert_eq!(drops.live(), 1, "the buffer came back alive");
            assert_eq!(buf.data.capacity(), 64);
            // The stream goes on: nothing the peer sends later is lost.
            peer.write_all(b"later").expect("send");
            let (res, buf) = within("read", stream.read(buf)).await;
            assert_eq!(&buf.data[..res.expect("read")], b"later");
        });
        assert!(turn_until(&rt, |rt| rt.live_ops() == 0));
        assert_eq!(drops.live(), 0);
    });
}
each_variant!(a_read_cancelled_by_a_deadline_gives_its_buffer_back);

fn a_read_that_wins_the_race_returns_its_bytes(v: Variant) {
    v.block_on(async {
        let (mut stream, mut peer) = std_peer_pair().await;
        peer.write_all(b"ready").expect("send");
        let (res, buf) = stream
            .read(Vec::with_capacity(64))
            .cancel_after(Duration::ZERO)
            .await;
        // Either the bytes, or a clean cancel and the bytes for the next read.
        let mut got = match res {
            Ok(n) => buf[..n].to_vec(),
            Err(e) if Cancelled::is(&e) => Vec::new(),
            Err(e) => panic!("{e:?}"),
        };
        while got.len() < 5 {
            let (res, buf) = within("read", stream.read(Vec::with_capacity(64))).await;
            got.extend_from_slice(&buf[..res.expect("read")]);
        }
        assert_eq!(got, b"ready");
    });
}
each_variant!(a_read_that_wins_the_race_returns_its_bytes);

fn a_cancelled_write_all_says_exactly_how_much_went_out(v: Variant) {
    v.with_runtime(|rt| {
        let (written, mut peer) = rt.block_on(async {
            let (mut stream, peer) = std_peer_pair().await;
            let big = vec![3u8; 32 << 20];
            // The peer reads nothing yet: the write stalls once the socket buffers are full.
            let (res, buf) = stream
                .write_all(big)
                .cancel_after(Duration::from_millis(50))
                .await;
            assert_eq!(buf.len(), 32 << 20, "the buffer came back whole");
            let err = res.expect_err("32 MiB to a peer that reads nothing");
            assert!(Cancelled::is(&err), "{err:?}");
            let written = PartialWrite::of(&err).map_or(0, |p| p.written);
            assert!(written < 32 << 20);
            // Nothing more goes out after the answer: close, and the peer counts.
            stream.close().await.expect("close");
            (written, peer)
        });
        let mut total = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match peer.read(&mut buf).expect("peer read") {
                0 => break,
                n => total += n,
            }
        }
        assert_eq!(
            total, written,
            "bytes received vs bytes the cancelled write_all reported"
        );
    });
}
each_variant!(a_cancelled_write_all_says_exactly_how_much_went_out);

fn a_token_cancels_a_read_in_another_task(v: Variant) {
    v.block_on(async {
        let (mut stream, _peer) = std_peer_pair().await;
        let token = CancelToken::new();
        let guarded = token.clone();
        let reader = spawn(async move {
            let (res, buf) = stream
                .read(Vec::with_capacity(32))
                .cancel_on(&guarded)
                .await;
            (res, buf.capacity())
        });
        for _ in 0..5 {
            yield_now().await;
        }
        assert!(!token.is_cancelled());
        token.cancel();
        let (res, cap) = within("cancelled read", reader).await.expect("reader");
        let err = res.expect_err("cancelled");
        assert!(
            Cancelled::is(&err) && err.kind() == ErrorKind::Other,
            "{err:?}"
        );
        assert_eq!(cap, 32);
    });
}
each_variant!(a_token_cancels_a_read_in_another_task);

fn ops_after_the_cancel_fail_at_once_and_the_future_ends(v: Variant) {
    v.block_on(async {
        let (mut stream, _peer) = std_peer_pair().await;
        // A loop that reads until an error: the cancel makes every later read fail.
        let reads = async {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (res, _) = stream.read(Vec::with_capacity(8)).await;
                if let Err(e) = res {
                    return (e, attempts);
                }
            }
        };
        let (err, attempts) = within("loop", reads.cancel_after(Duration::from_millis(2))).await;
        assert!(Cancelled::is(&err));
        assert_eq!(attempts, 1);
        // Nested: cancelling the outer scope ends the inner one's ops.
        let token = CancelToken::new();
        token.cancel();
        let inner = stream
            .read(Vec::with_capacity(8))
            .cancel_after(Duration::from_secs(3600));
        let (res, _) = within("nested", inner.cancel_on(&token)).await;
        assert!(Cancelled::is(&res.expect_err("outer cancelled")));
    });
}
each_variant!(ops_after_the_cancel_fail_at_once_and_the_future_ends);

/// A write dropped while the kernel had it may have sent part of its buffer: then every later
/// write fails, and the peer never sees a byte the API did not account for.
fn a_dropped_write_that_sent_bytes_poisons_the_write_side(v: Variant) {
    v.block_on(async {
        let (mut stream, mut peer) = std_peer_pair().await;
        let in_flight = !poll_once_then_drop(stream.write(b"AAAA".to_vec())).await;
        // On io_uring the dropped send runs with the next enter and sends its bytes.
        yield_now().await;
        let (res, _) = stream.write_all(b"BBBB".to_vec()).await;
        eprintln!("dropped write in flight: {in_flight}, next write: {res:?}");
        let mut expect = Vec::new();
        if !in_flight {
            expect.extend_from_slice(b"AAAA"); // completed on its first poll (epoll)
        }
        match res {
            Ok(()) => expect.extend_from_slice(b"BBBB"),
            Err(e) => {
                assert!(
                    in_flight,
                    "only a dropped in-flight write refuses later ones: {e}"
                );
                assert!(e.to_string().contains("offset is unknown"), "{e}");
                expect.extend_from_slice(b"AAAA"); // the dropped write did send
                let (again, _) = stream.write(b"C".to_vec()).await;
                assert!(again.is_err(), "refused for good");
            }
        }
        stream
            .shutdown(std::net::Shutdown::Write)
            .await
            .expect("shutdown");
        let mut got = Vec::new();
        peer.read_to_end(&mut got).expect("peer read");
        assert_eq!(got, expect);
    });
}
each_variant!(a_dropped_write_that_sent_bytes_poisons_the_write_side);

/// A `write_all` dropped after part of its buffer went out poisons the write side on every
/// backend: a retry would send those bytes twice.
fn a_write_all_dropped_part_way_refuses_later_writes(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut stream, _peer) = std_peer_pair().await;
            // The peer reads nothing: the first writes fill the buffers, then one stalls.
            let res = corering::time::timeout(
                Duration::from_millis(50),
                stream.write_all(vec![1u8; 32 << 20]),
            )
            .await;
            assert!(res.is_err(), "32 MiB to a peer that reads nothing finished");
            // Whether anything went out (loopback delivers at once): a very slow kernel may
            // have let the timeout win before the first send was answered.
            let sent = bytes_waiting(&_peer) > 0;
            let (res, _) = stream.write_all(vec![2u8; 16]).await;
            if sent {
                let err = res.expect_err("a retry after a dropped write_all");
                assert!(err.to_string().contains("offset is unknown"), "{err}");
                let (_, unread) = stream.into_std().await.expect("into_std");
                assert!(
                    unread.write_error.is_some(),
                    "into_std reports the write side"
                );
            } else {
                eprintln!("nothing was sent before the drop: nothing to refuse ({res:?})");
            }
        });
    });
}
each_variant!(a_write_all_dropped_part_way_refuses_later_writes);

/// A scope's cancel reaches an epoll op whose readiness had arrived but was not yet acted on:
/// two acceptors woken by one connection, cancelled before they run, both finish.
fn a_cancel_after_readiness_still_ends_the_op(v: Variant) {
    v.block_on(async {
        let listener = std::rc::Rc::new(corering::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let token = CancelToken::new();
        let acceptors: Vec<_> = (0..2)
            .map(|_| {
                let (l, t) = (listener.clone(), token.clone());
                spawn(async move { l.accept().cancel_on(&t).await.map(|(s, _)| s) })
            })
            .collect();
        for _ in 0..5 {
            yield_now().await;
        }
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        // The edge wakes both acceptors; this future runs first in the next turn.
        yield_now().await;
        token.cancel();
        let mut accepted = 0;
        for a in acceptors {
            match within("cancelled acceptor", a).await.expect("acceptor") {
                Ok(_) => accepted += 1,
                Err(e) => assert!(Cancelled::is(&e), "{e:?}"),
            }
        }
        if accepted == 0 {
            within("the connection is still there", listener.accept())
                .await
                .expect("accept");
        }
        assert!(accepted <= 1);
    });
}
each_variant!(a_cancel_after_readiness_still_ends_the_op);

/// A future no longer guarded by a token (its `cancel_on` wrapper was dropped) is not
/// cancelled by that token later.
fn a_dropped_guard_no_longer_cancels(v: Variant) {
    v.block_on(async {
        let (mut stream, mut peer) = std_peer_pair().await;
        let token = CancelToken::new();
        let mut read = Box::pin(stream.read(Vec::with_capacity(16)));
        assert!(!poll_once_then_drop(read.as_mut().cancel_on(&token)).await);
        token.cancel();
        peer.write_all(b"still read").expect("send");
        let (res, buf) = within("unguarded read", read).await;
        let n = res.expect("a read no longer under the token");
        assert_eq!(&buf[..n], b"still read"[..n].as_ref());
    });
}
each_variant!(a_dropped_guard_no_longer_cancels);

/// A second runtime driven from inside a scope of the first (same thread) runs its tasks
/// outside that scope: a cancelled token of the outer code does not reach its ops.
fn a_scope_does_not_leak_into_a_nested_runtime(v: Variant) {
    v.with_builder(|_, builder| {
        let outer = builder.clone().build().expect("outer runtime");
        let inner = builder.build().expect("inner runtime");
        let token = CancelToken::new();
        token.cancel();
        let got = outer.block_on(
            async {
                inner.block_on(async {
                    let (mut stream, mut peer) = std_peer_pair().await;
                    peer.write_all(b"inner").expect("send");
                    let (res, buf) = within("inner read", stream.read(Vec::with_capacity(8))).await;
                    buf[..res.expect("a read of the inner runtime")].to_vec()
                })
            }
            .cancel_on(&token),
        );
        assert_eq!(got, b"inner");
    });
}
each_variant!(a_scope_does_not_leak_into_a_nested_runtime);

/// Bytes waiting in `peer`'s receive queue.
fn bytes_waiting(peer: &std::net::TcpStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into `n`, which outlives the call.
    let rc = unsafe { libc::ioctl(peer.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(rc, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n
}

/// Polls its future only after the future's own waker fired (as `FuturesUnordered` and other
/// per-child-waker combinators do).
struct OnlyWhenWoken<F> {
    fut: std::pin::Pin<Box<F>>,
    forward: Arc<Forward>,
}

struct Forward {
    woken: AtomicBool,
    parent: Mutex<Option<Waker>>,
}

impl Wake for Forward {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if let Some(w) = self.parent.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl<F: std::future::Future> std::future::Future for OnlyWhenWoken<F> {
    type Output = F::Output;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        *self.forward.parent.lock().unwrap() = Some(cx.waker().clone());
        if !self.forward.woken.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        let waker = Waker::from(self.forward.clone());
        self.fut.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// A cancel whose wake-up is still queued in the driver when the guarded future answers
/// Pending (its child was not woken yet) must not let the core block in its wait.
fn a_cancel_queued_in_the_driver_does_not_let_the_core_sleep(v: Variant) {
    v.block_on(async {
        // Three rounds: a signal-like interruption of the first wait (task work left by an
        // earlier ring of this process ends an epoll_wait with EINTR) must not hide a hang.
        for _ in 0..3 {
            let (mut stream, _peer) = std_peer_pair().await;
            let read = OnlyWhenWoken {
                fut: Box::pin(stream.read(Vec::with_capacity(8))),
                forward: Arc::new(Forward {
                    woken: AtomicBool::new(true),
                    parent: Mutex::new(None),
                }),
            };
            // No `within` here: its timer would bound the core's wait and hide the hang (the
            // per-backend watchdog is the hang guard).
            let (res, _) = read.cancel_after(Duration::from_millis(5)).await;
            assert!(Cancelled::is(&res.expect_err("cancelled")));
        }
    });
}
each_variant!(a_cancel_queued_in_the_driver_does_not_let_the_core_sleep);

/// A token the guarded future cancels itself, during its first poll, still ends its ops.
fn a_token_cancelled_from_inside_the_first_poll_ends_the_ops(v: Variant) {
    v.block_on(async {
        let (mut stream, _peer) = std_peer_pair().await;
        let token = CancelToken::new();
        let inner = token.clone();
        let guarded = join(
            stream.read(Vec::with_capacity(8)),
            async move { inner.cancel() },
        );
        let ((res, _), ()) = within("self-cancelled", guarded.cancel_on(&token)).await;
        assert!(Cancelled::is(&res.expect_err("cancelled")));
    });
}
each_variant!(a_token_cancelled_from_inside_the_first_poll_ends_the_ops);
