//! `io_uring_enter` itself, through the registered ring fd where the kernel has one.
//!
//! A registered ring fd (5.18: `IORING_REGISTER_RING_FDS`) lets every enter name the ring by
//! an index into the thread's registered-ring table (`IORING_ENTER_REGISTERED_RING`) instead of
//! its fd, which saves the kernel an fd lookup (and its reference counting) per enter. The
//! `io-uring` crate keeps such a registration per short-lived `Submitter`, so the enter is
//! made here, with the index this type owns.
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::types;

use crate::driver::tier::{TierCap, UringFeature};

/// `IORING_ENTER_GETEVENTS`: wait for (and, with DEFER_TASKRUN, run) completions.
const GETEVENTS: u32 = 1;
const EXT_ARG: u32 = 1 << 3;
const REGISTERED_RING: u32 = 1 << 4;
const REGISTER_RING_FDS: libc::c_uint = 20;
const UNREGISTER_RING_FDS: libc::c_uint = 21;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// How this ring is named to `io_uring_enter`.
pub(super) struct Enter {
    ring_fd: RawFd,
    /// The ring's index in this thread's registered-ring table, if registered.
    registered: Option<u32>,
}

impl Enter {
    /// Registers `ring_fd` where the kernel (and the cap) allow; else enters by fd.
    pub fn new(ring_fd: RawFd, cap: TierCap) -> Enter {
        let registered = cap
            .gate(UringFeature::RegisteredRing, || register(ring_fd))
            .ok();
        Enter {
            ring_fd,
            registered,
        }
    }

    pub fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// One enter: submit `to_submit`, wait for `want` completions, bounded by `timeout`
    /// (only with EXT_ARG, which the caller checked). Always with GETEVENTS: on DEFER_TASKRUN
    /// rings that is what runs the completion work, even when `want` is 0.
    pub fn enter(&self, to_submit: u32, want: u32, timeout: Option<Duration>) -> io::Result<u32> {
        let mut flags = GETEVENTS;
        let ts = timeout.map(types::Timespec::from);
        let arg = ts.as_ref().map(|ts| GetEventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec: 0,
            ts: ts as *const types::Timespec as u64,
        });
        let (argp, argsz) = match &arg {
            Some(a) => {
                flags |= EXT_ARG;
                (
                    a as *const GetEventsArg,
                    std::mem::size_of::<GetEventsArg>(),
                )
            }
            None => (std::ptr::null(), 0),
        };
        let fd = match self.registered {
            Some(index) => {
                flags |= REGISTERED_RING;
                index as libc::c_long
            }
            None => self.ring_fd as libc::c_long,
        };
        // SAFETY: `argp` is null or points at a live io_uring_getevents_arg (whose `ts` points
        // at a live timespec) for the duration of the call; the queued entries point only at
        // memory the op table keeps alive until their completions (see `UringDriver::push`).
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit as libc::c_long,
                want as libc::c_long,
                flags as libc::c_long,
                argp,
                argsz,
            )
        };
        if res < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(res as u32)
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let Some(index) = self.registered else { return };
        let mut update = RsrcUpdate {
            offset: index,
            resv: 0,
            data: 0,
        };
        // SAFETY: `update` is a live io_uring_rsrc_update for the duration of the call.
        unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                self.ring_fd as libc::c_long,
                UNREGISTER_RING_FDS as libc::c_long,
                &mut update as *mut RsrcUpdate,
                1 as libc::c_long,
            )
        };
    }
}

/// `IORING_REGISTER_RING_FDS` for one ring, the kernel choosing the index.
fn register(ring_fd: RawFd) -> io::Result<u32> {
    let mut update = RsrcUpdate {
        offset: u32::MAX,
        resv: 0,
        data: ring_fd as u64,
    };
    // SAFETY: `update` is a live io_uring_rsrc_update for the duration of the call; the kernel
    // writes the chosen index into its `offset`.
    let res = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd as libc::c_long,
            REGISTER_RING_FDS as libc::c_long,
            &mut update as *mut RsrcUpdate,
            1 as libc::c_long,
        )
    };
    match res {
        1 => Ok(update.offset),
        r if r < 0 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}
