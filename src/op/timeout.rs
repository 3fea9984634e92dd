//! A timer in the kernel.
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use io_uring::{opcode, types};

use super::SharedFd;
use crate::driver::{EpollOp, EpollStep, Interest, OpCode, UringCaps, UringOp, UringStep};

/// Longer kernel timeouts than this are "forever": their timespec says this (100 years), which
/// io_uring TIMEOUT and timerfd accept, where `Duration::MAX` would turn negative (EINVAL).
const KERNEL_FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Fires after `duration`. io_uring: IORING_OP_TIMEOUT (its -ETIME is success); epoll: a
/// one-shot timerfd, waited for as readable.
pub(crate) struct Timeout {
    duration: Duration,
    /// Read by the kernel; boxed so it does not move while the timeout is in flight.
    ts: Box<types::Timespec>,
    timerfd: Option<SharedFd>,
}

impl Timeout {
    pub fn new(duration: Duration) -> Timeout {
        let duration = duration.min(KERNEL_FOREVER);
        let ts = types::Timespec::new()
            .sec(duration.as_secs())
            .nsec(duration.subsec_nanos());
        Timeout {
            duration,
            ts: Box::new(ts),
            timerfd: None,
        }
    }

    fn arm_timerfd(&mut self) -> io::Result<SharedFd> {
        let fd = crate::sys::syscall!(timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC
        ))?;
        // SAFETY: timerfd_create just returned this fd and nothing else owns it.
        let fd = SharedFd::new(unsafe { OwnedFd::from_raw_fd(fd) });
        // A zero it_value would disarm the timer; one nanosecond fires at once instead.
        let d = self.duration.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            },
        };
        crate::sys::syscall!(timerfd_settime(fd.raw(), 0, &spec, std::ptr::null_mut()))?;
        Ok(fd)
    }
}

impl UringOp for Timeout {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        UringStep::Submit(opcode::Timeout::new(&*self.ts).build())
    }
}

impl EpollOp for Timeout {
    fn epoll_try(&mut self) -> EpollStep {
        if self.timerfd.is_none() {
            match self.arm_timerfd() {
                Ok(fd) => self.timerfd = Some(fd),
                Err(e) => return EpollStep::Done(Err(e)),
            }
        }
        let Some(key) = self.timerfd.as_ref().map(SharedFd::key) else {
            return EpollStep::Done(Err(io::Error::from_raw_os_error(libc::EBADF)));
        };
        let fd = key.fd;
        let mut expirations: u64 = 0;
        super::nonblocking(key, Interest::Read, 0, || {
            // SAFETY: reads 8 bytes into a live u64.
            unsafe { libc::read(fd, (&mut expirations as *mut u64).cast(), 8) }
        })
    }
}

impl OpCode for Timeout {
    type Output = io::Result<()>;

    fn complete(self, res: io::Result<u32>) -> io::Result<()> {
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
