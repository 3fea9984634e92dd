//! What receives on a datagram socket left when their futures were dropped (io_uring).
//!
//! A dropped receive is cancelled in the kernel, but the cancel can lose the race: the kernel
//! may already have taken a datagram off the socket's queue into the op's buffer, or failed it
//! with the socket's error (an ICMP port unreachable, as `ECONNREFUSED`). That datagram or
//! error is kept here, and the socket's next receive returns it before asking the kernel, so
//! a timed-out receive never silently loses what arrived. (On epoll a dropped receive had taken
//! nothing.) Datagrams keep no order across concurrent receives, so a receive does not wait for
//! cancelled ones still in the kernel: whatever they deliver is taken by a later receive.
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;

use std::rc::Rc;

use super::recv_msg::{Received, RecvMsg};
use super::{Op, SharedFd};
use crate::buf::{BufResult, IoBufMut};
use crate::sys::RawAddr;

/// One thing a dropped receive got.
enum Kept {
    Datagram {
        bytes: Vec<u8>,
        addr: Box<RawAddr>,
        truncated: bool,
    },
    Error(io::Error),
}

/// The datagrams and errors of a socket's dropped receives, oldest first.
#[derive(Default)]
pub(crate) struct DatagramRescue {
    kept: RefCell<VecDeque<Kept>>,
}

impl DatagramRescue {
    /// A dropped receive's answer: `bytes` (copied out of its buffer) from `addr`, or an
    /// error. A cancel's own `ECANCELED`/`EINTR` means it got nothing.
    pub fn answered(&self, res: io::Result<(&[u8], Box<RawAddr>, bool)>) {
        let kept = match res {
            Ok((bytes, addr, truncated)) => Kept::Datagram {
                bytes: bytes.to_vec(),
                addr,
                truncated,
            },
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::EINTR)) => return,
            Err(e) => Kept::Error(e),
        };
        self.kept.borrow_mut().push_back(kept);
    }

    /// The oldest kept datagram copied into `buf` (cut to fit, then reported truncated), or
    /// the oldest kept error; `None` if nothing is kept.
    pub fn take_into<B: IoBufMut>(&self, buf: &mut B) -> Option<io::Result<Received>> {
        let kept = self.kept.borrow_mut().pop_front()?;
        let (bytes, addr, truncated) = match kept {
            Kept::Datagram {
                bytes,
                addr,
                truncated,
            } => (bytes, addr, truncated),
            Kept::Error(e) => return Some(Err(e)),
        };
        let len = bytes.len().min(buf.bytes_total());
        // SAFETY: `buf` is writable for `bytes_total() >= len` bytes by the IoBufMut
        // contract; `bytes` is a separate allocation, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.stable_mut_ptr(), len);
            buf.set_init(len);
        }
        Some(Ok(Received {
            len,
            addr,
            truncated: truncated || len < bytes.len(),
        }))
    }
}

/// One receive on `fd`: a datagram (or error) a dropped receive got, else one from the
/// kernel, whose answer comes to `rescue` if this receive is dropped in turn.
pub(crate) async fn recv_rescued<B: IoBufMut>(
    fd: &SharedFd,
    rescue: &Rc<DatagramRescue>,
    mut buf: B,
) -> BufResult<Received, B> {
    if let Some(res) = rescue.take_into(&mut buf) {
        return (res, buf);
    }
    Op::on(fd, RecvMsg::new(fd.clone(), buf).rescued_to(rescue)).await
}

impl DatagramRescue {
    /// Everything kept, oldest first: each datagram's bytes and source, or an error.
    pub fn drain(&self) -> Vec<io::Result<(Vec<u8>, Box<RawAddr>)>> {
        let kept = std::mem::take(&mut *self.kept.borrow_mut());
        kept.into_iter()
            .map(|k| match k {
                Kept::Datagram { bytes, addr, .. } => Ok((bytes, addr)),
                Kept::Error(e) => Err(e),
            })
            .collect()
    }
}

impl std::fmt::Debug for DatagramRescue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramRescue")
            .field("kept", &self.kept.borrow().len())
            .finish()
    }
}
