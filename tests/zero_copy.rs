//! Zero-copy sends (io_uring 6.0+, forced onto loopback here): bytes arrive whole and in
//! order; a send dropped in flight keeps its buffer until the kernel's notification, then
//! frees it; the write side then refuses more writes only if that send had sent something.
mod support;

use std::io::Read;

use corering::net::TcpStream;
use corering::{spawn, IoBuf};
use support::*;

const CHUNK: usize = 64 * 1024;

fn zc_builder(v: Variant) -> corering::Builder {
    v.builder()
        .zero_copy_sends(Some(4096))
        .zero_copy_on_loopback(true)
}

fn zero_copy_sends_deliver_in_order(v: Variant) {
    let rt = zc_builder(v).build().expect("runtime");
    rt.block_on(async {
        let (mut client, mut server) = tcp_pair().await;
        let mut data = vec![0; 16 * CHUNK];
        Pattern::new(11).fill(&mut data);
        let sent = data.clone();
        let writer = spawn(async move {
            for chunk in sent.chunks(CHUNK - 100) {
                let (res, _) = client.write_all(chunk.to_vec()).await;
                res.expect("zero-copy write");
            }
            client
        });
        let mut got = Vec::new();
        while got.len() < data.len() {
            let (res, buf) = server.read(Vec::with_capacity(CHUNK)).await;
            assert!(res.expect("read") > 0, "early eof");
            got.extend_from_slice(&buf);
        }
        assert!(got == data, "bytes lost or reordered");
        drop(writer.await.expect("writer"));
    });
    let zc = rt
        .backend()
        .uring()
        .is_some_and(|u| u.fast_path.contains(&"SEND_ZC"));
    let sends = rt.stats().driver.zero_copy_sends;
    assert_eq!(
        sends > 0,
        zc,
        "zero-copy sends {sends}, SEND_ZC in use: {zc}"
    );
}
each_variant!(zero_copy_sends_deliver_in_order);

fn a_dropped_zero_copy_send_frees_its_buffer_after_the_kernel(v: Variant) {
    let rt = zc_builder(v).build().expect("runtime");
    let drops = DropCounter::new();
    rt.block_on(async {
        let (mut client, mut peer) = std_peer_pair().await;
        // A large send into a full socket: it stays in flight, and is dropped there.
        let mut filled = 0;
        loop {
            let buf = TrackedBuf::from_vec(vec![7; CHUNK], &drops);
            let write = client.write(buf);
            let done = poll_once_then_drop(write).await;
            if !done {
                break;
            }
            filled += 1;
            assert!(filled < 10_000, "the socket never filled");
        }
        // The peer drains everything; the dropped send's buffer goes once the kernel is done.
        let reader = std::thread::spawn(move || {
            let mut sink = vec![0; CHUNK];
            while matches!(peer.read(&mut sink), Ok(n) if n > 0) {}
        });
        assert!(
            settle(|| drops.live() == 0).await,
            "{} buffers alive",
            drops.live()
        );
        // That send may have sent part of its buffer: later writes refuse, or (nothing sent)
        // go ahead; either way nothing is sent twice.
        let (res, _) = client.write(b"after".slice(..)).await;
        if let Err(e) = res {
            assert!(e.to_string().contains("offset is unknown"), "{e}");
        }
        drop(client);
        reader.join().expect("reader");
    });
}
each_variant!(a_dropped_zero_copy_send_frees_its_buffer_after_the_kernel);

/// Kept for the type check: a zero-copy stream is a plain stream.
#[allow(dead_code)]
fn _is_stream(_: &TcpStream) {}
