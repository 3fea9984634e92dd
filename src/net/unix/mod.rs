//! Unix domain sockets: [`UnixStream`] and [`UnixListener`], with the same owned-buffer,
//! cancel-safe I/O as TCP, and [`UnixDatagram`], on the datagram ops of UDP.
//!
//! Addresses are corering's own [`SocketAddr`], which holds every address the kernel
//! reports: a pathname, an abstract name (Linux) or none (unnamed). The path APIs
//! (`bind`, `connect`) take `impl AsRef<Path>` and always mean a pathname; the abstract
//! namespace has its own calls (`bind_abstract`, `connect_abstract`, taking the name without
//! the leading NUL), and `bind_addr`/`connect_addr` take any [`SocketAddr`].
//!
//! Binding a path does not remove a stale socket file at that path (`AddrInUse`; std does
//! not either), and dropping a listener does not remove its file: remove it yourself.
//!
//! ```
//! use corering::net::unix::{UnixListener, UnixStream};
//! # corering::Runtime::new().unwrap().block_on(async {
//! let name = format!("corering-doc-{}", std::process::id());
//! let listener = UnixListener::bind_abstract(&name)?;
//! let client = UnixStream::connect_abstract(&name).await?;
//! let (server, peer) = listener.accept().await?;
//! assert!(peer.is_unnamed());
//! assert_eq!(server.peer_cred()?.pid, std::process::id() as i32);
//! # drop(client);
//! # Ok::<(), std::io::Error>(()) }).unwrap();
//! ```
mod addr;
mod datagram;
mod listener;
mod split;
mod stream;

pub use addr::{SocketAddr, MAX_NAME_LEN};
pub use datagram::UnixDatagram;
pub use listener::{Incoming, UnixListener};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReuniteError};
pub use stream::UnixStream;
// The borrowed halves of `UnixStream::split` are TCP's.
pub use crate::net::{ReadHalf, WriteHalf};

use std::io;
use std::os::fd::BorrowedFd;

/// The credentials of a Unix socket's peer (`SO_PEERCRED`), from
/// [`UnixStream::peer_cred`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerCred {
    /// The peer's process id (of the process that connected, or made the pair).
    pub pid: i32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

impl PeerCred {
    fn of(fd: BorrowedFd<'_>) -> io::Result<PeerCred> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        let cred = getsockopt(&fd, PeerCredentials)?;
        Ok(PeerCred {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
        })
    }
}
