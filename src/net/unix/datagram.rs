//! A Unix datagram socket: receives on the `RecvMsg` op UDP uses; sends on `SendMsg` or, where
//! af_unix needs it (a full receiver), a `sendmsg` of its own (see `UnixDatagram::send_msg`).
use std::io;
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::{PeerCred, SocketAddr};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::net::RecvMeta;
use crate::op::{self, Op, SharedFd};
use crate::sys::{self, syscall, RawAddr};

/// The longest sleep between two tries of a send whose receiver is full.
const SEND_RETRY_MAX: Duration = Duration::from_millis(20);

/// A Unix datagram socket (`AF_UNIX`, `SOCK_DGRAM`): whole messages, kept in order (a full
/// receiver makes the sender wait rather than drop one). Sends and receives take owned
/// buffers; a datagram larger than the receive buffer is cut to fit
/// ([`recv_from_meta`](Self::recv_from_meta) says so).
///
/// ```no_run
/// use corering::net::UnixDatagram;
/// # corering::Runtime::new().unwrap().block_on(async {
/// let server = UnixDatagram::bind("/tmp/app.dgram")?;
/// let client = UnixDatagram::unbound()?;
/// let (res, _) = client.send_to(b"ping".to_vec(), "/tmp/app.dgram").await;
/// res?;
/// let (res, buf) = server.recv_from(Vec::with_capacity(64)).await;
/// let (n, from) = res?;
/// println!("{n} bytes from {from}: {buf:?}");
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// A send to a receiver whose queue is full (`net.unix.max_dgram_qlen`) waits for room: it
/// retries after short sleeps (1 ms doubling to 20 ms; the kernel gives an unconnected
/// sender nothing to wait on, and io_uring's SENDMSG would send an empty datagram), except a
/// connected `send` on epoll, which waits for writability. A dropped send either went out
/// whole or not at all.
///
/// Cancellation: a dropped send may still have been sent (never twice); a dropped receive
/// loses nothing: a datagram or error the kernel gave it before the cancel goes to the next
/// receive, as for [`UdpSocket`](crate::net::UdpSocket). Binding a path does not remove
/// a stale socket file there, and dropping the socket does not remove its file.
#[derive(Debug)]
pub struct UnixDatagram {
    fd: SharedFd,
    /// What dropped receives got after all (io_uring): the next receive returns it first.
    rescue: Rc<op::DatagramRescue>,
    _not_send: PhantomData<*const ()>,
}

