//! Pooled reads (`recv_pooled`): bytes keep their order, also mixed with plain reads and
//! under buffer-pool exhaustion (more connections than buffers: ENOBUFS on io_uring); the
//! runtime does not spin; a cancelled pooled read loses no bytes and keeps no buffer.
mod support;

use std::io::Write;
use std::time::Duration;

use corering::net::{TcpListener, TcpStream};
use corering::{spawn, time, PooledBuf, Runtime};
use support::*;

const CONNS: usize = 24;
const PER_CONN: usize = 48 * 1024;

fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Pattern::new(seed).fill(&mut out);
    out
}

/// The pool's buffers are all back once nothing holds one.
fn assert_pool_idle(rt: &Runtime, what: &str) {
    let idle = turn_until(rt, |rt| rt.stats().driver.pool_in_use == 0);
    assert!(
        idle,
        "{what}: {} pool buffers never came back",
        rt.stats().driver.pool_in_use
    );
}

fn pooled_reads_keep_order_mixed_with_plain_reads(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut client, mut server) = tcp_pair().await;
            let data = payload(7, 300 * 1000);
            let sent = data.clone();
            let writer = spawn(async move {
                for chunk in sent.chunks(7919) {
                    let (res, _) = client.write_all(chunk.to_vec()).await;
                    res.expect("write");
                }
                client
                    .shutdown(std::net::Shutdown::Write)
                    .await
                    .expect("fin");
                client
            });
            let mut got = Vec::new();
            for turn in 0.. {
                if turn % 3 == 2 {
                    let (res, buf) = server.read(Vec::with_capacity(1000)).await;
                    if res.expect("plain read") == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf);
                } else {
                    match server.recv_pooled().await.expect("pooled read") {
                        Some(buf) => got.extend_from_slice(&buf),
                        None => break,
                    }
                }
            }
            assert!(
                got == data,
                "{} of {} bytes, in order?",
                got.len(),
                data.len()
            );
            assert!(server.recv_pooled().await.expect("after eof").is_none());
            drop(writer.await.expect("writer"));
        });
        assert_pool_idle(&rt, "after the stream");
    });
}
each_variant!(pooled_reads_keep_order_mixed_with_plain_reads);

/// One server task: reads everything with pooled reads, holding up to `hold` buffers at a
/// time (so that the pool runs dry), and returns the bytes.
async fn drain_holding(mut stream: TcpStream, hold: usize) -> (Vec<u8>, usize) {
    let (mut got, mut held, mut reads) = (Vec::new(), Vec::<PooledBuf>::new(), 0);
    while let Some(buf) = stream.recv_pooled().await.expect("pooled read") {
        reads += 1;
        held.push(buf);
        if held.len() >= hold {
            for b in held.drain(..) {
                got.extend_from_slice(&b);
            }
        }
        // Other connections read while this one holds buffers.
        corering::yield_now().await;
    }
    for b in held {
        got.extend_from_slice(&b);
    }
    (got, reads)
}

fn pooled_reads_under_pool_exhaustion_lose_nothing_and_do_not_spin(v: Variant) {
    let rt = v
        .builder()
        .buffer_pool(4, 512)
        .build()
        .expect("runtime with a small pool");
    let before = rt.stats().driver;
    let reads = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clients = std::thread::spawn(move || {
            let conns: Vec<_> = (0..CONNS)
                .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
                .collect();
            for (i, mut c) in conns.into_iter().enumerate() {
                c.write_all(&payload(i as u64, PER_CONN)).expect("send");
            }
        });
        let mut servers = Vec::new();
        for _ in 0..CONNS {
            let (stream, peer) = within("accept", listener.accept()).await.expect("accept");
            servers.push((peer, spawn(drain_holding(stream, 3))));
        }
        let mut by_port: Vec<_> = Vec::new();
        for (peer, task) in servers {
            by_port.push((peer.port(), within("drain", task).await.expect("drain")));
        }
        clients.join().expect("clients");
        // Clients connected in order, from increasing ports (not guaranteed; match by data).
        let mut reads = 0;
        for (_, (got, n)) in by_port {
            reads += n;
            let i = (0..CONNS as u64)
                .find(|&i| got.len() == PER_CONN && got[..64] == payload(i, 64)[..])
                .unwrap_or_else(|| {
                    panic!("a connection's bytes match no client ({} bytes)", got.len())
                });
            assert!(
                got == payload(i, PER_CONN),
                "client {i}: bytes lost or reordered"
            );
        }
        reads
    });
    let stats = rt.stats().driver;
    let ops = stats.ops_submitted - before.ops_submitted;
    // Each read costs at most a readiness wait and a read, plus a re-arm: no spinning.
    let bound = 4 * reads as u64 + 16 * CONNS as u64;
    assert!(
        ops <= bound,
        "{ops} ops for {reads} reads: spinning? {stats:?}"
    );
    assert!(
        stats.pool_exhausted + stats.pool_overflows > 0,
        "24 connections on 4 buffers never ran the pool dry: {stats:?}"
    );
    assert_pool_idle(&rt, "after the load");
}
each_variant!(pooled_reads_under_pool_exhaustion_lose_nothing_and_do_not_spin);

