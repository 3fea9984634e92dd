//! # corering
//!
//! A thread-per-core async runtime for Linux 5.10+. Reads, writes, accepts and the other
//! operations are submitted as **completions** on an io_uring ring; where io_uring is missing or
//! forbidden, the same binary runs a **readiness** backend on epoll (the model of Go's
//! netpoller). Per-connection code still reads like blocking code:
//!
//! ```no_run
//! use corering::{net::TcpListener, IoBuf};
//!
//! fn main() -> std::io::Result<()> {
//!     corering::Runtime::new()?.block_on(async {
//!         let listener = TcpListener::bind("127.0.0.1:7000")?;
//!         loop {
//!             let (stream, _) = listener.accept().await?;
//!             corering::spawn(async move {
//!                 let mut stream = stream;
//!                 let mut buf = Vec::with_capacity(4096);
//!                 loop {
//!                     let (res, b) = stream.read(buf).await;
//!                     let n = match res { Ok(0) | Err(_) => return, Ok(n) => n };
//!                     let (res, b) = stream.write_all(b.slice(..n)).await;
//!                     buf = b.into_inner();
//!                     buf.clear();
//!                     if res.is_err() { return; }
//!                 }
//!             });
//!         }
//!     })
//! }
//! ```
//!
//! **Thread-per-core**: [`Runtime::run`] starts one pinned thread per core, each with its own
//! executor and its own ring (or epoll instance); tasks never move between cores, so they need
//! not be `Send`. Listeners bound with SO_REUSEPORT on every core let the kernel spread
//! connections; [`spawn_on`] and [`sync`] channels cross cores explicitly.
//!
//! Buffers are **owned**: an operation takes the buffer, and gives it back with the result
//! ([`BufResult`]) on every path. A buffer handed to the kernel stays alive until the kernel
//! reports the operation complete, even when the future was dropped.
//!
//! The layers, top to bottom: [`net`], [`fs`], [`time`], [`sync`] and [`op`] (public API) → `op::Op<T>` (one
//! in-flight operation; one vocabulary for both backends) → `driver::Driver` (the one place that
//! matches on the backend) → the per-core runtime (run queue, timers, park).
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod buf;
pub mod cancel;
#[cfg(feature = "compat")]
#[cfg_attr(docsrs, doc(cfg(feature = "compat")))]
pub mod compat;
mod context;
mod driver;
pub mod fs;
pub mod net;
pub mod op;
mod runtime;
pub mod sync;
mod sys;
pub mod time;

pub use buf::{BufResult, IoBuf, IoBufMut, PooledBuf, Slice};
pub use cancel::{CancelExt, CancelToken, Cancelled};
pub use driver::DriverStats;
pub use driver::{BackendChoice, BackendInfo, BackendKind, UringInfo, UringTier};
pub use runtime::{
    backend, core_id, cores, is_shutting_down, shutdown_requested, spawn, spawn_blocking, spawn_on,
    stats, yield_now, Builder, CoreReport, JoinError, JoinHandle, RemoteJoinHandle, Runtime,
    RuntimeStats, ShutdownHandle, ShutdownRequested, ShuttingDown,
};
