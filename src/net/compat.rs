//! [`TcpStream`] and [`UnixStream`] as [`CompatStream`](crate::compat::CompatStream)s: the owned-buffer ops of
//! its reader and writer, through `&self` (the adapter keeps one of each in flight).
use std::future::Future;
use std::io;
use std::net::Shutdown;

use super::{TcpStream, UnixStream};
use crate::compat::{sealed::Sealed, CompatStream};
use crate::{BufResult, PooledBuf};

/// The sealed ops of a stream with a `reader` and a `writer` (`net::half`).
macro_rules! compat_stream {
    ($stream:ty) => {
        impl Sealed for $stream {
            fn recv_pooled(&self) -> impl Future<Output = io::Result<Option<PooledBuf>>> + '_ {
                self.reader.recv_pooled()
            }

            fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = BufResult<(), Vec<u8>>> + '_ {
                self.writer.write_all(buf)
            }

            fn shutdown_write(&self) -> impl Future<Output = io::Result<()>> + '_ {
                self.writer.shutdown(Shutdown::Write)
            }
        }

        impl CompatStream for $stream {}
    };
}

compat_stream!(TcpStream);
compat_stream!(UnixStream);
