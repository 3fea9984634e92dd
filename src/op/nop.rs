//! The no-op: the per-op overhead floor.
use std::io;

use io_uring::opcode;

use crate::driver::{EpollOp, EpollStep, OpCode, UringCaps, UringOp, UringStep};

/// Does nothing. io_uring: one NOP entry and its completion; epoll: completes at once.
pub(crate) struct Nop;

impl UringOp for Nop {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Submit(opcode::Nop::new().build())
    }
}

impl EpollOp for Nop {
    fn epoll_try(&mut self) -> EpollStep {
        EpollStep::Done(Ok(0))
    }
}

impl OpCode for Nop {
    type Output = io::Result<()>;

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }
}
