// cargo run --example udp_echo -- --addr 127.0.0.1:7001 --backend epoll
//! UDP echo server on one core: every datagram goes back to its sender, with owned buffers.
//!
//! `--backend` defaults to auto (`CORERING_BACKEND` overrides auto). Try it with
//! `nc -u 127.0.0.1 7001`. Datagrams larger than 64 KiB are cut (and said so on stderr).

use std::io;

use corering::net::UdpSocket;
use corering::{BackendChoice, Builder};

const USAGE: &str = "usage: udp_echo [--addr HOST:PORT] [--backend auto|uring|epoll] [--help]";

fn usage(msg: &str) -> ! {
    eprintln!("udp_echo: {msg}");
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7001".to_string();
    let mut backend = BackendChoice::Auto;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args.next().unwrap_or_else(|| usage("missing value"));
        match (flag.as_str(), value.as_str()) {
            ("--addr", _) => addr = value,
            ("--backend", "auto") => backend = BackendChoice::Auto,
            ("--backend", "uring") => backend = BackendChoice::Uring,
            ("--backend", "epoll") => backend = BackendChoice::Epoll,
            _ => usage(&format!("bad option {flag} {value}")),
        }
    }
    let rt = Builder::new().backend(backend).build()?;
    println!("{}", rt.backend());
    rt.block_on(echo(&addr))
}

/// Receives a datagram, sends it back, and again, reusing one buffer.
async fn echo(addr: &str) -> io::Result<()> {
    let socket = UdpSocket::bind(addr)?;
    println!("echoing datagrams on {}", socket.local_addr()?);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let (res, b) = socket.recv_from_meta(buf).await;
        let meta = match res {
            Ok(meta) => meta,
            Err(e) => {
                eprintln!("recv_from: {e}");
                buf = b;
                continue;
            }
        };
        if meta.truncated {
            eprintln!("{}: datagram cut to {} bytes", meta.addr, meta.len);
        }
        let (res, b) = socket.send_to(b, meta.addr).await;
        if let Err(e) = res {
            eprintln!("send_to {}: {e}", meta.addr);
        }
        buf = b;
    }
}
