//! fd numbers are reused by the kernel at once; nothing of a closed socket may reach the next
//! socket with its number: not an op that was queued but not yet submitted when its future
//! was dropped (io_uring), not a stale epoll registration of a socket dropped outside its
//! runtime.
mod support;

use std::future::{poll_fn, Future};
use std::io::Write;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use corering::net::TcpStream;
use corering::time::timeout;
use support::*;

fn a_dropped_queued_write_never_reaches_the_socket_that_reuses_its_fd(v: Variant) {
    v.with_runtime(|rt| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        rt.block_on(async {
            let mut a = TcpStream::connect(addr).await.expect("connect");
            let (_pa, _) = l.accept().expect("accept a");
            {
                // Polled once: on io_uring the SEND is queued, then the future is dropped.
                let mut w = pin!(a.write(b"SECRET-FOR-A".to_vec()));
                poll_fn(|cx| Poll::Ready(w.as_mut().poll(cx).is_ready())).await;
            }
            drop(a);
            // The next socket made takes the lowest free fd: most likely a's old number.
            let b = std::net::TcpStream::connect(addr).expect("connect b");
            let (mut pb, _) = l.accept().expect("accept b");
            assert_nothing_arrives(&mut pb).await;
            drop(b);
        });
    });
}
each_variant!(a_dropped_queued_write_never_reaches_the_socket_that_reuses_its_fd);

fn a_stream_dropped_outside_its_runtime_leaves_no_stale_registration(v: Variant) {
    v.with_runtime(|rt| {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let s = rt.block_on(async {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            // A read that parks registers the fd with epoll.
            let _ = timeout(Duration::from_millis(5), s.read(Vec::with_capacity(16))).await;
            s
        });
        let (_p1, _) = l.accept().expect("accept 1");
        drop(s); // outside block_on
        rt.block_on(async {
            let mut s2 =
                TcpStream::from_std(std::net::TcpStream::connect(addr).expect("connect 2"))
                    .expect("from_std");
            let (mut p2, _) = l.accept().expect("accept 2");
            p2.write_all(b"hi").expect("write");
            let (res, buf) = within("read on the reused fd", s2.read(Vec::with_capacity(16))).await;
            assert_eq!(res.expect("read"), 2);
            assert_eq!(&buf[..], b"hi");
        });
    });
}
each_variant!(a_stream_dropped_outside_its_runtime_leaves_no_stale_registration);
