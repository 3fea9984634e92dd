//! The write side of [`Compat`](super::Compat): writes are copied into a staging buffer; one
//! corering `write_all` of an earlier staging buffer may be in flight meanwhile.
use std::fmt;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use super::CompatStream;
use crate::BufResult;

type WriteOp = Pin<Box<dyn Future<Output = BufResult<(), Vec<u8>>>>>;
type ShutdownOp = Pin<Box<dyn Future<Output = io::Result<()>>>>;

/// `staged`: bytes taken by `poll_write`, not yet handed to the kernel (at most `capacity`).
/// `op`: the write in flight, which owns the other buffer; `spare` is that buffer when no
/// write is in flight. `failed`: a write failed, so the stream's offset is unknown and every
/// later write fails.
pub(super) struct WriteSide {
    staged: Vec<u8>,
    spare: Vec<u8>,
    op: Option<WriteOp>,
    shutdown: Option<ShutdownOp>,
    shut: bool,
    failed: Option<io::ErrorKind>,
    capacity: usize,
}

impl WriteSide {
    pub fn new(capacity: usize) -> WriteSide {
        WriteSide {
            staged: Vec::new(),
            spare: Vec::new(),
            op: None,
            shutdown: None,
            shut: false,
            failed: None,
            capacity: capacity.max(1),
        }
    }

    fn check(&self) -> io::Result<()> {
        match self.failed {
            Some(kind) => Err(io::Error::new(
                kind,
                "an earlier write of this stream failed",
            )),
            None => Ok(()),
        }
    }

    /// Polls the write in flight, if any; `Ready(Ok)`: none is in flight any more.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = &mut self.op else {
            return Poll::Ready(Ok(()));
        };
        let (res, mut buf) = ready!(op.as_mut().poll(cx));
        self.op = None;
        buf.clear();
        self.spare = buf;
        if let Err(e) = &res {
            self.failed = Some(e.kind());
        }
        Poll::Ready(res)
    }

    /// Drives the writes until every staged byte is written (`Ready(Ok)`), one is in flight
    /// (`Pending`, woken when it completes) or one failed.
    pub fn poll_flush<S: CompatStream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Rc<S>,
    ) -> Poll<io::Result<()>> {
        loop {
            self.check()?;
            ready!(self.poll_in_flight(cx))?;
            if self.staged.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let buf = std::mem::replace(&mut self.staged, std::mem::take(&mut self.spare));
            let stream = stream.clone();
            self.op = Some(Box::pin(async move { stream.write_all(buf).await }));
        }
    }

    /// Copies what fits of `bufs` into the staging buffer and starts writing it if no write
    /// is in flight; `Pending` while the buffer is full.
    pub fn poll_write<S: CompatStream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Rc<S>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check()?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        if let Poll::Ready(Err(e)) = self.poll_flush(cx, stream) {
            return Poll::Ready(Err(e));
        }
        let room = self.capacity.saturating_sub(self.staged.len());
        if room == 0 {
            return Poll::Pending; // the write in flight wakes the task
        }
        self.staged.reserve_exact(room);
        let mut taken = 0;
        for buf in bufs {
            let n = buf.len().min(room - taken);
            self.staged.extend_from_slice(&buf[..n]);
            taken += n;
            if taken == room {
                break;
            }
        }
        if self.op.is_none() {
            // Start it now; a failure is reported by the next call (these bytes were taken).
            let _ = self.poll_flush(cx, stream);
        }
        Poll::Ready(Ok(taken))
    }

    /// Flushes, then shuts the writing direction down (once).
    pub fn poll_shutdown<S: CompatStream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Rc<S>,
    ) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx, stream))?;
        if self.shut {
            return Poll::Ready(Ok(()));
        }
        let op = self.shutdown.get_or_insert_with(|| {
            let stream = stream.clone();
            Box::pin(async move { stream.shutdown_write().await })
        });
        let res = ready!(op.as_mut().poll(cx));
        self.shutdown = None;
        self.shut = res.is_ok();
        Poll::Ready(res)
    }

    /// Drops the write or shutdown in flight (a write may still be sent in part or whole)
    /// and the staged bytes.
    pub fn abandon(&mut self) {
        self.op = None;
        self.shutdown = None;
        self.staged.clear();
    }
}

impl fmt::Debug for WriteSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteSide")
            .field("staged", &self.staged.len())
            .field("in_flight", &self.op.is_some())
            .field("shut", &self.shut)
            .field("failed", &self.failed)
            .field("capacity", &self.capacity)
            .finish()
    }
}
