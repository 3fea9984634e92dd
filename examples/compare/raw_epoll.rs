//! The readiness floor: a single-threaded, level-triggered epoll echo loop on libc, no runtime.
//!
//! Per request it makes the fewest syscalls a readiness design can: epoll_wait (shared by every
//! connection that became readable in that turn), one read, one write. A write that does not
//! finish parks the connection on EPOLLOUT until the rest is out.
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use slab::Slab;

use super::servers::{announce, control_thread, Counter, ServerStats, BUF};

static WAITS: Counter = Counter::new();
static IO_SYSCALLS: Counter = Counter::new();

const LISTENER: u64 = u64::MAX;

struct Conn {
    fd: OwnedFd,
    buf: Box<[u8]>,
    /// Bytes read but not yet written back: `buf[start..end]`.
    start: usize,
    end: usize,
}

fn cvt(res: isize) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res as usize)
    }
}

fn ctl(ep: RawFd, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    IO_SYSCALLS.add(1);
    // SAFETY: a live epoll_event; the kernel copies it.
    cvt(unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } as isize).map(drop)
}

pub fn serve(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let ctl_addr = control_thread(|| ServerStats {
        waits: WAITS.get(),
        io_syscalls: IO_SYSCALLS.get(),
        ..ServerStats::default()
    })?;
    // SAFETY: epoll_create1 has no memory preconditions; the fd is checked, then owned.
    let ep = unsafe {
        let fd = cvt(libc::epoll_create1(libc::EPOLL_CLOEXEC) as isize)?;
        OwnedFd::from_raw_fd(fd as RawFd)
    };
    let ep = ep.as_raw_fd();
    ctl(
        ep,
        libc::EPOLL_CTL_ADD,
        listener.as_raw_fd(),
        libc::EPOLLIN as u32,
        LISTENER,
    )?;
    announce(listener.local_addr()?, ctl_addr);

    let mut conns: Slab<Conn> = Slab::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    loop {
        WAITS.add(1);
        // SAFETY: `events` is a live buffer of events.len() entries.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let (flags, token) = (ev.events, ev.u64);
            if token == LISTENER {
                accept_all(ep, &listener, &mut conns);
                continue;
            }
            let key = token as usize;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let alive = if conn.start < conn.end {
                // Parked on EPOLLOUT with bytes still to send.
                flush(ep, conn, key, true)
            } else if flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0 {
                echo(ep, conn, key)
            } else {
                true
            };
            if !alive {
                // Closing the fd also takes it out of the epoll set.
                IO_SYSCALLS.add(1);
                conns.remove(key);
            }
        }
    }
}

fn accept_all(ep: RawFd, listener: &TcpListener, conns: &mut Slab<Conn>) {
    loop {
        IO_SYSCALLS.add(1);
        // SAFETY: null address pointers are allowed: the peer address is not wanted.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            // EAGAIN: all taken. Anything else (e.g. EMFILE): the listener stays readable and
            // the next turn tries again.
            return;
        }
        // SAFETY: accept4 returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        IO_SYSCALLS.add(1);
        crate::sys::set_nodelay(fd.as_raw_fd());
        let entry = conns.vacant_entry();
        let key = entry.key();
        if ctl(
            ep,
            libc::EPOLL_CTL_ADD,
            fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            key as u64,
        )
        .is_ok()
        {
            entry.insert(Conn {
                fd,
                buf: vec![0; BUF].into_boxed_slice(),
                start: 0,
                end: 0,
            });
        }
    }
}

/// One read, and the write of what it got. False when the connection is done.
fn echo(ep: RawFd, conn: &mut Conn, key: usize) -> bool {
    IO_SYSCALLS.add(1);
    // SAFETY: reads into the connection's own buffer, within its length.
    let n = unsafe {
        libc::read(
            conn.fd.as_raw_fd(),
            conn.buf.as_mut_ptr().cast(),
            conn.buf.len(),
        )
    };
    match cvt(n) {
        Ok(0) => false,
        Ok(n) => {
            conn.start = 0;
            conn.end = n;
            flush(ep, conn, key, false)
        }
        Err(e) => e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted,
    }
}

/// Writes `buf[start..end]`; on a short write, waits for EPOLLOUT (and not EPOLLIN, so no
/// more is read until this is out). False when the connection is done.
fn flush(ep: RawFd, conn: &mut Conn, key: usize, parked: bool) -> bool {
    while conn.start < conn.end {
        IO_SYSCALLS.add(1);
        // SAFETY: writes from the connection's own buffer, within the initialised range.
        let n = unsafe {
            libc::send(
                conn.fd.as_raw_fd(),
                conn.buf[conn.start..].as_ptr().cast(),
                conn.end - conn.start,
                libc::MSG_NOSIGNAL,
            )
        };
        match cvt(n) {
            Ok(n) => conn.start += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return parked
                    || ctl(
                        ep,
                        libc::EPOLL_CTL_MOD,
                        conn.fd.as_raw_fd(),
                        libc::EPOLLOUT as u32,
                        key as u64,
                    )
                    .is_ok();
            }
            Err(_) => return false,
        }
    }
    conn.start = 0;
    conn.end = 0;
    !parked
        || ctl(
            ep,
            libc::EPOLL_CTL_MOD,
            conn.fd.as_raw_fd(),
            libc::EPOLLIN as u32,
            key as u64,
        )
        .is_ok()
}
