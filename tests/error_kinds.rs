//! corering's errors carry the same `io::ErrorKind` as std's in the same situation, on every
//! backend (adapters and callers match on kinds): connection refused, address in use, address
//! not available, reads and writes after a peer reset, `read_exact` at end of stream, a missing
//! file, `create_new` on an existing file. Each case runs the std call and the corering call
//! side by side and compares the kinds.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;

use corering::net::{TcpListener, TcpStream};
use support::*;

/// A loopback port that refuses connections (bound, then closed).
fn closed_port() -> SocketAddr {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

fn kind_of<T: std::fmt::Debug>(res: std::io::Result<T>, what: &str) -> ErrorKind {
    res.expect_err(&format!("{what} succeeded")).kind()
}

fn connect_refused_and_addresses(v: Variant) {
    v.block_on(async {
        let addr = closed_port();
        let std_kind = kind_of(std::net::TcpStream::connect(addr), "std connect");
        let ours = kind_of(TcpStream::connect(addr).await, "connect");
        assert_eq!((ours, std_kind), (ErrorKind::ConnectionRefused, std_kind));

        let held = StdListener::bind("127.0.0.1:0").expect("bind");
        let taken = held.local_addr().expect("addr");
        let std_kind = kind_of(StdListener::bind(taken), "std bind on a taken port");
        let ours = kind_of(TcpListener::bind(taken), "bind on a taken port");
        assert_eq!(
            (ours, std_kind),
            (ErrorKind::AddrInUse, ErrorKind::AddrInUse)
        );

        // TEST-NET-1 (RFC 5737): never an address of this host.
        let foreign: SocketAddr = "192.0.2.1:0".parse().unwrap();
        let std_kind = kind_of(StdListener::bind(foreign), "std bind on a foreign address");
        let ours = kind_of(TcpListener::bind(foreign), "bind on a foreign address");
        assert_eq!(ours, std_kind);
        assert_eq!(ours, ErrorKind::AddrNotAvailable);
    });
}
each_variant!(connect_refused_and_addresses);

/// After the peer reset the connection, a read gives `ConnectionReset` and a write
/// `ConnectionReset` or `BrokenPipe` (which one depends on what the socket saw first), for std
/// and corering alike.
fn reads_and_writes_after_a_reset(v: Variant) {
    let _probe = SigpipeProbe::block();
    v.block_on(async {
        let (mut ours, peer) = std_peer_pair().await;
        let (std_side, std_peer) = std_pair();
        for p in [peer.as_raw_fd(), std_peer.as_raw_fd()] {
            set_linger_zero(p);
        }
        // Unread data makes the close a reset even without the linger option.
        (&peer).write_all(b"x").expect("peer write");
        drop((peer, std_peer));

        let (res, _) = ours.read(vec![0u8; 16]).await;
        // The byte sent before the reset may or may not be readable first.
        let res = match res {
            Ok(1) => ours.read(vec![0u8; 16]).await.0,
            res => res,
        };
        let ours_kind = kind_of(res, "read after reset");
        let mut buf = [0u8; 16];
        let std_kind = kind_of((&std_side).read(&mut buf), "std read after reset");
        assert_eq!(
            (ours_kind, std_kind),
            (ErrorKind::ConnectionReset, std_kind)
        );

        let (res, _) = ours.write_all(vec![1u8; 1 << 16]).await;
        let ours_kind = kind_of(res, "write after reset");
        let std_kind = kind_of(
            (&std_side).write_all(&[1u8; 1 << 16]),
            "std write after reset",
        );
        for kind in [ours_kind, std_kind] {
            assert!(
                matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "write after reset: {kind:?}"
            );
        }
    });
}
each_variant!(reads_and_writes_after_a_reset);

/// A connected std pair on loopback.
fn std_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (client, server)
}

fn read_exact_at_eof_and_files(v: Variant) {
    v.block_on(async {
        let (mut ours, peer) = std_peer_pair().await;
        drop(peer);
        let (res, _) = ours.read_exact(vec![0u8; 8]).await;
        let (mut std_side, std_peer) = std_pair();
        drop(std_peer);
        let std_res = std_side.read_exact(&mut [0u8; 8]);
        assert_eq!(kind_of(res, "read_exact at eof"), ErrorKind::UnexpectedEof);
        assert_eq!(
            kind_of(std_res, "std read_exact at eof"),
            ErrorKind::UnexpectedEof
        );

        let dir = std::env::temp_dir().join(format!("corering-kinds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let missing = dir.join(format!("missing-{}", v.label()));
        let std_kind = kind_of(std::fs::File::open(&missing), "std open of a missing file");
        let ours = kind_of(
            corering::fs::File::open(&missing).await,
            "open of a missing file",
        );
        assert_eq!((ours, std_kind), (ErrorKind::NotFound, ErrorKind::NotFound));

        let existing = dir.join(format!("existing-{}", v.label()));
        std::fs::write(&existing, b"x").expect("write");
        let std_kind = kind_of(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&existing),
            "std create_new on an existing file",
        );
        let res = corering::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&existing)
            .await;
        let ours = kind_of(res, "create_new on an existing file");
        assert_eq!(
            (ours, std_kind),
            (ErrorKind::AlreadyExists, ErrorKind::AlreadyExists)
        );
        let _ = std::fs::remove_file(&existing);
    });
}
each_variant!(read_exact_at_eof_and_files);
