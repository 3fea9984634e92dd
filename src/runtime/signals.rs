//! Opt-in SIGINT/SIGTERM handling for [`Runtime::run`](crate::Runtime::run).
//!
//! A `sigaction` handler (process-wide, so whichever thread the kernel picks is fine) writes to
//! an eventfd; a thread of our own waits on it and requests shutdown. The previous handlers are
//! restored when the run ends. One run at a time may handle signals.
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::ShutdownHandle;
use crate::sys;

/// The eventfd the handler writes to; -1 when no run handles signals.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

const SIGNALS: [Signal; 2] = [Signal::SIGINT, Signal::SIGTERM];

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
    /// The handlers ours replaced, put back on drop.
    old: Vec<SigAction>,
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
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut old = Vec::with_capacity(SIGNALS.len());
        for sig in SIGNALS {
            // SAFETY: the handler only loads an atomic and writes to an eventfd, both
            // async-signal-safe; it may run on any thread at any time.
            match unsafe { sigaction(sig, &action) } {
                Ok(prev) => old.push(prev),
                Err(e) => {
                    restore(&old);
                    SIGNAL_FD.store(-1, Ordering::Release);
                    return Err(e.into());
                }
            }
        }
        // The thread holds its own handles of the two eventfds.
        let (sig, stop) = match (signal_fd.try_clone(), stop_fd.try_clone()) {
            (Ok(sig), Ok(stop)) => (sig, stop),
            (Err(e), _) | (_, Err(e)) => {
                restore(&old);
                SIGNAL_FD.store(-1, Ordering::Release);
                return Err(e);
            }
        };
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

fn wait_for_signals(sig: OwnedFd, stop: OwnedFd, handle: ShutdownHandle, grace: Duration) {
    loop {
        let mut fds = [
            PollFd::new(sig.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        if nix::poll::poll(&mut fds, PollTimeout::NONE).is_err() {
            continue; // EINTR
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            return;
        }
        if ready(&fds[0]) {
            let mut count = [0u8; 8];
            // Non-blocking: resets the counter, or EAGAIN if another read got there first.
            let _ = nix::unistd::read(sig.as_raw_fd(), &mut count);
            handle.shutdown(grace);
        }
    }
}

fn restore(old: &[SigAction]) {
    for (sig, action) in SIGNALS.into_iter().zip(old) {
        // SAFETY: puts back a handler the kernel gave us for this signal.
        let _ = unsafe { sigaction(sig, action) };
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
