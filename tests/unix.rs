//! Unix domain sockets on every backend: echo through a listener on a path, half-close,
//! `pair`, abstract names, address kinds, peer credentials, owned halves on two tasks, the
//! `incoming` stream, pooled reads, and large writes with zero-copy sends switched on.
mod support;

use std::io::ErrorKind;
use std::net::Shutdown;

use corering::net::unix::{SocketAddr, UnixListener, UnixStream};
use corering::{spawn, IoBuf};
use support::*;

const CONNS: usize = 64;
const MSG_LEN: usize = 1000;

/// An abstract name no other test (or run) uses.
fn abstract_name(what: &str) -> Vec<u8> {
    unique_name(what).into_bytes()
}

fn message(seed: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Pattern::new(seed as u64 * 0x9e37_79b9 + 3).fill(&mut out);
    out
}

/// Echoes until end of stream; returns the number of bytes echoed.
async fn echo(mut stream: UnixStream) -> usize {
    let mut total = 0;
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        let n = res.expect("server read");
        if n == 0 {
            return total;
        }
        total += n;
        let (res, slice) = stream.write_all(b.slice(..n)).await;
        res.expect("server write");
        buf = slice.into_inner();
    }
}

/// Writes `msg`, reads it back, checks it.
async fn round_trip(stream: &mut UnixStream, msg: Vec<u8>) {
    let (res, msg) = stream.write_all(msg).await;
    res.expect("write_all");
    let (res, got) = stream.read_exact(vec![0u8; msg.len()]).await;
    res.expect("read_exact");
    assert!(got == msg, "bad echo");
}

