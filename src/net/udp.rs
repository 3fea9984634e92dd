//! A UDP socket with owned buffers.
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::rc::Rc;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::op::{self, Op, SharedFd};
use crate::sys::{self, syscall, RawAddr};

/// A UDP socket. Sends and receives take owned buffers and give them back.
///
/// ```no_run
/// use corering::net::UdpSocket;
/// # corering::Runtime::new().unwrap().block_on(async {
/// let socket = UdpSocket::bind("127.0.0.1:0")?;
/// let (res, buf) = socket.recv_from(Vec::with_capacity(1500)).await;
/// let (n, peer) = res?;
/// let (res, _) = socket.send_to(buf, peer).await; // echo it back
/// res?;
/// # Ok::<(), std::io::Error>(()) }).unwrap();
/// ```
///
/// Every method takes `&self`: a datagram is sent or received whole, so any number of sends
/// and receives may be in flight at once (from several tasks of the socket's core, e.g. through
/// an `Rc`), each getting whole datagrams; which receive gets which datagram is unspecified.
///
/// A receive stores at most the buffer's capacity (`bytes_total`) at its start; the rest of a
/// larger datagram is discarded, as with std. [`recv_from_meta`](UdpSocket::recv_from_meta)
/// says when that happened.
///
/// Errors are std's: on a connected socket, an ICMP "port unreachable" from the peer makes a
/// later `recv` or `send` fail with [`ConnectionRefused`](io::ErrorKind::ConnectionRefused).
///
/// Cancellation: a dropped send may still have been sent (on io_uring the kernel may have
/// taken it before the cancel); it is never sent twice. A dropped receive loses nothing: on
/// io_uring the kernel may have taken a datagram (or the socket's error) for it before the
/// cancel, and the socket's next receive returns that first; on epoll nothing was taken.
/// Either way the buffer and address stay owned by the runtime until the kernel is done
/// with them. (What dropped receives kept and no receive took, `into_std` hands over.)
#[derive(Debug)]
pub struct UdpSocket {
    fd: SharedFd,
    /// What dropped receives got after all (io_uring): the next receive returns it first.
    rescue: Rc<op::DatagramRescue>,
    _not_send: PhantomData<*const ()>,
}

/// What [`UdpSocket::recv_from_meta`] received: one datagram's count, source and whether it
/// was cut. Generic over the address type for datagram sockets of other families.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvMeta<A = SocketAddr> {
    /// Bytes stored at the start of the buffer. For a truncated datagram this is the
    /// buffer's capacity, not the datagram's size (the kernel reports the count copied).
    pub len: usize,
    /// Who sent it.
    pub addr: A,
    /// The datagram was larger than the buffer: its tail was discarded.
    pub truncated: bool,
}

/// What [`UdpSocket::into_std`] hands over besides the socket: the datagrams (with their
/// senders) and errors that dropped receives had got and no receive took, oldest first.
/// Empty unless a receive was dropped on io_uring after the kernel had answered it.
#[derive(Debug, Default)]
pub struct UnreadDatagrams {
    /// Datagrams and their senders.
    pub datagrams: Vec<(Vec<u8>, SocketAddr)>,
    /// Errors, e.g. a `ConnectionRefused` from an ICMP port unreachable.
    pub errors: Vec<io::Error>,
}

