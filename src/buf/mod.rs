//! Owned buffers: the contract between a buffer and the kernel.
//!
//! An operation takes its buffer by value and hands it back with the result, as a
//! [`BufResult`], on every path: success, error and cancellation. While the operation is in
//! flight the buffer belongs to the runtime; if the future is dropped, the runtime keeps the
//! buffer until the kernel reports the operation complete and only then drops it.
//!
//! [`IoBuf`] (bytes to send) and [`IoBufMut`] (room to receive into) are `unsafe` traits: the
//! kernel reads and writes through the raw pointers they return, long after the borrow that
//! produced them has ended, so an implementation must keep those pointers valid and stable.
//!
//! Implemented for `Vec<u8>` and `Box<[u8]>` (both ways), for `String`, `&'static [u8]` and
//! `&'static str` (send only: a read could break UTF-8 or write to immutable memory), and,
//! with the optional `bytes` feature, for `bytes::Bytes` (send only) and `bytes::BytesMut`
//! (both ways).
//!
//! ```
//! use corering::IoBuf;
//! let buf = b"hello world".to_vec();
//! let tail = buf.slice(6..); // up to the capacity; its initialised bytes are "world"
//! assert_eq!(&tail[..], b"world");
//! let buf: Vec<u8> = tail.into_inner();
//! assert_eq!(buf.len(), 11);
//! ```
mod pool;
mod pooled_buf;
mod slice;

pub(crate) use pool::{map_ring_memory, BufPool, PoolConfig, BGID};
pub use pooled_buf::PooledBuf;
pub use slice::Slice;

use std::io;
use std::ops::{Bound, RangeBounds};

/// The result of an operation that borrowed a buffer: the outcome and the buffer itself.
pub type BufResult<T, B> = (io::Result<T>, B);

/// A buffer whose initialised bytes can be handed to the kernel to read (e.g. for a send).
///
/// # Safety
///
/// The pointer returned by [`stable_ptr`](IoBuf::stable_ptr) must point at `bytes_total()`
/// bytes of memory of which the first `bytes_init()` are initialised, and it must stay valid
/// and unchanged while the value is **moved** (the runtime moves buffers into its op table) and
/// for as long as the value is alive and not accessed mutably through its own API. In practice:
/// the bytes live on the heap (or in `'static` memory), not inline in the value.
pub unsafe trait IoBuf: Unpin + 'static {
    /// The address of the first byte.
    fn stable_ptr(&self) -> *const u8;
    /// How many bytes from [`stable_ptr`](IoBuf::stable_ptr) are initialised (a write sends these).
    fn bytes_init(&self) -> usize;
    /// How many bytes the buffer can hold (a read may fill up to this many).
    fn bytes_total(&self) -> usize;

    /// A view of `range` of this buffer, which is itself a buffer. The range is checked against
    /// [`bytes_total`](IoBuf::bytes_total), and an open end (`n..`, `..`) ends there, at the
    /// capacity: a read into `buf.slice(buf.bytes_init()..)` appends after the bytes already
    /// there. A write from a slice sends only its initialised bytes (those of the range below
    /// `bytes_init()`), so `buf.slice(n..)` sends the bytes from `n` on.
    ///
    /// ```
    /// use corering::IoBuf;
    /// let mut buf = Vec::with_capacity(8);
    /// buf.extend_from_slice(b"ab");
    /// let room = buf.slice(2..);
    /// assert_eq!((room.bytes_init(), room.bytes_total()), (0, room.get_ref().capacity() - 2));
    /// ```
    ///
    /// # Panics
    ///
    /// If the range is reversed or ends past `bytes_total()`.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("slice range overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("slice range overflows"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_total(),
        };
        assert!(
            begin <= end,
            "slice range starts at {begin} but ends at {end}"
        );
        assert!(
            end <= self.bytes_total(),
            "slice range ends at {end} but the buffer holds {}",
            self.bytes_total()
        );
        Slice::new(self, begin, end)
    }
}

