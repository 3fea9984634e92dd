//! The read side of [`Compat`](super::Compat): a pooled read at a time (the core's buffer
//! pool lends the buffer when bytes arrive; on io_uring 6.0+ one multishot receive stays armed),
//! and the caller's buffer takes bytes from it.
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{ready, Context, Poll};

use super::CompatStream;
use crate::PooledBuf;

type ReadOp = Pin<Box<dyn Future<Output = io::Result<Option<PooledBuf>>>>>;

/// The bytes read ahead (`buf[pos..]`, not yet taken; the buffer goes back to the pool once
/// they are) and the read in flight, which holds no buffer while it waits.
pub(super) struct ReadSide {
    buf: Option<PooledBuf>,
    pos: usize,
    op: Option<ReadOp>,
}

impl ReadSide {
    pub fn new() -> ReadSide {
        ReadSide {
            buf: None,
            pos: 0,
            op: None,
        }
    }

    /// The bytes read ahead, reading more first if there are none; empty at end of stream.
    pub fn poll_fill<S: CompatStream>(
        &mut self,
        cx: &mut Context<'_>,
        stream: &Rc<S>,
    ) -> Poll<io::Result<&[u8]>> {
        if self.buffered().is_empty() {
            self.buf = None; // back to the pool before the next read takes one
            let op = self.op.get_or_insert_with(|| {
                let stream = stream.clone();
                Box::pin(async move { stream.recv_pooled().await })
            });
            let res = ready!(op.as_mut().poll(cx));
            self.op = None;
            self.pos = 0;
            // `Ok(None)` leaves nothing buffered: end of stream.
            self.buf = res?;
        }
        Poll::Ready(Ok(self.buffered()))
    }

    /// Marks `n` bytes of [`poll_fill`](Self::poll_fill)'s answer as taken.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.buf.as_ref().map_or(0, |b| b.len()));
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

    /// Drops the read in flight (what the kernel still receives for it goes to the stream's
    /// next read) and returns the bytes read ahead.
    pub fn into_unread(mut self) -> Vec<u8> {
        self.op = None;
        self.buffered().to_vec()
    }

    pub fn buffered(&self) -> &[u8] {
        match &self.buf {
            Some(buf) => &buf[self.pos.min(buf.len())..],
            None => &[],
        }
    }
}

impl fmt::Debug for ReadSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadSide")
            .field("buffered", &self.buffered().len())
            .field("in_flight", &self.op.is_some())
            .finish()
    }
}
