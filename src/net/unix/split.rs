//! The owned halves of a [`UnixStream`] (the borrowed ones are
//! [`net::ReadHalf`](crate::net::ReadHalf) and [`net::WriteHalf`](crate::net::WriteHalf),
//! shared with TCP).
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};

use super::{SocketAddr, UnixStream};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::net::half::{read_methods, write_methods, Reader, Writer};

/// The read half of a stream taken by [`UnixStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    pub(super) reader: Reader,
    pub(super) _not_send: PhantomData<*const ()>,
}

/// The write half of a stream taken by [`UnixStream::into_split`]. Dropping it does not shut
/// the connection down: the fd closes when both halves (and their ops) are gone.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    pub(super) writer: Writer,
    pub(super) _not_send: PhantomData<*const ()>,
}

impl OwnedReadHalf {
    read_methods!(reader);

    /// Puts the halves of one stream back together; halves of two streams are handed back.
    // The error hands both halves back, as they are.
    #[allow(clippy::result_large_err)]
    pub fn reunite(self, write: OwnedWriteHalf) -> Result<UnixStream, ReuniteError> {
        if !self.reader.fd.same(&write.writer.fd) {
            return Err(ReuniteError(self, write));
        }
        Ok(UnixStream {
            reader: self.reader,
            writer: write.writer,
            _not_send: PhantomData,
        })
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.reader.fd.raw(), true)
    }
}

impl OwnedWriteHalf {
    write_methods!(writer);

    /// Shuts down the writing direction: the peer reads end of stream.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.writer.shutdown(Shutdown::Write).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.writer.fd.raw(), true)
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
