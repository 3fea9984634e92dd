//! The kernel plumbing of raw-uring-ms: the ring with SINGLE_ISSUER and DEFER_TASKRUN, its fd
//! registered with the ring itself (IORING_REGISTER_RING_FDS) and entered by index, and the
//! provided buffer ring the multishot receives pick their buffers from.
//!
//! The registration and the enter are raw syscalls: `IoUring::submitter()` hands out a fresh
//! `Submitter` each call, so the index its `register_ring_fd` remembers would be forgotten.
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::{types::BufRingEntry, IoUring, Submitter};

const IORING_REGISTER_RING_FDS: libc::c_long = 20;
pub const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_REGISTERED_RING: u32 = 16;

/// `struct io_uring_rsrc_update` of the kernel's uapi.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

fn cvt(res: libc::c_long) -> io::Result<libc::c_long> {
    if res < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// A ring with SINGLE_ISSUER | DEFER_TASKRUN (Linux 6.1) and SUBMIT_ALL; no fallback.
pub fn build(entries: u32, cq_entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_cqsize(cq_entries)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_submit_all()
        .build(entries)
}

/// Registers the ring's own fd with it; returns the index to enter it by.
pub fn register_ring_fd(ring: &IoUring) -> io::Result<u32> {
    let mut up = RsrcUpdate {
        // u32::MAX: the kernel picks a free slot and writes its index back here.
        offset: u32::MAX,
        resv: 0,
        data: ring.as_raw_fd() as u64,
    };
    // SAFETY: `up` is a live io_uring_rsrc_update, the one entry (nr_args = 1) the kernel reads
    // and writes back; no other memory is passed.
    let n = cvt(unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd() as libc::c_long,
            IORING_REGISTER_RING_FDS,
            &mut up as *mut RsrcUpdate,
            1 as libc::c_long,
        )
    })?;
    if n != 1 {
        return Err(io::Error::other(format!("registered {n} ring fds, not 1")));
    }
    Ok(up.offset)
}

/// One io_uring_enter by registered index: submits `to_submit` entries and, with
/// IORING_ENTER_GETEVENTS in `flags`, waits for `min_complete` completions.
pub fn enter(index: u32, to_submit: u32, min_complete: u32, flags: u32) -> io::Result<usize> {
    // SAFETY: no argument struct is passed (null, size 0); `index` names this thread's own
    // registered ring, and the entries submitted were checked when they were pushed.
    let n = cvt(unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            index as libc::c_long,
            to_submit as libc::c_long,
            min_complete as libc::c_long,
            (flags | IORING_ENTER_REGISTERED_RING) as libc::c_long,
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_long,
        )
    })?;
    Ok(n as usize)
}

/// An anonymous, page-aligned, prefaulted mapping of `len` bytes.
fn map(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a fresh anonymous mapping: no fd, no fixed address, nothing aliased.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// A provided buffer ring: `entries` ring slots and as many buffers of `size` bytes, buffer
/// `bid` at `bufs + bid * size`.
///
/// Buffers handed back go onto a spare stack, not straight into the ring: `refill` moves the
/// most recently returned (the ones still in cache) into the ring, only as many as wanted
/// there. A ring holding every free buffer would hand them out oldest first and
/// cycle the whole ring through the cache. The moved ones become visible to the kernel with one
/// release store of the tail.
pub struct BufRing {
    ring: NonNull<BufRingEntry>,
    bufs: NonNull<u8>,
    entries: u16,
    size: usize,
    tail: u16,
    /// Free buffers outside the ring, the most recently returned last.
    spare: Vec<u16>,
    /// Buffers in the ring: given to the kernel and not yet taken.
    queued: usize,
}

impl BufRing {
    /// Maps the ring and the buffers; `entries` must be a power of two up to 32768.
    pub fn new(entries: u16, size: usize) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two() && entries <= 1 << 15);
        let ring = map(entries as usize * std::mem::size_of::<BufRingEntry>())?.cast();
        let bufs = map(entries as usize * size)?;
        Ok(BufRing {
            ring,
            bufs,
            entries,
            size,
            tail: 0,
            spare: (0..entries).rev().collect(),
            queued: 0,
        })
    }

    /// Registers the ring as buffer group `bgid` (empty: `refill` fills it).
    ///
    /// The kernel keeps writing into the buffers until the io_uring is closed: the caller
    /// drops the `IoUring` before this `BufRing`.
    pub fn register(&mut self, submitter: &Submitter<'_>, bgid: u16) -> io::Result<()> {
        // SAFETY: the ring mapping is page-aligned and `entries` entries long, and stays
        // mapped until this BufRing drops, which the caller puts after the io_uring's close.
        unsafe {
            submitter.register_buf_ring_with_flags(self.ring.as_ptr() as u64, self.entries, bgid, 0)
        }
    }

    /// The address of byte `off` of buffer `bid`.
    pub fn at(&self, bid: u16, off: u32) -> *mut u8 {
        debug_assert!(bid < self.entries && (off as usize) < self.size);
        // SAFETY: bid < entries and off < size, so the address lies inside the buffer mapping.
        unsafe {
            self.bufs
                .as_ptr()
                .add(bid as usize * self.size + off as usize)
        }
    }

    /// Notes that the kernel took a buffer from the ring (a completion carried its id).
    pub fn taken(&mut self) {
        self.queued -= 1;
    }

    /// Takes back buffer `bid`, which the kernel handed out and nothing uses any more.
    pub fn put(&mut self, bid: u16) {
        self.spare.push(bid);
    }

    /// Buffers not held by the caller: spare or in the ring.
    pub fn free(&self) -> usize {
        self.spare.len() + self.queued
    }

    /// Moves spare buffers, the most recently returned first, into the ring until it holds
    /// `level` (or no spare is left), and publishes them.
    pub fn refill(&mut self, level: usize) {
        let old = self.tail;
        while self.queued < level {
            let Some(bid) = self.spare.pop() else { break };
            self.give(bid);
            self.queued += 1;
        }
        if self.tail != old {
            self.publish();
        }
    }

    /// Writes buffer `bid` into the slot at the local tail (seen after the next `publish`).
    fn give(&mut self, bid: u16) {
        let slot = (self.tail & (self.entries - 1)) as usize;
        let addr = self.at(bid, 0) as u64;
        // SAFETY: slot < entries, inside the ring mapping. The slot lies past the published
        // tail, where the kernel reads nothing (a buffer is spare, so fewer than `entries` are
        // in the ring); the setters write addr, len and bid, never the tail in entry 0.
        let entry = unsafe { &mut *self.ring.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the local tail: the kernel may use every buffer given before this.
    fn publish(&self) {
        // SAFETY: the tail is the u16 `resv` field of entry 0 of the live, page-aligned ring
        // mapping (so aligned for AtomicU16, which has u16's layout); the kernel only reads it.
        let tail = unsafe { &*BufRingEntry::tail(self.ring.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        let ring_len = self.entries as usize * std::mem::size_of::<BufRingEntry>();
        // SAFETY: both mappings were made by `map` with these lengths and nothing refers to
        // them any more (the io_uring that used them is closed, see `register`).
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), ring_len);
            libc::munmap(self.bufs.as_ptr().cast(), self.entries as usize * self.size);
        }
    }
}
