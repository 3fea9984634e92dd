//! [`PooledBuf`]: a buffer of a core's pool (or, when the pool was empty, of its own), and
//! its buffer contracts.
use std::ops::{Deref, DerefMut};
use std::rc::Rc;

use super::pool::{BufPool, PoolInner};
use super::{IoBuf, IoBufMut};

pub(super) enum Backing {
    Pool(u16),
    Heap(Box<[u8]>),
}

/// A buffer of the core's pool holding bytes a pooled read received (see
/// [`TcpStream::recv_pooled`](crate::net::TcpStream::recv_pooled)). Derefs to those bytes;
/// dropping it gives the buffer back to the pool. It is also a buffer for writes (`write_all`
/// sends its bytes) and reads.
pub struct PooledBuf {
    pub(super) pool: Rc<PoolInner>,
    pub(super) backing: Backing,
    /// Bytes consumed from the front.
    pub(super) start: usize,
    /// Bytes held, from `start`.
    pub(super) len: usize,
}

impl PooledBuf {
    /// A buffer of its own (not of a pool) holding `bytes`: what a cancelled read left.
    pub(crate) fn of_bytes(pool: &BufPool, bytes: Vec<u8>) -> PooledBuf {
        PooledBuf {
            pool: pool.0.clone(),
            len: bytes.len(),
            backing: Backing::Heap(bytes.into_boxed_slice()),
            start: 0,
        }
    }

    fn base(&self) -> *mut u8 {
        let base = match &self.backing {
            Backing::Pool(id) => self.pool.buf_ptr(*id),
            Backing::Heap(b) => b.as_ptr() as *mut u8,
        };
        // SAFETY: `start` never exceeds the buffer's size.
        unsafe { base.add(self.start) }
    }

    fn room(&self) -> usize {
        let size = match &self.backing {
            Backing::Pool(_) => self.pool.size,
            Backing::Heap(b) => b.len(),
        };
        size - self.start
    }

    /// Drops the first `n` bytes (at most all of them).
    pub(crate) fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.start += n;
        self.len -= n;
    }

    /// Whether the bytes are in a fresh allocation because the pool was empty.
    pub fn is_overflow(&self) -> bool {
        matches!(self.backing, Backing::Heap(_))
    }
}

impl Deref for PooledBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes from `base()` are initialised and ours (the kernel is
        // done with a buffer before a PooledBuf of it exists).
        unsafe { std::slice::from_raw_parts(self.base(), self.len) }
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.base(), self.len) }
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        if let Backing::Pool(id) = self.backing {
            self.pool.give_back(id);
        }
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBuf")
            .field("len", &self.len)
            .field("overflow", &self.is_overflow())
            .finish()
    }
}

// SAFETY: the bytes live in the pool's allocation (or a boxed slice), which moving the value
// does not move and which stays allocated while the value (holding an Rc of the pool) lives.
unsafe impl IoBuf for PooledBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.base()
    }
    fn bytes_init(&self) -> usize {
        self.len
    }
    fn bytes_total(&self) -> usize {
        self.room()
    }
}

// SAFETY: as for IoBuf; the memory from `base()` is writable for `room()` bytes.
unsafe impl IoBufMut for PooledBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.base()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.len = self.len.max(pos.min(self.room()));
    }
}
