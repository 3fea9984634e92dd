//! The ops behind pooled reads: a standing multishot recv into the buffer ring (6.0), a
//! one-shot buffer-select recv (5.19), and a readiness wait that holds no buffer (epoll and
//! older kernels; see `buf::pool`).
use std::io;
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue, types};

use super::multi::{HeldFd, Multishot};
use super::rescue::{ReadRescue, RescueLink};
use super::SharedFd;
use crate::buf::{BufPool, PooledBuf, BGID};
use crate::driver::{
    EpollOp, EpollStep, FdKey, Interest, MultiOrphan, OpCode, UringCaps, UringOp, UringStep,
};

/// What a standing receive holds: the stream's fd handle and the pool its buffers come from.
/// Once its owner is gone, each buffer it still fills goes back to the ring unread (the stream
/// is being closed).
pub(crate) struct RecvRest {
    fd: HeldFd,
    pool: BufPool,
}

impl MultiOrphan for RecvRest {
    fn orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn release(&mut self, _res: i32, flags: u32) {
        if let Some(bid) = cqueue::buffer_select(flags) {
            drop(self.pool.kernel_filled(bid, 0));
        }
        self.fd.released(flags);
    }
}

/// Buffers a standing recv may fill for a stream that does not read them before it is paused
/// (its peer then meets TCP's flow control, and other streams keep the rest of the ring).
pub(crate) const RECV_QUEUE_MAX: u16 = 16;

/// Arms a multishot recv on `fd`, the kernel picking buffers from `pool`'s ring.
pub(crate) fn arm_recv(fd: &SharedFd, pool: &BufPool) -> io::Result<Multishot<RecvRest>> {
    let entry = opcode::RecvMulti::new(types::Fd(fd.raw()), BGID).build();
    pool.armed();
    let rest = RecvRest {
        fd: HeldFd::new(fd),
        pool: pool.clone(),
    };
    Multishot::arm(entry, rest, RECV_QUEUE_MAX)
}

impl Drop for RecvRest {
    /// The standing recv has ended (its last completion came, or it was never armed).
    fn drop(&mut self) {
        self.pool.disarmed();
    }
}

/// One recv into a buffer the kernel picks from the ring when bytes arrive (5.19). `Ok(None)`
/// is end of stream; `ENOBUFS` means the ring was empty.
pub(crate) struct RecvSelect {
    fd: SharedFd,
    pool: BufPool,
    /// The buffer the completion named.
    bid: Option<u16>,
    rescue: RescueLink<ReadRescue>,
}

impl RecvSelect {
    pub fn new(fd: SharedFd, pool: BufPool, rescue: Option<Rc<ReadRescue>>) -> RecvSelect {
        pool.armed();
        RecvSelect {
            fd,
            pool,
            bid: None,
            rescue: RescueLink::new(rescue),
        }
    }
}

impl Drop for RecvSelect {
    fn drop(&mut self) {
        self.pool.disarmed();
    }
}

impl UringOp for RecvSelect {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let len = self.pool.buf_size().min(u32::MAX as usize) as u32;
        let entry = opcode::Recv::new(types::Fd(self.fd.raw()), std::ptr::null_mut(), len)
            .buf_group(BGID)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        UringStep::Submit(entry)
    }
}

impl EpollOp for RecvSelect {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Done(Err(io::Error::from(io::ErrorKind::Unsupported)))
    }
}

impl OpCode for RecvSelect {
    type Output = io::Result<Option<PooledBuf>>;

    fn take_flags(&mut self, flags: u32) {
        self.bid = cqueue::buffer_select(flags);
    }

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        let buf = self.bid.map(|bid| self.pool.kernel_filled(bid, 0));
        let n = res?;
        match buf {
            Some(mut buf) if n > 0 => {
                // SAFETY: the kernel wrote `n` bytes at the start of this buffer.
                unsafe { crate::buf::IoBufMut::set_init(&mut buf, n as usize) };
                Ok(Some(buf))
            }
            _ => Ok(None),
        }
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
        self.rescue.orphaned();
    }

    fn finish_orphaned(mut self, res: io::Result<u32>) {
        self.fd.answered();
        // Taken back into the pool when dropped, after its bytes went to the rescue.
        let mut buf = self.bid.take().map(|bid| self.pool.kernel_filled(bid, 0));
        let Some(rescue) = self.rescue.of_orphan() else {
            return;
        };
        match (res, &mut buf) {
            (Ok(n), Some(buf)) => {
                // SAFETY: the kernel wrote `n` bytes at the start of this buffer.
                unsafe { crate::buf::IoBufMut::set_init(buf, n as usize) };
                rescue.answered(Ok(&buf[..]));
            }
            (Ok(_), None) => rescue.answered(Ok(&[])),
            (Err(e), _) => rescue.answered(Err(e)),
        }
    }
}

/// Waits until `fd` has bytes to read (or end of stream, or an error), holding no buffer.
/// io_uring: a one-shot POLL_ADD; epoll: parks on the read side after an EAGAIN.
pub(crate) struct Readable {
    fd: SharedFd,
}

impl Readable {
    pub fn new(fd: SharedFd) -> Readable {
        Readable { fd }
    }
}

impl UringOp for Readable {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let entry = opcode::PollAdd::new(types::Fd(self.fd.raw()), libc::POLLIN as u32).build();
        UringStep::Submit(entry)
    }
}

impl EpollOp for Readable {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Done(Ok(0))
    }

    fn readiness(&self) -> Option<(FdKey, Interest)> {
        Some((self.fd.key(), Interest::Read))
    }

    fn parks_after_eagain(&self) -> bool {
        true
    }
}

impl OpCode for Readable {
    type Output = io::Result<()>;

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, _res: io::Result<u32>) {
        self.fd.answered();
    }
}
