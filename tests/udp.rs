//! UDP on every backend: unconnected and connected round trips, 64 receives in flight at once,
//! truncation reported, ICMP port unreachable as ConnectionRefused, a dropped receive's
//! buffer kept until the kernel answers, datagrams and errors
//! that dropped receives got handed to the next receive, socket options, zero-length datagrams, std round trip.
mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::task::Poll;

use corering::net::{RecvMeta, UdpSocket};
use corering::spawn;
use support::*;

fn bind() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = socket.local_addr().expect("local_addr");
    (socket, addr)
}

fn unconnected_round_trip(v: Variant) {
    v.block_on(async {
        let ((a, a_addr), (b, b_addr)) = (bind(), bind());
        let (res, _) = a.send_to(b"ping".to_vec(), b_addr).await;
        assert_eq!(res.expect("send_to"), 4);
        let (res, buf) = within("recv_from", b.recv_from(Vec::with_capacity(64))).await;
        assert_eq!(res.expect("recv_from"), (4, a_addr));
        assert_eq!(&buf[..], b"ping");
        let (res, _) = b.send_to(buf, a_addr).await;
        assert_eq!(res.expect("send_to back"), 4);
        let (res, buf) = within("recv_from back", a.recv_from(vec![0u8; 64])).await;
        assert_eq!(res.expect("recv_from back"), (4, b_addr));
        assert_eq!(&buf[..4], b"ping");
    });
}

fn connected_round_trip(v: Variant) {
    v.block_on(async {
        let ((a, a_addr), (b, b_addr)) = (bind(), bind());
        assert_eq!(
            a.peer_addr().expect_err("not connected yet").kind(),
            ErrorKind::NotConnected
        );
        a.connect(b_addr).expect("connect a");
        b.connect(a_addr).expect("connect b");
        assert_eq!(a.peer_addr().expect("peer_addr"), b_addr);
        let (res, _) = a.send(b"hello".to_vec()).await;
        assert_eq!(res.expect("send"), 5);
        let (res, buf) = within("recv", b.recv(Vec::with_capacity(16))).await;
        assert_eq!(res.expect("recv"), 5);
        assert_eq!(&buf[..], b"hello");
        let (res, _) = b.send(b"world!".to_vec()).await;
        assert_eq!(res.expect("send back"), 6);
        let (res, buf) = within("recv back", a.recv(Vec::with_capacity(16))).await;
        assert_eq!(res.expect("recv back"), 6);
        assert_eq!(&buf[..], b"world!");
    });
}

const IN_FLIGHT: u32 = 64;

fn many_receives_in_flight(v: Variant) {
    v.block_on(async {
        let ((a, a_addr), (b, b_addr)) = (bind(), bind());
        let b = Rc::new(b);
        let receivers: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let b = b.clone();
                spawn(async move {
                    let (res, buf) = b.recv_from(Vec::with_capacity(8)).await;
                    assert_eq!(res.expect("recv_from"), (4, a_addr));
                    u32::from_le_bytes(buf[..].try_into().expect("4 bytes"))
                })
            })
            .collect();
        // Let every receiver start its receive before anything is sent.
        for _ in 0..4 {
            corering::yield_now().await;
        }
        for i in 0..IN_FLIGHT {
            let (res, _) = a.send_to(i.to_le_bytes().to_vec(), b_addr).await;
            assert_eq!(res.expect("send_to"), 4);
        }
        let mut seen = BTreeSet::new();
        for receiver in receivers {
            let i = within("a receiver", receiver).await.expect("receiver task");
            assert!(seen.insert(i), "datagram {i} received twice");
        }
        assert_eq!(seen, (0..IN_FLIGHT).collect(), "every datagram once");
    });
}

fn truncation_is_reported(v: Variant) {
    v.block_on(async {
        let ((a, a_addr), (b, b_addr)) = (bind(), bind());
        let payload: Vec<u8> = (0..100).collect();
        let (res, _) = a.send_to(payload.clone(), b_addr).await;
        assert_eq!(res.expect("send_to"), 100);
        let (res, buf) = within("recv", b.recv_from_meta(Vec::with_capacity(10))).await;
        let meta = res.expect("recv_from_meta");
        let want = RecvMeta {
            len: 10,
            addr: a_addr,
            truncated: true,
        };
        assert_eq!(meta, want);
        assert_eq!(&buf[..], &payload[..10]);
        // The tail was discarded: the next datagram is the next one, and whole.
        let (res, _) = a.send_to(b"next".to_vec(), b_addr).await;
        res.expect("send_to next");
        let (res, buf) = within("recv next", b.recv_from_meta(Vec::with_capacity(10))).await;
        let meta = res.expect("recv_from_meta next");
        assert_eq!(
            (meta.len, meta.truncated, &buf[..]),
            (4, false, &b"next"[..])
        );
    });
}