impl UnixDatagram {
    /// A socket bound to the pathname `path`.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        Self::bind_addr(&SocketAddr::from_pathname(path)?)
    }

    /// A socket bound to `name` in Linux's abstract namespace (without the leading NUL).
    pub fn bind_abstract(name: impl AsRef<[u8]>) -> io::Result<UnixDatagram> {
        Self::bind_addr(&SocketAddr::from_abstract_name(name)?)
    }

    /// A socket bound to `addr` (an unnamed `addr` autobinds to an abstract name the kernel
    /// picks).
    pub fn bind_addr(addr: &SocketAddr) -> io::Result<UnixDatagram> {
        let socket = Self::unbound()?;
        let raw = addr.to_raw();
        // SAFETY: `raw` is a live sockaddr_un of `raw.len` bytes; the fd is open.
        syscall!(bind(socket.fd.raw(), raw.as_ptr(), raw.len))?;
        Ok(socket)
    }

    /// A socket bound to no address: it can send (its datagrams arrive from an unnamed
    /// sender, which cannot be answered) and, once connected, receive from its peer.
    pub fn unbound() -> io::Result<UnixDatagram> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let fd = sys::socket(libc::AF_UNIX, libc::SOCK_DGRAM, nonblocking)?;
        Ok(Self::from_fd(fd))
    }

    /// A connected pair of unnamed sockets (`socketpair`).
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let (a, b) = sys::unix_pair(libc::SOCK_DGRAM, nonblocking)?;
        Ok((Self::from_fd(a), Self::from_fd(b)))
    }

    /// Wraps a std socket, setting the blocking mode the current backend needs.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        socket.set_nonblocking(crate::context::current_wants_nonblocking())?;
        Ok(Self::from_fd(socket.into()))
    }

    fn from_fd(fd: OwnedFd) -> UnixDatagram {
        UnixDatagram {
            fd: SharedFd::new(fd),
            rescue: Rc::default(),
            _not_send: PhantomData,
        }
    }

    /// Sets the default peer, the socket at the pathname `path`: `send` goes there, and only
    /// its datagrams are received. Synchronous (connecting a datagram socket never waits).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.connect_addr(&SocketAddr::from_pathname(path)?)
    }

    /// Sets the default peer to the socket bound to the abstract `name`.
    pub fn connect_abstract(&self, name: impl AsRef<[u8]>) -> io::Result<()> {
        self.connect_addr(&SocketAddr::from_abstract_name(name)?)
    }

    /// Sets the default peer to `addr`.
    pub fn connect_addr(&self, addr: &SocketAddr) -> io::Result<()> {
        let raw = addr.to_raw();
        // SAFETY: `raw` is a live sockaddr_un of `raw.len` bytes; the fd is open.
        syscall!(connect(self.fd.raw(), raw.as_ptr(), raw.len))?;
        Ok(())
    }

    /// Sends the initialised bytes of `buf` as one datagram to the socket at the pathname
    /// `path`; the count is the whole buffer (a datagram is never sent in part).
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        match SocketAddr::from_pathname(path) {
            Ok(addr) => self.send_to_addr(buf, &addr).await,
            Err(e) => (Err(e), buf),
        }
    }

    /// Sends one datagram to `addr` (a pathname or an abstract name).
    pub async fn send_to_addr<B: IoBuf>(&self, buf: B, addr: &SocketAddr) -> BufResult<usize, B> {
        self.send_msg(buf, Some(addr.to_raw())).await
    }

    /// Sends one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        self.send_msg(buf, None).await
    }

    /// A full receiver is the hard case: af_unix gives an unconnected sender no readiness to
    /// wait for (the socket polls writable; only a blocking send is woken), and on io_uring
    /// it copies the bytes out of the iovec before it answers EAGAIN, so that the ring's
    /// internal retry sends an empty datagram (seen on 6.18). So a send is a non-blocking
    /// `sendmsg` syscall, retried after a short, growing sleep while the receiver is full;
    /// only a connected `send` on epoll (non-blocking sockets, where the kernel wakes a
    /// connected sender) is the `SendMsg` op, which waits for writability. (A blocking send on
    /// the pool would hold a pool thread for as long as the receiver does not read, and a
    /// dropped one could not be called back: a hostile receiver could take every thread.)
    async fn send_msg<B: IoBuf>(&self, buf: B, dest: Option<Box<RawAddr>>) -> BufResult<usize, B> {
        let uring = crate::context::with_current(|c| c.kind == crate::BackendKind::Uring);
        if uring != Some(true) && dest.is_none() {
            return Op::on(&self.fd, op::SendMsg::new(self.fd.clone(), buf, dest)).await;
        }
        // SAFETY: an IoBuf's `stable_ptr` points at `bytes_init` initialised bytes, which
        // live (unmoved) as long as `buf`, which outlives this borrow.
        let bytes = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) };
        let mut backoff = Duration::from_millis(1);
        loop {
            match send_now(self.fd.raw(), bytes, dest.as_deref(), libc::MSG_DONTWAIT) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return (res, buf),
            }
            crate::time::sleep(backoff).await;
            backoff = (backoff * 2).min(SEND_RETRY_MAX);
        }
    }

    /// Receives one datagram into `buf`: the count stored and the sender (unnamed if the
    /// sender was not bound). A larger datagram is cut to fit.
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = self.recv_from_meta(buf).await;
        (res.map(|m| (m.len, m.addr)), buf)
    }

    /// Receives one datagram into `buf`: the count stored, the sender, and whether the
    /// datagram was larger than the buffer (its tail discarded).
    pub async fn recv_from_meta<B: IoBufMut>(&self, buf: B) -> BufResult<RecvMeta<SocketAddr>, B> {
        let (res, buf) = self.recv_msg(buf).await;
        let meta = res.and_then(|got| {
            Ok(RecvMeta {
                len: got.len,
                addr: SocketAddr::from_raw(&got.addr)?,
                truncated: got.truncated,
            })
        });
        (meta, buf)
    }

    /// Receives one datagram into `buf`; the count stored.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let (res, buf) = self.recv_msg(buf).await;
        (res.map(|got| got.len), buf)
    }

    /// A datagram (or error) a dropped receive got (see `op::DatagramRescue`), else one
    /// from the kernel.
    async fn recv_msg<B: IoBufMut>(&self, buf: B) -> BufResult<op::Received, B> {
        op::recv_rescued(&self.fd, &self.rescue, buf).await
    }

    /// Shuts down reading, writing or both.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        Op::on(&self.fd, op::Shutdown::new(self.fd.clone(), how)).await
    }

    /// The local address (unnamed unless bound).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.fd.raw(), false)
    }

    /// The connected peer's address (`NotConnected` if none).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        SocketAddr::of_socket(self.fd.raw(), true)
    }

    /// The credentials of the connected peer (`SO_PEERCRED`): of the process that made the
    /// pair, or that created the peer socket.
    pub fn peer_cred(&self) -> io::Result<PeerCred> {
        PeerCred::of(self.as_fd())
    }

    /// Takes the socket's pending error (SO_ERROR), if any.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        sys::take_socket_error(self.fd.raw())
    }
}

/// One `sendmsg` of `bytes` to `dest` (`None`: the connected peer), with MSG_NOSIGNAL and
/// `flags`, from the calling thread.
fn send_now(fd: RawFd, bytes: &[u8], dest: Option<&RawAddr>, flags: i32) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: msghdr is plain data for which all-zero bytes are valid (null pointers, zero
    // lengths).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if let Some(dest) = dest {
        hdr.msg_name = dest.as_ptr() as *mut libc::c_void;
        hdr.msg_namelen = dest.len;
    }
    // SAFETY: `hdr` points at a live iovec over `bytes` (which the kernel only reads) and at
    // a live address of `msg_namelen` bytes, all of which outlive the call.
    let n = syscall!(sendmsg(fd, &hdr, flags | libc::MSG_NOSIGNAL))?;
    Ok(n as usize)
}

impl AsRawFd for UnixDatagram {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for UnixDatagram {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` (which holds a handle) is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.fd.raw()) }
    }
}
