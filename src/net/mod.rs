//! TCP (one task per connection), UDP and Unix domain sockets ([`unix`]), with owned buffers.
//!
//! Sockets belong to the core that made them (they are not `Send`): with epoll they are
//! registered in that core's poller. Make them inside [`Runtime::block_on`](crate::Runtime).
mod accept_core;
#[cfg(feature = "compat")]
mod compat;
mod half;
mod listener;
mod partial;
mod pooled;
mod side;
mod split;
mod stream;
mod udp;
mod udp_options;
pub mod unix;

pub use listener::{Incoming, ListenOptions, TcpListener, ACCEPT_QUEUE_MAX};
pub use partial::{PartialRead, PartialWrite};
pub use pooled::{PooledStream, RecvPooled};
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use stream::{TcpStream, Unread};
pub use udp::{RecvMeta, UdpSocket, UnreadDatagrams};
pub use unix::{UnixDatagram, UnixListener, UnixStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Resolves `addr` (a literal address resolves without blocking; a host name uses the
/// system resolver, which blocks).
fn resolve(addr: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address resolved to nothing",
        ));
    }
    Ok(addrs)
}
