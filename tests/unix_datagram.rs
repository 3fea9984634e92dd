//! Unix datagram sockets on every backend: round trips between paths and abstract names,
//! sender addresses, connected and unbound sockets, `pair`, truncation, message order, and
//! senders to a full receiver, datagrams that dropped receives got.
mod support;

use std::io::ErrorKind;

use corering::net::unix::{SocketAddr, UnixDatagram};
use corering::spawn;
use support::*;

/// An abstract name no other test (or run) uses.
fn abstract_name(what: &str) -> Vec<u8> {
    unique_name(&format!("dgram-{what}")).into_bytes()
}

fn round_trip_between_paths(v: Variant) {
    let (a_path, b_path) = (TempPath::new("dgram-a"), TempPath::new("dgram-b"));
    v.block_on(async {
        let a = UnixDatagram::bind(&a_path.0).expect("bind a");
        let b = UnixDatagram::bind(&b_path.0).expect("bind b");
        assert_eq!(
            a.local_addr().unwrap().as_pathname(),
            Some(a_path.0.as_path())
        );
        let (res, _) = b.send_to(b"ping".to_vec(), &a_path.0).await;
        assert_eq!(res.expect("send_to"), 4);
        let (res, buf) = within("recv a", a.recv_from(Vec::with_capacity(64))).await;
        let (n, from) = res.expect("recv_from");
        assert_eq!(
            (&buf[..n], from.as_pathname()),
            (&b"ping"[..], Some(b_path.0.as_path()))
        );
        let (res, _) = a.send_to_addr(b"pong".to_vec(), &from).await;
        res.expect("reply");
        let (res, buf) = within("recv b", b.recv_from(Vec::with_capacity(64))).await;
        let (n, from) = res.expect("recv_from");
        assert_eq!(
            (&buf[..n], from.as_pathname()),
            (&b"pong"[..], Some(a_path.0.as_path()))
        );
        drop(a);
        assert!(a_path.0.exists(), "dropping the socket removed its file");
        let err = UnixDatagram::bind(&a_path.0).expect_err("stale file");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
    });
}

fn abstract_round_trip(v: Variant) {
    v.block_on(async {
        let (a_name, b_name) = (abstract_name("a"), abstract_name("b"));
        let a = UnixDatagram::bind_abstract(&a_name).expect("bind a");
        let b = UnixDatagram::bind_abstract(&b_name).expect("bind b");
        let to = SocketAddr::from_abstract_name(&a_name).unwrap();
        assert_eq!(a.local_addr().expect("local"), to);
        let (res, _) = b.send_to_addr(b"hello".to_vec(), &to).await;
        res.expect("send_to_addr");
        let (res, buf) = within("recv", a.recv_from(Vec::with_capacity(64))).await;
        let (n, from) = res.expect("recv_from");
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(from.as_abstract_name(), Some(&b_name[..]));
        b.connect_abstract(&a_name).expect("connect");
        assert_eq!(b.peer_addr().expect("peer"), to);
        let (res, _) = b.send(b"again".to_vec()).await;
        res.expect("send");
        let (res, buf) = within("recv", a.recv(Vec::with_capacity(64))).await;
        assert_eq!(&buf[..res.expect("recv")], b"again");
    });
}

fn a_large_datagram_is_cut_and_says_so(v: Variant) {
    v.block_on(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let big: Vec<u8> = (0..100u8).collect();
        let (res, _) = a.send(big.clone()).await;
        assert_eq!(res.expect("send"), 100);
        let (res, _) = a.send(b"next".to_vec()).await;
        res.expect("send");
        let (res, buf) = within("recv", b.recv_from_meta(Vec::with_capacity(10))).await;
        let meta = res.expect("recv_from_meta");
        assert_eq!((meta.len, meta.truncated), (10, true));
        assert_eq!(&buf[..], &big[..10]);
        assert!(meta.addr.is_unnamed());
        // The cut tail is gone: the next receive is the next datagram, whole.
        let (res, buf) = within("recv", b.recv_from_meta(Vec::with_capacity(10))).await;
        let meta = res.expect("recv_from_meta");
        assert_eq!(
            (meta.len, meta.truncated, &buf[..]),
            (4, false, &b"next"[..])
        );
    });
}

fn unbound_sender_and_connected_socket(v: Variant) {
    let path = TempPath::new("dgram-server");
    v.block_on(async {
        let server = UnixDatagram::bind(&path.0).expect("bind");
        let client = UnixDatagram::unbound().expect("unbound");
        assert!(client.local_addr().expect("local").is_unnamed());
        assert_eq!(
            client.peer_addr().expect_err("not connected").kind(),
            ErrorKind::NotConnected
        );
        client.connect(&path.0).expect("connect");
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(path.0.as_path())
        );
        let (res, _) = client.send(b"from nobody".to_vec()).await;
        res.expect("send");
        let (res, buf) = within("recv", server.recv_from(Vec::with_capacity(64))).await;
        let (n, from) = res.expect("recv_from");
        assert_eq!(&buf[..n], b"from nobody");
        assert!(from.is_unnamed(), "sender {from:?}");
        let missing = TempPath::new("dgram-missing");
        let (res, _) = client.send_to(b"x".to_vec(), &missing.0).await;
        assert_eq!(
            res.expect_err("no socket there").kind(),
            ErrorKind::NotFound
        );
    });
}

