//! Cancellation on every backend: an op dropped in flight (by `time::timeout` or a plain drop)
//! keeps its owned buffer alive until the kernel is done and then frees it, frees its slot,
//! and leaves the socket usable; many cancellations under load leak nothing.
mod support;

use std::time::Duration;

use corering::net::{TcpListener, TcpStream};
use corering::time::timeout;
use corering::{spawn, yield_now};
use support::*;

/// Reads until `want` bytes arrived (bounded), returning them.
async fn read_n(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..1000 {
        if got.len() >= want {
            break;
        }
        let (res, buf) = stream.read(Vec::with_capacity(want)).await;
        let n = res.expect("read");
        assert!(n > 0, "unexpected EOF after {} bytes", got.len());
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn timed_out_read_frees_buffer_after_cancel(v: Variant) {
    v.with_runtime(|rt| {
        let drops = DropCounter::new();
        let (mut client, mut server) = rt.block_on(async {
            let (mut client, server) = tcp_pair().await;
            let buf = TrackedBuf::with_capacity(4096, &drops);
            match timeout(Duration::from_millis(20), client.read(buf)).await {
                Err(elapsed) => assert!(!elapsed.to_string().is_empty()),
                Ok((res, _)) => panic!("read with no data sent completed: {res:?}"),
            }
            (client, server)
        });
        let settled = turn_until(&rt, |rt| drops.dropped() == 1 && rt.live_ops() == 0);
        assert!(
            settled,
            "after the timeout: buffer dropped = {}, live_ops = {}",
            drops.dropped() == 1,
            rt.live_ops()
        );
        // The cancelled read must not swallow later data: a new read gets all of it.
        rt.block_on(async {
            let (res, _) = server.write_all("after-cancel").await;
            res.expect("write");
            assert_eq!(read_n(&mut client, 12).await, b"after-cancel");
        });
        assert_eq!(drops.live(), 0);
        assert_eq!(rt.live_ops(), 0);
    });
}
each_variant!(timed_out_read_frees_buffer_after_cancel);

fn dropped_read_future_frees_buffer(v: Variant) {
    v.with_runtime(|rt| {
        let drops = DropCounter::new();
        let (mut client, mut server) = rt.block_on(async {
            let (mut client, server) = tcp_pair().await;
            for _ in 0..100 {
                let buf = TrackedBuf::with_capacity(1024, &drops);
                assert!(
                    !poll_once_then_drop(client.read(buf)).await,
                    "read was ready"
                );
            }
            (client, server)
        });
        let settled = turn_until(&rt, |rt| drops.live() == 0 && rt.live_ops() == 0);
        assert!(
            settled,
            "buffers still alive: {}, live_ops = {}",
            drops.live(),
            rt.live_ops()
        );
        rt.block_on(async {
            let (res, _) = server.write_all("still works").await;
            res.expect("write");
            assert_eq!(read_n(&mut client, 11).await, b"still works");
        });
    });
}
each_variant!(dropped_read_future_frees_buffer);

fn timed_out_accept_leaves_listener_usable(v: Variant) {
    v.with_runtime(|rt| {
        let (listener, addr) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let res = timeout(Duration::from_millis(20), listener.accept()).await;
            assert!(res.is_err(), "accept with no client completed");
            (listener, addr)
        });
        // The timed-out accept stays with the listener (one op at most), so that a
        // connection the kernel accepts for it goes to the next accept.
        assert!(
            turn_until(&rt, |rt| rt.live_ops() <= 1),
            "cancelled accept left more than the listener's standing accept"
        );
        let listener = rt.block_on(async {
            let mut client = within("connect", TcpStream::connect(addr))
                .await
                .expect("connect");
            let (mut server, peer) = within("accept", listener.accept()).await.expect("accept");
            assert_eq!(peer, client.local_addr().unwrap());
            let (res, _) = client.write_all("hi").await;
            res.expect("write");
            assert_eq!(read_n(&mut server, 2).await, b"hi");
            listener
        });
        drop(listener);
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "the listener's accept outlived the listener"
        );
    });
}
each_variant!(timed_out_accept_leaves_listener_usable);

