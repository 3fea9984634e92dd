//! The address of a Unix socket: a path, an abstract name (Linux), or none.
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::mem;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::{self, RawAddr};

/// The longest name `sun_path` holds: 108 bytes, less the NUL a path ends with (a pathname)
/// or the NUL that starts it (an abstract name).
pub const MAX_NAME_LEN: usize = SUN_PATH_LEN - 1;

const SUN_PATH_LEN: usize = 108;

/// Where `sun_path` starts in a `sockaddr_un`: after the family.
const PATH_OFFSET: usize = mem::size_of::<libc::sa_family_t>();

/// The address of a Unix socket, as the kernel reports it or as given to `bind`/`connect`.
///
/// It is one of three kinds: a **pathname** (a socket file in the file system), an
/// **abstract name** (Linux's abstract namespace: no file, the name lives while a socket is
/// bound to it; in `sun_path` it starts with a NUL byte), or **unnamed** (a socket never
/// bound, such as a connecting client or one of a [`pair`](super::UnixStream::pair)).
/// Unlike std's type it holds every address the kernel returns, abstract names included.
///
/// ```
/// use corering::net::unix::SocketAddr;
/// let path = SocketAddr::from_pathname("/run/app.sock")?;
/// assert_eq!(path.as_pathname(), Some(std::path::Path::new("/run/app.sock")));
/// let name = SocketAddr::from_abstract_name(b"app")?;
/// assert_eq!(name.as_abstract_name(), Some(&b"app"[..]));
/// assert_eq!(name.to_string(), "@app");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SocketAddr {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Kind {
    Unnamed,
    /// The path's bytes, without the trailing NUL.
    Pathname(Vec<u8>),
    /// The name's bytes, without the leading NUL.
    Abstract(Vec<u8>),
}

impl SocketAddr {
    /// A pathname address. `InvalidInput` if the path is empty, longer than
    /// [`MAX_NAME_LEN`] bytes, or holds a NUL byte (an abstract name is never guessed from a
    /// path: use [`from_abstract_name`](Self::from_abstract_name)).
    pub fn from_pathname(path: impl AsRef<Path>) -> io::Result<SocketAddr> {
        let bytes = path.as_ref().as_os_str().as_bytes();
        if bytes.is_empty() || bytes.contains(&0) {
            return Err(invalid(
                "a socket path must be non-empty and hold no NUL byte",
            ));
        }
        check_len(bytes)?;
        Ok(SocketAddr {
            kind: Kind::Pathname(bytes.to_vec()),
        })
    }

    /// An address in Linux's abstract namespace (`name` without the leading NUL; it may hold
    /// any bytes, NULs too, and may be empty). `InvalidInput` if longer than
    /// [`MAX_NAME_LEN`] bytes.
    pub fn from_abstract_name(name: impl AsRef<[u8]>) -> io::Result<SocketAddr> {
        let name = name.as_ref();
        check_len(name)?;
        Ok(SocketAddr {
            kind: Kind::Abstract(name.to_vec()),
        })
    }

    /// The path, if this is a pathname address.
    pub fn as_pathname(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Pathname(p) => Some(Path::new(OsStr::from_bytes(p))),
            _ => None,
        }
    }

    /// The abstract name (without its leading NUL), if this is an abstract address.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        match &self.kind {
            Kind::Abstract(n) => Some(n),
            _ => None,
        }
    }

    /// Whether the socket has no address (never bound).
    pub fn is_unnamed(&self) -> bool {
        matches!(self.kind, Kind::Unnamed)
    }

    /// The local (or, with `peer`, the remote) address of the socket `fd`.
    pub(crate) fn of_socket(fd: RawFd, peer: bool) -> io::Result<SocketAddr> {
        SocketAddr::from_raw(&*sys::raw_sockname(fd, peer)?)
    }

    /// Reads the `sockaddr_un` the kernel wrote (`raw.len` bytes of it).
    pub(crate) fn from_raw(raw: &RawAddr) -> io::Result<SocketAddr> {
        let len = (raw.len as usize).min(mem::size_of::<libc::sockaddr_un>());
        if len < PATH_OFFSET {
            return Ok(SocketAddr {
                kind: Kind::Unnamed,
            });
        }
        if raw.storage.ss_family as libc::c_int != libc::AF_UNIX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a Unix address (family {})", raw.storage.ss_family),
            ));
        }
        // SAFETY: the family says the storage holds a sockaddr_un, which it is larger than.
        let un = unsafe { &*(&raw.storage as *const _ as *const libc::sockaddr_un) };
        let path: Vec<u8> = un.sun_path[..len - PATH_OFFSET]
            .iter()
            .map(|&c| c as u8)
            .collect();
        let kind = match path.split_first() {
            None => Kind::Unnamed,
            Some((0, name)) => Kind::Abstract(name.to_vec()),
            // A pathname ends at its NUL, which the length may or may not count.
            Some(_) => Kind::Pathname(path.split(|&b| b == 0).next().unwrap_or(&[]).to_vec()),
        };
        Ok(SocketAddr { kind })
    }

    /// This address as a `sockaddr_un` for `bind` or `connect`; an unnamed one has only the
    /// family (which `bind` takes as "pick an abstract name for me", autobind).
    pub(crate) fn to_raw(&self) -> Box<RawAddr> {
        let mut raw = RawAddr::empty();
        let (lead, name): (&[u8], &[u8]) = match &self.kind {
            Kind::Unnamed => (&[], &[]),
            Kind::Pathname(p) => (&[], p),
            Kind::Abstract(n) => (&[0], n),
        };
        // SAFETY: sockaddr_storage is larger than and suitably aligned for sockaddr_un.
        let un = unsafe { &mut *(&mut raw.storage as *mut _ as *mut libc::sockaddr_un) };
        un.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (dst, &b) in un.sun_path.iter_mut().zip(lead.iter().chain(name)) {
            *dst = b as libc::c_char;
        }
        // A pathname's length counts its NUL (the storage is zeroed); an abstract name's
        // length is exact: every byte of it is the name.
        let nul = usize::from(matches!(self.kind, Kind::Pathname(_)));
        raw.len = (PATH_OFFSET + lead.len() + name.len() + nul) as libc::socklen_t;
        raw
    }
}