impl UdpSocket {
    /// Binds a new socket to `addr`, trying each resolved address in turn.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        let nonblocking = crate::context::current_wants_nonblocking();
        let mut last = None;
        for addr in super::resolve(addr)? {
            match bind_one(&addr, nonblocking) {
                Ok(fd) => return Ok(UdpSocket::from_fd(fd)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    fn from_fd(fd: OwnedFd) -> UdpSocket {
        UdpSocket {
            fd: SharedFd::new(fd),
            rescue: Rc::default(),
            _not_send: PhantomData,
        }
    }

    /// Wraps a std socket, setting the blocking mode the current backend needs.
    ///
    /// # Panics
    ///
    /// Outside a runtime.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(crate::context::current_wants_nonblocking())?;
        Ok(UdpSocket::from_fd(socket.into()))
    }

    /// Turns the socket back into a std socket (in blocking mode), once every op of it still
    /// in the kernel (a dropped one) has been answered, with the datagrams and errors dropped
    /// receives had got that no receive took ([`UnreadDatagrams`]: to be handled before
    /// anything the std socket receives). If an op whose future was `mem::forget`-ten still
    /// holds the fd, the std socket gets a duplicate.
    pub async fn into_std(self) -> io::Result<(std::net::UdpSocket, UnreadDatagrams)> {
        self.fd.settled().await;
        let mut unread = UnreadDatagrams::default();
        for kept in self.rescue.drain() {
            match kept {
                Ok((bytes, addr)) => unread.datagrams.push((bytes, addr.to_std()?)),
                Err(e) => unread.errors.push(e),
            }
        }
        let fd = match self.fd.try_into_owned() {
            Ok(fd) => fd,
            Err(held) => {
                // SAFETY: `held` keeps the fd open for the duration of the call.
                let borrowed = unsafe { BorrowedFd::borrow_raw(held.raw()) };
                borrowed.try_clone_to_owned()?
            }
        };
        let socket = std::net::UdpSocket::from(fd);
        socket.set_nonblocking(false)?;
        Ok((socket, unread))
    }

    /// Closes the socket through the backend and reports any error, once every op of it still
    /// in the kernel has been answered. If an op whose future was `mem::forget`-ten still holds
    /// the fd, it stays open (leaked with that op) and this says so.
    pub async fn close(self) -> io::Result<()> {
        self.fd.settled().await;
        match self.fd.try_into_owned() {
            Ok(fd) => Op::new(op::Close::new(fd)).await,
            Err(_) => Err(io::Error::other(
                "the socket stays open: an operation whose future was forgotten holds it",
            )),
        }
    }

    /// Sets the default peer: `send` goes there, and only its datagrams are received. Tries
    /// each resolved address in turn. Synchronous: connecting a UDP socket sends nothing and
    /// never blocks.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        let mut last = None;
        for addr in super::resolve(addr)? {
            let raw = RawAddr::from_std(&addr);
            // SAFETY: `raw` is a live, correctly sized socket address.
            match syscall!(connect(self.fd.raw(), raw.as_ptr(), raw.len)) {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Sends the initialised bytes of `buf` as one datagram to `addr` (the first address it
    /// resolves to; a literal address resolves without blocking). Returns the count sent,
    /// which is the whole buffer (a datagram is never sent in part).
    pub async fn send_to<B: IoBuf>(&self, buf: B, addr: impl ToSocketAddrs) -> BufResult<usize, B> {
        let addr = match first_addr(addr) {
            Ok(addr) => addr,
            Err(e) => return (Err(e), buf),
        };
        let dest = Some(RawAddr::from_std(&addr));
        Op::on(&self.fd, op::SendMsg::new(self.fd.clone(), buf, dest)).await
    }

    /// Sends the initialised bytes of `buf` as one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        Op::on(&self.fd, op::SendMsg::new(self.fd.clone(), buf, None)).await
    }

    /// Receives one datagram into `buf`: the count stored and the sender. A datagram larger
    /// than the buffer is cut to fit (see [`recv_from_meta`](UdpSocket::recv_from_meta)).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, SocketAddr), B> {
        let (res, buf) = self.recv_from_meta(buf).await;
        (res.map(|m| (m.len, m.addr)), buf)
    }

    /// Receives one datagram into `buf`: the count stored, the sender, and whether the
    /// datagram was larger than the buffer (its tail discarded).
    pub async fn recv_from_meta<B: IoBufMut>(&self, buf: B) -> BufResult<RecvMeta, B> {
        let (res, buf) = self.recv_msg(buf).await;
        (res.and_then(meta), buf)
    }

    /// Receives one datagram from the connected peer into `buf`; the count stored.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let (res, buf) = self.recv_msg(buf).await;
        (res.map(|got| got.len), buf)
    }

    /// A datagram (or error) a dropped receive got (see `op::DatagramRescue`), else one
    /// from the kernel.
    async fn recv_msg<B: IoBufMut>(&self, buf: B) -> BufResult<op::Received, B> {
        op::recv_rescued(&self.fd, &self.rescue, buf).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.fd.raw())
    }

    /// The connected peer's address (`NotConnected` if none).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.fd.raw())
    }

    /// Takes the socket's pending error (SO_ERROR), if any, e.g. a refused connection.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        sys::take_socket_error(self.fd.raw())
    }
}

/// A socket of `addr`'s family bound to it.
fn bind_one(addr: &SocketAddr, nonblocking: bool) -> io::Result<OwnedFd> {
    let fd = sys::udp_socket(addr, nonblocking)?;
    let raw = RawAddr::from_std(addr);
    // SAFETY: `raw` is a live, correctly sized socket address; `fd` is open.
    syscall!(bind(fd.as_raw_fd(), raw.as_ptr(), raw.len))?;
    Ok(fd)
}

fn meta(got: op::Received) -> io::Result<RecvMeta> {
    Ok(RecvMeta {
        len: got.len,
        addr: got.addr.to_std()?,
        truncated: got.truncated,
    })
}

fn first_addr(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to"))
}

impl AsRawFd for UdpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.raw()
    }
}

impl AsFd for UdpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is open for as long as `self` (which holds a handle) is borrowed.
        unsafe { BorrowedFd::borrow_raw(self.fd.raw()) }
    }
}
