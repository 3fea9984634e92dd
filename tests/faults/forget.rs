//! Ops whose futures are `mem::forget`-ten while in flight, and a `read_exact` dropped part
//! way, on every backend. A forgotten op may still move bytes in the kernel (io_uring runs it
//! to completion) that nobody sees or counts, so the side it was on refuses every later op
//! with an error that says why, instead of handing out bytes out of place; its buffer is never
//! freed (leaked with the future, never handed to the allocator while the kernel may write
//! it). The other side goes on working.
use std::io::{Read, Write};
use std::pin::Pin;
use std::time::Duration;

use corering::net::PartialRead;
use corering::time::timeout;

use crate::each_variant;
use crate::support::*;

/// Polls a boxed future once; whether it finished.
async fn poll_once<F: std::future::Future>(fut: &mut Pin<Box<F>>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
}

/// A read forgotten in flight: bytes the peer sends next would go to its buffer, so the next
/// read is refused; the buffer is not freed; writes still work.
fn a_forgotten_read_makes_the_stream_refuse_reads(v: Variant) {
    let freed = DropCounter::new();
    v.block_on(async {
        let (mut stream, mut peer) = std_peer_pair().await;
        let mut read = Box::pin(stream.read(TrackedBuf::with_capacity(16, &freed)));
        assert!(
            !poll_once(&mut read).await,
            "nothing sent yet: the read waits"
        );
        std::mem::forget(read);
        peer.write_all(b"abc").expect("peer write");
        let (res, _) = within(
            "read after a forgotten one",
            stream.read(Vec::with_capacity(16)),
        )
        .await;
        let e = res.expect_err("refused");
        assert!(e.to_string().contains("forgotten"), "{e}");
        let (res, _) = stream.write_all(b"ok".to_vec()).await;
        res.expect("the write side works");
        let mut got = [0u8; 2];
        peer.read_exact(&mut got).expect("peer read");
        assert_eq!(&got, b"ok");
    });
    assert_eq!(freed.dropped(), 0, "the forgotten read's buffer was freed");
}
each_variant!(a_forgotten_read_makes_the_stream_refuse_reads);

/// A write forgotten in flight (the socket's buffer full, so it waits): its bytes may still go
/// out behind later ones, so the next write is refused; reads still work.
fn a_forgotten_write_makes_the_stream_refuse_writes(v: Variant) {
    v.block_on(async {
        let (mut stream, mut peer) = std_peer_pair().await;
        let forgotten = loop {
            let mut write = Box::pin(stream.write(vec![7u8; 256 << 10]));
            if !poll_once(&mut write).await {
                break write;
            }
        };
        std::mem::forget(forgotten);
        let (res, _) = within("write after a forgotten one", stream.write(b"x".to_vec())).await;
        let e = res.expect_err("refused");
        assert!(e.to_string().contains("forgotten"), "{e}");
        peer.write_all(b"hi").expect("peer write");
        let (res, buf) = within("read", stream.read(Vec::with_capacity(2))).await;
        assert_eq!(res.expect("the read side works"), 2);
        assert_eq!(&buf[..], b"hi");
    });
}
each_variant!(a_forgotten_write_makes_the_stream_refuse_writes);

/// A `read_exact` dropped after part of its buffer was filled: those bytes went with it, so
/// the next read is refused (it would return the bytes after them as if they came next),
/// saying how many were lost; cut through a scope instead, the count comes back.
fn a_dropped_read_exact_makes_reads_refuse(v: Variant) {
    v.block_on(async {
        let (mut stream, mut peer) = std_peer_pair().await;
        peer.write_all(b"12345").expect("peer write");
        let res = timeout(Duration::from_millis(50), stream.read_exact(vec![0u8; 10])).await;
        assert!(
            res.is_err(),
            "only 5 of 10 bytes came: the read_exact waits"
        );
        peer.write_all(b"67890").expect("peer write");
        let (res, _) = within("read after the drop", stream.read(Vec::with_capacity(16))).await;
        let e = res.expect_err("refused");
        assert!(e.to_string().contains("5 bytes"), "{e}");
        let e = stream
            .recv_pooled()
            .await
            .expect_err("pooled reads refused too");
        assert!(e.to_string().contains("5 bytes"), "{e}");
    });
    v.block_on(async {
        use corering::cancel::{CancelExt, Cancelled};
        let (mut stream, mut peer) = std_peer_pair().await;
        peer.write_all(b"12345").expect("peer write");
        let (res, buf) = stream
            .read_exact(vec![0u8; 10])
            .cancel_after(Duration::from_millis(50))
            .await;
        let e = res.expect_err("cut");
        assert!(Cancelled::is(&e), "{e}");
        let n = PartialRead::of(&e).expect("a count").read;
        assert_eq!(&buf[..n], b"12345");
        peer.write_all(b"67890").expect("peer write");
        let (res, buf) = within("read after the cut", stream.read(Vec::with_capacity(16))).await;
        assert_eq!(res.expect("reads go on"), 5);
        assert_eq!(&buf[..], b"67890");
    });
}
each_variant!(a_dropped_read_exact_makes_reads_refuse);
