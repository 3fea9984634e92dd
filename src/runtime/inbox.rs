//! A core's inbox: what other threads may touch ([`Shared`]): the wakes and jobs they leave
//! for the core, and its wake-up eventfd.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::waker::TaskWaker;

/// Work sent to a core from another thread; it runs on that core, inside its runtime.
pub(crate) type Job = Box<dyn FnOnce() + Send>;

/// The part of a core that other threads may touch: its inbox and its wake-up eventfd.
pub(crate) struct Shared {
    /// Unique per core; compared with the thread's current core to route a wake.
    pub id: u64,
    pub inbox: Mutex<Inbox>,
    pub wake_fd: std::os::fd::OwnedFd,
    /// Set when the eventfd was signalled and the core has not yet drained the inbox, so
    /// that a burst of remote wakes costs one write.
    pub notified: AtomicBool,
}

/// What other threads left for a core.
#[derive(Default)]
pub(crate) struct Inbox {
    pub wakes: Vec<Arc<TaskWaker>>,
    pub jobs: Vec<Job>,
    /// The core has stopped: jobs sent now are dropped at once (their senders see that).
    pub closed: bool,
}

impl Shared {
    pub fn new(id: u64) -> std::io::Result<Shared> {
        Ok(Shared {
            id,
            inbox: Mutex::new(Inbox::default()),
            wake_fd: crate::sys::eventfd()?,
            notified: AtomicBool::new(false),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the core if it is parked (one eventfd write per burst).
    pub fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            crate::sys::eventfd_signal(std::os::fd::AsRawFd::as_raw_fd(&self.wake_fd));
        }
    }

    /// Sends `job` to run on this core; gives it back if the core has stopped.
    pub fn send_job(&self, job: Job) -> Result<(), Job> {
        {
            let mut inbox = self.lock();
            if inbox.closed {
                return Err(job);
            }
            inbox.jobs.push(job);
        }
        self.notify();
        Ok(())
    }
}
