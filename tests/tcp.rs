//! TCP on every backend: 1,000 concurrent echo connections, 64 MiB through one connection with
//! a checksum, connection refused, peer reset (an error, never SIGPIPE), half-close, and the
//! small stream accessors.
mod support;

use std::io::ErrorKind;
use std::net::Shutdown;
use std::os::fd::AsRawFd;

use corering::net::{TcpListener, TcpStream};
use corering::{spawn, IoBuf};
use support::*;

const CONNS: usize = 1000;
const ROUNDS: usize = 4;
const MSG_LEN: usize = 128;

fn message(conn: usize, round: usize) -> Vec<u8> {
    let mut out = vec![0; MSG_LEN];
    Pattern::new((conn * ROUNDS + round) as u64 * 0x9e37_79b9 + 7).fill(&mut out);
    out
}

/// Echoes until EOF; returns the number of bytes echoed.
async fn echo(mut stream: TcpStream) -> std::io::Result<usize> {
    let mut buf = Vec::with_capacity(4096);
    let mut total = 0;
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(total);
        }
        assert_eq!(b.len(), n, "read must set_init exactly the bytes it read");
        total += n;
        let (res, slice) = stream.write_all(b.slice(..n)).await;
        res?;
        buf = slice.into_inner();
    }
}

fn echo_1000_concurrent_connections(v: Variant) {
    let limit = raise_fd_limit();
    assert!(
        limit >= (2 * CONNS + 200) as u64,
        "RLIMIT_NOFILE hard limit {limit} is too low for {CONNS} connections"
    );
    v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let server = spawn(async move {
            let mut handlers = Vec::with_capacity(CONNS);
            for _ in 0..CONNS {
                let (stream, peer) = listener.accept().await.expect("accept");
                assert!(peer.ip().is_loopback(), "peer {peer}");
                handlers.push(spawn(echo(stream)));
            }
            handlers
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|i| {
                spawn(async move {
                    let mut stream = TcpStream::connect(addr)
                        .await
                        .unwrap_or_else(|e| panic!("client {i}: connect: {e}"));
                    for round in 0..ROUNDS {
                        let msg = message(i, round);
                        let (res, msg) = stream.write_all(msg).await;
                        res.unwrap_or_else(|e| panic!("client {i}: write_all: {e}"));
                        let buf = vec![0u8; MSG_LEN].into_boxed_slice();
                        let (res, got) = stream.read_exact(buf).await;
                        res.unwrap_or_else(|e| panic!("client {i}: read_exact: {e}"));
                        assert_eq!(&got[..], &msg[..], "client {i} round {round}: bad echo");
                    }
                })
            })
            .collect();
        within("clients", async {
            for client in clients {
                client.await.expect("client task failed");
            }
        })
        .await;
        let handlers = within("accept loop", server).await.expect("accept loop");
        for handler in handlers {
            let echoed = within("echo task", handler)
                .await
                .expect("echo task failed")
                .expect("echo i/o error");
            assert_eq!(echoed, ROUNDS * MSG_LEN);
        }
    });
}
each_variant!(echo_1000_concurrent_connections);

fn transfer_64_mib_with_checksum(v: Variant) {
    const TOTAL: usize = 64 << 20;
    const WRITE_CHUNK: usize = 1 << 20;
    const READ_BUF: usize = 64 << 10;
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let reader = spawn(async move {
            let (mut hash, mut total) = (Fnv::default(), 0usize);
            let mut buf = Vec::with_capacity(READ_BUF);
            loop {
                buf.clear();
                let (res, b) = server.read(buf).await;
                buf = b;
                let n = res.expect("server read");
                if n == 0 {
                    return (total, hash.finish());
                }
                assert_eq!(buf.len(), n);
                hash.update(&buf);
                total += n;
                assert!(total <= TOTAL, "received more than was sent");
            }
        });
        let (mut pattern, mut hash) = (Pattern::new(0x5eed), Fnv::default());
        let mut chunk = vec![0u8; WRITE_CHUNK];
        for _ in 0..TOTAL / WRITE_CHUNK {
            pattern.fill(&mut chunk);
            hash.update(&chunk);
            let (res, c) = client.write_all(chunk).await;
            res.expect("client write_all");
            chunk = c;
            assert_eq!(
                chunk.len(),
                WRITE_CHUNK,
                "write_all must hand the buffer back intact"
            );
        }
        client.shutdown(Shutdown::Write).await.expect("shutdown");
        let (received, received_hash) = within("reader", reader).await.expect("reader task");
        assert_eq!(received, TOTAL);
        assert_eq!(received_hash, hash.finish(), "checksum mismatch");
    });
}
each_variant!(transfer_64_mib_with_checksum);

