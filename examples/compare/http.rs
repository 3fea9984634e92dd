//! The http cases (`--http`, `--http-only`): hyper 1.x serving HTTP/1.1 on corering (either
//! backend) and on tokio, driven by a hand-written keep-alive load generator (`load`).
//!
//! Every server answers each request with `200` and the body `BODY` (Content-Length, no
//! chunking), keeps the connection alive, and has the same shape as corering's per-core
//! model: one single-threaded runtime per core it may run on, each with its own SO_REUSEPORT
//! listener on the one port (the runner pins a server to one core, so one runtime). The port
//! is reserved first by a socket bound with SO_REUSEPORT that never listens.
mod load;
mod server_corering;
mod server_tokio;

use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::report::Case;
use crate::servers::ServerKind;
use crate::Config;

pub use load::run as load;

/// The body of every response.
pub const BODY: &[u8] = b"hello";

/// The http servers; they run the http cases only (and the echo servers never run them).
pub const KINDS: &[ServerKind] = &[
    ServerKind {
        name: "hyper-corering-uring",
        floor: None,
        uring: true,
        about: "hyper 1.x http1 on corering, io_uring backend (corering::compat), --http only",
    },
    ServerKind {
        name: "hyper-corering-epoll",
        floor: None,
        uring: false,
        about: "hyper 1.x http1 on corering, epoll backend (corering::compat), --http only",
    },
    ServerKind {
        name: "hyper-tokio",
        floor: None,
        uring: false,
        about: "hyper 1.x http1 on tokio current_thread (hyper-util TokioIo), --http only",
    },
];

/// The server the http rows are measured against.
pub const BASE: &str = "hyper-tokio";

/// Whether `server` is one of the http servers.
pub fn is_http_server(server: &str) -> bool {
    KINDS.iter().any(|k| k.name == server)
}

/// The http cases of this invocation (none without `--http`).
pub fn cases(cfg: &Config) -> Vec<Case> {
    cfg.http.iter().map(|&conns| Case::Http { conns }).collect()
}

/// `compare --serve hyper-…`: runs one http server until killed.
pub fn serve(kind: &str, addr: &str) -> io::Result<()> {
    match kind {
        "hyper-corering-uring" => server_corering::serve(corering::BackendChoice::Uring, addr),
        "hyper-corering-epoll" => server_corering::serve(corering::BackendChoice::Epoll, addr),
        "hyper-tokio" => server_tokio::serve(addr),
        other => Err(io::Error::other(format!("no server kind {other:?}"))),
    }
}

/// The one handler of every http server.
async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(BODY))))
}

/// A socket bound to `addr` (port 0: any free one) with SO_REUSEPORT that never listens: it
/// holds the port for the per-core listeners, which bind it with SO_REUSEPORT too.
pub struct Reserved {
    _fd: OwnedFd,
    pub addr: SocketAddr,
}

/// Reserves a port on the IPv4 address `addr`.
fn reserve(addr: &str) -> io::Result<Reserved> {
    use nix::sys::socket::{
        bind, getsockname, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
        SockaddrIn,
    };
    let want: SocketAddrV4 = addr
        .parse()
        .map_err(|e| io::Error::other(format!("{addr:?}: not an IPv4 address and port: {e}")))?;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReusePort, &true)?;
    bind(fd.as_raw_fd(), &SockaddrIn::from(want))?;
    let got: SockaddrIn = getsockname(fd.as_raw_fd())?;
    Ok(Reserved {
        _fd: fd,
        addr: SocketAddr::V4(got.into()),
    })
}
