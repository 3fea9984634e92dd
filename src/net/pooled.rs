//! Pooled reads: the read side takes its buffers from the core's pool only once bytes are
//! there, so an idle connection holds no read buffer (`buf::pool`).
//!
//! How the bytes come, by what the ring offers (`driver::ReadMode`):
//!
//! * **Multishot** (6.0): one multishot recv stays armed on the stream from its first pooled
//!   read; the kernel fills ring buffers as bytes arrive and queues them in order. A dropped
//!   read future loses nothing (the queue stays). The recv ends at end of stream, an error, or
//!   an empty ring (`ENOBUFS`); after `ENOBUFS` the next read does not wait for buffers to come
//!   back (that could stall this stream's window behind other streams' buffers) and does not
//!   re-arm at once (that would spin): it waits for readiness and reads into a fresh
//!   allocation, and re-arms once the ring has buffers again.
//! * **Select** (5.19): one buffer-select recv per read; the kernel picks the buffer when bytes
//!   arrive. `ENOBUFS`: as above.
//! * **Readiness** (epoll, older kernels): wait for readiness holding nothing, then take a
//!   buffer and read without waiting; `EAGAIN` gives the buffer back and waits again.
//!
//! Once a multishot recv is armed, plain reads of the stream take their bytes from it too (the
//! two would race for the socket's bytes), so bytes keep their order whichever read is used.
use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use super::half::Reader;
use crate::buf::{BufPool, IoBufMut, PooledBuf};
use crate::driver::{Driver, ReadMode, CQE_F_MORE};
use crate::op::multi::Multishot;
use crate::op::pooled::{arm_recv, Readable, RecvRest, RecvSelect};
use crate::op::{Op, Recv};

/// The pooled side of a reader.
#[derive(Default)]
pub(super) struct PooledState {
    /// The standing multishot recv, while it is armed or has bytes queued.
    multi: Option<Multishot<RecvRest>>,
    /// Bytes a plain read left of a pooled buffer.
    front: Option<PooledBuf>,
    /// The last multishot recv ended with `ENOBUFS`: re-arm only once the ring has buffers.
    starved: bool,
    /// The pool and the read mode of the runtime they were looked up on.
    pool: Option<(BufPool, ReadMode, Weak<RefCell<Driver>>)>,
}

impl std::fmt::Debug for PooledState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledState")
            .field("armed", &self.multi.is_some())
            .field("front", &self.front.as_ref().map(|b| b.len()))
            .finish()
    }
}

fn other_runtime() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "this stream's pooled reads are armed on another runtime's ring (of this thread): \
         read it on that runtime",
    )
}

/// What one step of the standing multishot recv gave.
enum Step {
    Ready(io::Result<Option<PooledBuf>>),
    Pending,
    /// The ring ran dry (`ENOBUFS` now, or still empty since): read by readiness instead.
    Starved,
}

