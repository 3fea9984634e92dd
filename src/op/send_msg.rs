//! Send one datagram (or a stream's bytes) with `sendmsg`, optionally to an address.
//!
//! Address-family agnostic: the destination is a [`RawAddr`] of any family (UDP's
//! `sockaddr_in`/`sockaddr_in6`, a `sockaddr_un` for Unix datagram sockets), or none for a
//! connected socket.
use std::io;
use std::mem;
use std::ptr;

use io_uring::{opcode, types};

use super::SharedFd;
use crate::buf::{BufResult, IoBuf};
use crate::driver::{EpollOp, EpollStep, FdKey, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::sys::RawAddr;

/// A `msghdr` and its one `iovec`, boxed so that the pointers the kernel follows (the header
/// itself, the iovec it points at) stay put while the op is moved (into the op table, when its
/// future is dropped in flight). Shared by [`SendMsg`] and `RecvMsg`.
pub(crate) struct MsgParts {
    pub hdr: libc::msghdr,
    iov: libc::iovec,
}

impl MsgParts {
    pub fn new() -> Box<MsgParts> {
        Box::new(MsgParts {
            // SAFETY: msghdr is plain data (pointers, lengths, flags, padding) for which
            // all-zero bytes are valid: null pointers and zero lengths.
            hdr: unsafe { mem::zeroed() },
            iov: libc::iovec {
                iov_base: ptr::null_mut(),
                iov_len: 0,
            },
        })
    }

    /// Points the header at `len` bytes at `data` and at the address `name` (null: none),
    /// with `msg_flags` cleared; returns the header. Called before every attempt: a receive
    /// overwrites `msg_namelen` and `msg_flags`.
    pub fn point(
        &mut self,
        data: *mut u8,
        len: usize,
        name: *mut libc::sockaddr,
        namelen: libc::socklen_t,
    ) -> *mut libc::msghdr {
        self.iov = libc::iovec {
            iov_base: data.cast(),
            iov_len: len,
        };
        self.hdr.msg_iov = &mut self.iov;
        self.hdr.msg_iovlen = 1;
        self.hdr.msg_name = name.cast();
        self.hdr.msg_namelen = if name.is_null() { 0 } else { namelen };
        self.hdr.msg_control = ptr::null_mut();
        self.hdr.msg_controllen = 0;
        self.hdr.msg_flags = 0;
        &mut self.hdr
    }
}

/// Sends the initialised bytes of `buf` to `addr` (`None`: the connected peer), always with
/// MSG_NOSIGNAL (a gone peer gives EPIPE, never SIGPIPE). On a datagram socket the send is
/// all or nothing: the count is the whole buffer, or an error (EMSGSIZE when too large).
///
/// Dropped in flight: the op (buffer, address, header) stays in the op table until the
/// kernel answers its cancel; the datagram may still have been sent. Nothing needs rescuing:
/// a datagram is never half sent.
pub(crate) struct SendMsg<B> {
    fd: SharedFd,
    buf: B,
    addr: Option<Box<RawAddr>>,
    msg: Box<MsgParts>,
}

impl<B: IoBuf> SendMsg<B> {
    pub fn new(fd: SharedFd, buf: B, addr: Option<Box<RawAddr>>) -> SendMsg<B> {
        SendMsg {
            fd,
            buf,
            addr,
            msg: MsgParts::new(),
        }
    }

    /// The header, pointed at the buffer and the address (all heap memory this op owns).
    fn header(&mut self) -> *mut libc::msghdr {
        let (name, namelen) = match &mut self.addr {
            Some(addr) => (addr.as_mut_ptr(), addr.len),
            None => (ptr::null_mut(), 0),
        };
        // The kernel only reads through the iovec of a send.
        let data = self.buf.stable_ptr().cast_mut();
        self.msg.point(data, self.buf.bytes_init(), name, namelen)
    }
}

impl<B: IoBuf> UringOp for SendMsg<B> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let hdr = self.header();
        UringStep::Submit(
            opcode::SendMsg::new(types::Fd(self.fd.raw()), hdr)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
        )
    }
}

impl<B: IoBuf> EpollOp for SendMsg<B> {
    fn epoll_try(&mut self) -> EpollStep {
        let hdr = self.header();
        let fd = self.fd.raw();
        // `want` 0: a count says nothing about the socket's send buffer.
        super::nonblocking(self.fd.key(), Interest::Write, 0, || {
            // SAFETY: `hdr` points at a live header whose iovec covers the buffer's
            // initialised bytes and whose name (if any) is a live, correctly sized address.
            unsafe { libc::sendmsg(fd, hdr, libc::MSG_NOSIGNAL) }
        })
    }

    fn readiness(&self) -> Option<(FdKey, Interest)> {
        Some((self.fd.key(), Interest::Write))
    }
}

impl<B: IoBuf> OpCode for SendMsg<B> {
    type Output = BufResult<usize, B>;

    fn complete(self, res: io::Result<u32>) -> Self::Output {
        (res.map(|n| n as usize), self.buf)
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, _res: io::Result<u32>) {
        self.fd.answered();
    }
}