/// A buffer the kernel may write into (e.g. for a receive).
///
/// A read writes at [`stable_mut_ptr`](IoBufMut::stable_mut_ptr) (offset 0 of the buffer) up to
/// [`bytes_total`](IoBuf::bytes_total) bytes, then calls [`set_init`](IoBufMut::set_init) with
/// the count it received.
///
/// # Safety
///
/// As for [`IoBuf`], and the memory behind `stable_mut_ptr()` must be writable for
/// `bytes_total()` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// The address of the first byte, for writing.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Records that the first `pos` bytes are initialised. Never shrinks what is initialised.
    ///
    /// # Safety
    ///
    /// The first `pos` bytes must really be initialised, and `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

/// `IoBuf` for containers whose `len()` first bytes are initialised out of `$total()` bytes
/// (`capacity` for growable ones, `len` for fixed ones) they own on the heap or in `'static`
/// memory, behind a pointer that moving the value does not change.
macro_rules! heap_iobuf {
    ($total:ident: $($(#[$attr:meta])* $ty:ty => $why:literal),* $(,)?) => {$(
        $(#[$attr])*
        // SAFETY: see the reason given with the type; the bytes move or resize only when the
        // value is changed through its own API, which needs it back from the runtime.
        #[doc = $why]
        unsafe impl IoBuf for $ty {
            fn stable_ptr(&self) -> *const u8 {
                self.as_ptr()
            }
            fn bytes_init(&self) -> usize {
                self.len()
            }
            fn bytes_total(&self) -> usize {
                self.$total()
            }
        }
    )*};
}

/// `IoBufMut` for growable containers whose spare capacity is their own and writable.
macro_rules! growable_iobuf_mut {
    ($($(#[$attr:meta])* $ty:ty),* $(,)?) => {$(
        $(#[$attr])*
        // SAFETY: as for its IoBuf; the `capacity()` bytes are the value's own, unique and
        // writable.
        unsafe impl IoBufMut for $ty {
            fn stable_mut_ptr(&mut self) -> *mut u8 {
                self.as_mut_ptr()
            }
            unsafe fn set_init(&mut self, pos: usize) {
                if self.len() < pos {
                    // SAFETY: the caller guarantees the first `pos` bytes are initialised and
                    // that `pos <= capacity`.
                    unsafe { self.set_len(pos) };
                }
            }
        }
    )*};
}

heap_iobuf! { capacity:
    Vec<u8> => "A Vec's bytes live on the heap; moving it moves only its (ptr, len, cap).",
    String => "Like a Vec's; only `IoBuf`: a read could write bytes that are not UTF-8.",
    #[cfg(feature = "bytes")]
    bytes::BytesMut => "With the `bytes` feature. It uniquely owns its heap bytes, never inline.",
}

growable_iobuf_mut! {
    Vec<u8>,
    #[cfg(feature = "bytes")]
    bytes::BytesMut,
}

// Fixed byte containers: every byte is initialised (init == total == len).
heap_iobuf! { len:
    #[cfg(feature = "bytes")]
    bytes::Bytes => "With the `bytes` feature. Shared heap or `'static` bytes it never mutates.",
    Box<[u8]> => "A boxed slice's bytes live on the heap and never move or resize.",
    &'static [u8] => "'static memory is valid for the life of the program and immutable here.",
    &'static str => "'static memory is valid for the life of the program and immutable here.",
}

// SAFETY: every byte of a boxed slice is initialised and writable, at a stable heap address.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_contract() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        assert_eq!(v.bytes_init(), 3);
        assert!(v.bytes_total() >= 16);
        // SAFETY: the first 3 bytes are initialised; set_init never shrinks.
        unsafe { v.set_init(1) };
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn string_contract() {
        let mut s = String::with_capacity(32);
        s.push_str("héllo");
        let ptr = s.as_ptr();
        assert_eq!(s.bytes_init(), "héllo".len());
        assert_eq!(s.bytes_total(), s.capacity());
        // Moving it (as into the op table) keeps the bytes where they are.
        let moved = Box::new(s);
        assert_eq!(moved.stable_ptr(), ptr);
        let tail = moved.slice(1..);
        assert_eq!(&tail[..], "éllo".as_bytes());
        assert_eq!(tail.bytes_total(), tail.get_ref().capacity() - 1);
    }

    #[cfg(feature = "bytes")]
    #[test]
    fn bytes_contract() {
        let b = bytes::Bytes::from_static(b"static bytes");
        assert_eq!((b.bytes_init(), b.bytes_total()), (12, 12));
        let ptr = b.stable_ptr();
        let moved = Box::new(b);
        assert_eq!(moved.stable_ptr(), ptr);
        let shared = bytes::Bytes::from(b"on the heap".to_vec());
        let clone = shared.clone();
        assert_eq!(clone.stable_ptr(), shared.stable_ptr());
        assert_eq!(&shared.slice(3..)[..], b"the heap");
    }

    #[cfg(feature = "bytes")]
    #[test]
    fn bytes_mut_contract() {
        let mut b = bytes::BytesMut::with_capacity(64);
        b.extend_from_slice(b"abc");
        assert_eq!(b.bytes_init(), 3);
        assert_eq!(b.bytes_total(), b.capacity());
        assert!(b.bytes_total() >= 64);
        let ptr = b.stable_ptr();
        let mut moved = Box::new(b);
        assert_eq!(moved.stable_ptr(), ptr);
        assert_eq!(moved.stable_mut_ptr().cast_const(), ptr);
        // SAFETY: the first 3 bytes are initialised; set_init never shrinks.
        unsafe { moved.set_init(1) };
        assert_eq!(moved.len(), 3);
        // A read after what is there, through a slice: written, then marked.
        let mut tail = (*moved).slice(3..);
        // SAFETY: the view's first 2 bytes are written just before they are marked.
        unsafe {
            tail.stable_mut_ptr().copy_from(b"de".as_ptr(), 2);
            tail.set_init(2);
        }
        let b = tail.into_inner();
        assert_eq!(&b[..], b"abcde");
        assert_eq!(b.stable_ptr(), ptr);
    }

    #[test]
    fn slice_bounds() {
        let v = b"hello".to_vec();
        let s = v.slice(1..=3);
        assert_eq!((s.begin(), s.end()), (1, 4));
        assert_eq!(&s[..], b"ell");
    }

    #[test]
    fn unbounded_slice_ends_at_total() {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(b"abc");
        let total = v.bytes_total();
        // "Read more after what I have": the view is the room after the bytes there.
        let mut tail = v.slice(3..);
        assert_eq!((tail.begin(), tail.end()), (3, total));
        assert_eq!((tail.bytes_init(), tail.bytes_total()), (0, total - 3));
        // SAFETY: the view's first 2 bytes are written just before they are marked.
        unsafe {
            tail.stable_mut_ptr().copy_from(b"de".as_ptr(), 2);
            tail.set_init(2);
        }
        assert_eq!(&tail[..], b"de");
        assert_eq!(tail.into_inner(), b"abcde");
        // `..` is the whole buffer; a write from it sends only the initialised bytes.
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"xy");
        let all = v.slice(..);
        assert_eq!((all.end(), all.bytes_init()), (all.get_ref().capacity(), 2));
        assert_eq!(&all[..], b"xy");
        // A slice that starts inside the initialised bytes sends from there.
        let mid = b"hello".to_vec().slice(1..);
        assert_eq!(&mid[..], b"ello");
    }

    #[test]
    #[should_panic(expected = "buffer holds")]
    fn slice_past_total_panics() {
        let v: Box<[u8]> = vec![0; 4].into_boxed_slice();
        let _ = v.slice(..5);
    }
}
