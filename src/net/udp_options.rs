//! The socket options of [`UdpSocket`]: broadcast, TTL, multicast.
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, RawFd};

use super::UdpSocket;
use crate::sys::{self, syscall};

impl UdpSocket {
    /// Sets SO_BROADCAST: whether datagrams may go to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.set_int(libc::SOL_SOCKET, libc::SO_BROADCAST, on as i32)
    }

    /// Whether SO_BROADCAST is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.int(libc::SOL_SOCKET, libc::SO_BROADCAST)
            .map(|v| v != 0)
    }

    /// Sets IP_TTL, the time to live of unicast datagrams sent.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.set_int(libc::IPPROTO_IP, libc::IP_TTL, int(ttl)?)
    }

    /// IP_TTL.
    pub fn ttl(&self) -> io::Result<u32> {
        self.int(libc::IPPROTO_IP, libc::IP_TTL).map(|v| v as u32)
    }

    /// Sets IP_MULTICAST_LOOP: whether this host's own IPv4 multicast datagrams loop back.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.set_int(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, on as i32)
    }

    /// Whether IP_MULTICAST_LOOP is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.int(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP)
            .map(|v| v != 0)
    }

    /// Sets IP_MULTICAST_TTL, the time to live of IPv4 multicast datagrams sent (1: stay on
    /// the local network).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.set_int(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, int(ttl)?)
    }

    /// IP_MULTICAST_TTL.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.int(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL)
            .map(|v| v as u32)
    }

    /// Joins IPv4 multicast group `group` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the kernel picks one).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        let req = mreq_v4(group, interface);
        set_struct(self.fd(), libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &req)
    }

    /// Leaves IPv4 multicast group `group` on the interface with address `interface`.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        let req = mreq_v4(group, interface);
        set_struct(self.fd(), libc::IPPROTO_IP, libc::IP_DROP_MEMBERSHIP, &req)
    }

    /// Joins IPv6 multicast group `group` on the interface with index `interface` (0: the
    /// kernel picks one).
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        let req = mreq_v6(group, interface);
        set_struct(
            self.fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_ADD_MEMBERSHIP,
            &req,
        )
    }

    /// Leaves IPv6 multicast group `group` on the interface with index `interface`.
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        let req = mreq_v6(group, interface);
        set_struct(
            self.fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_DROP_MEMBERSHIP,
            &req,
        )
    }

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    fn set_int(&self, level: i32, name: i32, value: i32) -> io::Result<()> {
        sys::setsockopt_int(self.fd(), level, name, value)
    }

    fn int(&self, level: i32, name: i32) -> io::Result<i32> {
        sys::getsockopt_int(self.fd(), level, name)
    }
}

/// A TTL as the kernel's `int` (it refuses values above 255 itself).
fn int(ttl: u32) -> io::Result<i32> {
    i32::try_from(ttl).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn mreq_v4(group: Ipv4Addr, interface: Ipv4Addr) -> libc::ip_mreq {
    libc::ip_mreq {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group.octets()),
        },
        imr_interface: libc::in_addr {
            s_addr: u32::from_ne_bytes(interface.octets()),
        },
    }
}

fn mreq_v6(group: &Ipv6Addr, interface: u32) -> libc::ipv6_mreq {
    libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: group.octets(),
        },
        ipv6mr_interface: interface,
    }
}

/// setsockopt with a plain-data struct value (`ip_mreq`, `ipv6_mreq`).
fn set_struct<T: Copy>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T`, the type the option takes, and the length is its size.
    syscall!(setsockopt(
        fd,
        level,
        name,
        (value as *const T).cast::<libc::c_void>(),
        mem::size_of::<T>() as libc::socklen_t
    ))?;
    Ok(())
}