fn icmp_port_unreachable_is_connection_refused(v: Variant) {
    v.block_on(async {
        // A port nothing listens on: bound, then closed.
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("std bind");
        let dead = closed.local_addr().expect("local_addr");
        drop(closed);
        let (a, _) = bind();
        a.connect(dead).expect("connect");
        let (res, _) = a.send(b"anyone?".to_vec()).await;
        assert_eq!(res.expect("the first send goes out"), 7);
        let (res, _) = within("recv", a.recv(Vec::with_capacity(16))).await;
        let err = res.expect_err("recv after port unreachable");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
        // The error was taken; the socket still sends (and is refused again).
        let (res, _) = a.send(b"again".to_vec()).await;
        assert_eq!(res.expect("send after the error was taken"), 5);
        let (res, _) = within("recv again", a.recv(Vec::with_capacity(16))).await;
        let err = res.expect_err("second recv");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    });
}

fn dropped_recv_keeps_buffer_until_answered(v: Variant) {
    v.with_runtime(|rt| {
        // One counter per buffer: each says whether that very buffer is still alive.
        let drops: Vec<DropCounter> = (0..16).map(|_| DropCounter::new()).collect();
        let ((a, _), (b, b_addr)) = rt.block_on(async {
            let (a, b) = (bind(), bind());
            for counter in &drops {
                let buf = TrackedBuf::with_capacity(64, counter);
                assert!(
                    !poll_once_then_drop(b.0.recv_from(buf)).await,
                    "recv_from with nothing sent was ready"
                );
                if v.is_uring() {
                    // In the kernel: the op table keeps the buffer until the cancel's answer.
                    assert_eq!(
                        counter.live(),
                        1,
                        "the buffer was freed while in the kernel"
                    );
                }
            }
            (a, b)
        });
        let live = || drops.iter().map(DropCounter::live).sum::<usize>();
        let settled = turn_until(&rt, |rt| live() == 0 && rt.live_ops() == 0);
        assert!(
            settled,
            "buffers alive: {}, live_ops {}",
            live(),
            rt.live_ops()
        );
        rt.block_on(async {
            let (res, _) = a.send_to(b"still works".to_vec(), b_addr).await;
            res.expect("send_to");
            let (res, buf) = within("recv_from", b.recv_from(Vec::with_capacity(64))).await;
            assert_eq!(res.expect("recv_from").0, 11);
            assert_eq!(&buf[..], b"still works");
        });
    });
}

/// Receives polled once (in the kernel on io_uring), then datagrams sent, the loop turned so
/// the kernel can hand them to those receives, and only then the futures dropped: every
/// datagram still reaches a later receive, exactly once (the socket keeps what dropped
/// receives got); and an error a dropped receive got (ICMP refused) is not lost either.
fn dropped_recvs_lose_no_datagram(v: Variant) {
    const N: usize = 16;
    v.block_on(async {
        let ((a, _), (b, b_addr)) = (bind(), bind());
        let mut pending: Vec<_> = (0..N)
            .map(|_| Box::pin(b.recv_from(Vec::with_capacity(64))))
            .collect();
        for fut in &mut pending {
            let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "recv_from with nothing sent was ready");
        }
        for i in 0..N {
            let (res, _) = a
                .send_to(format!("datagram {i}").into_bytes(), b_addr)
                .await;
            res.expect("send_to");
        }
        for _ in 0..8 {
            corering::yield_now().await;
        }
        drop(pending);
        let mut seen = BTreeSet::new();
        for _ in 0..N {
            let (res, buf) = within("recv_from", b.recv_from(Vec::with_capacity(64))).await;
            res.expect("recv_from");
            let text = String::from_utf8(buf).expect("utf8");
            assert!(seen.insert(text.clone()), "{text} twice");
        }
        let want: BTreeSet<String> = (0..N).map(|i| format!("datagram {i}")).collect();
        assert_eq!(seen, want, "lost datagrams");

        // The socket's error, taken by a dropped receive, goes to the next one.
        let gone = bind().1; // bound, then closed: ICMP port unreachable
        b.connect(gone).expect("connect");
        let mut fut = Box::pin(b.recv(Vec::with_capacity(16)));
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "recv with nothing sent was ready");
        let (res, _) = b.send(b"x".to_vec()).await;
        res.expect("send to a closed port");
        for _ in 0..8 {
            corering::yield_now().await;
        }
        drop(fut);
        let (res, _) = within("recv after the drop", b.recv(Vec::with_capacity(16))).await;
        let err = res.expect_err("the refused error was lost");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    });
}

