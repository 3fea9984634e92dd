//! Receive one datagram with `recvmsg`: its bytes, its source address, and whether it was cut.
//!
//! Address-family agnostic: the source comes back as a [`RawAddr`] of whatever family the
//! socket has (the caller turns it into its own address type).
use std::io;

use io_uring::{opcode, types};

use super::send_msg::MsgParts;
use super::SharedFd;
use crate::buf::IoBufMut;
use crate::driver::{EpollOp, EpollStep, FdKey, Interest, OpCode, UringCaps, UringOp, UringStep};
use crate::sys::RawAddr;

/// What one received datagram was.
pub(crate) struct Received {
    /// Bytes stored at the start of the buffer. For a datagram larger than the buffer this is
    /// the buffer's size, not the datagram's: both backends report the count copied.
    pub len: usize,
    /// The source address, with the length the kernel wrote.
    pub addr: Box<RawAddr>,
    /// The datagram was larger than the buffer and its tail was discarded (`MSG_TRUNC` in
    /// the `msg_flags` the kernel wrote back into the op's header).
    pub truncated: bool,
}

/// Receives one datagram into `buf` (up to `bytes_total()` bytes at its start).
///
/// Dropped in flight: the op stays in the op table until the kernel answers its cancel. If
/// the kernel had already taken a datagram for it, that datagram is dropped with the buffer
/// (datagram sockets may lose datagrams anyway; nothing is handed to the next receive).
pub(crate) struct RecvMsg<B> {
    fd: SharedFd,
    buf: B,
    addr: Box<RawAddr>,
    msg: Box<MsgParts>,
}

impl<B: IoBufMut> RecvMsg<B> {
    pub fn new(fd: SharedFd, buf: B) -> RecvMsg<B> {
        RecvMsg {
            fd,
            buf,
            addr: RawAddr::empty(),
            msg: MsgParts::new(),
        }
    }

    /// The header, pointed at the whole buffer and the whole address storage (heap memory
    /// this op owns), with the lengths and flags the last attempt may have written reset.
    fn header(&mut self) -> *mut libc::msghdr {
        let len = self.buf.bytes_total();
        let data = self.buf.stable_mut_ptr();
        self.msg
            .point(data, len, self.addr.as_mut_ptr(), RawAddr::CAPACITY)
    }
}

impl<B: IoBufMut> UringOp for RecvMsg<B> {
    fn uring_entry(&mut self, _: &UringCaps) -> UringStep {
        let hdr = self.header();
        UringStep::Submit(opcode::RecvMsg::new(types::Fd(self.fd.raw()), hdr).build())
    }
}

impl<B: IoBufMut> EpollOp for RecvMsg<B> {
    fn epoll_try(&mut self) -> EpollStep {
        let hdr = self.header();
        let fd = self.fd.raw();
        // `want` 0: a datagram shorter than the buffer says nothing about the queue behind it.
        super::nonblocking(self.fd.key(), Interest::Read, 0, || {
            // SAFETY: `hdr` points at a live header whose iovec covers the buffer's writable
            // bytes and whose name is the op's own address storage, CAPACITY bytes.
            unsafe { libc::recvmsg(fd, hdr, 0) }
        })
    }

    fn readiness(&self) -> Option<(FdKey, Interest)> {
        Some((self.fd.key(), Interest::Read))
    }
}

impl<B: IoBufMut> OpCode for RecvMsg<B> {
    type Output = (io::Result<Received>, B);

    fn complete(mut self, res: io::Result<u32>) -> Self::Output {
        let res = res.map(|n| {
            // SAFETY: the kernel wrote `n` bytes at the start of the buffer.
            unsafe { self.buf.set_init(n as usize) };
            // Both backends' kernels wrote the name's length and the flags into our header.
            self.addr.set_len(self.msg.hdr.msg_namelen);
            Received {
                len: n as usize,
                addr: self.addr,
                truncated: self.msg.hdr.msg_flags & libc::MSG_TRUNC != 0,
            }
        });
        (res, self.buf)
    }

    fn on_orphaned(&mut self) {
        self.fd.orphaned();
    }

    fn finish_orphaned(self, _res: io::Result<u32>) {
        self.fd.answered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::{Op, SendMsg};
    use std::net::SocketAddr;
    use std::os::fd::OwnedFd;

    /// Two unconnected UDP sockets on 127.0.0.1 and the second's address.
    fn pair() -> (SharedFd, SharedFd, SocketAddr) {
        let open = || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            s.set_nonblocking(crate::context::current_wants_nonblocking())
                .expect("nonblocking");
            s
        };
        let (a, b) = (open(), open());
        let addr = b.local_addr().expect("local_addr");
        let fd = |s: std::net::UdpSocket| SharedFd::new(OwnedFd::from(s));
        (fd(a), fd(b), addr)
    }

    fn round_trip_on(backend: crate::BackendChoice) {
        let rt = crate::Builder::new().backend(backend).build();
        let Ok(rt) = rt else {
            eprintln!(
                "SKIP: no {backend:?} runtime here (no io_uring?); the epoll run covers the op"
            );
            return;
        };
        rt.block_on(async {
            let (a, b, to) = pair();
            let from = a_addr(&a);
            let dest = Some(RawAddr::from_std(&to));
            let (res, _) = Op::on(&a, SendMsg::new(a.clone(), b"hello!".to_vec(), dest)).await;
            assert_eq!(res.expect("send"), 6);
            let (res, buf) = Op::on(&b, RecvMsg::new(b.clone(), Vec::with_capacity(4))).await;
            let got = res.expect("recv");
            assert_eq!((got.len, got.truncated, &buf[..]), (4, true, &b"hell"[..]));
            assert_eq!(got.addr.to_std().expect("addr"), from);
            assert_eq!(got.addr.as_bytes().len(), 16, "a sockaddr_in's length");
        });
    }

    fn a_addr(fd: &SharedFd) -> SocketAddr {
        crate::sys::local_addr(fd.raw()).expect("local_addr")
    }

    #[test]
    fn send_msg_recv_msg_round_trip_epoll() {
        round_trip_on(crate::BackendChoice::Epoll);
    }

    #[test]
    fn send_msg_recv_msg_round_trip_uring() {
        round_trip_on(crate::BackendChoice::Uring);
    }

    #[test]
    fn raw_addr_bytes_round_trip() {
        let raw = RawAddr::from_std(&"127.0.0.1:9".parse().expect("addr"));
        let copy = RawAddr::from_bytes(raw.as_bytes()).expect("fits");
        assert_eq!(copy.to_std().expect("addr"), raw.to_std().expect("addr"));
        assert!(RawAddr::from_bytes(&[0; 200]).is_err());
    }
}
