//! The I/O of one side of a stream, shared by [`TcpStream`](super::TcpStream),
//! [`UnixStream`](super::UnixStream) and their halves.
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::partial::{PartialRead, PartialWrite};
use super::pooled::PooledState;
use super::side::SideState;
use super::Unread;
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::op::rescue::{ReadRescue, WriteRescue};
use crate::op::{self, Op, SharedFd};

/// The read side: the fd handle, what cancelled reads left (io_uring only), and the pooled
/// side (`net::pooled`).
#[derive(Debug)]
pub(super) struct Reader {
    pub fd: SharedFd,
    pub rescue: Option<Rc<ReadRescue>>,
    pub pooled: RefCell<PooledState>,
    /// Whether a read runs, and what a dropped `read_exact` took with it.
    pub side: SideState,
}

/// The write side: the fd handle, and what cancelled writes left.
#[derive(Debug)]
pub(super) struct Writer {
    pub fd: SharedFd,
    pub rescue: Rc<WriteRescue>,
    /// Ops of this side can be dropped while the kernel has them (io_uring): they report to
    /// the rescue when answered.
    pub orphans: bool,
    /// Whether the peer is on this host (zero-copy sends gain nothing there); learned on the
    /// first large write.
    pub loopback: Cell<Option<bool>>,
    /// Whether large writes may go out as zero-copy sends at all: TCP only (a Unix socket
    /// gains nothing from them, and the kernel refuses SEND_ZC there).
    pub zero_copy: bool,
    /// The fd goes on elsewhere (`into_std`, `close`): the drop leaves the socket as it is.
    pub handed_over: Cell<bool>,
    /// Whether a write runs (left set by one forgotten in flight).
    pub side: SideState,
}

/// The close rule, the same on both backends, when a write side goes without `close`:
/// - a write of it was cut part way (a dropped `write_all`, or a cancelled write the kernel
///   completed or has not answered yet): the connection is reset (`SO_LINGER` 0, so the close
///   sends RST), so that the peer never takes a truncated message for a whole one;
/// - else, while the runtime shuts down (the tasks its deadline cancels): the sending side
///   ends first (`shutdown(SHUT_WR)`, a FIN), so the peer reads a clean end of stream after
///   every whole message, even where bytes it sent are still unread and the close then
///   resets (Linux's rule for a close with unread data; the FIN is already there).
impl Drop for Writer {
    fn drop(&mut self) {
        if self.handed_over.get() {
            return;
        }
        // SAFETY: this side's handle keeps the fd open for the duration of the calls.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd.raw()) };
        // Errors are of no use here: the socket may be gone on the peer's side already.
        if self.rescue.maybe_cut() || self.side.forgotten() {
            let reset = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            let _ = nix::sys::socket::setsockopt(&fd, nix::sys::socket::sockopt::Linger, &reset);
        } else if crate::context::is_shutting_down() {
            let _ = nix::sys::socket::shutdown(fd.as_raw_fd(), nix::sys::socket::Shutdown::Write);
        }
    }
}

/// A new stream's two sides over `fd`, set up for the current backend; `zero_copy` as in
/// [`Writer::zero_copy`].
pub(super) fn sides(fd: OwnedFd, zero_copy: bool) -> (Reader, Writer) {
    let uring =
        crate::context::with_current(|c| c.kind == crate::BackendKind::Uring).unwrap_or(false);
    let fd = SharedFd::new(fd);
    let reader = Reader {
        fd: fd.clone(),
        rescue: uring.then(Rc::default),
        pooled: Default::default(),
        side: SideState::default(),
    };
    let writer = Writer {
        fd,
        rescue: Rc::default(),
        orphans: uring,
        loopback: Cell::new(None),
        zero_copy,
        handed_over: Cell::new(false),
        side: SideState::default(),
    };
    (reader, writer)
}

