//! hyper on tokio, in corering's per-core shape: a thread per core the server may run on,
//! pinned to it, each with a current_thread runtime and its own SO_REUSEPORT listener; a task
//! per connection serving it with hyper's http1 through hyper-util's `TokioIo` and
//! `TokioTimer` (what a tokio user would write).
use std::io;
use std::net::SocketAddr;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::servers::ready;
use crate::sys;

/// Runs the server until killed.
pub fn serve(addr: &str) -> io::Result<()> {
    let reserved = super::reserve(addr)?;
    let data = reserved.addr;
    let cores = sys::allowed_cores();
    std::thread::scope(|scope| {
        let threads: Vec<_> = cores
            .iter()
            .enumerate()
            .map(|(i, &cpu)| {
                scope.spawn(move || {
                    sys::pin_to(cpu)?;
                    core_main(data, i)
                })
            })
            .collect();
        for t in threads {
            t.join()
                .map_err(|_| io::Error::other("a core thread panicked"))??;
        }
        Ok(())
    })
}

/// One core: a current_thread runtime, its listener on `data`, a task per connection.
fn core_main(data: SocketAddr, core: usize) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseport(true)?;
        socket.bind(data)?;
        let listener = socket.listen(1024)?;
        if core == 0 {
            ready(data, None);
        }
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(stream), service_fn(super::hello));
                let _ = conn.await;
            });
        }
    })
}