const LOAD_CONNS: usize = 200;
const CHUNKS: usize = 40;
const CHUNK: usize = 512;

/// The byte at offset `k` of client `id`'s stream: a pattern that exposes loss, duplication
/// and reordering.
fn pattern(id: u8, k: usize) -> u8 {
    ((id as usize * 7 + k) % 251) as u8
}

/// Server side of the load test: reads the client's id byte, then trickles CHUNKS chunks of
/// the client's pattern, pausing between chunks so client reads time out in between.
async fn trickle(mut stream: TcpStream) {
    let (res, id) = stream.read_exact(vec![0u8; 1].into_boxed_slice()).await;
    res.expect("read id");
    for c in 0..CHUNKS {
        let chunk: Vec<u8> = (0..CHUNK).map(|j| pattern(id[0], c * CHUNK + j)).collect();
        let (res, _) = stream.write_all(chunk).await;
        res.expect("trickle write");
        corering::time::sleep(Duration::from_millis(2)).await;
    }
}

fn many_cancellations_under_load(v: Variant) {
    raise_fd_limit();
    v.with_runtime(|rt| {
        let drops = DropCounter::new();
        let (cancels, bytes) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let server = spawn(async move {
                let mut writers = Vec::new();
                for _ in 0..LOAD_CONNS {
                    let (stream, _) = listener.accept().await.expect("accept");
                    writers.push(spawn(trickle(stream)));
                }
                for w in writers {
                    w.await.expect("writer task");
                }
            });
            let clients: Vec<_> = (0..LOAD_CONNS)
                .map(|i| {
                    let drops = drops.clone();
                    spawn(async move {
                        let id = i as u8;
                        let mut stream = TcpStream::connect(addr).await.expect("connect");
                        let (res, _) = stream.write_all(vec![id]).await;
                        res.expect("write id");
                        let (mut cancels, mut bytes) = (0usize, 0usize);
                        for attempt in 0..20_000usize {
                            let buf = TrackedBuf::with_capacity(256, &drops);
                            let limit =
                                Duration::from_micros(200 + (attempt * 37 + i) as u64 % 900);
                            match timeout(limit, stream.read(buf)).await {
                                Err(_) => cancels += 1,
                                Ok((Ok(0), _)) => return (cancels, bytes),
                                Ok((Ok(n), buf)) => {
                                    for (j, &b) in buf.data[..n].iter().enumerate() {
                                        assert_eq!(
                                            b,
                                            pattern(id, bytes + j),
                                            "client {i}: byte {} lost, duplicated or reordered",
                                            bytes + j
                                        );
                                    }
                                    bytes += n;
                                }
                                Ok((Err(e), _)) => panic!("client {i}: read error {e}"),
                            }
                            if attempt % 64 == 63 {
                                yield_now().await;
                            }
                        }
                        panic!("client {i}: no EOF after 20,000 reads");
                    })
                })
                .collect();
            let (mut cancels, mut bytes) = (0, 0);
            for client in clients {
                let (c, b) = within("client", client).await.expect("client task");
                // Cancelled reads lose nothing: bytes that reached a cancelled read's buffer
                // are returned by the next read.
                assert_eq!(b, CHUNKS * CHUNK, "bytes lost to cancelled reads");
                cancels += c;
                bytes += b;
            }
            within("server", server).await.expect("server task");
            (cancels, bytes)
        });
        eprintln!("{cancels} reads cancelled by timeout, {bytes} bytes received");
        let settled = turn_until(&rt, |rt| drops.live() == 0 && rt.live_ops() == 0);
        assert!(
            settled,
            "after load: {} of {} buffers still alive, live_ops = {}",
            drops.live(),
            drops.created(),
            rt.live_ops()
        );
    });
}
each_variant!(many_cancellations_under_load);
