//! Opt-in SIGINT/SIGTERM handling for [`Runtime::run`](crate::Runtime::run).
//!
//! A `sigaction` handler (process-wide, so whichever thread the kernel picks is fine) writes to
//! an eventfd; a thread of our own waits on it and requests shutdown. The previous handlers are
//! restored when the run ends. One run at a time may handle signals.
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::ShutdownHandle;
use crate::sys::{self, syscall};

/// The eventfd the handler writes to; -1 when no run handles signals.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // Only async-signal-safe calls here: write(2) on an eventfd.
        sys::eventfd_signal(fd);
    }
}

pub(crate) struct SignalWatch {
    signal_fd: OwnedFd,
    stop_fd: OwnedFd,
    old: [libc::sigaction; 2],
    thread: Option<JoinHandle<()>>,
}

impl SignalWatch {
    pub fn start(handle: ShutdownHandle, grace: Duration) -> io::Result<SignalWatch> {
        let signal_fd = sys::eventfd()?;
        let stop_fd = sys::eventfd()?;
        if SIGNAL_FD
            .compare_exchange(
                -1,
                signal_fd.as_raw_fd(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "another Runtime::run already handles SIGINT/SIGTERM",
            ));
        }
        // SAFETY: sigaction is plain data; zeroed is a valid starting value.
        let mut old: [libc::sigaction; 2] = unsafe { std::mem::zeroed() };
        for (i, sig) in SIGNALS.into_iter().enumerate() {
            // SAFETY: as above.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            // SAFETY: `action` is initialised; sigemptyset fills its mask.
            unsafe { libc::sigemptyset(&mut action.sa_mask) };
            if let Err(e) = syscall!(sigaction(sig, &action, &mut old[i])) {
                restore(&old[..i]);
                SIGNAL_FD.store(-1, Ordering::Release);
                return Err(e);
            }
        }
        let (sig, stop) = (signal_fd.as_raw_fd(), stop_fd.as_raw_fd());
        let thread = std::thread::Builder::new()
            .name("corering-signals".into())
            .spawn(move || wait_for_signals(sig, stop, handle, grace));
        match thread {
            Ok(t) => Ok(SignalWatch {
                signal_fd,
                stop_fd,
                old,
                thread: Some(t),
            }),
            Err(e) => {
                restore(&old);
                SIGNAL_FD.store(-1, Ordering::Release);
                Err(e)
            }
        }
    }
}

fn wait_for_signals(sig: i32, stop: i32, handle: ShutdownHandle, grace: Duration) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sig,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a live array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            continue; // EINTR
        }
        if fds[1].revents != 0 {
            return;
        }
        if fds[0].revents != 0 {
            let mut count: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from a non-blocking eventfd.
            let _ = unsafe { libc::read(sig, (&mut count as *mut u64).cast(), 8) };
            handle.shutdown(grace);
        }
    }
}

fn restore(old: &[libc::sigaction]) {
    for (sig, action) in SIGNALS.into_iter().zip(old) {
        // SAFETY: restores a handler the kernel gave us.
        unsafe { libc::sigaction(sig, action, std::ptr::null_mut()) };
    }
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        restore(&self.old);
        SIGNAL_FD.store(-1, Ordering::Release);
        sys::eventfd_signal(self.stop_fd.as_raw_fd());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The fds close when the fields drop; no handler refers to them any more.
        let _ = &self.signal_fd;
    }
}