fn cancelled_pooled_reads_lose_nothing_and_keep_no_buffer(v: Variant) {
    let rt = v.builder().buffer_pool(8, 256).build().expect("runtime");
    rt.block_on(async {
        let (mut server, mut peer) = std_peer_pair().await;
        let data = payload(3, 20 * 1000);
        let mut got = Vec::new();
        for (i, chunk) in data.chunks(1000).enumerate() {
            // A read that times out with nothing there, then one dropped after a poll while
            // the bytes are on their way, then a read that takes them.
            let res = time::timeout(Duration::from_millis(1), server.recv_pooled()).await;
            assert!(res.is_err(), "read {i} completed with nothing sent");
            peer.write_all(chunk).expect("send");
            poll_once_then_drop(server.recv_pooled()).await;
            while got.len() < (i + 1) * 1000 {
                let buf = within("read", server.recv_pooled()).await.expect("read");
                got.extend_from_slice(&buf.expect("not eof"));
            }
        }
        assert!(got == data, "bytes lost or reordered by cancelled reads");
        drop(peer);
        let end = within("eof", server.recv_pooled()).await.expect("eof");
        assert!(end.is_none());
    });
    assert_pool_idle(&rt, "after cancelled reads");
    assert!(turn_until(&rt, |rt| rt.live_ops() == 0));
}
each_variant!(cancelled_pooled_reads_lose_nothing_and_keep_no_buffer);

/// A stream dropped with bytes queued on its pooled side (and its standing receive armed)
/// gives every buffer back and leaves no op behind.
fn a_dropped_stream_gives_its_queued_buffers_back(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut server, mut peer) = std_peer_pair().await;
            peer.write_all(b"first").expect("send");
            let first = within("read", server.recv_pooled()).await.expect("read");
            assert_eq!(&first.expect("bytes")[..], b"first");
            for _ in 0..4 {
                peer.write_all(&[9; 300]).expect("send");
                time::sleep(Duration::from_millis(1)).await;
            }
            drop(server);
        });
        assert_pool_idle(&rt, "after the drop");
        assert!(turn_until(&rt, |rt| rt.live_ops() == 0), "ops left");
    });
}
each_variant!(a_dropped_stream_gives_its_queued_buffers_back);

/// `into_std` hands out what the pooled side had queued, in order, before the socket's bytes.
fn into_std_keeps_pooled_bytes(v: Variant) {
    v.block_on(async {
        let (mut server, mut peer) = std_peer_pair().await;
        peer.write_all(b"ab").expect("send");
        let ab = within("read", server.recv_pooled()).await.expect("read");
        assert_eq!(&ab.expect("bytes")[..], b"ab");
        peer.write_all(b"cd").expect("send");
        time::sleep(Duration::from_millis(5)).await;
        let (mut std, unread) = server.into_std().await.expect("into_std");
        peer.write_all(b"ef").expect("send");
        // Whatever the pooled side had is in `unread`; the rest is still in the socket.
        let mut all = unread.bytes.clone();
        let mut rest = vec![0; 4 - all.len()];
        std::io::Read::read_exact(&mut std, &mut rest).expect("std read");
        all.extend_from_slice(&rest);
        assert_eq!(all, b"cdef", "unread {:?}", unread);
    });
}
each_variant!(into_std_keeps_pooled_bytes);

/// A peer sending TCP urgent data mid-stream: pooled reads return the in-band bytes in order,
/// and an idle wait after it (urgent state lingering, hang-up skip off on epoll) parks instead
/// of spinning.
fn urgent_data_neither_stalls_nor_spins_pooled_reads(v: Variant) {
    v.with_runtime(|rt| {
        rt.block_on(async {
            let (mut stream, mut peer) = std_peer_pair().await;
            peer.write_all(b"abc").expect("send abc");
            // SAFETY: `peer` is an open socket; one live byte is sent.
            let n = unsafe {
                libc::send(
                    std::os::fd::AsRawFd::as_raw_fd(&peer),
                    b"!".as_ptr().cast(),
                    1,
                    libc::MSG_OOB,
                )
            };
            assert_eq!(n, 1, "send(MSG_OOB)");
            peer.write_all(b"def").expect("send def");
            let mut got = Vec::new();
            while got.len() < 6 {
                let buf = within("read past the urgent mark", stream.recv_pooled()).await;
                got.extend_from_slice(&buf.expect("read").expect("not eof"));
            }
            assert_eq!(got, b"abcdef", "urgent byte out of band, the rest in order");
            // Nothing more comes for a while: the read waits, it does not spin.
            let before = rt.stats().driver.ops_submitted;
            let idle = time::timeout(Duration::from_millis(20), stream.recv_pooled()).await;
            assert!(idle.is_err(), "a read completed with nothing sent");
            let ops = rt.stats().driver.ops_submitted - before;
            assert!(ops < 50, "{ops} ops while idle after urgent data: spinning");
            drop(peer);
            let end = within("eof", stream.recv_pooled()).await.expect("eof");
            assert!(end.is_none());
        });
    });
}
each_variant!(urgent_data_neither_stalls_nor_spins_pooled_reads);
