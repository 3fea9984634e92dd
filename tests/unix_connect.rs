//! Unix stream sockets on every backend: connecting to a full backlog (refused at once), a dropped `accept`
//! that loses nothing, std conversions, and refused addresses.
mod support;

use std::io::ErrorKind;
use std::os::fd::AsRawFd;

use corering::net::unix::{UnixListener, UnixStream};
use support::*;

/// A listener on a fresh abstract name with a backlog of 0: one connection fits.
fn tiny_backlog_listener(what: &str) -> (UnixListener, String) {
    let name = unique_name(what);
    let listener = UnixListener::bind_abstract(&name).expect("bind");
    // SAFETY: a plain call on a listening socket this test owns.
    let res = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    assert_eq!(res, 0, "listen: {}", std::io::Error::last_os_error());
    (listener, name)
}

/// A connect to a full backlog is refused at once with `WouldBlock` on every backend (never a
/// wait without end, never a fake success on an unconnected socket); once the listener has
/// accepted, there is room again; the first connection works.
fn connect_to_a_full_backlog(v: Variant) {
    v.block_on(async {
        let (listener, name) = tiny_backlog_listener("backlog");
        let mut first = UnixStream::connect_abstract(&name).await.expect("first");
        let second = within("second connect", UnixStream::connect_abstract(&name)).await;
        let err = second.expect_err("a connect to a full backlog succeeded");
        assert_eq!(err.kind(), ErrorKind::WouldBlock, "{err}");
        let (mut accepted, _) = within("accept", listener.accept()).await.expect("accept");
        let third = within("third connect", UnixStream::connect_abstract(&name)).await;
        let third = third.expect("connect once there is room");
        let (conn, _) = within("accept 2", listener.accept())
            .await
            .expect("accept 2");
        drop((third, conn));
        let (res, _) = first.write_all(b"ok".to_vec()).await;
        res.expect("write");
        let (res, buf) = within("read", accepted.read_exact(vec![0u8; 2])).await;
        res.expect("read");
        assert_eq!(buf, b"ok");
    });
}

fn a_dropped_accept_loses_no_connection(v: Variant) {
    v.block_on(async {
        let name = unique_name("dropped-accept");
        let listener = UnixListener::bind_abstract(&name).expect("bind");
        for round in 0..3u8 {
            assert!(
                !poll_once_then_drop(listener.accept()).await,
                "nothing to accept yet"
            );
            let mut client = UnixStream::connect_abstract(&name).await.expect("connect");
            let (res, _) = client.write_all(vec![round]).await;
            res.expect("write");
            let (mut server, _) = within("accept", listener.accept()).await.expect("accept");
            let (res, buf) = within("read", server.read_exact(vec![0u8; 1])).await;
            res.expect("read");
            assert_eq!(buf, [round]);
        }
    });
}

fn from_std_and_into_std_round_trip(v: Variant) {
    v.block_on(async {
        let (std_a, mut std_b) = std::os::unix::net::UnixStream::pair().expect("std pair");
        let mut a = UnixStream::from_std(std_a).expect("from_std");
        let (res, _) = a.write_all(b"hello".to_vec()).await;
        res.expect("write");
        let (mut back, unread) = a.into_std().await.expect("into_std");
        assert!(unread.bytes.is_empty() && unread.error.is_none());
        use std::io::{Read, Write};
        let mut buf = [0u8; 5];
        std_b.read_exact(&mut buf).expect("std read");
        assert_eq!(&buf, b"hello");
        back.write_all(b"!").expect("std write");
        std_b.read_exact(&mut buf[..1]).expect("std read");
        assert_eq!(buf[0], b'!');
    });
}

fn bad_addresses_are_refused(v: Variant) {
    v.block_on(async {
        let long = "x".repeat(200);
        let err = UnixListener::bind(&long).expect_err("too long");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = UnixStream::connect("a\0b").await.expect_err("NUL in path");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let missing = TempPath::new("missing");
        let err = UnixStream::connect(&missing.0).await.expect_err("no file");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    });
}

each_variant!(
    connect_to_a_full_backlog,
    a_dropped_accept_loses_no_connection,
    from_std_and_into_std_round_trip,
    bad_addresses_are_refused,
);
