//! The heroic floor: a single-threaded echo loop on the `io-uring` crate using every io_uring
//! feature that cuts per-request work, no runtime.
//!
//! - One multishot accept for the listener, armed again when a completion comes without
//!   IORING_CQE_F_MORE; after an error (EMFILE, ENFILE, ...) it waits 1 ms on a timeout first.
//! - One multishot recv per connection, picking buffers from a provided buffer ring, armed
//!   again when a completion comes without F_MORE. When the ring runs dry the recv ends with
//!   ENOBUFS: the connection waits in a queue and is armed again only once at least
//!   `LOW_WATER` buffers have come back (sends completing give them back), one connection per
//!   free buffer at most. Nothing is retried before that.
//! - The received buffers queue per connection, in order, with one send in flight per
//!   connection: a Send for one buffer, a SendMsg gathering up to `MAX_IOV` of them. A buffer
//!   comes back once all its bytes are sent; a short send sends the rest next.
//! - The ring: SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1), its fd registered with itself and
//!   entered by index, one io_uring_enter per loop turn that submits and waits.
//!
//! Buffers: `NBUFS` (1024) of `BUF_SIZE` (16 KiB, every server's per-connection buffer), 16 MiB
//! in all; more connections than that share them through the ENOBUFS path. Buffers of 4 KiB
//! cost about half as much CPU again per MiB streamed (four completions per 16 KiB). The ring
//! holds only one buffer per armed recv plus `SLACK`, the most recently returned first (see
//! `ring::BufRing`), so the buffers in use stay few and warm in cache: a ring holding every
//! free buffer hands them out oldest first and cycles all 16 MiB through the cache.
//!
//! The counters are raw-uring's: enters, entries pushed, completions reaped, CQ overflows.
mod ring;

use std::collections::VecDeque;
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use io_uring::{cqueue, opcode, squeue, types, SubmissionQueue};
use slab::Slab;

use super::servers::{announce, control_thread, skip, Counter, ServerStats};
use ring::{BufRing, IORING_ENTER_GETEVENTS};

static ENTERS: Counter = Counter::new();
static SUBMITTED: Counter = Counter::new();
static COMPLETED: Counter = Counter::new();
static OVERFLOWS: Counter = Counter::new();

const ENTRIES: u32 = 1024;
const CQ_ENTRIES: u32 = 16 * 1024;
/// Buffers in the provided ring, and their size.
const NBUFS: u16 = 1024;
const BUF_SIZE: usize = super::servers::BUF;
const BGID: u16 = 0;
/// Free buffers needed before connections that hit ENOBUFS receive again.
const LOW_WATER: usize = NBUFS as usize / 64;
/// Buffers kept in the ring beyond one per armed recv.
const SLACK: usize = 32;
/// Most buffers one SendMsg gathers.
const MAX_IOV: usize = 64;

const ACCEPT: u64 = u64::MAX;
const BACKOFF: u64 = u64::MAX - 1;
const RECV: u64 = 0;
const SEND: u64 = 1;
const CANCEL: u64 = 2;
static BACKOFF_TS: types::Timespec = types::Timespec::new().nsec(1_000_000);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Recv {
    /// A multishot recv is in flight.
    Armed,
    /// It ended with ENOBUFS; the connection waits in `Server::starved`.
    Starved,
    /// None in flight and none to come.
    Off,
}

/// Bytes `start..end` of buffer `bid`, still to be sent back.
struct Chunk {
    bid: u16,
    start: u32,
    end: u32,
}

/// A SendMsg's header and iovecs, boxed so they stay put while the send is in flight.
struct MsgArea {
    hdr: libc::msghdr,
    iov: [libc::iovec; MAX_IOV],
}

struct Conn {
    fd: OwnedFd,
    /// Received and not yet sent, in order; the send in flight covers a prefix of it.
    queue: VecDeque<Chunk>,
    sending: bool,
    recv: Recv,
    /// No more input wanted: end of stream, a recv or send error.
    eof: bool,
    msg: Option<Box<MsgArea>>,
}

struct Server<'r> {
    sq: SubmissionQueue<'r>,
    index: u32,
    bufs: &'r mut BufRing,
    /// Connections with a multishot recv in flight.
    armed: usize,
    conns: Slab<Conn>,
    starved: VecDeque<usize>,
    listener: types::Fd,
}

