//! Hostile peers beside a well-behaved client, on every backend, against a corering echo
//! server (one task per connection): peers that reset mid-request (`SO_LINGER` 0), half-close,
//! connect and vanish, send one byte at a time (slowloris), and send urgent data. The good
//! client's every echo completes and is right, every hostile peer gets what it is owed (the
//! half-closer its whole echo, the urgent sender its in-band bytes), the server's tasks all
//! end and none of its sockets is left open.
use std::cell::Cell;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use corering::net::TcpListener;
use corering::{spawn, time};

use crate::each_variant;
use crate::scaled;
use crate::support::*;

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s
}

/// Reads until end of stream (or a reset, which a hostile peer's own socket may see).
fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if is_reset(&e) => return out,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn resetter(addr: SocketAddr) {
    let mut s = connect(addr);
    s.write_all(&[1u8; 100]).expect("partial request");
    set_linger_zero(s.as_raw_fd());
}

fn half_closer(addr: SocketAddr, i: usize) {
    let mut s = connect(addr);
    let msg: Vec<u8> = (0..1000).map(|k| (i + k) as u8).collect();
    s.write_all(&msg).expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_to_end(&mut s), msg, "half-closer {i}: its echo");
}

fn vanisher(addr: SocketAddr) {
    drop(connect(addr));
}

fn slowloris(addr: SocketAddr, i: usize) {
    let mut s = connect(addr);
    for k in 0..10u8 {
        s.write_all(&[k ^ i as u8]).expect("one byte");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s); // gone without finishing anything
}

/// "abc", one urgent byte, "def": the stream (SO_OOBINLINE off) carries "abcdef".
fn urgent(addr: SocketAddr) {
    let mut s = connect(addr);
    s.write_all(b"abc").expect("send");
    nix::sys::socket::send(s.as_raw_fd(), b"!", nix::sys::socket::MsgFlags::MSG_OOB)
        .expect("send urgent");
    s.write_all(b"def").expect("send");
    s.shutdown(Shutdown::Write).expect("half-close");
    assert_eq!(read_to_end(&mut s), b"abcdef", "urgent: the in-band bytes");
}

/// The well-behaved client: `rounds` echoes of 64 bytes on one connection, all checked.
fn good_client(addr: SocketAddr, rounds: usize) {
    let mut s = connect(addr);
    for r in 0..rounds {
        std_echo_round(&mut s, &[r as u8; 64]);
    }
}

/// Every hostile kind, a few threads of each, with the good client; returns when all ended.
fn clients(addr: SocketAddr, rounds: usize, hostile: usize) {
    let mut threads = vec![std::thread::spawn(move || good_client(addr, rounds))];
    for t in 0..4 {
        threads.push(std::thread::spawn(move || {
            for i in 0..hostile {
                match (i + t) % 5 {
                    0 => resetter(addr),
                    1 => half_closer(addr, i),
                    2 => vanisher(addr),
                    3 => slowloris(addr, i),
                    _ => urgent(addr),
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
    }
}

fn hostile_peers_beside_a_good_client(v: Variant) {
    let (rounds, hostile) = (scaled(500), scaled(50));
    v.with_runtime(|rt| {
        let (sockets, served) = rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let done = Arc::new(AtomicBool::new(false));
            let client = {
                let done = done.clone();
                std::thread::spawn(move || {
                    clients(addr, rounds, hostile);
                    done.store(true, Ordering::Release);
                })
            };
            let (live, sockets) = (
                Rc::new(Cell::new(0usize)),
                Rc::new(Cell::new(HashSet::new())),
            );
            let acceptor = {
                let (live, sockets) = (live.clone(), sockets.clone());
                spawn(async move {
                    loop {
                        let (stream, _) = listener.accept().await.expect("accept");
                        let mut set = sockets.take();
                        set.insert(fd_target(stream.as_raw_fd()).expect("fd"));
                        sockets.set(set);
                        live.set(live.get() + 1);
                        let live = live.clone();
                        spawn(async move {
                            echo_stream(stream).await; // ends on EOF or any error
                            live.set(live.get() - 1);
                        });
                    }
                })
            };
            within("clients", async {
                while !done.load(Ordering::Acquire) {
                    time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            client
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            assert!(
                settle(|| live.get() == 0).await,
                "{} server tasks left",
                live.get()
            );
            acceptor.abort();
            let set = sockets.take();
            let n = set.len();
            (set, n)
        });
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "op slots left: {}",
            rt.live_ops()
        );
        let left = open_fds()
            .into_values()
            .filter(|t| sockets.contains(t))
            .count();
        assert_eq!(left, 0, "server sockets left open");
        eprintln!(
            "FIGURE hostile::{}: good client {rounds}/{rounds} echoes right beside {} hostile \
             peers (reset, half-close, vanish, slowloris, urgent); server sockets left: {left} \
             of {served}",
            v.label(),
            4 * hostile
        );
    });
}
each_variant!(hostile_peers_beside_a_good_client);
