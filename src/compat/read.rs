//! The read side of [`Compat`](super::Compat): one owned read buffer, filled by one corering
//! read at a time; the caller's buffer takes bytes from it.
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use super::CompatStream;
use crate::BufResult;

type ReadOp = Pin<Box<dyn Future<Output = BufResult<usize, Vec<u8>>>>>;

/// The read buffer (`buf[pos..]` is read ahead, not yet taken) and the read in flight, which
/// owns the buffer while the kernel may write into it.
pub(super) struct ReadSide {
    buf: Vec<u8>,
    pos: usize,
    op: Option<ReadOp>,
    capacity: usize,
}

impl ReadSide {
    pub fn new(capacity: usize) -> ReadSide {
        ReadSide {
            buf: Vec::new(),
            pos: 0,
            op: None,
            capacity: capacity.max(1),
        }
    }

    /// The bytes read ahead, reading more first if there are none; empty at end of stream.
    pub fn poll_fill<S: CompatStream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Rc<S>,
    ) -> Poll<io::Result<&[u8]>> {
        if self.pos < self.buf.len() {
            return Poll::Ready(Ok(&self.buf[self.pos..]));
        }
        let op = match &mut self.op {
            Some(op) => op,
            None => {
                let mut buf = std::mem::take(&mut self.buf);
                buf.clear();
                buf.reserve_exact(self.capacity);
                let stream = stream.clone();
                self.op
                    .insert(Box::pin(async move { stream.read(buf).await }))
            }
        };
        let (res, buf) = ready!(op.as_mut().poll(cx));
        self.op = None;
        self.buf = buf;
        self.pos = 0;
        match res {
            // The read sets the length to the count; `Ok(0)` leaves it empty (end of stream).
            Ok(_) => Poll::Ready(Ok(&self.buf[..])),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// Marks `n` bytes of [`poll_fill`](Self::poll_fill)'s answer as taken.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.len());
    }

    /// Copies what fits of the bytes read ahead into `put` (which gets a slice no longer than
    /// `room`); reads first if there are none. Copies nothing at end of stream.
    pub fn poll_copy<S: CompatStream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Rc<S>,
        room: usize,
        put: impl FnOnce(&[u8]),
    ) -> Poll<io::Result<()>> {
        if room == 0 {
            return Poll::Ready(Ok(()));
        }
        let ahead = ready!(self.poll_fill(cx, stream))?;
        let n = ahead.len().min(room);
        put(&ahead[..n]);
        self.consume(n);
        Poll::Ready(Ok(()))
    }

    /// Drops the read in flight (corering keeps its buffer until the kernel is done) and
    /// returns the bytes read ahead.
    pub fn into_unread(mut self) -> Vec<u8> {
        self.op = None;
        self.buf.drain(..self.pos);
        self.buf
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }
}

impl fmt::Debug for ReadSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSide")
            .field("buffered", &self.buffered().len())
            .field("in_flight", &self.op.is_some())
            .field("capacity", &self.capacity)
            .finish()
    }
}
