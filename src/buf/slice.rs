//! [`Slice`]: a range of an owned buffer that is itself an owned buffer.
use super::{IoBuf, IoBufMut};
use std::ops::{Deref, DerefMut};

/// A view of the bytes `begin..end` of an owned buffer; made by [`IoBuf::slice`].
///
/// A read into a slice writes at `begin`, up to `end`; a write from a slice sends the
/// initialised bytes from `begin` up to `end`. An open end (`n..`) is the buffer's capacity
/// ([`bytes_total`](IoBuf::bytes_total)). [`into_inner`](Slice::into_inner) gives the whole buffer back.
///
/// ```
/// use corering::IoBuf;
/// let s = vec![1u8, 2, 3, 4].slice(2..);
/// assert_eq!(&s[..], &[3, 4]);
/// ```
#[derive(Debug)]
pub struct Slice<T> {
    buf: T,
    begin: usize,
    end: usize,
}

impl<T> Slice<T> {
    pub(crate) fn new(buf: T, begin: usize, end: usize) -> Self {
        Slice { buf, begin, end }
    }
    /// Where the view starts in the underlying buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }
    /// Where the view ends (exclusive) in the underlying buffer.
    pub fn end(&self) -> usize {
        self.end
    }
    /// The underlying buffer.
    pub fn get_ref(&self) -> &T {
        &self.buf
    }
    // No `get_mut`: swapping or shrinking the buffer under a slice would leave the view's range
    // pointing past it, and the kernel would write there.
    /// Gives the whole underlying buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }
}

impl<T: IoBuf> Deref for Slice<T> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let len = self.bytes_init();
        // SAFETY: `stable_ptr()` points at `bytes_init()` initialised bytes of the view, which
        // lie inside the underlying buffer (checked when the slice was made).
        unsafe { std::slice::from_raw_parts(self.stable_ptr(), len) }
    }
}

impl<T: IoBufMut> DerefMut for Slice<T> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.bytes_init();
        // SAFETY: as for Deref; we hold the slice mutably, so nothing else aliases it.
        unsafe { std::slice::from_raw_parts_mut(self.stable_mut_ptr(), len) }
    }
}

// SAFETY: the view's pointer is the underlying buffer's stable pointer plus `begin`, which the
// constructor checked is within `bytes_total()`; it is stable because the underlying one is.
unsafe impl<T: IoBuf> IoBuf for Slice<T> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: begin <= end <= bytes_total, so the offset stays inside the allocation.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as above, for writable memory of the underlying buffer.
unsafe impl<T: IoBufMut> IoBufMut for Slice<T> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: begin <= end <= bytes_total, so the offset stays inside the allocation.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    unsafe fn set_init(&mut self, pos: usize) {
        let init = self.buf.bytes_init();
        if init < self.begin {
            // The view starts past the initialised prefix: zero the gap so that marking
            // `begin + pos` bytes initialised is true.
            // SAFETY: `init..begin` lies inside the buffer's writable `bytes_total()` bytes.
            unsafe {
                std::ptr::write_bytes(self.buf.stable_mut_ptr().add(init), 0, self.begin - init)
            };
        }
        // SAFETY: bytes `0..begin` are initialised (they were, or were just zeroed) and the
        // caller guarantees `pos` bytes from `begin` are.
        unsafe { self.buf.set_init(self.begin + pos) };
    }
}