/// The fd of a stream given back (for `into_std`), once every op of it still in the kernel
/// has been answered, with what its cancelled ops left. If an op whose future was
/// `mem::forget`-ten still holds the fd, this gives a duplicate.
pub(super) async fn into_owned(reader: Reader, writer: Writer) -> io::Result<(OwnedFd, Unread)> {
    let (mut bytes, mut error) = match &reader.rescue {
        Some(rescue) => rescue.take_all().await,
        None => (Vec::new(), None),
    };
    let (pooled, pooled_error) = reader.drain_pooled().await;
    bytes.extend(pooled);
    error = error.or(pooled_error);
    let write_error = writer.rescue.check().await.err();
    writer.handed_over.set(true);
    drop(writer);
    reader.fd.settled().await;
    let fd = match reader.fd.try_into_owned() {
        Ok(fd) => fd,
        Err(held) => {
            // SAFETY: `held` keeps the fd open for the duration of the call.
            let borrowed = unsafe { BorrowedFd::borrow_raw(held.raw()) };
            borrowed.try_clone_to_owned()?
        }
    };
    let unread = Unread {
        bytes,
        error,
        write_error,
    };
    Ok((fd, unread))
}

/// Closes a stream through the backend (for `close`): waits until every op of it still in
/// the kernel has been answered; an fd a forgotten op still holds stays open, and this says so.
pub(super) async fn close(reader: Reader, writer: Writer) -> io::Result<()> {
    reader.drop_pooled();
    drop((reader.rescue, reader.pooled, writer));
    reader.fd.settled().await;
    match reader.fd.try_into_owned() {
        Ok(fd) => Op::new(op::Close::new(fd)).await,
        Err(_) => Err(io::Error::other(
            "the socket stays open: an operation whose future was forgotten holds it",
        )),
    }
}

/// Poisons the write side if a `write_all` is dropped after part of its buffer went out: the
/// caller cannot know how much, and a retry would send those bytes twice.
struct WriteAllGuard<'a> {
    rescue: &'a WriteRescue,
    written: usize,
}

impl Drop for WriteAllGuard<'_> {
    fn drop(&mut self) {
        if self.written > 0 {
            self.rescue.poison();
        }
    }
}

impl Reader {
    pub async fn read<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        if buf.bytes_total() == 0 {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "read into a buffer with no room (Ok(0) would look like end of stream)",
            );
            return (Err(e), buf);
        }
        let _running = match self.side.start("read") {
            Ok(running) => running,
            Err(e) => return (Err(e), buf),
        };
        if let Some(rescue) = self.rescue.as_ref().filter(|r| r.is_pending()) {
            if let Some(res) = rescue.take_into(&mut buf).await {
                return (res, buf);
            }
        }
        if self.pooled_active() {
            return self.read_from_pooled(buf).await;
        }
        Op::on(
            &self.fd,
            op::Recv::new(self.fd.clone(), buf, self.rescue.clone()),
        )
        .await
    }

    /// Cut part way, the error says how much it read ([`PartialRead`]); dropped part way,
    /// the bytes go with its buffer and the side takes no more reads (`SideState`).
    pub async fn read_exact<B: IoBufMut>(&self, buf: B) -> BufResult<(), B> {
        let total = buf.bytes_total();
        let mut guard = ReadExactGuard {
            side: &self.side,
            filled: 0,
        };
        let mut buf = buf;
        let res = loop {
            if guard.filled == total {
                break Ok(());
            }
            let (res, slice) = self.read(buf.slice(guard.filled..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    break Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of stream before the buffer was full",
                    ))
                }
                Ok(n) => guard.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // Returned, not dropped: the caller learns the count.
        let filled = std::mem::take(&mut guard.filled);
        (res.map_err(|e| PartialRead::error(filled, e)), buf)
    }
}

/// Marks the read side if a `read_exact` is dropped after part of its buffer was filled:
/// those bytes left the stream with the buffer.
struct ReadExactGuard<'a> {
    side: &'a SideState,
    filled: usize,
}

impl Drop for ReadExactGuard<'_> {
    fn drop(&mut self) {
        if self.filled > 0 {
            self.side.lost(self.filled);
        }
    }
}

/// One write: the send op itself, or (boxed, so that every write future stays the size of a
/// send op: a parked connection's task holds it) the rare kinds, a write that first waits for
/// cancelled writes and a zero-copy send.
enum WriteOp<'a, B: IoBuf> {
    Send(Op<op::Send<B>>),
    Boxed(Pin<Box<dyn Future<Output = BufResult<usize, B>> + 'a>>),
}

