//! One reader and one writer per stream, on every backend: borrowed halves read and write at
//! once in one task, owned halves in two tasks and reunite; reads append into a slice that
//! runs to the buffer's capacity.
mod support;

use std::io::{Read, Write};

use corering::net::TcpStream;
use corering::{spawn, IoBuf};
use support::*;

fn borrowed_halves_read_and_write_at_once(v: Variant) {
    v.block_on(async {
        let (mut a, b) = tcp_pair().await;
        let echo = spawn(echo_stream(b));
        let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
        let want = payload.clone();
        let (mut rd, mut wr) = a.split();
        let write = async {
            let (res, _) = wr.write_all(payload).await;
            res.expect("write_all");
            wr.shutdown().await.expect("shutdown");
        };
        let read = async {
            let mut got = Vec::new();
            loop {
                let (res, buf) = rd.read(Vec::with_capacity(8192)).await;
                match res.expect("read") {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        let ((), got) = within("split echo", join(write, read)).await;
        assert_eq!(got.len(), want.len());
        assert!(got == want, "echo differs");
        assert_eq!(within("echo", echo).await.expect("echo task"), want.len());
    });
}
each_variant!(borrowed_halves_read_and_write_at_once);

fn owned_halves_work_in_two_tasks_and_reunite(v: Variant) {
    v.block_on(async {
        let (a, mut peer) = std_peer_pair().await;
        let (mut rd, mut wr) = a.into_split();
        let writer = spawn(async move {
            let (res, _) = wr.write_all(b"from the write half".to_vec()).await;
            res.expect("write");
            wr
        });
        let reader = spawn(async move {
            let (res, buf) = rd.read_exact(vec![0u8; 5].into_boxed_slice()).await;
            res.expect("read_exact");
            assert_eq!(&buf[..], b"hello");
            rd
        });
        peer.write_all(b"hello").expect("peer write");
        let wr = within("writer", writer).await.expect("writer task");
        let rd = within("reader", reader).await.expect("reader task");
        let mut got = [0u8; 19];
        peer.read_exact(&mut got).expect("peer read");
        assert_eq!(&got, b"from the write half");
        let (other, _peer2) = std_peer_pair().await;
        let (_, other_wr) = other.into_split();
        let err = rd.reunite(other_wr).expect_err("halves of two streams");
        let mut stream: TcpStream = err.0.reunite(wr).expect("halves of one stream");
        let (res, _) = stream.write_all(b"!".to_vec()).await;
        res.expect("write after reunite");
    });
}
each_variant!(owned_halves_work_in_two_tasks_and_reunite);

fn a_read_into_a_slice_appends_up_to_capacity(v: Variant) {
    v.block_on(async {
        let (mut a, mut peer) = std_peer_pair().await;
        peer.write_all(b"first").expect("write");
        let mut buf = Vec::with_capacity(64);
        while buf.len() < 5 {
            let at = buf.len();
            let (res, slice) = a.read(buf.slice(at..)).await;
            assert!(
                res.expect("read") > 0,
                "read into the spare capacity gave 0"
            );
            buf = slice.into_inner();
        }
        peer.write_all(b"+more").expect("write");
        while buf.len() < 10 {
            let at = buf.len();
            let (res, slice) = a.read(buf.slice(at..)).await;
            assert!(res.expect("read") > 0);
            buf = slice.into_inner();
        }
        assert_eq!(&buf[..], b"first+more");
    });
}
each_variant!(a_read_into_a_slice_appends_up_to_capacity);
