//! hyper on corering: one corering runtime per core (`Runtime::run`), each with its own
//! SO_REUSEPORT listener, a task per connection serving it with hyper's http1 through
//! `corering::compat` (the stream adapter and the timer). Core 0 also serves the control
//! port with its counters (the runner pins the server to one core, so those are all).
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use corering::compat::{Compat, HyperTimer};
use corering::net::{ListenOptions, TcpListener};
use corering::BackendChoice;
use hyper::server::conn::http1;
use hyper::service::service_fn;

use crate::servers::{ready, skip, spawn_control};

/// Runs the server on backend `choice` until killed.
pub fn serve(choice: BackendChoice, addr: &str) -> io::Result<()> {
    let reserved = super::reserve(addr)?;
    let rt = match corering::Builder::new().backend(choice).build() {
        Ok(rt) => rt,
        Err(e) if choice == BackendChoice::Uring => {
            return skip(&format!("corering could not start on io_uring: {e}"));
        }
        Err(e) => return Err(e),
    };
    let data = reserved.addr;
    let reports = rt.run(move |core| core_main(data, core))?;
    for r in reports {
        match r.output {
            Ok(res) => res?,
            Err(e) => return Err(io::Error::other(format!("core {}: {e}", r.core))),
        }
    }
    Ok(())
}

/// One core: its listener on `data`, and a task per connection.
async fn core_main(data: SocketAddr, core: usize) -> io::Result<()> {
    let opts = ListenOptions {
        reuse_port: true,
        backlog: 1024,
    };
    let listener = TcpListener::bind_with(data, opts)?;
    if core == 0 {
        let ctl = TcpListener::bind("127.0.0.1:0")?;
        ready(data, Some(ctl.local_addr()?));
        spawn_control(ctl);
    }
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // e.g. EMFILE: back off rather than spin.
                corering::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        corering::spawn(async move {
            let _ = stream.set_nodelay(true);
            let conn = http1::Builder::new()
                .timer(HyperTimer)
                .serve_connection(Compat::new(stream), service_fn(super::hello));
            let _ = conn.await;
        });
    }
}