pub fn serve(addr: &str) -> io::Result<()> {
    // Declared before the ring, so dropped after it: the kernel writes into these buffers
    // until the ring is closed.
    let mut bufs = BufRing::new(NBUFS, BUF_SIZE)?;
    let mut ring = match ring::build(ENTRIES, CQ_ENTRIES) {
        Ok(ring) => ring,
        Err(e) => return skip(&format!("SINGLE_ISSUER|DEFER_TASKRUN ring: {e}")),
    };
    let index = match ring::register_ring_fd(&ring) {
        Ok(index) => index,
        Err(e) => return skip(&format!("IORING_REGISTER_RING_FDS failed: {e}")),
    };
    if let Err(e) = bufs.register(&ring.submitter(), BGID) {
        return skip(&format!("IORING_REGISTER_PBUF_RING failed: {e}"));
    }
    let listener = TcpListener::bind(addr)?;
    let ctl_addr = control_thread(|| ServerStats {
        waits: ENTERS.get(),
        io_syscalls: 0,
        ops_submitted: SUBMITTED.get(),
        ops_completed: COMPLETED.get(),
        cq_overflows: OVERFLOWS.get(),
    })?;
    announce(listener.local_addr()?, ctl_addr);

    let (_, sq, mut cq) = ring.split();
    let mut srv = Server {
        sq,
        index,
        bufs: &mut bufs,
        armed: 0,
        conns: Slab::new(),
        starved: VecDeque::new(),
        listener: types::Fd(listener.as_raw_fd()),
    };
    srv.arm_accept();
    loop {
        srv.rearm_starved();
        // Enough buffers in the ring for every armed recv to take one, and some over.
        srv.bufs.refill(srv.armed + SLACK);
        srv.enter(1)?;
        cq.sync();
        OVERFLOWS.add(u64::from(cq.overflow()).saturating_sub(OVERFLOWS.get()));
        for cqe in &mut cq {
            COMPLETED.add(1);
            srv.complete(cqe.user_data(), cqe.result(), cqe.flags());
        }
        // Publish the new head: until the kernel sees the entries consumed, a wait for one
        // completion returns at once.
        cq.sync();
    }
}

