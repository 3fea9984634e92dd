//! Thin, checked wrappers over the system calls the runtime makes itself.
use std::io;
use std::mem::{self, MaybeUninit};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Calls a libc function and turns a `-1` return into the thread's `errno` as an `io::Error`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc function's contract
        // (valid fds and pointers to live, correctly sized memory), stated at the call site.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
pub(crate) use syscall;

/// A socket address in the kernel's layout, kept at a stable heap address while an op that
/// points at it is in flight.
#[repr(C)]
pub(crate) struct RawAddr {
    pub storage: libc::sockaddr_storage,
    pub len: libc::socklen_t,
}

impl RawAddr {
    pub fn empty() -> Box<RawAddr> {
        Box::new(RawAddr {
            // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
            storage: unsafe { mem::zeroed() },
            len: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
        })
    }

    pub fn from_std(addr: &SocketAddr) -> Box<RawAddr> {
        let mut raw = RawAddr::empty();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in.
                unsafe { (&mut raw.storage as *mut _ as *mut libc::sockaddr_in).write(sin) };
                raw.len = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_in6.
                unsafe { (&mut raw.storage as *mut _ as *mut libc::sockaddr_in6).write(sin6) };
                raw.len = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    pub fn as_ptr(&self) -> *const libc::sockaddr {
        &self.storage as *const _ as *const libc::sockaddr
    }

    pub fn as_mut_ptr(&mut self) -> *mut libc::sockaddr {
        &mut self.storage as *mut _ as *mut libc::sockaddr
    }

    pub fn to_std(&self) -> io::Result<SocketAddr> {
        storage_to_std(&self.storage)
    }

    /// The room a `RawAddr` has (a `sockaddr_storage`): the length a receive starts from.
    pub const CAPACITY: libc::socklen_t = mem::size_of::<libc::sockaddr_storage>() as _;

    // `from_bytes` and `as_bytes` are for other families' datagram sockets (Unix).
    /// An address of any family from its bytes in the kernel's layout (e.g. a `sockaddr_un`
    /// and its length); `InvalidInput` if longer than a `sockaddr_storage`.
    #[allow(dead_code)]
    pub fn from_bytes(bytes: &[u8]) -> io::Result<Box<RawAddr>> {
        if bytes.len() > RawAddr::CAPACITY as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket address longer than sockaddr_storage",
            ));
        }
        let mut raw = RawAddr::empty();
        // SAFETY: the storage is `CAPACITY >= bytes.len()` bytes of plain data, and `bytes`
        // cannot overlap the fresh box.
        unsafe {
            let dst = (&mut raw.storage as *mut libc::sockaddr_storage).cast::<u8>();
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, bytes.len());
        }
        raw.len = bytes.len() as libc::socklen_t;
        Ok(raw)
    }

    /// The address's bytes: the first `len` of the storage (for a received address, the
    /// length the kernel wrote, capped at the storage's size).
    #[allow(dead_code)]
    pub fn as_bytes(&self) -> &[u8] {
        let len = self.len.min(RawAddr::CAPACITY) as usize;
        let ptr = (&self.storage as *const libc::sockaddr_storage).cast::<u8>();
        // SAFETY: the storage is CAPACITY >= len bytes of plain, initialised data that lives
        // as long as `self`.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    /// Sets the length (e.g. the `msg_namelen` a receive reported), capped at the storage's
    /// size: the kernel reports a name's full length even where it stored less.
    pub fn set_len(&mut self, len: libc::socklen_t) {
        self.len = len.min(RawAddr::CAPACITY);
    }
}

fn storage_to_std(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match storage.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected socket address family {family}"),
        )),
    }
}

/// A new TCP socket, close-on-exec, non-blocking when the backend needs it.
pub(crate) fn tcp_socket(addr: &SocketAddr, nonblocking: bool) -> io::Result<OwnedFd> {
    inet_socket(addr, libc::SOCK_STREAM, nonblocking)
}

/// A new UDP socket, close-on-exec, non-blocking when the backend needs it.
pub(crate) fn udp_socket(addr: &SocketAddr, nonblocking: bool) -> io::Result<OwnedFd> {
    inet_socket(addr, libc::SOCK_DGRAM, nonblocking)
}

