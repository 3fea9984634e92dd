//! Shutdown under load, on every backend: `scaled(1_000)` connections doing 1 KiB
//! request/response when SIGTERM comes (`Builder::shutdown_on_signals`, a short grace; the
//! test runs in a child process, signals being process-wide). Half of them are
//! mid-request then (half a request sent, never finished), so the deadline must cancel their
//! tasks. On the wire: every response a client received is whole and right, nothing follows
//! the last whole one but a clean end of stream (the close rule: FIN first, on both
//! backends).
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use corering::net::TcpListener;
use corering::{shutdown_requested, spawn, ShuttingDown};

use crate::each_variant;
use crate::scaled;
use crate::support::*;

const MSG: usize = 1024;
const ROUNDS: usize = 3;

fn request(conn: usize, round: usize) -> Vec<u8> {
    (0..MSG)
        .map(|k| (conn * 7 + round * 13 + k) as u8)
        .collect()
}

/// One connection's server task: answers whole 1 KiB requests until end of stream.
async fn answer(mut stream: corering::net::TcpStream) {
    let mut buf = vec![0u8; MSG];
    loop {
        let (res, b) = stream.read_exact(buf).await;
        if res.is_err() {
            return;
        }
        let (res, b) = stream.write_all(b).await;
        if res.is_err() {
            return;
        }
        buf = b;
    }
}

/// The clients: ROUNDS whole exchanges each, then half send half a request; the shutdown
/// comes; then what each reads: `(whole responses after the rounds, how it ended)`.
fn clients(addr: SocketAddr, n: usize) -> Vec<(usize, String)> {
    let mut conns: Vec<_> = (0..n)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    for round in 0..ROUNDS {
        for (i, c) in conns.iter_mut().enumerate() {
            std_echo_round(c, &request(i, round));
        }
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let len = if i % 2 == 0 { MSG } else { MSG / 2 }; // odd ones stop mid-request
        c.write_all(&request(i, ROUNDS)[..len])
            .expect("last request");
    }
    std::thread::sleep(Duration::from_millis(20));
    // As a shell's `kill` would: to the whole process (the child running only this test).
    // SAFETY: kill(2) with our own pid and a signal number; no memory is passed.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(sent, 0, "kill: {}", std::io::Error::last_os_error());
    conns
        .iter_mut()
        .enumerate()
        .map(|(i, c)| read_rest(c, i))
        .collect()
}

/// What follows the rounds on connection `i`: whole, right responses, then how it ended.
fn read_rest(c: &mut std::net::TcpStream, i: usize) -> (usize, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match c.read(&mut buf) {
            Ok(0) => break "eof".to_string(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break format!("{:?}", e.kind()),
        }
    };
    assert_eq!(
        got.len() % MSG,
        0,
        "conn {i}: a response cut at {} bytes",
        got.len()
    );
    if !got.is_empty() {
        assert_eq!(got, request(i, ROUNDS), "conn {i}: the last response");
    }
    (got.len() / MSG, end)
}

fn shutdown_under_load_leaves_nothing_half_written(v: Variant) {
    run_child("drain::child_sigterm_under_load", &v.label(), &[]);
}
each_variant!(shutdown_under_load_leaves_nothing_half_written);

#[test]
#[ignore = "runs as a child process of shutdown_under_load_leaves_nothing_half_written"]
fn child_sigterm_under_load() {
    let Some(label) = child_message() else {
        return;
    };
    sigterm_under_load(Variant::from_label(&label).expect("a variant label"));
    println!("CHILD-OK");
}

fn sigterm_under_load(v: Variant) {
    let n = scaled(1_000);
    raise_fd_limit();
    let builder = v.builder().cores(1);
    let rt = builder
        .shutdown_on_signals(Duration::from_millis(200))
        .build()
        .expect("build");
    let (bound, addr) = mpsc::channel();
    let client = std::thread::spawn(move || clients(addr.recv().expect("addr"), n));
    let reports = rt
        .run(|_| {
            let bound = bound.clone();
            async move {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                bound
                    .send(listener.local_addr().expect("addr"))
                    .expect("send");
                loop {
                    match listener.accept().await {
                        Ok((s, _)) => drop(spawn(answer(s))),
                        Err(e) if ShuttingDown::is(&e) => break,
                        Err(e) => panic!("accept: {e}"),
                    }
                }
                shutdown_requested().await;
            }
        })
        .expect("run");
    reports.into_iter().for_each(|r| r.output.expect("root"));
    let seen = client.join().expect("clients");
    let answered = seen.iter().filter(|(whole, _)| *whole == 1).count();
    let clean = seen.iter().filter(|(_, end)| end == "eof").count();
    assert_eq!(clean, n, "ends other than a clean close: {:?}", ends(&seen));
    assert!(
        answered <= n.div_ceil(2),
        "answered a request never finished"
    );
    eprintln!(
        "FIGURE drain::{}: {n} connections under load at SIGTERM: {answered} last requests \
         answered whole, {} cut at the deadline; {clean} clean closes, none half-written",
        v.label(),
        n - answered
    );
}

fn ends(seen: &[(usize, String)]) -> Vec<&str> {
    seen.iter()
        .map(|(_, e)| e.as_str())
        .filter(|e| *e != "eof")
        .collect()
}