fn echo_many_connections_on_a_path(v: Variant) {
    let path = TempPath::new("echo");
    v.block_on(async {
        let listener = UnixListener::bind(&path.0).expect("bind");
        let server = spawn(async move {
            let mut handlers = Vec::new();
            for _ in 0..CONNS {
                let (stream, peer) = listener.accept().await.expect("accept");
                assert!(peer.is_unnamed(), "peer {peer:?}");
                handlers.push(spawn(echo(stream)));
            }
            handlers
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|i| {
                let path = path.0.clone();
                spawn(async move {
                    let mut stream = UnixStream::connect(&path).await.expect("connect");
                    for round in 0..3 {
                        round_trip(&mut stream, message(i * 3 + round, MSG_LEN)).await;
                    }
                })
            })
            .collect();
        within("clients", async {
            for c in clients {
                c.await.expect("client");
            }
            for h in server.await.expect("server") {
                assert_eq!(h.await.expect("handler"), 3 * MSG_LEN);
            }
        })
        .await;
    });
}

fn half_close_then_reply(v: Variant) {
    v.block_on(async {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        let (res, _) = a.write_all(b"request".to_vec()).await;
        res.expect("write");
        a.shutdown(Shutdown::Write).await.expect("shutdown");
        within("half-close", async {
            let mut got = Vec::new();
            loop {
                let (res, buf) = b.read(Vec::with_capacity(64)).await;
                if res.expect("read") == 0 {
                    break;
                }
                got.extend_from_slice(&buf);
            }
            assert_eq!(got, b"request");
            let (res, _) = b.write_all(b"reply".to_vec()).await;
            res.expect("write back after the peer's shutdown");
            let (res, buf) = a.read_exact(vec![0u8; 5]).await;
            res.expect("read reply");
            assert_eq!(buf, b"reply");
            let (res, _) = a.write(b"x".to_vec()).await;
            assert_eq!(
                res.expect_err("write after shutdown").kind(),
                ErrorKind::BrokenPipe
            );
        })
        .await;
    });
}

fn pair_round_trip_and_unnamed_addresses(v: Variant) {
    v.block_on(async {
        let (mut a, b) = UnixStream::pair().expect("pair");
        let server = spawn(echo(b));
        round_trip(&mut a, message(1, 64 * 1024)).await;
        assert!(a.local_addr().expect("local").is_unnamed());
        assert!(a.peer_addr().expect("peer").is_unnamed());
        assert_eq!(a.peer_addr().unwrap().to_string(), "(unnamed)");
        drop(a);
        assert_eq!(within("echo", server).await.expect("echo"), 64 * 1024);
    });
}

fn abstract_names_bind_connect_and_report(v: Variant) {
    v.block_on(async {
        let name = abstract_name("abstract");
        let listener = UnixListener::bind_abstract(&name).expect("bind_abstract");
        let local = listener.local_addr().expect("local_addr");
        assert_eq!(local.as_abstract_name(), Some(&name[..]));
        assert_eq!(local.as_pathname(), None);
        assert_eq!(local, SocketAddr::from_abstract_name(&name).unwrap());
        let err = UnixListener::bind_abstract(&name).expect_err("name in use");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        let mut client = UnixStream::connect_abstract(&name).await.expect("connect");
        let (server, peer) = within("accept", listener.accept()).await.expect("accept");
        assert!(peer.is_unnamed(), "peer {peer:?}");
        assert_eq!(client.peer_addr().expect("peer_addr"), local);
        assert_eq!(server.local_addr().expect("server local"), local);
        let echo = spawn(echo(server));
        round_trip(&mut client, message(2, 100)).await;
        drop(client);
        within("echo", echo).await.expect("echo");
        let missing = abstract_name("nobody");
        let err = UnixStream::connect_abstract(&missing)
            .await
            .expect_err("no listener");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

fn pathname_addresses_and_stale_files(v: Variant) {
    let path = TempPath::new("addr");
    v.block_on(async {
        let listener = UnixListener::bind(&path.0).expect("bind");
        let local = listener.local_addr().expect("local_addr");
        assert_eq!(local.as_pathname(), Some(path.0.as_path()));
        assert!(!local.is_unnamed());
        assert_eq!(local.to_string(), path.0.display().to_string());
        let client = UnixStream::connect(&path.0).await.expect("connect");
        let (server, _) = within("accept", listener.accept()).await.expect("accept");
        assert!(client.local_addr().expect("client local").is_unnamed());
        assert_eq!(client.peer_addr().expect("client peer"), local);
        assert_eq!(server.local_addr().expect("server local"), local);
        assert!(server.peer_addr().expect("server peer").is_unnamed());
        drop(listener);
        assert!(path.0.exists(), "dropping the listener removed its file");
        let err = UnixListener::bind(&path.0).expect_err("stale file");
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        std::fs::remove_file(&path.0).expect("remove");
        drop(UnixListener::bind(&path.0).expect("bind after removing the file"));
    });
}

fn peer_cred_is_this_process(v: Variant) {
    v.block_on(async {
        let (a, b) = UnixStream::pair().expect("pair");
        let name = abstract_name("cred");
        let listener = UnixListener::bind_abstract(&name).expect("bind");
        let client = UnixStream::connect_abstract(&name).await.expect("connect");
        let (server, _) = within("accept", listener.accept()).await.expect("accept");
        for stream in [&a, &b, &client, &server] {
            let cred = stream.peer_cred().expect("peer_cred");
            assert_eq!(cred.pid, std::process::id() as i32);
            // SAFETY: getuid and getgid cannot fail and touch no memory.
            let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
            assert_eq!((cred.uid, cred.gid), (uid, gid));
        }
    });
}

fn owned_halves_on_two_tasks(v: Variant) {
    const TOTAL: usize = 1 << 20;
    v.block_on(async {
        let (a, b) = UnixStream::pair().expect("pair");
        let (mut read, mut write) = a.into_split();
        let (mut b_read, mut b_write) = b.into_split();
        let data = message(3, TOTAL);
        let sent = data.clone();
        let writer = spawn(async move {
            for chunk in sent.chunks(7919) {
                let (res, _) = write.write_all(chunk.to_vec()).await;
                res.expect("write half");
            }
            write.shutdown().await.expect("shutdown");
            write
        });
        // The peer echoes through its own halves, on its own task.
        let echo = spawn(async move {
            loop {
                let (res, buf) = b_read.read(Vec::with_capacity(8192)).await;
                if res.expect("peer read") == 0 {
                    break;
                }
                let (res, _) = b_write.write_all(buf).await;
                res.expect("peer write");
            }
        });
        let got = within("read half", async {
            let mut got = Vec::with_capacity(TOTAL);
            while got.len() < TOTAL {
                let (res, buf) = read.read(Vec::with_capacity(8192)).await;
                assert!(res.expect("read half") > 0, "early end of stream");
                got.extend_from_slice(&buf);
            }
            got
        })
        .await;
        assert!(got == data, "bytes lost or reordered");
        let write = within("writer", writer).await.expect("writer");
        within("echo", echo).await.expect("echo");
        assert!(read.peer_addr().expect("peer").is_unnamed());
        let stream = read.reunite(write).expect("reunite");
        let (other, _) = UnixStream::pair().expect("pair");
        let (r2, _) = other.into_split();
        let (_, w) = stream.into_split();
        assert!(r2.reunite(w).is_err(), "halves of two streams reunited");
    });
}

fn incoming_is_a_stream_of_connections(v: Variant) {
    use futures_core::Stream;
    let path = TempPath::new("incoming");
    v.block_on(async {
        let listener = UnixListener::bind(&path.0).expect("bind");
        let mut clients = Vec::new();
        for i in 0..4 {
            let mut c = UnixStream::connect(&path.0).await.expect("connect");
            let (res, _) = c.write_all(vec![i as u8]).await;
            res.expect("write");
            clients.push(c);
        }
        let mut incoming = std::pin::pin!(listener.incoming());
        let mut seen = Vec::new();
        within("incoming", async {
            while seen.len() < 4 {
                let next = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx)).await;
                let (mut stream, peer) = next.expect("ended early").expect("accepted");
                assert!(peer.is_unnamed(), "a connecting client is unnamed: {peer}");
                let (res, buf) = stream.read_exact(vec![0u8; 1]).await;
                res.expect("read");
                seen.push(buf[0]);
            }
        })
        .await;
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3]);
    });
}

