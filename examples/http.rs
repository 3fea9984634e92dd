// cargo run --release --example http -- --addr 127.0.0.1:8080 --cores 2 --backend uring
//! hyper 1.x HTTP/1.1 server answering "hello" (keep-alive), through `corering::compat`.
//!
//! `--cores N` (default 1) runs N cores, each with its own SO_REUSEPORT listener on the same
//! port (with port 0 each core gets its own port; each is printed). `--backend` defaults to
//! auto. SIGINT or SIGTERM stops accepting and gives open connections a second to finish.

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use corering::compat::{Compat, HyperTimer};
use corering::net::{ListenOptions, TcpListener};
use corering::{BackendChoice, Builder, ShuttingDown};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{server::conn::http1, service::service_fn, Request, Response};

const USAGE: &str = "usage: http [--addr HOST:PORT] [--cores N] [--backend auto|uring|epoll]";

fn usage(msg: &str) -> ! {
    eprintln!("http: {msg}\n{USAGE}");
    std::process::exit(2);
}

fn main() -> io::Result<()> {
    let (mut addr, mut cores, mut backend) = ("127.0.0.1:8080".to_string(), 1, BackendChoice::Auto);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let value = args.next().unwrap_or_else(|| usage("missing value"));
        match (flag.as_str(), value.as_str()) {
            ("--addr", _) => addr = value,
            ("--cores", n) => {
                cores = n
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage("bad --cores"))
            }
            ("--backend", "auto") => backend = BackendChoice::Auto,
            ("--backend", "uring") => backend = BackendChoice::Uring,
            ("--backend", "epoll") => backend = BackendChoice::Epoll,
            _ => usage(&format!("bad option {flag} {value}")),
        }
    }
    let rt = Builder::new()
        .backend(backend)
        .cores(cores)
        .shutdown_on_signals(Duration::from_secs(1))
        .build()?;
    println!("{}", rt.backend());
    for report in rt.run(|core| serve(addr.clone(), core))? {
        if let Ok(Err(e)) = report.output {
            return Err(e);
        }
    }
    Ok(())
}

/// One core: its own listener, one task per connection.
async fn serve(addr: String, core: usize) -> io::Result<()> {
    let opts = ListenOptions {
        reuse_port: true,
        ..Default::default()
    };
    let listener = TcpListener::bind_with(addr.as_str(), opts)?;
    println!("core {core} listening on {}", listener.local_addr()?);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if ShuttingDown::is(&e) => return Ok(()),
            Err(e) => {
                eprintln!("core {core}: accept: {e}"); // e.g. EMFILE: back off
                corering::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        corering::spawn(async move {
            let conn = http1::Builder::new()
                .timer(HyperTimer)
                .serve_connection(Compat::new(stream), service_fn(hello));
            if let Err(e) = conn.await {
                eprintln!("core {core}: connection: {e}");
            }
        });
    }
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}