fn pair_keeps_message_order_and_boundaries(v: Variant) {
    const COUNT: usize = 200;
    v.block_on(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let cred = a.peer_cred().expect("peer_cred");
        assert_eq!(cred.pid, std::process::id() as i32);
        let sender = spawn(async move {
            for i in 0..COUNT {
                let msg = vec![i as u8; 1 + i % 50];
                let (res, _) = a.send(msg).await;
                res.expect("send");
            }
        });
        within("receive all", async {
            for i in 0..COUNT {
                let (res, buf) = b.recv(Vec::with_capacity(64)).await;
                let n = res.expect("recv");
                assert_eq!(&buf[..n], &vec![i as u8; 1 + i % 50][..], "datagram {i}");
            }
            sender.await.expect("sender");
        })
        .await;
    });
}

/// More datagrams than the receiver's queue holds (`net.unix.max_dgram_qlen`), from an
/// unconnected and a connected sender at once: the senders wait (no datagram is dropped,
/// none is sent empty), and each sender's datagrams arrive whole and in order.
fn a_full_receiver_makes_senders_wait_and_loses_nothing(v: Variant) {
    const EACH: u32 = 300;
    v.block_on(async {
        let name = abstract_name("full");
        let receiver = UnixDatagram::bind_abstract(&name).expect("bind");
        let to = SocketAddr::from_abstract_name(&name).unwrap();
        let unconnected = UnixDatagram::bind_abstract(abstract_name("u")).expect("bind u");
        let connected = UnixDatagram::bind_abstract(abstract_name("c")).expect("bind c");
        connected.connect_addr(&to).expect("connect");
        let from_u = unconnected.local_addr().unwrap();
        let senders = [
            spawn(async move {
                for i in 0..EACH {
                    let (res, _) = unconnected
                        .send_to_addr(i.to_le_bytes().to_vec(), &to)
                        .await;
                    assert_eq!(res.expect("send_to"), 4, "send_to {i}");
                }
            }),
            spawn(async move {
                for i in 0..EACH {
                    let (res, _) = connected.send(i.to_le_bytes().to_vec()).await;
                    assert_eq!(res.expect("send"), 4, "send {i}");
                }
            }),
        ];
        // Let the senders fill the queue (not needed for the assertions).
        corering::time::sleep(std::time::Duration::from_millis(50)).await;
        within("drain", async {
            let mut next = [0u32; 2];
            for _ in 0..2 * EACH {
                let (res, buf) = receiver.recv_from(Vec::with_capacity(8)).await;
                let (n, from) = res.expect("recv_from");
                assert_eq!(n, 4, "an empty or cut datagram from {from:?}");
                let which = usize::from(from != from_u);
                let got = u32::from_le_bytes(buf[..4].try_into().unwrap());
                assert_eq!(got, next[which], "sender {which} out of order");
                next[which] += 1;
            }
            for s in senders {
                s.await.expect("sender");
            }
        })
        .await;
    });
}

/// Receives polled once (in the kernel on io_uring), then datagrams sent, the loop turned so
/// the kernel can hand them over, and only then the futures dropped: every datagram still
/// reaches a later receive, exactly once.
fn dropped_recvs_lose_no_datagram(v: Variant) {
    use std::future::Future;
    use std::task::Poll;
    const N: usize = 8;
    v.block_on(async {
        let (a, b) = UnixDatagram::pair().expect("pair");
        let mut pending: Vec<_> = (0..N)
            .map(|_| Box::pin(b.recv(Vec::with_capacity(64))))
            .collect();
        for fut in &mut pending {
            let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "recv with nothing sent was ready");
        }
        for i in 0..N {
            let (res, _) = a.send(vec![i as u8; 3]).await;
            res.expect("send");
        }
        for _ in 0..8 {
            corering::yield_now().await;
        }
        drop(pending);
        let mut seen = Vec::new();
        for _ in 0..N {
            let (res, buf) = within("recv", b.recv(Vec::with_capacity(64))).await;
            assert_eq!(res.expect("recv"), 3);
            seen.push(buf[0]);
        }
        seen.sort();
        assert_eq!(seen, (0..N as u8).collect::<Vec<_>>(), "lost or doubled");
    });
}

each_variant!(
    dropped_recvs_lose_no_datagram,
    a_full_receiver_makes_senders_wait_and_loses_nothing,
    round_trip_between_paths,
    abstract_round_trip,
    a_large_datagram_is_cut_and_says_so,
    unbound_sender_and_connected_socket,
    pair_keeps_message_order_and_boundaries,
);
