//! [`Compat`]: a corering stream behind tokio's and hyper's poll-based io traits.
use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::read::ReadSide;
use super::write::WriteSide;
use super::CompatStream;

/// The size of each of [`Compat`]'s write buffers unless [`Compat::with_capacity`] says
/// otherwise.
pub const DEFAULT_CAPACITY: usize = 16 * 1024;

/// A corering stream as a [`tokio::io::AsyncRead`] + [`tokio::io::AsyncBufRead`] +
/// [`tokio::io::AsyncWrite`] and a [`hyper::rt::Read`] + [`hyper::rt::Write`].
///
/// ```no_run
/// use corering::{compat::Compat, net::TcpStream};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # corering::Runtime::new().unwrap().block_on(async {
/// let mut io = Compat::new(TcpStream::connect("127.0.0.1:7000").await?);
/// io.write_all(b"ping").await?;
/// io.flush().await?;
/// let mut reply = [0; 4];
/// io.read_exact(&mut reply).await?;
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// **Where it copies** (once each way): reads are the stream's pooled reads
/// ([`recv_pooled`](crate::net::TcpStream::recv_pooled): the kernel, or the readiness
/// backend's `recv`, writes into a buffer of the core's pool, which is lent only when bytes
/// arrive, so an idle connection holds no read buffer; on io_uring 6.0+ one multishot receive
/// stays armed), and `poll_read` copies from that buffer into the caller's; bytes that do not
/// fit stay for the next `poll_read`, and the pool buffer goes back once they are taken.
/// `poll_write` (and `poll_write_vectored`, which gathers all its slices) copies the
/// caller's bytes into a staging buffer and starts a corering `write_all` of it; the kernel
/// reads from that buffer. While a write is in flight, further `poll_write`s fill the next
/// staging buffer and answer `Pending` once it is full, so at most two write buffers exist.
/// Each write buffer holds [`DEFAULT_CAPACITY`] bytes (or
/// [`with_capacity`](Compat::with_capacity)'s); it is allocated on the first write.
///
/// **Flushing**: `poll_write` may answer `Ok(n)` before the bytes reach the kernel;
/// `poll_flush` drives every staged byte out, and `poll_shutdown` flushes, then shuts the
/// writing direction down (the peer reads end of stream). An error from a write that had
/// already been answered `Ok` comes from the next `poll_write`, `poll_flush` or
/// `poll_shutdown`, and from then on every write fails (the stream's offset is unknown).
///
/// **Cancellation**: the adapter owns its in-flight operations (a read, and a write or a
/// shutdown); a caller that stops polling leaves them running. Dropping the `Compat` drops
/// them, which corering handles as for any dropped op: the kernel keeps the buffer until it
/// is done with it, and a dropped write may still be sent, in part or in whole. Bytes read
/// ahead and bytes staged but not yet written are dropped with it.
pub struct Compat<S: CompatStream> {
    stream: Rc<S>,
    read: ReadSide,
    write: WriteSide,
}

impl<S: CompatStream> Compat<S> {
    /// Wraps `stream`, with write buffers of [`DEFAULT_CAPACITY`] bytes.
    pub fn new(stream: S) -> Compat<S> {
        Compat::with_capacity(stream, DEFAULT_CAPACITY)
    }

    /// Wraps `stream`, with write buffers of `capacity` bytes each (at least 1). Reads use
    /// the core's buffer pool ([`Builder::buffer_pool`](crate::Builder::buffer_pool) sizes it).
    pub fn with_capacity(stream: S, capacity: usize) -> Compat<S> {
        Compat {
            stream: Rc::new(stream),
            read: ReadSide::new(),
            write: WriteSide::new(capacity),
        }
    }

    /// The stream, e.g. for its addresses or socket options.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The bytes read ahead: received, not yet taken by a read.
    pub fn read_buffer(&self) -> &[u8] {
        self.read.buffered()
    }

    /// The stream back, without the bytes read ahead (see [`into_parts`](Self::into_parts)).
    /// Flush first: staged bytes are dropped, and so is a write in flight, which may still be
    /// sent in part (after which every write of the stream fails).
    pub fn into_inner(self) -> S {
        self.into_parts().0
    }

    /// The stream back, and the bytes read ahead (to be used before anything read from the
    /// stream). A read in flight is dropped: on io_uring, bytes the kernel had already
    /// received for it are returned by the stream's next read (corering's rescue), so no
    /// received byte is lost. Writes as for [`into_inner`](Self::into_inner).
    pub fn into_parts(self) -> (S, Vec<u8>) {
        let Compat {
            stream,
            read,
            mut write,
        } = self;
        let unread = read.into_unread();
        write.abandon();
        drop(write);
        // The ops just dropped held the only other handles.
        let stream = Rc::try_unwrap(stream)
            .unwrap_or_else(|_| unreachable!("no op of the adapter is left to hold the stream"));
        (stream, unread)
    }

    fn poll_copy(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        put: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<()>> {
        self.read.poll_copy(cx, &self.stream, room, put)
    }
}

impl<S: CompatStream + fmt::Debug> fmt::Debug for Compat<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compat")
            .field("stream", &self.stream)
            .field("read", &self.read)
            .field("write", &self.write)
            .finish()
    }
}

impl<S: CompatStream> tokio::io::AsyncRead for Compat<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        self.get_mut().poll_copy(cx, room, |b| buf.put_slice(b))
    }
}

impl<S: CompatStream> tokio::io::AsyncBufRead for Compat<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        this.read.poll_fill(cx, &this.stream)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().read.consume(amt);
    }
}

impl<S: CompatStream> hyper::rt::Read for Compat<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        self.get_mut().poll_copy(cx, room, |b| buf.put_slice(b))
    }
}

/// The write methods of both traits, which have the same shape.
macro_rules! write_impl {
    () => {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.write
                .poll_write(cx, &this.stream, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.write.poll_write(cx, &this.stream, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.write.poll_flush(cx, &this.stream)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.write.poll_shutdown(cx, &this.stream)
        }
    };
}

impl<S: CompatStream> tokio::io::AsyncWrite for Compat<S> {
    write_impl!();
}

impl<S: CompatStream> hyper::rt::Write for Compat<S> {
    write_impl!();
}
