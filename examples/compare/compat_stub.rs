//! TEMPORARY stand-in for `corering::compat` until helper-compat is merged; not to be committed.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub struct Compat(#[allow(dead_code)] corering::net::TcpStream);
impl Compat {
    pub fn new(s: corering::net::TcpStream) -> Compat {
        Compat(s)
    }
}
impl hyper::rt::Read for Compat {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::other("compat stub")))
    }
}
impl hyper::rt::Write for Compat {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::Error::other("compat stub")))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
#[derive(Clone, Copy, Default)]
pub struct HyperTimer;
impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        unimplemented!()
    }
    fn sleep_until(&self, _: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        unimplemented!()
    }
}