fn connect_to_closed_port_is_refused(v: Variant) {
    v.block_on(async {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("local_addr")
        }; // listener dropped: nothing listens on addr now
        let Err(err) = TcpStream::connect(addr).await else {
            panic!("connect to a closed port succeeded");
        };
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err:?}");
    });
}
each_variant!(connect_to_closed_port_is_refused);

fn peer_reset_mid_stream_is_an_error_not_sigpipe(v: Variant) {
    let probe = SigpipeProbe::block();
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let (res, _) = client.write_all(&b"ping"[..]).await;
        res.expect("write ping");
        let (res, ping) = server.read_exact(vec![0u8; 4].into_boxed_slice()).await;
        res.expect("read ping");
        assert_eq!(&ping[..], b"ping");
        let (res, _) = server.write_all("pong").await;
        res.expect("write pong");
        let (res, pong) = client.read_exact(vec![0u8; 4].into_boxed_slice()).await;
        res.expect("read pong");
        assert_eq!(&pong[..], b"pong");

        set_linger_zero(server.as_raw_fd());
        drop(server); // sends RST

        let (res, _) = client.read(Vec::with_capacity(64)).await;
        match res {
            Err(e) => assert!(is_reset(&e), "read after reset: {e:?}"),
            Ok(0) => eprintln!("note: read after reset gave EOF, not ConnectionReset"),
            Ok(n) => panic!("read {n} bytes from a reset connection"),
        }
        // Writes to a reset socket fail with EPIPE; without MSG_NOSIGNAL they would raise SIGPIPE.
        for _ in 0..3 {
            let (res, _) = client.write(&b"after reset"[..]).await;
            let err = res.expect_err("write to a reset connection succeeded");
            assert!(is_reset(&err), "write after reset: {err:?}");
        }
    });
    assert!(
        !probe.take_pending(),
        "SIGPIPE raised: a send lacks MSG_NOSIGNAL"
    );
}
each_variant!(peer_reset_mid_stream_is_an_error_not_sigpipe);

fn peer_reset_during_bulk_write_is_an_error_not_sigpipe(v: Variant) {
    let probe = SigpipeProbe::block();
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let resetter = spawn(async move {
            let (res, _) = server.read_exact(vec![0u8; 4096].into_boxed_slice()).await;
            res.expect("resetter read");
            set_linger_zero(server.as_raw_fd());
            drop(server);
        });
        let mut chunk = vec![0xa5u8; 256 << 10];
        let mut first_err = None;
        for _ in 0..10_000 {
            let (res, c) = client.write(chunk).await;
            chunk = c;
            if let Err(e) = res {
                first_err = Some(e);
                break;
            }
        }
        within("resetter", resetter).await.expect("resetter task");
        let err = first_err.expect("10,000 writes into a reset connection never failed");
        assert!(is_reset(&err), "first write error: {err:?}");
        let (res, _) = client.write(chunk).await;
        let err = res.expect_err("write after the reset error succeeded");
        assert!(is_reset(&err), "second write error: {err:?}");
    });
    assert!(
        !probe.take_pending(),
        "SIGPIPE raised: a send lacks MSG_NOSIGNAL"
    );
}
each_variant!(peer_reset_during_bulk_write_is_an_error_not_sigpipe);

fn half_close_then_reply(v: Variant) {
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let (res, _) = client.write_all("request").await;
        res.expect("client write");
        client
            .shutdown(Shutdown::Write)
            .await
            .expect("client shutdown(Write)");

        let (res, req) = server.read_exact(vec![0u8; 7].into_boxed_slice()).await;
        res.expect("server read_exact");
        assert_eq!(&req[..], b"request");
        let (res, _) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(
            res.expect("server read"),
            0,
            "server must see EOF after shutdown(Write)"
        );
        let (res, _) = server.write_all("reply").await;
        res.expect("server write after client half-close");
        server.close().await.expect("server close");

        let mut got = Vec::new();
        for _ in 0..100 {
            let (res, buf) = client.read(Vec::with_capacity(64)).await;
            let n = res.expect("client read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"reply");
        let (res, _) = client.read(Vec::with_capacity(64)).await;
        assert_eq!(res.expect("read at EOF"), 0, "EOF must be sticky");
    });
}
each_variant!(half_close_then_reply);

