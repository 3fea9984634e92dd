//! [`TcpStream`] as a [`CompatStream`](crate::compat::CompatStream): the owned-buffer ops of
//! its reader and writer, through `&self` (the adapter keeps one of each in flight).
use std::future::Future;
use std::io;
use std::net::Shutdown;

use super::TcpStream;
use crate::compat::{sealed::Sealed, CompatStream};
use crate::BufResult;

impl Sealed for TcpStream {
    fn read(&self, buf: Vec<u8>) -> impl Future<Output = BufResult<usize, Vec<u8>>> + '_ {
        self.reader.read(buf)
    }

    fn write_all(&self, buf: Vec<u8>) -> impl Future<Output = BufResult<(), Vec<u8>>> + '_ {
        self.writer.write_all(buf)
    }

    fn shutdown_write(&self) -> impl Future<Output = io::Result<()>> + '_ {
        self.writer.shutdown(Shutdown::Write)
    }
}

impl CompatStream for TcpStream {}
