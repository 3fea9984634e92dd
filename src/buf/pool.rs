//! The per-core buffer pool behind pooled reads.
//!
//! A pooled read holds no memory while it waits: it gets a buffer only once bytes are there,
//! so an idle connection costs its task and its socket, not a read buffer. Each core has one
//! pool of `count` buffers of `size` bytes (from [`Builder::buffer_pool`](crate::Builder::buffer_pool)),
//! allocated and touched once, on the first pooled read, so its memory is a fixed cost of the
//! core and not of its connections.
//!
//! * **Ring pools** (io_uring, 5.19+): the buffers are a provided buffer ring
//!   (`IORING_REGISTER_PBUF_RING`); the kernel picks one when bytes arrive and names it in the
//!   completion. A buffer handed back is published at the ring's tail again.
//! * **Plain pools** (epoll, older kernels, a tier cap below 5.19): a free list; a read waits
//!   for readiness, then takes a buffer and reads.
//!
//! When a pool is empty (every buffer held by the application or queued on connections), a
//! read does not wait for one to come back (that could stall a connection's TCP window behind
//! another's): it reads into a fresh allocation of the same size, freed on drop, and counts it
//! ([`DriverStats::pool_overflows`](crate::DriverStats::pool_overflows)).
use std::alloc::{self, Layout};
use std::cell::{Cell, RefCell};
use std::io;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::pooled_buf::Backing;
use super::PooledBuf;

/// Pool buffers default: 1024 of 4 KiB per core.
pub(crate) const DEFAULT_COUNT: u16 = 1024;
pub(crate) const DEFAULT_SIZE: u32 = 4096;

/// Buffers a ring holds beyond four per receive armed on it (fewer starved streaming runs;
/// two per receive measured as many ENOBUFS with 16 streams).
const RING_SLACK: usize = 64;

/// The buffer group id of a core's ring pool (one pool per ring).
pub(crate) const BGID: u16 = 0;

/// How many buffers of what size a core's pool holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolConfig {
    pub count: u16,
    pub size: u32,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            count: DEFAULT_COUNT,
            size: DEFAULT_SIZE,
        }
    }
}

/// A core's buffer pool (a cheap handle; every clone is the same pool).
#[derive(Clone)]
pub(crate) struct BufPool(pub(super) Rc<PoolInner>);

pub(super) struct PoolInner {
    /// `count * size` bytes, page-aligned; buffer `i` starts at `i * size`.
    mem: NonNull<u8>,
    layout: Layout,
    pub(super) size: usize,
    count: u16,
    ring: Option<ProvidedRing>,
    /// The ids of the buffers not in use and (ring pools) not in the ring, last freed on top,
    /// to reuse warm memory.
    free: RefCell<Vec<u16>>,
    /// Ring pools: receives armed that may take buffers (standing multishot recvs, buffer-
    /// select recvs in flight).
    armed: Cell<usize>,
    overflows: Cell<u64>,
    exhausted: Cell<u64>,
}

/// The ring the kernel takes buffers from: `entries` slots of 16 bytes in page-aligned memory
/// mapped here; the tail (the slot after the last published) is ours to advance.
struct ProvidedRing {
    base: NonNull<BufRingEntry>,
    map_len: usize,
    mask: u16,
    tail: Cell<u16>,
    /// Buffers published to the ring and not yet named by a completion.
    in_ring: Cell<usize>,
}

impl BufPool {
    /// A free-list pool.
    pub fn plain(config: PoolConfig) -> io::Result<BufPool> {
        let inner = PoolInner::alloc(config, None)?;
        *inner.free.borrow_mut() = (0..inner.count).rev().collect();
        Ok(BufPool(Rc::new(inner)))
    }

    /// A ring pool: `register(ring_addr, entries)` registers the ring memory with the kernel
    /// as buffer group [`BGID`]; its error (e.g. `EINVAL` before 5.19) is returned.
    pub fn ring(
        config: PoolConfig,
        register: impl FnOnce(u64, u16) -> io::Result<()>,
    ) -> io::Result<BufPool> {
        let entries = config
            .count
            .max(1)
            .checked_next_power_of_two()
            .unwrap_or(32768);
        let config = PoolConfig {
            count: entries.min(32768),
            ..config
        };
        let ring = ProvidedRing::map(config.count)?;
        let inner = PoolInner::alloc(config, Some(ring))?;
        let ring = inner.ring.as_ref().expect("just set");
        // A few buffers in the ring, the rest on the spare stack (topped up as receives arm).
        *inner.free.borrow_mut() = (0..inner.count).rev().collect();
        inner.top_up();
        register(ring.base.as_ptr() as u64, inner.count)?;
        Ok(BufPool(Rc::new(inner)))
    }