fn inet_socket(addr: &SocketAddr, ty: i32, nonblocking: bool) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let mut ty = ty | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    let fd = syscall!(socket(domain, ty, 0))?;
    // SAFETY: socket() just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    syscall!(setsockopt(
        fd,
        level,
        name,
        &value as *const i32 as *const libc::c_void,
        mem::size_of::<i32>() as libc::socklen_t
    ))?;
    Ok(())
}

pub(crate) fn getsockopt_int(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = mem::size_of::<i32>() as libc::socklen_t;
    syscall!(getsockopt(
        fd,
        level,
        name,
        &mut value as *mut i32 as *mut libc::c_void,
        &mut len
    ))?;
    Ok(value)
}

/// The pending error on a socket (SO_ERROR), as an `io::Error`, if any.
pub(crate) fn take_socket_error(fd: RawFd) -> io::Result<Option<io::Error>> {
    let err = getsockopt_int(fd, libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((err != 0).then(|| io::Error::from_raw_os_error(err)))
}

fn sockname(
    fd: RawFd,
    f: unsafe extern "C" fn(RawFd, *mut libc::sockaddr, *mut libc::socklen_t) -> i32,
) -> io::Result<SocketAddr> {
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `storage` is writable and `len` says how large it is.
    let res = unsafe { f(fd, storage.as_mut_ptr() as *mut libc::sockaddr, &mut len) };
    if res == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised, then filled by the kernel.
    storage_to_std(unsafe { storage.assume_init_ref() })
}

pub(crate) fn local_addr(fd: RawFd) -> io::Result<SocketAddr> {
    sockname(fd, libc::getsockname)
}

pub(crate) fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    sockname(fd, libc::getpeername)
}

/// Maps a negative kernel result (`-errno`) or a count to an `io::Result`.
pub(crate) fn cqe_result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

/// An eventfd used to wake a parked core from another thread.
pub(crate) fn eventfd() -> io::Result<OwnedFd> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    let flags = EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK;
    Ok(EventFd::from_value_and_flags(0, flags)?.into())
}

/// Adds one to an eventfd's counter, waking whoever waits on it.
pub(crate) fn eventfd_signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an fd we own. EAGAIN (counter saturated)
    // still leaves it readable, so the result is not needed.
    let _ = unsafe { libc::write(fd, &one as *const u64 as *const libc::c_void, 8) };
}

/// A new socket of `domain` and `ty` (e.g. `AF_UNIX`, `SOCK_DGRAM`), close-on-exec,
/// non-blocking when the backend needs it.
pub(crate) fn socket(domain: i32, ty: i32, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut ty = ty | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    let fd = syscall!(socket(domain, ty, 0))?;
    // SAFETY: socket() just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A connected pair of `AF_UNIX` sockets of type `ty`, close-on-exec, non-blocking when the
/// backend needs it.
pub(crate) fn unix_pair(ty: i32, nonblocking: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ty = ty | libc::SOCK_CLOEXEC;
    if nonblocking {
        ty |= libc::SOCK_NONBLOCK;
    }
    let mut fds = [-1; 2];
    // SAFETY: `fds` is a writable array of the two ints socketpair() fills.
    syscall!(socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()))?;
    // SAFETY: socketpair() just returned these fds and nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The local (`getsockname`) or, with `peer`, the remote (`getpeername`) address of `fd`, in
/// the kernel's layout, whatever its family.
pub(crate) fn raw_sockname(fd: RawFd, peer: bool) -> io::Result<Box<RawAddr>> {
    let mut raw = RawAddr::empty();
    let (ptr, len) = (raw.as_mut_ptr(), &mut raw.len as *mut libc::socklen_t);
    if peer {
        // SAFETY: `ptr` and `len` point into `raw`, whose storage is as large as `len` says.
        syscall!(getpeername(fd, ptr, len))?;
    } else {
        // SAFETY: as above.
        syscall!(getsockname(fd, ptr, len))?;
    }
    Ok(raw)
}
