//! The epoll registration of each open file, keyed by its fd handle's identity.
use std::io;
use std::os::fd::AsRawFd;

use super::{EpollDriver, FdState};
use crate::driver::FdKey;
use crate::sys::syscall;

impl EpollDriver {
    /// Registers `key`'s file under its number, edge-triggered, for both directions, urgent
    /// data and hang-ups; once per file (a new identity under the same number registers anew).
    pub(super) fn register(&mut self, key: FdKey) -> io::Result<()> {
        let i = usize::try_from(key.fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        if i >= self.fds.len() {
            self.fds.resize_with(i + 1, FdState::default);
        }
        if self.fds[i].id == key.id {
            return Ok(());
        }
        let events =
            libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLPRI | libc::EPOLLET;
        let mut ev = libc::epoll_event {
            events: events as u32,
            u64: key.fd as u64,
        };
        let epfd = self.epfd.as_raw_fd();
        // SAFETY: `ev` is a live epoll_event for the duration of the call.
        match syscall!(epoll_ctl(epfd, libc::EPOLL_CTL_ADD, key.fd, &mut ev)) {
            Ok(_) => {}
            // Still registered from an earlier owner of the same open file (a raw fd handed
            // back in): refresh the registration, which also re-arms its edges.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // SAFETY: as above.
                syscall!(epoll_ctl(epfd, libc::EPOLL_CTL_MOD, key.fd, &mut ev))?;
            }
            Err(e) => return Err(e),
        }
        let stale = std::mem::replace(
            &mut self.fds[i],
            FdState {
                id: key.id,
                ..FdState::default()
            },
        );
        self.wake_all(stale);
        Ok(())
    }

    /// `key`'s file is about to be closed or handed out: unregister it and wake its waiters
    /// (there are none while ops hold the fd handle; this is belt and braces).
    pub fn forget_fd(&mut self, key: FdKey) {
        let Some(state) = self.state_of(key) else {
            return;
        };
        let state = std::mem::take(state);
        // SAFETY: a plain epoll_ctl on fds we hold; DEL takes no event argument.
        let _ = unsafe {
            libc::epoll_ctl(
                self.epfd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                key.fd,
                std::ptr::null_mut(),
            )
        };
        self.wake_all(state);
    }

    pub(super) fn wake_all(&mut self, state: FdState) {
        let [read, write] = state.sides;
        for index in read.waiters.into_iter().chain(write.waiters) {
            self.ready.push(self.ops.complete(index, 0, 0));
        }
    }
}
