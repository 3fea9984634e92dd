//! Multishot accept (5.19): one armed entry accepts connection after connection.
use std::os::fd::{FromRawFd, OwnedFd};

use io_uring::{opcode, types};

use super::multi::{HeldFd, Multishot};
use super::SharedFd;
use crate::driver::MultiOrphan;

/// What a standing accept holds: the listener's fd handle. Once its owner (the listener) is
/// gone, each connection it still accepts is closed.
pub(crate) struct AcceptRest {
    fd: HeldFd,
}

impl MultiOrphan for AcceptRest {
    fn orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn release(&mut self, res: i32, flags: u32) {
        if res >= 0 {
            // SAFETY: a successful accept's result is a new fd that nothing else owns.
            drop(unsafe { OwnedFd::from_raw_fd(res) });
        }
        self.fd.released(flags);
    }
}

/// Arms a multishot accept on the listening socket `fd` (new sockets are close-on-exec),
/// paused once `limit` connections wait untaken.
pub(crate) fn arm_accept(fd: &SharedFd, limit: u16) -> std::io::Result<Multishot<AcceptRest>> {
    let entry = opcode::AcceptMulti::new(types::Fd(fd.raw()))
        .flags(libc::SOCK_CLOEXEC)
        .build();
    let rest = AcceptRest {
        fd: HeldFd::new(fd),
    };
    Multishot::arm(entry, rest, limit)
}