/// An adapter shuts the write side down on every close: after the peer reset the connection
/// (the socket is then in TCP_CLOSE, where the kernel says ENOTCONN) that is still Ok, as
/// tokio's `poll_shutdown` has it, and so is a second shutdown.
fn shutdown_after_peer_reset_is_ok(v: Variant) {
    v.block_on(async {
        let (client, server) = tcp_pair().await;
        set_linger_zero(server.as_raw_fd());
        drop(server);
        // The reset is seen once a read returns it (or end of stream).
        let mut client = client;
        for _ in 0..100 {
            let (res, _) = client.read(Vec::with_capacity(16)).await;
            match res {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        client
            .shutdown(Shutdown::Write)
            .await
            .expect("shutdown(Write) after the peer reset");
        client
            .shutdown(Shutdown::Both)
            .await
            .expect("shutdown(Both) after the peer reset");
    });
}
each_variant!(shutdown_after_peer_reset_is_ok);

fn read_exact_at_eof_is_unexpected_eof(v: Variant) {
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let (res, _) = server.write_all("abc").await;
        res.expect("write");
        drop(server);
        let (res, buf) = client.read_exact(vec![0u8; 8].into_boxed_slice()).await;
        let err = res.expect_err("read_exact past EOF succeeded");
        assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "{err:?}");
        assert_eq!(
            buf.bytes_total(),
            8,
            "the buffer comes back on the error path"
        );
    });
}
each_variant!(read_exact_at_eof_is_unexpected_eof);

fn stream_addresses_and_nodelay(v: Variant) {
    v.block_on(async {
        let (client, server) = tcp_pair().await;
        assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
        assert_eq!(server.peer_addr().unwrap(), client.local_addr().unwrap());
        assert!(client.local_addr().unwrap().ip().is_loopback());
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
    });
}
each_variant!(stream_addresses_and_nodelay);

/// End of stream already pending behind the last short read raises no new edge: the next
/// read must still see it (on epoll, a side that went quiet after a short read is parked on
/// without a syscall, unless the peer has hung up).
fn eof_behind_a_short_read_is_seen(v: Variant) {
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        // A read that parks and is cancelled: the socket is registered and known quiet.
        let parked = corering::time::timeout(
            std::time::Duration::from_millis(5),
            server.read(Vec::with_capacity(64)),
        )
        .await;
        assert!(parked.is_err(), "nothing was sent yet");
        let (res, _) = client.write_all(b"abc".to_vec()).await;
        res.expect("write");
        client.shutdown(Shutdown::Write).await.expect("shutdown");
        let (res, buf) = within("the data", server.read(Vec::with_capacity(64))).await;
        assert_eq!(res.expect("read"), 3);
        assert_eq!(&buf[..], b"abc");
        let (res, _) = within("the end of stream", server.read(Vec::with_capacity(64))).await;
        assert_eq!(res.expect("read at EOF"), 0);
    });
}
each_variant!(eof_behind_a_short_read_is_seen);

fn read_into_an_unbounded_slice_appends_after_the_bytes_there(v: Variant) {
    v.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let (res, _) = client.write_all(b"hello".to_vec()).await;
        res.expect("client write");
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"ab");
        let mut filled = 0;
        // Read more after what we have, until the 5 bytes are in.
        while buf.len() < 7 {
            let at = buf.len();
            let (res, slice) = server.read(buf.slice(at..)).await;
            let n = res.expect("server read");
            assert!(n > 0, "early EOF");
            filled += n;
            buf = slice.into_inner();
            assert_eq!(buf.len(), at + n);
        }
        assert_eq!(filled, 5);
        assert_eq!(buf, b"abhello");
        // A write from an unbounded slice sends only the initialised bytes.
        let (res, slice) = server.write_all(buf.slice(2..)).await;
        res.expect("server write");
        assert_eq!(slice.into_inner(), b"abhello");
        let (res, back) = client.read_exact(vec![0u8; 5].into_boxed_slice()).await;
        res.expect("client read");
        assert_eq!(&back[..], b"hello");
    });
}
each_variant!(read_into_an_unbounded_slice_appends_after_the_bytes_there);