/// A datagram a dropped receive got (io_uring lost the cancel race) and no receive took is
/// handed over by `into_std`, not dropped with the socket's rescue.
fn into_std_hands_over_what_dropped_receives_got(v: Variant) {
    v.block_on(async {
        let ((a, a_addr), (b, b_addr)) = (bind(), bind());
        let mut fut = Box::pin(b.recv_from(Vec::with_capacity(64)));
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "recv_from with nothing sent was ready");
        let (res, _) = a.send_to(b"precious".to_vec(), b_addr).await;
        res.expect("send_to");
        for _ in 0..8 {
            corering::yield_now().await;
        }
        drop(fut);
        let (std, unread) = within("into_std", b.into_std()).await.expect("into_std");
        std.set_nonblocking(true).expect("nonblocking");
        let mut got = vec![0u8; 64];
        let from_socket = std
            .recv_from(&mut got)
            .ok()
            .map(|(n, from)| (got[..n].to_vec(), from));
        let all: Vec<_> = unread.datagrams.into_iter().chain(from_socket).collect();
        assert_eq!(all, vec![(b"precious".to_vec(), a_addr)], "lost or doubled");
        assert!(unread.errors.is_empty());
    });
}

fn options_round_trip(v: Variant) {
    v.block_on(async {
        let (a, _) = bind();
        for on in [true, false] {
            a.set_broadcast(on).expect("set_broadcast");
            assert_eq!(a.broadcast().expect("broadcast"), on);
            a.set_multicast_loop_v4(on).expect("set_multicast_loop_v4");
            assert_eq!(a.multicast_loop_v4().expect("multicast_loop_v4"), on);
        }
        a.set_ttl(42).expect("set_ttl");
        assert_eq!(a.ttl().expect("ttl"), 42);
        assert_eq!(
            a.set_ttl(1000).expect_err("ttl 1000").kind(),
            ErrorKind::InvalidInput
        );
        a.set_multicast_ttl_v4(7).expect("set_multicast_ttl_v4");
        assert_eq!(a.multicast_ttl_v4().expect("multicast_ttl_v4"), 7);
        let group = Ipv4Addr::new(239, 1, 2, 3);
        a.join_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .expect("join_multicast_v4 on lo");
        a.leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .expect("leave_multicast_v4");
        assert!(a.take_error().expect("take_error").is_none());
    });
}

fn zero_length_datagram(v: Variant) {
    v.block_on(async {
        let ((a, a_addr), (b, b_addr)) = (bind(), bind());
        let (res, _) = a.send_to(Vec::new(), b_addr).await;
        assert_eq!(res.expect("send_to empty"), 0);
        let (res, buf) = within("recv", b.recv_from_meta(Vec::with_capacity(16))).await;
        let meta = res.expect("recv_from_meta");
        assert_eq!((meta.len, meta.addr, meta.truncated), (0, a_addr, false));
        assert!(buf.is_empty());
    });
}

fn std_round_trip(v: Variant) {
    v.block_on(async {
        let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("std bind");
        let std_addr = std_socket.local_addr().expect("local_addr");
        let socket = UdpSocket::from_std(std_socket).expect("from_std");
        let (peer, peer_addr) = bind();
        let (res, _) = peer.send_to(b"to corering".to_vec(), std_addr).await;
        res.expect("send_to");
        let (res, buf) = within("recv_from", socket.recv_from(Vec::with_capacity(32))).await;
        assert_eq!(res.expect("recv_from"), (11, peer_addr));
        assert_eq!(&buf[..], b"to corering");
        let (back, unread) = socket.into_std().await.expect("into_std");
        assert!(unread.datagrams.is_empty() && unread.errors.is_empty());
        back.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .expect("set_read_timeout");
        back.send_to(b"from std", peer_addr).expect("std send_to");
        let (res, buf) = within("recv_from std", peer.recv_from(Vec::with_capacity(32))).await;
        assert_eq!(res.expect("recv_from std").0, 8);
        assert_eq!(&buf[..], b"from std");
        peer.close().await.expect("close");
    });
}

each_variant!(
    unconnected_round_trip,
    connected_round_trip,
    many_receives_in_flight,
    truncation_is_reported,
    icmp_port_unreachable_is_connection_refused,
    dropped_recv_keeps_buffer_until_answered,
    dropped_recvs_lose_no_datagram,
    into_std_hands_over_what_dropped_receives_got,
    options_round_trip,
    zero_length_datagram,
    std_round_trip,
);