impl Reader {
    /// The next bytes, in a buffer of the pool; `Ok(None)` at end of stream.
    pub fn recv_pooled(&self) -> RecvPooled<'_> {
        RecvPooled {
            reader: self,
            wait: None,
            slow: None,
        }
    }

    /// The core's pool and how pooled reads work here (looked up once per stream and
    /// runtime). A stream whose standing recv is armed on another runtime's ring (moved
    /// between two runtimes of one thread) gets an error: that ring's completions and buffers
    /// belong there.
    fn pool_and_mode(&self) -> io::Result<(BufPool, ReadMode)> {
        let here = crate::context::with_current(|c| Rc::as_ptr(&c.driver));
        {
            // The common case: looked up on this runtime already, nothing armed elsewhere.
            let st = self.pooled.borrow();
            if let (Some((pool, mode, on)), Some(here)) = (&st.pool, here) {
                let armed_here = st.multi.as_ref().is_none_or(|m| m.is_on_ptr(here));
                if on.as_ptr() == here && armed_here {
                    return Ok((pool.clone(), *mode));
                }
            }
        }
        let driver = crate::context::current_driver();
        {
            let st = self.pooled.borrow();
            if st.multi.as_ref().is_some_and(|m| !m.is_on(&driver)) {
                return Err(other_runtime());
            }
            if let Some((pool, mode, on)) = &st.pool {
                if on.as_ptr() == Rc::as_ptr(&driver) {
                    return Ok((pool.clone(), *mode));
                }
            }
        }
        let known = {
            let mut d = driver.borrow_mut();
            (d.pool()?, d.read_mode())
        };
        self.pooled.borrow_mut().pool = Some((known.0.clone(), known.1, Rc::downgrade(&driver)));
        Ok(known)
    }

    /// The no-allocation path of a pooled read: a buffer a plain read left, or the standing
    /// multishot recv's next completion. `None`: take the slow path.
    fn poll_fast(
        &self,
        wait: &mut Option<Op<Readable>>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<Option<PooledBuf>>>> {
        if let Err(e) = self.side.check_lost() {
            return Some(Poll::Ready(Err(e)));
        }
        if let Some(front) = self.pooled.borrow_mut().front.take() {
            return Some(Poll::Ready(Ok(Some(front))));
        }
        let (pool, mode) = match self.pool_and_mode() {
            Ok(known) => known,
            Err(e) => return Some(Poll::Ready(Err(e))),
        };
        if self.rescue.as_ref().is_some_and(|r| r.is_pending()) {
            return None;
        }
        match mode {
            ReadMode::Multishot => match self.poll_multishot(&pool, cx) {
                Step::Ready(res) => Some(Poll::Ready(res)),
                Step::Pending => Some(Poll::Pending),
                Step::Starved => None,
            },
            ReadMode::Epoll => self.poll_epoll(&pool, wait, cx),
            ReadMode::Select | ReadMode::Readiness => None,
        }
    }

    /// The epoll path, inline: a readiness wait (parked in `wait`, holding nothing), then one
    /// non-blocking recv into a pool buffer, which on epoll completes in the poll that makes
    /// it. `None` (never expected): the slow path takes over.
    fn poll_epoll(
        &self,
        pool: &BufPool,
        wait: &mut Option<Op<Readable>>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<Option<PooledBuf>>>> {
        loop {
            let readable =
                wait.get_or_insert_with(|| Op::on(&self.fd, Readable::new(self.fd.clone())));
            match Pin::new(readable).poll(cx) {
                Poll::Pending => return Some(Poll::Pending),
                Poll::Ready(res) => {
                    *wait = None;
                    if let Err(e) = res {
                        return Some(Poll::Ready(Err(e)));
                    }
                }
            }
            let recv = Recv::new(self.fd.clone(), pool.take(), None).nowait();
            let mut recv = Op::on(&self.fd, recv);
            match Pin::new(&mut recv).poll(cx) {
                Poll::Ready((Ok(0), _)) => return Some(Poll::Ready(Ok(None))),
                Poll::Ready((Ok(_), buf)) => return Some(Poll::Ready(Ok(Some(buf)))),
                Poll::Ready((Err(e), _)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Poll::Ready((Err(e), _)) => return Some(Poll::Ready(Err(e))),
                // Nothing is in the kernel on epoll: dropping it frees it at once.
                Poll::Pending => return None,
            }
        }
    }

    /// The slow path (boxed by `RecvPooled`): rescued bytes, the 5.19 and readiness modes,
    /// and a multishot stream whose ring ran dry.
    async fn recv_pooled_slow(&self) -> io::Result<Option<PooledBuf>> {
        let (pool, mode) = self.pool_and_mode()?;
        if let Some(rescued) = self.rescued(&pool).await {
            return rescued;
        }
        match mode {
            ReadMode::Multishot => {
                let step = poll_fn(|cx| match self.poll_multishot(&pool, cx) {
                    Step::Ready(res) => Poll::Ready(Some(res)),
                    Step::Pending => Poll::Pending,
                    Step::Starved => Poll::Ready(None),
                });
                match step.await {
                    Some(res) => res,
                    None => self.recv_when_readable(&pool).await,
                }
            }
            ReadMode::Select => self.recv_select(&pool).await,
            ReadMode::Readiness | ReadMode::Epoll => self.recv_when_readable(&pool).await,
        }
    }

    /// One buffer-select recv (5.19); an empty ring falls back to a readiness wait.
    async fn recv_select(&self, pool: &BufPool) -> io::Result<Option<PooledBuf>> {
        let op = RecvSelect::new(self.fd.clone(), pool.clone(), self.rescue.clone());
        match Op::on(&self.fd, op).await {
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                self.recv_when_readable(pool).await
            }
            res => res,
        }
    }

    /// What cancelled reads left, as a pooled buffer (bytes first, then the error).
    async fn rescued(&self, pool: &BufPool) -> Option<io::Result<Option<PooledBuf>>> {
        let rescue = self.rescue.as_ref().filter(|r| r.is_pending())?;
        let mut buf = Vec::with_capacity(pool.buf_size());
        match rescue.take_into(&mut buf).await? {
            Ok(_) => Some(Ok(Some(PooledBuf::of_bytes(pool, buf)))),
            Err(e) => Some(Err(e)),
        }
    }

    /// The standing multishot recv's next completion, arming it if needed.
    fn poll_multishot(&self, pool: &BufPool, cx: &mut Context<'_>) -> Step {
        loop {
            match self.arm_if_needed(pool) {
                Err(e) => return Step::Ready(Err(e)),
                Ok(Err(())) => return Step::Starved,
                Ok(Ok(())) => {}
            }
            let polled = crate::op::cancel::poll_standing(|| {
                let mut st = self.pooled.borrow_mut();
                st.multi.as_mut().expect("armed above").poll_next(cx)
            });
            let next = match polled {
                Poll::Pending => return Step::Pending,
                Poll::Ready(Err(e)) => return Step::Ready(Err(e)),
                Poll::Ready(Ok(next)) => next,
            };
            let Some((res, flags)) = next else {
                self.pooled.borrow_mut().multi = None;
                continue;
            };
            if flags & CQE_F_MORE == 0 {
                self.pooled.borrow_mut().multi = None;
            }
            let buf = io_uring::cqueue::buffer_select(flags).map(|b| pool.kernel_filled(b, 0));
            match (res, buf) {
                (n, Some(mut buf)) if n > 0 => {
                    // SAFETY: the kernel wrote `n` bytes at the start of this buffer.
                    unsafe { buf.set_init(n as usize) };
                    return Step::Ready(Ok(Some(buf)));
                }
                (0, _) => return Step::Ready(Ok(None)),
                // Paused by the driver (too many buffers queued untaken): re-arm.
                (e, _) if e == -libc::ECANCELED => {}
                (e, _) if e == -libc::ENOBUFS => {
                    pool.note_exhausted();
                    self.pooled.borrow_mut().starved = true;
                    return Step::Starved;
                }
                (e, _) if e < 0 => return Step::Ready(Err(io::Error::from_raw_os_error(-e))),
                // A count with no buffer named: the kernel broke its word; read on.
                _ => {}
            }
        }
    }

    /// Arms the standing recv unless it is armed; `Err(())` inside: the ring is still empty
    /// since the last `ENOBUFS`, read by readiness instead.
    fn arm_if_needed(&self, pool: &BufPool) -> io::Result<Result<(), ()>> {
        let mut st = self.pooled.borrow_mut();
        if st.multi.is_none() {
            if st.starved && !pool.ring_has_buffers() {
                return Ok(Err(()));
            }
            st.starved = false;
            st.multi = Some(arm_recv(&self.fd, pool)?);
        }
        Ok(Ok(()))
    }

    /// Waits for readiness holding nothing, then reads into a buffer taken from the pool.
    async fn recv_when_readable(&self, pool: &BufPool) -> io::Result<Option<PooledBuf>> {
        loop {
            Op::on(&self.fd, Readable::new(self.fd.clone())).await?;
            let buf = pool.take();
            let recv = Recv::new(self.fd.clone(), buf, self.rescue.clone()).nowait();
            match Op::on(&self.fd, recv).await {
                (Ok(0), _) => return Ok(None),
                (Ok(_), buf) => return Ok(Some(buf)),
                (Err(e), _) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (Err(e), _) => return Err(e),
            }
        }
    }

    /// Whether plain reads must take their bytes from the pooled side (a multishot recv is
    /// armed or left bytes).
    pub fn pooled_active(&self) -> bool {
        let st = self.pooled.borrow();
        st.multi.is_some() || st.front.is_some()
    }

    /// A plain read while the pooled side is active: copies from the next pooled buffer.
    pub async fn read_from_pooled<B: IoBufMut>(&self, mut buf: B) -> (io::Result<usize>, B) {
        let mut got = match self.recv_pooled().await {
            Ok(Some(got)) => got,
            Ok(None) => return (Ok(0), buf),
            Err(e) => return (Err(e), buf),
        };
        let n = got.len().min(buf.bytes_total());
        // SAFETY: `n <= bytes_total()`, writable by the IoBufMut contract; the source is
        // another allocation.
        unsafe { std::ptr::copy_nonoverlapping(got.as_ptr(), buf.stable_mut_ptr(), n) };
        // SAFETY: the first `n` bytes were just written.
        unsafe { buf.set_init(n) };
        got.consume(n);
        if !got.is_empty() {
            self.pooled.borrow_mut().front = Some(got);
        }
        (Ok(n), buf)
    }

    /// Ends the pooled side, for handing the socket out: every byte it had or still gets
    /// (the multishot recv is cancelled and answered), and the error it ended with, if any.
    pub async fn drain_pooled(&self) -> (Vec<u8>, Option<io::Error>) {
        let mut bytes = Vec::new();
        if let Some(front) = self.pooled.borrow_mut().front.take() {
            bytes.extend_from_slice(&front);
        }
        let driver = crate::context::current_driver();
        if self
            .pooled
            .borrow()
            .multi
            .as_ref()
            .is_some_and(|m| !m.is_on(&driver))
        {
            return (bytes, Some(other_runtime()));
        }
        let Some(mut multi) = self.pooled.borrow_mut().multi.take() else {
            return (bytes, None);
        };
        multi.cancel();
        let mut error = None;
        while let Some((res, flags)) = poll_fn(|cx| multi.poll_next(cx)).await {
            let buf = io_uring::cqueue::buffer_select(flags);
            let pool = driver.borrow_mut().pool();
            let buf = buf.zip(pool.ok()).map(|(b, pool)| pool.kernel_filled(b, 0));
            match (res, buf) {
                (n, Some(mut buf)) if n > 0 => {
                    // SAFETY: the kernel wrote `n` bytes at the start of this buffer.
                    unsafe { buf.set_init(n as usize) };
                    bytes.extend_from_slice(&buf);
                }
                (e, _) if e < 0 && e != -libc::ECANCELED && e != -libc::ENOBUFS => {
                    error.get_or_insert(io::Error::from_raw_os_error(-e));
                }
                _ => {}
            }
        }
        (bytes, error)
    }

    /// Gives the pooled side up (the stream is closing): a multishot recv is cancelled, and
    /// the fd's handle counts it until its last completion.
    pub fn drop_pooled(&self) {
        let st = std::mem::take(&mut *self.pooled.borrow_mut());
        drop(st);
    }
}

/// The slow path of one pooled read, boxed.
type SlowRead<'a> = Pin<Box<dyn Future<Output = io::Result<Option<PooledBuf>>> + 'a>>;

/// The future of `recv_pooled`. Small (a parked connection's task holds it): the multishot
/// path runs inline, the rare paths (and every read on epoll and older kernels) in a box.
pub struct RecvPooled<'a> {
    reader: &'a Reader,
    /// epoll: the readiness wait in progress.
    wait: Option<Op<Readable>>,
    slow: Option<SlowRead<'a>>,
}