    /// Ring pools: whether the kernel has any buffer left to pick (or one is spare).
    pub fn ring_has_buffers(&self) -> bool {
        let spare = !self.0.free.borrow().is_empty();
        self.0
            .ring
            .as_ref()
            .is_some_and(|r| r.in_ring.get() > 0 || spare)
    }

    /// A receive that may take ring buffers was armed (`disarmed` when it ends).
    pub fn armed(&self) {
        self.0.armed.set(self.0.armed.get() + 1);
        self.0.top_up();
    }

    pub fn disarmed(&self) {
        self.0.armed.set(self.0.armed.get().saturating_sub(1));
    }

    pub fn buf_size(&self) -> usize {
        self.0.size
    }

    /// Fresh allocations made because the pool was empty.
    pub fn overflows(&self) -> u64 {
        self.0.overflows.get()
    }

    /// Buffers out of the pool now: held by the application, or queued on a stream (taken
    /// by the kernel and named by a completion not yet handed out).
    pub fn in_use(&self) -> u64 {
        let home = match &self.0.ring {
            Some(ring) => ring.in_ring.get(),
            None => self.0.free.borrow().len(),
        };
        let home = home
            + if self.0.ring.is_some() {
                self.0.free.borrow().len()
            } else {
                0
            };
        (usize::from(self.0.count) - home.min(usize::from(self.0.count))) as u64
    }

    /// Multishot receives ended because the ring was empty.
    pub fn exhausted(&self) -> u64 {
        self.0.exhausted.get()
    }

    /// A multishot receive ended because the ring was empty.
    pub fn note_exhausted(&self) {
        self.0.exhausted.set(self.0.exhausted.get() + 1);
    }

    /// An empty buffer to read into: a free one of the pool (plain pools), else a fresh
    /// allocation of the same size.
    pub fn take(&self) -> PooledBuf {
        let id = if self.0.ring.is_none() {
            self.0.free.borrow_mut().pop()
        } else {
            None
        };
        let backing = match id {
            Some(id) => Backing::Pool(id),
            None => {
                self.0.overflows.set(self.0.overflows.get() + 1);
                Backing::Heap(vec![0; self.0.size].into_boxed_slice())
            }
        };
        PooledBuf {
            pool: self.0.clone(),
            backing,
            start: 0,
            len: 0,
        }
    }

    /// The kernel took a buffer from the ring (a completion named it; the driver calls this
    /// as it reaps, whoever then holds the buffer).
    pub fn note_consumed(&self) {
        if let Some(ring) = &self.0.ring {
            ring.in_ring.set(ring.in_ring.get().saturating_sub(1));
            self.0.top_up();
        }
    }

    /// The buffer a completion named (`bid`), holding its first `len` bytes. Ring pools only
    /// (a stream's pooled state refuses to mix runtimes, so a plain pool never gets here).
    pub fn kernel_filled(&self, bid: u16, len: usize) -> PooledBuf {
        debug_assert!(self.0.ring.is_some(), "only ring pools lend to the kernel");
        PooledBuf {
            pool: self.0.clone(),
            backing: Backing::Pool(bid % self.0.count),
            start: 0,
            len: len.min(self.0.size),
        }
    }
}

