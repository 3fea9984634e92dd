// cargo run --release --example echo -- --addr 127.0.0.1:7000 --backend uring
//! TCP echo server, one task per connection, owned buffers. `--backend` defaults to auto
//! (`CORERING_BACKEND` overrides auto); `--max-conns N` serves N connections, then exits.

use std::{io, time::Duration};

use corering::net::{TcpListener, TcpStream};
use corering::{BackendChoice, Builder, IoBuf};

fn usage(msg: &str) -> ! {
    eprintln!("echo: {msg}");
    eprintln!("usage: echo [--addr HOST:PORT] [--backend auto|uring|epoll] [--max-conns N]");
    std::process::exit(2);
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7000".to_string();
    let (mut backend, mut max_conns) = (BackendChoice::Auto, usize::MAX);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage("missing value"));
        match (flag.as_str(), value.as_str()) {
            ("--addr", _) => addr = value,
            ("--backend", "auto") => backend = BackendChoice::Auto,
            ("--backend", "uring") => backend = BackendChoice::Uring,
            ("--backend", "epoll") => backend = BackendChoice::Epoll,
            ("--max-conns", n) => max_conns = n.parse().unwrap_or_else(|_| usage("bad N")),
            _ => usage(&format!("bad option {flag} {value}")),
        }
    }

    let rt = Builder::new().backend(backend).build()?;
    println!("{}", rt.backend());
    rt.block_on(async move {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("listening on {}", listener.local_addr()?);
        let (mut accepted, mut tasks) = (0, Vec::new());
        while accepted < max_conns {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    eprintln!("accept: {e}"); // e.g. EMFILE: back off, don't spin
                    corering::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            accepted += 1;
            let task = corering::spawn(async move {
                if let Err(e) = echo(stream).await {
                    eprintln!("{peer}: {e}");
                }
            });
            if max_conns != usize::MAX {
                tasks.push(task); // to wait for at the end; otherwise drop = detach
            }
        }
        for task in tasks {
            let _ = task.await;
        }
        Ok(())
    })
}

async fn echo(stream: TcpStream) -> io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let (res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(()); // peer closed its side
        }
        let (res, slice) = stream.write_all(b.slice(..n)).await;
        res?;
        buf = slice.into_inner();
        buf.clear();
    }
}