impl Future for RecvPooled<'_> {
    type Output = io::Result<Option<PooledBuf>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.slow.is_none() {
            if let Some(fast) = this.reader.poll_fast(&mut this.wait, cx) {
                return fast;
            }
            this.slow = Some(Box::pin(this.reader.recv_pooled_slow()));
        }
        let slow = this.slow.as_mut().expect("set above");
        let res = std::task::ready!(slow.as_mut().poll(cx));
        this.slow = None;
        Poll::Ready(res)
    }
}

impl std::fmt::Debug for RecvPooled<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvPooled").finish_non_exhaustive()
    }
}

/// The pooled reads of a stream as a [`Stream`](futures_core::Stream) of buffers, ending at
/// end of stream (from `pooled_stream` on a stream or read half).
pub struct PooledStream<'a> {
    next: RecvPooled<'a>,
}

impl<'a> PooledStream<'a> {
    pub(super) fn new(reader: &'a Reader) -> PooledStream<'a> {
        PooledStream {
            next: reader.recv_pooled(),
        }
    }
}

impl futures_core::Stream for PooledStream<'_> {
    type Item = io::Result<PooledBuf>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let res = std::task::ready!(Pin::new(&mut self.get_mut().next).poll(cx));
        Poll::Ready(res.transpose())
    }
}

impl std::fmt::Debug for PooledStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledStream").finish_non_exhaustive()
    }
}
