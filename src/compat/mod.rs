//! The ecosystem bridge (feature `compat`): tokio's io traits and hyper 1.x's `rt` traits over
//! corering, with no `unsafe` for the user.
//!
//! - [`Compat`] wraps a corering stream and implements [`tokio::io::AsyncRead`],
//!   [`tokio::io::AsyncBufRead`], [`tokio::io::AsyncWrite`], [`hyper::rt::Read`] and
//!   [`hyper::rt::Write`].
//! - [`HyperExecutor`] spawns hyper's background tasks on the current core.
//! - [`HyperTimer`] gives hyper corering's timers (keep-alive and header timeouts).
//!
//! The poll-based traits lend a buffer for one call, but corering's operations own theirs
//! until the kernel is done, so [`Compat`] keeps its own buffers and copies once each way:
//! received bytes from its read buffer into the caller's, written bytes from the caller's
//! into its write buffer.
//!
//! ```no_run
//! use corering::compat::{Compat, HyperTimer};
//! use http_body_util::Full;
//! use hyper::{body::Bytes, server::conn::http1, service::service_fn, Response};
//!
//! corering::Runtime::new().unwrap().block_on(async {
//!     let listener = corering::net::TcpListener::bind("127.0.0.1:8080").unwrap();
//!     loop {
//!         let (stream, _) = listener.accept().await.unwrap();
//!         corering::spawn(async move {
//!             let hello = service_fn(|_req| async {
//!                 Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!             });
//!             let conn = http1::Builder::new().timer(HyperTimer).serve_connection(Compat::new(stream), hello);
//!             let _ = conn.await;
//!         });
//!     }
//! });
//! ```
mod io;
mod read;
mod rt;
mod write;

pub use io::{Compat, DEFAULT_CAPACITY};
pub use rt::{HyperExecutor, HyperTimer};

/// A corering stream [`Compat`] can wrap: [`TcpStream`](crate::net::TcpStream) and
/// [`UnixStream`](crate::net::UnixStream).
///
/// Sealed: only corering implements it. Its methods (owned-buffer read, write and shutdown,
/// each taking `&self` so that one read and one write can be in flight at once) are not
/// callable from outside the crate, so the one-reader, one-writer rule of a stream holds.
pub trait CompatStream: sealed::Sealed {}

pub(crate) mod sealed {
    use std::future::Future;
    use std::io;

    use crate::{BufResult, PooledBuf};

    /// What [`Compat`](super::Compat) needs of a stream. [`Compat`](super::Compat) keeps at
    /// most one `recv_pooled` and one `write_all` or `shutdown_write` in flight at a time.
    pub trait Sealed: 'static {
        /// The next bytes, in a buffer of the core's pool; `Ok(None)` at end of stream.
        fn recv_pooled(&self) -> impl Future<Output = io::Result<Option<PooledBuf>>> + '_;

        /// Writes every byte of `buf`.
        fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = BufResult<(), Vec<u8>>> + '_;

        /// Shuts the writing direction down: the peer reads end of stream.
        fn shutdown_write(&self) -> impl Future<Output = io::Result<()>> + '_;
    }
}