/// Every address std's type holds (a pathname, an abstract name, or none).
impl From<&std::os::unix::net::SocketAddr> for SocketAddr {
    fn from(addr: &std::os::unix::net::SocketAddr) -> SocketAddr {
        use std::os::linux::net::SocketAddrExt;
        let kind = match (addr.as_pathname(), addr.as_abstract_name()) {
            (Some(path), _) => Kind::Pathname(path.as_os_str().as_bytes().to_vec()),
            (None, Some(name)) => Kind::Abstract(name.to_vec()),
            (None, None) => Kind::Unnamed,
        };
        SocketAddr { kind }
    }
}

/// std's type for a pathname or an abstract name; an unnamed address has no std form
/// (`InvalidInput`).
impl TryFrom<&SocketAddr> for std::os::unix::net::SocketAddr {
    type Error = io::Error;

    fn try_from(addr: &SocketAddr) -> io::Result<std::os::unix::net::SocketAddr> {
        use std::os::linux::net::SocketAddrExt;
        match &addr.kind {
            Kind::Pathname(p) => Self::from_pathname(OsStr::from_bytes(p)),
            Kind::Abstract(n) => Self::from_abstract_name(n),
            Kind::Unnamed => Err(invalid("an unnamed address has no std form")),
        }
    }
}

fn check_len(name: &[u8]) -> io::Result<()> {
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("a Unix socket name is at most 107 bytes"));
    }
    Ok(())
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// A pathname prints as its path, an abstract name as `@` and its bytes (escaped where not
/// printable ASCII), an unnamed address as `(unnamed)`.
impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Unnamed => f.write_str("(unnamed)"),
            Kind::Pathname(p) => write!(f, "{}", Path::new(OsStr::from_bytes(p)).display()),
            Kind::Abstract(n) => write!(f, "@{}", n.escape_ascii()),
        }
    }
}

impl fmt::Debug for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Unnamed => f.write_str("(unnamed)"),
            Kind::Pathname(p) => write!(f, "{:?} (pathname)", OsStr::from_bytes(p)),
            Kind::Abstract(n) => write!(f, "\"{}\" (abstract)", n.escape_ascii()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trips() {
        for addr in [
            SocketAddr::from_pathname("/tmp/x.sock").unwrap(),
            SocketAddr::from_abstract_name(b"a\0b").unwrap(),
            SocketAddr::from_abstract_name(b"").unwrap(),
            SocketAddr::from_abstract_name([7u8; MAX_NAME_LEN]).unwrap(),
        ] {
            assert_eq!(SocketAddr::from_raw(&addr.to_raw()).unwrap(), addr);
        }
        let unnamed = SocketAddr::from_raw(
            &SocketAddr {
                kind: Kind::Unnamed,
            }
            .to_raw(),
        )
        .unwrap();
        assert!(unnamed.is_unnamed());
    }

    #[test]
    fn std_conversions_round_trip() {
        for addr in [
            SocketAddr::from_pathname("/tmp/x.sock").unwrap(),
            SocketAddr::from_abstract_name(b"a\0b").unwrap(),
        ] {
            let std_addr = std::os::unix::net::SocketAddr::try_from(&addr).unwrap();
            assert_eq!(SocketAddr::from(&std_addr), addr);
        }
        let unnamed = SocketAddr {
            kind: Kind::Unnamed,
        };
        assert!(std::os::unix::net::SocketAddr::try_from(&unnamed).is_err());
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(SocketAddr::from_pathname("").is_err());
        assert!(SocketAddr::from_pathname("a\0b").is_err());
        assert!(SocketAddr::from_pathname("x".repeat(MAX_NAME_LEN + 1)).is_err());
        assert!(SocketAddr::from_pathname("x".repeat(MAX_NAME_LEN)).is_ok());
        assert!(SocketAddr::from_abstract_name([1u8; MAX_NAME_LEN + 1]).is_err());
    }
}
