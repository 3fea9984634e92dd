//! Connection flood, on every backend: `scaled(10_000)` connections held open at once (the
//! clients in a child process, so that each side has its own fd table), then one echo each,
//! every byte checked, then all closed: the server's sockets are all closed again and no op
//! slot is left.
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};

use corering::net::TcpListener;
use corering::spawn;

use crate::each_variant;
use crate::scaled;
use crate::support::*;

const ADDR_VAR: &str = "CORERING_FLOOD_ADDR";
const COUNT_VAR: &str = "CORERING_FLOOD_COUNT";

/// How many connections: 10,000 (scaled), within what the fd limit leaves room for.
fn connections() -> usize {
    let limit = raise_fd_limit() as usize;
    scaled(10_000).min(limit.saturating_sub(4096))
}

/// The 16-byte message of connection `i`.
fn message(i: usize) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&(i as u64).to_le_bytes());
    m[8..].copy_from_slice(&(!(i as u64)).to_le_bytes());
    m
}

fn flood_of_idle_connections_then_one_echo_each(v: Variant) {
    let _serial = serial(); // 10,000 fds at a time is enough for this process
    let n = connections();
    v.with_runtime(|rt| {
        let (sockets, echoed) = rt.block_on(serve_flood(n));
        assert_eq!(echoed, 16 * n, "bytes echoed");
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "op slots left: {}",
            rt.live_ops()
        );
        let left = open_fds()
            .into_values()
            .filter(|t| sockets.contains(t))
            .count();
        assert_eq!(left, 0, "server sockets left open of {}", sockets.len());
        eprintln!(
            "FIGURE flood::{}: {n} connections held at once, {} bytes checked each way, \
             server sockets open after: {left} of {}",
            v.label(),
            16 * n,
            sockets.len()
        );
    });
}
each_variant!(flood_of_idle_connections_then_one_echo_each);

/// The server: accepts `n` connections, echoes each until its client closes; returns the
/// open files its sockets were (`socket:[inode]`) and the bytes echoed.
async fn serve_flood(n: usize) -> (HashSet<String>, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = std::thread::spawn(move || {
        let (addr, count) = (addr.to_string(), n.to_string());
        let env = [
            (ADDR_VAR, Some(addr.as_str())),
            (COUNT_VAR, Some(count.as_str())),
        ];
        run_child("flood::child_flood_clients", "1", &env);
    });
    let mut sockets = HashSet::new();
    let mut echoers = Vec::with_capacity(n);
    for _ in 0..n {
        let (stream, _) = within("accept", listener.accept()).await.expect("accept");
        sockets.insert(fd_target(std::os::fd::AsRawFd::as_raw_fd(&stream)).expect("fd"));
        echoers.push(spawn(echo_stream(stream)));
    }
    let mut echoed = 0;
    for e in echoers {
        echoed += within("echo", e).await.expect("echo task");
    }
    let done = spawn_std_join(client);
    within("client process", done).await;
    (sockets, echoed)
}

/// Waits for a std thread without blocking the core.
async fn spawn_std_join(t: std::thread::JoinHandle<()>) {
    while !t.is_finished() {
        corering::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
}

#[test]
#[ignore = "runs as a child process of flood_of_idle_connections_then_one_echo_each"]
fn child_flood_clients() {
    let addr: SocketAddr = std::env::var(ADDR_VAR)
        .expect("addr")
        .parse()
        .expect("addr");
    let n: usize = std::env::var(COUNT_VAR).expect("n").parse().expect("n");
    raise_fd_limit();
    // All held open at once, idle, before any byte goes out.
    let mut conns: Vec<_> = (0..n)
        .map(|i| std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {i}: {e}")))
        .collect();
    for (i, c) in conns.iter_mut().enumerate() {
        std_echo_round(c, &message(i));
    }
    // The client ends its side; the server closes first (its side takes the TIME_WAIT), and
    // each client reads a clean end of stream.
    for c in &conns {
        c.shutdown(Shutdown::Write).expect("shutdown");
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let mut byte = [0u8];
        assert_eq!(
            c.read(&mut byte).expect("read eof"),
            0,
            "conn {i}: bytes after the echo"
        );
    }
    let _ = std::io::stdout().flush();
    println!("CHILD-OK");
}
