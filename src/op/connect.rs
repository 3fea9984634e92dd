//! Connect a socket to a peer.
use std::io;

use super::SharedFd;

use io_uring::{opcode, types};

use crate::driver::{EpollOp, EpollStep, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::sys::{self, RawAddr};

/// Connects `fd` to `addr`. On epoll: `connect` → EINPROGRESS → wait writable → SO_ERROR.
pub(crate) struct Connect {
    fd: SharedFd,
    /// Read by the kernel; boxed so it does not move while the connect is in flight.
    addr: Box<RawAddr>,
    in_progress: bool,
}

impl Connect {
    pub fn new(fd: SharedFd, addr: &std::net::SocketAddr) -> Connect {
        Connect {
            fd,
            addr: RawAddr::from_std(addr),
            in_progress: false,
        }
    }
}

impl UringOp for Connect {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Submit(
            opcode::Connect::new(types::Fd(self.fd.raw()), self.addr.as_ptr(), self.addr.len)
                .build(),
        )
    }
}

impl EpollOp for Connect {
    fn epoll_try(&mut self) -> EpollStep {
        if self.in_progress {
            // Woken by writability: the outcome is the socket's pending error, if any.
            return match sys::take_socket_error(self.fd.raw()) {
                Ok(None) => EpollStep::Done(Ok(0)),
                Ok(Some(e)) | Err(e) => EpollStep::Done(Err(e)),
            };
        }
        loop {
            // SAFETY: the address is a live, correctly sized sockaddr owned by this op.
            let res = unsafe { libc::connect(self.fd.raw(), self.addr.as_ptr(), self.addr.len) };
            if res == 0 {
                return EpollStep::Done(Ok(0));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINPROGRESS) | Some(libc::EAGAIN) => {
                    self.in_progress = true;
                    return EpollStep::Wait(self.fd.key(), Interest::Write);
                }
                _ => return EpollStep::Done(Err(err)),
            }
        }
    }
}

impl OpCode for Connect {
    type Output = io::Result<()>;

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, res: io::Result<u32>) {
        self.fd.answered();
        drop(self.complete(res));
    }

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        res.map(drop)
    }
}