fn pooled_reads_work_on_unix_streams(v: Variant) {
    v.block_on(async {
        let (mut a, mut b) = UnixStream::pair().expect("pair");
        let data = message(4, 200 * 1000);
        let sent = data.clone();
        let writer = spawn(async move {
            for chunk in sent.chunks(5000) {
                let (res, _) = a.write_all(chunk.to_vec()).await;
                res.expect("write");
            }
        });
        let got = within("pooled reads", async {
            let mut got = Vec::new();
            while let Some(buf) = b.recv_pooled().await.expect("pooled read") {
                got.extend_from_slice(&buf);
            }
            got
        })
        .await;
        assert!(got == data, "bytes lost or reordered");
        writer.await.expect("writer");
    });
}

fn large_writes_never_use_zero_copy(v: Variant) {
    let rt = v
        .builder()
        .zero_copy_sends(Some(4096))
        .zero_copy_on_loopback(true)
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (mut a, b) = UnixStream::pair().expect("pair");
        let echo = spawn(echo(b));
        for i in 0..4 {
            within("round trip", round_trip(&mut a, message(5 + i, 256 * 1024))).await;
        }
        drop(a);
        within("echo", echo).await.expect("echo");
    });
    assert_eq!(
        rt.stats().driver.zero_copy_sends,
        0,
        "a Unix write went zero-copy"
    );
}

each_variant!(
    echo_many_connections_on_a_path,
    half_close_then_reply,
    pair_round_trip_and_unnamed_addresses,
    abstract_names_bind_connect_and_report,
    pathname_addresses_and_stale_files,
    peer_cred_is_this_process,
    owned_halves_on_two_tasks,
    incoming_is_a_stream_of_connections,
    pooled_reads_work_on_unix_streams,
    large_writes_never_use_zero_copy,
);
