//! The halves of a [`TcpStream`]: one reader and one writer, borrowed or owned (the borrowed
//! ones serve [`UnixStream::split`](super::UnixStream::split) too).
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use super::half::{read_methods, write_methods, Reader, Writer};
use super::TcpStream;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::sys;

/// The read half of a stream borrowed by [`TcpStream::split`] (or `UnixStream::split`).
#[derive(Debug)]
pub struct ReadHalf<'a>(pub(super) &'a Reader);

/// The write half of a stream borrowed by [`TcpStream::split`] (or `UnixStream::split`).
#[derive(Debug)]
pub struct WriteHalf<'a>(pub(super) &'a Writer);

/// The read half of a stream taken by [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    pub(super) reader: Reader,
    pub(super) _not_send: PhantomData<*const ()>,
}

/// The write half of a stream taken by [`TcpStream::into_split`]. Dropping it does not shut
/// the connection down: the fd closes when both halves (and their ops) are gone.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    pub(super) writer: Writer,
    pub(super) _not_send: PhantomData<*const ()>,
}

impl ReadHalf<'_> {
    read_methods!(0);
}

impl WriteHalf<'_> {
    write_methods!(0);

    /// Shuts down the writing direction: the peer reads end of stream.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write).await
    }
}

impl OwnedReadHalf {
    read_methods!(reader);

    /// Puts the halves of one stream back together; halves of two streams are handed back.
    // The error hands both halves back, as they are.
    #[allow(clippy::result_large_err)]
    pub fn reunite(self, write: OwnedWriteHalf) -> Result<TcpStream, ReuniteError> {
        if !self.reader.fd.same(&write.writer.fd) {
            return Err(ReuniteError(self, write));
        }
        Ok(TcpStream {
            reader: self.reader,
            writer: write.writer,
            _not_send: PhantomData,
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.reader.fd.raw())
    }
}

impl OwnedWriteHalf {
    write_methods!(writer);

    /// Shuts down the writing direction: the peer reads end of stream.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.writer.shutdown(Shutdown::Write).await
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.writer.fd.raw())
    }
}

impl AsRawFd for OwnedReadHalf {
    fn as_raw_fd(&self) -> RawFd {
        self.reader.fd.raw()
    }
}

impl AsRawFd for OwnedWriteHalf {
    fn as_raw_fd(&self) -> RawFd {
        self.writer.fd.raw()
    }
}

/// The halves given to [`OwnedReadHalf::reunite`] belong to different streams.
pub struct ReuniteError(pub OwnedReadHalf, pub OwnedWriteHalf);

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the halves belong to different streams")
    }
}

impl std::error::Error for ReuniteError {}
