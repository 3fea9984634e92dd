//! The completion floor: a single-threaded echo loop straight on the `io-uring` crate, no
//! runtime. One operation in flight per connection (recv, then send of what came, then recv
//! again), one accept in flight for the listener, and one `io_uring_enter` per loop turn that
//! submits everything queued and waits for at least one completion.
//!
//! The ring asks for the same setup flags corering does (DEFER_TASKRUN, SINGLE_ISSUER,
//! COOP_TASKRUN), dropping them on older kernels.
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{opcode, squeue, types, IoUring, SubmissionQueue, Submitter};
use slab::Slab;

use super::servers::{announce, control_thread, skip, Counter, ServerStats, BUF};

static ENTERS: Counter = Counter::new();
static SUBMITTED: Counter = Counter::new();
static COMPLETED: Counter = Counter::new();
static OVERFLOWS: Counter = Counter::new();

const ENTRIES: u32 = 1024;
const ACCEPT: u64 = u64::MAX;
const RECV: u64 = 0;
const SEND: u64 = 1;

struct Conn {
    fd: OwnedFd,
    buf: Box<[u8]>,
    /// Bytes received and not yet sent back: `buf[start..end]`.
    start: usize,
    end: usize,
}

fn build_ring() -> io::Result<IoUring> {
    let mut last = None;
    for level in 0..4 {
        let mut b = IoUring::builder();
        b.setup_cqsize(ENTRIES * 4);
        if level < 3 {
            b.setup_coop_taskrun();
        }
        if level < 2 {
            b.setup_single_issuer();
        }
        if level < 1 {
            b.setup_defer_taskrun();
        }
        match b.build(ENTRIES) {
            Ok(ring) => return Ok(ring),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("tried at least once"))
}

/// Queues `entry`, submitting what is queued if the submission queue is full.
fn push(sq: &mut SubmissionQueue<'_>, submitter: &Submitter<'_>, entry: &squeue::Entry) {
    loop {
        // SAFETY: every entry points at memory that outlives its completion: connection
        // buffers live in the slab until the connection's one op completes; accept passes
        // no pointers.
        if unsafe { sq.push(entry) }.is_ok() {
            SUBMITTED.add(1);
            return;
        }
        sq.sync();
        ENTERS.add(1);
        let _ = submitter.submit();
        sq.sync();
    }
}

fn recv_entry(conn: &mut Conn, key: usize) -> squeue::Entry {
    opcode::Recv::new(
        types::Fd(conn.fd.as_raw_fd()),
        conn.buf.as_mut_ptr(),
        conn.buf.len() as u32,
    )
    .build()
    .user_data((key as u64) << 1 | RECV)
}

fn send_entry(conn: &Conn, key: usize) -> squeue::Entry {
    let rest = &conn.buf[conn.start..conn.end];
    opcode::Send::new(
        types::Fd(conn.fd.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .flags(libc::MSG_NOSIGNAL)
    .build()
    .user_data((key as u64) << 1 | SEND)
}

pub fn serve(addr: &str) -> io::Result<()> {
    let mut ring = match build_ring() {
        Ok(ring) => ring,
        Err(e) => return skip(&format!("io_uring setup failed: {e}")),
    };
    let listener = TcpListener::bind(addr)?;
    let ctl_addr = control_thread(|| ServerStats {
        waits: ENTERS.get(),
        io_syscalls: 0,
        ops_submitted: SUBMITTED.get(),
        ops_completed: COMPLETED.get(),
        cq_overflows: OVERFLOWS.get(),
    })?;
    announce(listener.local_addr()?, ctl_addr);

    let lfd = types::Fd(listener.as_raw_fd());
    let accept = opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
        .flags(libc::SOCK_CLOEXEC)
        .build()
        .user_data(ACCEPT);
    let mut conns: Slab<Conn> = Slab::new();
    let (submitter, mut sq, mut cq) = ring.split();
    push(&mut sq, &submitter, &accept);
    loop {
        sq.sync();
        ENTERS.add(1);
        match submitter.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        cq.sync();
        OVERFLOWS.add(u64::from(cq.overflow()).saturating_sub(OVERFLOWS.get()));
        for cqe in &mut cq {
            COMPLETED.add(1);
            let (data, res) = (cqe.user_data(), cqe.result());
            if data == ACCEPT {
                if res >= 0 {
                    // SAFETY: the kernel made this fd for us; nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(res) };
                    crate::sys::set_nodelay(fd.as_raw_fd());
                    let entry = conns.vacant_entry();
                    let key = entry.key();
                    let conn = entry.insert(Conn {
                        fd,
                        buf: vec![0; BUF].into_boxed_slice(),
                        start: 0,
                        end: 0,
                    });
                    push(&mut sq, &submitter, &recv_entry(conn, key));
                }
                push(&mut sq, &submitter, &accept);
                continue;
            }
            let key = (data >> 1) as usize;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let next = match (data & 1, res) {
                (RECV, n) if n > 0 => {
                    conn.start = 0;
                    conn.end = n as usize;
                    Some(send_entry(conn, key))
                }
                (SEND, n) if n > 0 => {
                    conn.start += n as usize;
                    if conn.start < conn.end {
                        Some(send_entry(conn, key))
                    } else {
                        Some(recv_entry(conn, key))
                    }
                }
                // Interrupted: try the same again.
                (RECV, n) if n == -libc::EINTR || n == -libc::EAGAIN => Some(recv_entry(conn, key)),
                (SEND, n) if n == -libc::EINTR || n == -libc::EAGAIN => Some(send_entry(conn, key)),
                _ => None, // end of stream or an error
            };
            match next {
                Some(entry) => push(&mut sq, &submitter, &entry),
                // Nothing is in flight on this connection: dropping it closes the fd.
                None => drop(conns.remove(key)),
            }
        }
        // Publish the new head: until the kernel sees the entries consumed, a wait for one
        // completion returns at once.
        cq.sync();
    }
}