impl PoolInner {
    fn alloc(config: PoolConfig, ring: Option<ProvidedRing>) -> io::Result<PoolInner> {
        let (count, size) = (config.count.max(1), config.size.max(1) as usize);
        let bytes = size
            .checked_mul(usize::from(count))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "buffer pool too big"))?;
        let layout = Layout::from_size_align(bytes, 4096)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: `layout` has a non-zero size (count and size are at least 1).
        let mem = NonNull::new(unsafe { alloc::alloc(layout) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // Touch every page now: the pool is the core's fixed cost, not a connection's.
        // SAFETY: `mem` was just allocated for `bytes` bytes.
        unsafe { mem.as_ptr().write_bytes(0, bytes) };
        Ok(PoolInner {
            mem,
            layout,
            size,
            count,
            ring,
            free: RefCell::new(Vec::new()),
            armed: Cell::new(0),
            overflows: Cell::new(0),
            exhausted: Cell::new(0),
        })
    }

    pub(super) fn buf_ptr(&self, id: u16) -> *mut u8 {
        debug_assert!(id < self.count);
        // SAFETY: `id < count`, so the offset stays inside the allocation of `count * size`.
        unsafe { self.mem.as_ptr().add(usize::from(id) * self.size) }
    }

    /// Hands buffer `id` back to the kernel: writes it into the slot at the tail and moves
    /// the tail past it (a release store, so the kernel sees the slot before the tail).
    fn publish(&self, ring: &ProvidedRing, id: u16) {
        let tail = ring.tail.get();
        // SAFETY: `tail & mask` is below the ring's entry count, inside the mapped ring; the
        // kernel reads slots only between its head and our tail, and this one is past the tail.
        let entry = unsafe { &mut *ring.base.as_ptr().add(usize::from(tail & ring.mask)) };
        entry.set_addr(self.buf_ptr(id) as u64);
        entry.set_len(self.size.min(u32::MAX as usize) as u32);
        entry.set_bid(id);
        let next = tail.wrapping_add(1);
        ring.tail.set(next);
        // SAFETY: the tail field lies in the first entry of the mapped, page-aligned ring;
        // the kernel reads it with acquire semantics.
        let tail_ptr = unsafe { BufRingEntry::tail(ring.base.as_ptr()) } as *const AtomicU16;
        // SAFETY: as above; the field is a u16 at its natural alignment.
        unsafe { &*tail_ptr }.store(next, Ordering::Release);
        ring.in_ring.set(ring.in_ring.get() + 1);
    }

    /// How many buffers the ring should hold: a margin over what the armed receives may take
    /// at once. The rest wait on the spare stack, last returned on top, so the buffers the
    /// kernel fills are the warm ones (a ring holding every buffer would cycle through all of
    /// them, oldest first, and through the cache).
    fn want(&self) -> usize {
        (4 * self.armed.get() + RING_SLACK).min(usize::from(self.count))
    }

    /// Publishes spare buffers until the ring holds what it should.
    fn top_up(&self) {
        let Some(ring) = &self.ring else { return };
        while ring.in_ring.get() < self.want() {
            let Some(id) = self.free.borrow_mut().pop() else {
                return;
            };
            self.publish(ring, id);
        }
    }

    pub(super) fn give_back(&self, id: u16) {
        match &self.ring {
            Some(ring) if ring.in_ring.get() < self.want() => self.publish(ring, id),
            _ => self.free.borrow_mut().push(id),
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc` with this layout; every PooledBuf (and the driver,
        // which keeps its handle until its ring is closed) holds an Rc, so nothing uses it now.
        unsafe { alloc::dealloc(self.mem.as_ptr(), self.layout) };
        if let Some(ring) = &self.ring {
            // SAFETY: mapped in `ProvidedRing::map` with this length; the ring that read it
            // is closed (see above).
            unsafe { libc::munmap(ring.base.as_ptr().cast(), ring.map_len) };
        }
    }
}

/// Page-aligned, zeroed memory of `len` bytes for a provided buffer ring (also the probe's
/// trial ring); the caller unmaps it with `munmap(ptr, len)`.
pub(crate) fn map_ring_memory(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping, no fd, no fixed address.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(NonNull::new(ptr.cast()).expect("mmap does not return null"))
}

impl ProvidedRing {
    fn map(entries: u16) -> io::Result<ProvidedRing> {
        let map_len = (usize::from(entries) * std::mem::size_of::<BufRingEntry>()).max(4096);
        let ptr = map_ring_memory(map_len)?;
        Ok(ProvidedRing {
            base: ptr.cast(),
            map_len,
            mask: entries - 1,
            tail: Cell::new(0),
            in_ring: Cell::new(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buf::{IoBuf, IoBufMut};

    #[test]
    fn plain_pool_reuses_buffers_and_overflows_when_empty() {
        let pool = BufPool::plain(PoolConfig { count: 2, size: 8 }).unwrap();
        let a = pool.take();
        let b = pool.take();
        assert!(!a.is_overflow() && !b.is_overflow());
        let c = pool.take();
        assert!(c.is_overflow(), "third buffer of a pool of two");
        assert_eq!(pool.overflows(), 1);
        let ptr = a.stable_ptr();
        drop(a);
        let d = pool.take();
        assert_eq!(d.stable_ptr(), ptr, "the last freed buffer is reused first");
        assert_eq!(d.bytes_total(), 8);
    }

    #[test]
    fn consume_moves_the_front() {
        let pool = BufPool::plain(PoolConfig { count: 1, size: 8 }).unwrap();
        let mut buf = pool.take();
        buf.stable_mut_ptr();
        // SAFETY: the pool's memory is zeroed: 5 bytes are initialised.
        unsafe { buf.set_init(5) };
        buf.consume(2);
        assert_eq!(&buf[..], &[0, 0, 0]);
        let held = PooledBuf::of_bytes(&pool, b"abc".to_vec());
        assert_eq!(&held[..], b"abc");
        assert!(held.is_overflow());
    }
}