impl<B: IoBuf> Future for WriteOp<'_, B> {
    type Output = BufResult<usize, B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            WriteOp::Send(op) => Pin::new(op).poll(cx),
            WriteOp::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl Writer {
    fn write_op<B: IoBuf>(&self, buf: B) -> WriteOp<'_, B> {
        let rescue = self.orphans.then(|| self.rescue.clone());
        if !self.rescue.is_clear() {
            return WriteOp::Boxed(Box::pin(async move {
                if let Err(e) = self.rescue.check().await {
                    return (Err(e), buf);
                }
                Op::on(&self.fd, op::Send::new(self.fd.clone(), buf, rescue)).await
            }));
        }
        if self.zero_copy(buf.bytes_init()) {
            let send = op::send_zc::SendZc::new(self.fd.clone(), buf, rescue);
            return WriteOp::Boxed(Box::pin(send));
        }
        WriteOp::Send(Op::on(
            &self.fd,
            op::Send::new(self.fd.clone(), buf, rescue),
        ))
    }

    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let _running = match self.side.start("write") {
            Ok(running) => running,
            Err(e) => return (Err(e), buf),
        };
        self.write_op(buf).await
    }

    /// Whether a write of `len` bytes goes out as a zero-copy send.
    fn zero_copy(&self, len: usize) -> bool {
        if !self.zero_copy || !self.orphans || len < crate::driver::ZERO_COPY_MIN {
            return false;
        }
        let on_uring = self.fd.kind() == Some(crate::BackendKind::Uring);
        let loopback = self.loopback.get().unwrap_or_else(|| {
            let peer = crate::sys::peer_addr(self.fd.raw());
            let loopback = peer.map_or(true, |a| a.ip().is_loopback());
            self.loopback.set(Some(loopback));
            loopback
        });
        let driver = crate::context::current_driver();
        let from = driver.borrow().zero_copy_from(loopback);
        on_uring && from.is_some_and(|from| len >= from)
    }

    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let _running = match self.side.start("write") {
            Ok(running) => running,
            Err(e) => return (Err(e), buf),
        };
        let total = buf.bytes_init();
        let mut guard = WriteAllGuard {
            rescue: &self.rescue,
            written: 0,
        };
        let mut buf = buf;
        let res = loop {
            if guard.written == total {
                break Ok(());
            }
            let (res, slice) = self.write_op(buf.slice(guard.written..total)).await;
            buf = slice.into_inner();
            match res {
                Ok(0) => {
                    let e =
                        io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes");
                    break Err(e);
                }
                Ok(n) => guard.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // Returned, not dropped: the caller learns the count.
        let written = std::mem::take(&mut guard.written);
        (res.map_err(|e| PartialWrite::error(written, e)), buf)
    }

    /// A stream socket is connected from the start, so `ENOTCONN` here means the peer already
    /// closed or reset the connection: what the shutdown asks for holds already, and it is Ok,
    /// as tokio's `poll_shutdown` reports it (adapters call `shutdown` on every close; std's
    /// `shutdown` passes the `NotConnected` on).
    pub async fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        match Op::on(&self.fd, op::Shutdown::new(self.fd.clone(), how)).await {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            res => res,
        }
    }
}