impl Server<'_> {
    /// One io_uring_enter: submits what is queued; waits for `want` completions if not 0.
    fn enter(&mut self, want: u32) -> io::Result<()> {
        self.sq.sync();
        ENTERS.add(1);
        let flags = if want > 0 { IORING_ENTER_GETEVENTS } else { 0 };
        match ring::enter(self.index, self.sq.len() as u32, want, flags) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(e) => return Err(e),
        }
        self.sq.sync();
        Ok(())
    }

    /// Queues `entry`, submitting what is queued if the submission queue is full.
    fn push(&mut self, entry: &squeue::Entry) {
        loop {
            // SAFETY: every entry's pointers outlive its completion: the buffer ring lives
            // for all of `serve`, a connection's MsgArea until its send completes (a
            // connection is removed only with no send in flight), BACKOFF_TS is static.
            if unsafe { self.sq.push(entry) }.is_ok() {
                SUBMITTED.add(1);
                return;
            }
            let _ = self.enter(0);
        }
    }

    fn complete(&mut self, data: u64, res: i32, flags: u32) {
        match data {
            ACCEPT => self.on_accept(res, flags),
            BACKOFF => self.arm_accept(),
            _ => {
                let key = (data >> 2) as usize;
                match data & 3 {
                    RECV => self.on_recv(key, res, flags),
                    SEND => self.on_send(key, res),
                    _ => debug_assert_eq!(data & 3, CANCEL),
                }
            }
        }
    }

    fn arm_accept(&mut self) {
        let entry = opcode::AcceptMulti::new(self.listener)
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(ACCEPT);
        self.push(&entry);
    }

    fn on_accept(&mut self, res: i32, flags: u32) {
        if res >= 0 {
            // SAFETY: the kernel made this fd for us; nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            crate::sys::set_nodelay(fd.as_raw_fd());
            let key = self.conns.insert(Conn {
                fd,
                queue: VecDeque::new(),
                sending: false,
                recv: Recv::Off,
                eof: false,
                msg: None,
            });
            self.arm_recv(key);
        }
        if cqueue::more(flags) {
            return;
        }
        if res >= 0 {
            self.arm_accept();
        } else {
            // EMFILE, ENFILE and the like: accepting again at once would fail again at once.
            let entry = opcode::Timeout::new(&BACKOFF_TS).build().user_data(BACKOFF);
            self.push(&entry);
        }
    }

    fn arm_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.recv = Recv::Armed;
        self.armed += 1;
        let entry = opcode::RecvMulti::new(types::Fd(conn.fd.as_raw_fd()), BGID)
            .build()
            .user_data((key as u64) << 2 | RECV);
        self.push(&entry);
    }

    fn on_recv(&mut self, key: usize, res: i32, flags: u32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(bid) = cqueue::buffer_select(flags) {
            self.bufs.taken();
            if res > 0 && !conn.eof {
                conn.queue.push_back(Chunk {
                    bid,
                    start: 0,
                    end: res as u32,
                });
            } else {
                self.bufs.put(bid);
            }
        }
        if !cqueue::more(flags) {
            conn.recv = Recv::Off;
            self.armed -= 1;
            match res {
                _ if conn.eof => {}
                // The multishot ended early (e.g. the CQ was full): arm it again.
                1.. => self.arm_recv(key),
                // The buffer ring ran dry: wait for buffers to come back.
                _ if res == -libc::ENOBUFS => {
                    conn.recv = Recv::Starved;
                    self.starved.push_back(key);
                }
                _ => conn.eof = true, // end of stream or an error
            }
        }
        self.send_next(key);
        self.finish(key);
    }

    /// Starts the send of what is queued on `key`, unless one is in flight already.
    fn send_next(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.sending || conn.queue.is_empty() {
            return;
        }
        conn.sending = true;
        let fd = types::Fd(conn.fd.as_raw_fd());
        let data = (key as u64) << 2 | SEND;
        let entry = if conn.queue.len() == 1 {
            let c = &conn.queue[0];
            opcode::Send::new(fd, self.bufs.at(c.bid, c.start), c.end - c.start)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(data)
        } else {
            let area = conn.msg.get_or_insert_with(new_msg_area);
            let mut n = 0;
            for (iov, c) in area.iov.iter_mut().zip(&conn.queue) {
                iov.iov_base = self.bufs.at(c.bid, c.start).cast();
                iov.iov_len = (c.end - c.start) as usize;
                n += 1;
            }
            area.hdr.msg_iov = area.iov.as_mut_ptr();
            area.hdr.msg_iovlen = n;
            opcode::SendMsg::new(fd, &area.hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build()
                .user_data(data)
        };
        self.push(&entry);
    }

    fn on_send(&mut self, key: usize, res: i32) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.sending = false;
        if res > 0 {
            let mut n = res as u32;
            while let Some(head) = conn.queue.front_mut() {
                let left = head.end - head.start;
                if n < left {
                    head.start += n;
                    break;
                }
                n -= left;
                self.bufs.put(head.bid);
                conn.queue.pop_front();
            }
        } else if res != -libc::EINTR && res != -libc::EAGAIN {
            // The peer is gone: drop what is queued, and stop receiving.
            for c in conn.queue.drain(..) {
                self.bufs.put(c.bid);
            }
            conn.eof = true;
            match conn.recv {
                Recv::Armed => {
                    // Runs at submission, before any recv queued after it: a connection that
                    // takes this key before then has not armed its recv yet.
                    let target = (key as u64) << 2 | RECV;
                    let entry = opcode::AsyncCancel::new(target)
                        .build()
                        .user_data((key as u64) << 2 | CANCEL);
                    self.push(&entry);
                }
                Recv::Starved => conn.recv = Recv::Off,
                Recv::Off => {}
            }
        }
        self.send_next(key);
        self.finish(key);
    }

    /// Closes `key` once it is done and nothing of it is in flight.
    fn finish(&mut self, key: usize) {
        let conn = &self.conns[key];
        if conn.eof && conn.recv != Recv::Armed && !conn.sending && conn.queue.is_empty() {
            // Dropping the connection closes its fd.
            drop(self.conns.remove(key));
        }
    }

    /// Arms the recv of connections that hit ENOBUFS again, once enough buffers are back.
    fn rearm_starved(&mut self) {
        let mut free = self.bufs.free();
        if free < LOW_WATER {
            return;
        }
        while free > 0 {
            let Some(key) = self.starved.pop_front() else {
                return;
            };
            // The key may have been closed (and even reused) since it was queued.
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.recv == Recv::Starved && !c.eof)
            {
                self.arm_recv(key);
                free -= 1;
            }
        }
    }
}

fn new_msg_area() -> Box<MsgArea> {
    let iov = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    Box::new(MsgArea {
        // SAFETY: msghdr is plain data: all-zero is a valid empty header (null pointers,
        // zero lengths, no flags).
        hdr: unsafe { std::mem::zeroed() },
        iov: [iov; MAX_IOV],
    })
}