/// The read methods, forwarded to a `Reader` (`$reader` names it from `self`).
macro_rules! read_methods {
    ($($reader:tt)+) => {
        /// Reads into `buf` (at its start, up to its capacity); `Ok(0)` is end of stream. A
        /// buffer with no room gives `InvalidInput` at once.
        ///
        /// Cancel-safe: if a read's future is dropped (a `select`, `time::timeout`) after the
        /// kernel had already received bytes into its buffer, or an error, the next read
        /// returns those bytes, in order, then the error; nothing is lost. To cancel a read
        /// and get its buffer back, see [`CancelExt`](crate::cancel::CancelExt).
        pub async fn read<B: IoBufMut>(&mut self, buf: B) -> BufResult<usize, B> {
            self.$($reader)+.read(buf).await
        }

        /// The next bytes, in a buffer of the core's pool ([`PooledBuf`](crate::PooledBuf):
        /// derefs to the bytes, goes back to the pool when dropped); `Ok(None)` at end of
        /// stream. While it waits, the read holds no buffer, so an idle connection costs no
        /// read memory. On io_uring 6.0+ a multishot receive into a provided buffer ring
        /// stays armed from the first call on (see
        /// [`Builder::buffer_pool`](crate::Builder::buffer_pool)).
        ///
        /// Cancel-safe: bytes that arrive for a dropped call go to the next read. Plain reads
        /// may be mixed with pooled ones; bytes keep their order.
        pub fn recv_pooled(&mut self) -> crate::net::RecvPooled<'_> {
            self.$($reader)+.recv_pooled()
        }

        /// [`recv_pooled`](Self::recv_pooled) as a stream of buffers, ending at end of stream.
        pub fn pooled_stream(&mut self) -> crate::net::PooledStream<'_> {
            crate::net::PooledStream::new(&self.$($reader)+)
        }

        /// Fills `buf` up to its capacity (`bytes_total`), reading as often as needed. An
        /// error after some bytes were read (end of stream first gives `UnexpectedEof`)
        /// carries their count ([`PartialRead`](crate::net::PartialRead)); they are at the
        /// buffer's start.
        ///
        /// **Not cancel-safe when dropped**: dropped part way (a `select`, `time::timeout`)
        /// after some bytes were read, those bytes go with its buffer, and the stream then
        /// refuses every read with an error that says so (the next bytes would otherwise
        /// pass for the ones lost). Dropped before any byte came, nothing is lost. To put a
        /// deadline on it, cancel it through a [`CancelExt`](crate::cancel::CancelExt) scope:
        /// the buffer comes back with what was read, and the error's `PartialRead` says how
        /// much; or loop over [`read`](Self::read), which is cancel-safe.
        ///
        /// Any op of a stream whose future was `mem::forget`-ten while in flight makes that
        /// side refuse later ops (what the forgotten op moves is never reported).
        pub async fn read_exact<B: IoBufMut>(&mut self, buf: B) -> BufResult<(), B> {
            self.$($reader)+.read_exact(buf).await
        }
    };
}

/// The write methods, forwarded to a `Writer` (`$writer` names it from `self`).
macro_rules! write_methods {
    ($($writer:tt)+) => {
        /// Writes the initialised bytes of `buf`; may write fewer (the count is returned).
        /// A peer that has gone away gives `BrokenPipe` or `ConnectionReset`, never SIGPIPE.
        ///
        /// A write whose future is dropped while the kernel has it may have sent part of its
        /// buffer: from then on every write fails (the stream's offset is unknown), unless
        /// the kernel reported that nothing was sent, and the stream, once dropped, resets
        /// the connection (RST, not FIN: the peer cannot take a cut message for a whole
        /// one). On io_uring the kernel often completes a cancelled send anyway (it went out
        /// when submitted, or the socket became writable before the cancel arrived). To
        /// cancel a write and learn what went out, see [`CancelExt`](crate::cancel::CancelExt).
        pub async fn write<B: IoBuf>(&mut self, buf: B) -> BufResult<usize, B> {
            self.$($writer)+.write(buf).await
        }

        /// Writes every initialised byte of `buf`, as many writes as it takes. An error after
        /// some bytes went out carries their count ([`PartialWrite`](crate::net::PartialWrite)).
        ///
        /// **Not cancel-safe when dropped**: dropped after some bytes went out, it makes every
        /// later write fail (the caller cannot know how many; a retry would send them twice)
        /// and the close reset the connection.
        /// To stop a `write_all` and keep the stream, cancel it through a
        /// [`CancelExt`](crate::cancel::CancelExt) scope: it returns the buffer and, in a
        /// [`PartialWrite`](crate::net::PartialWrite), exactly how many bytes went out.
        pub async fn write_all<B: IoBuf>(&mut self, buf: B) -> BufResult<(), B> {
            self.$($writer)+.write_all(buf).await
        }
    };
}

pub(super) use {read_methods, write_methods};
