//! The errors of `read_exact` and `write_all` cut part way: how many bytes had moved, and
//! why the rest did not. The outer error has the inner error's kind, so code that only
//! looks at the kind (or at [`Cancelled::is`](crate::cancel::Cancelled::is)) still works.
use std::fmt;
use std::io;

/// The inner error of a `write_all` that failed after part of its buffer was written: how
/// much went out, and why the rest did not. The outer error has the same kind.
///
/// ```
/// # use corering::net::PartialWrite;
/// let err = std::io::Error::from(std::io::ErrorKind::TimedOut);
/// assert!(PartialWrite::of(&err).is_none()); // nothing was written
/// ```
#[derive(Debug)]
pub struct PartialWrite {
    /// Bytes of the buffer the kernel took, from its start.
    pub written: usize,
    /// What stopped the rest.
    pub error: io::Error,
}

/// The inner error of a `read_exact` that failed after part of its buffer was filled: how
/// many bytes are in the buffer, from its start, and why the rest did not come. The outer
/// error has the same kind. A buffer that was initialised before the call (`vec![0; n]`)
/// does not show the count by its length; this does.
///
/// ```
/// use std::time::Duration;
/// use corering::cancel::{CancelExt, Cancelled};
/// use corering::net::{PartialRead, TcpListener, TcpStream};
/// # corering::Runtime::new().unwrap().block_on(async {
/// # let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// # let mut stream = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
/// let header = vec![0u8; 16];
/// let (res, header) = stream.read_exact(header).cancel_after(Duration::from_millis(5)).await;
/// if let Err(e) = res {
///     let got = PartialRead::of(&e).map_or(0, |p| p.read);
///     assert!(Cancelled::is(&e));
///     println!("cut after {got} bytes: {:?}", &header[..got]);
/// }
/// # });
/// ```
#[derive(Debug)]
pub struct PartialRead {
    /// Bytes of the buffer filled from the stream, from its start.
    pub read: usize,
    /// What stopped the rest (`UnexpectedEof` at end of stream, or the cancel).
    pub error: io::Error,
}

impl PartialWrite {
    /// The partial write behind `err`, if `err` came from a `write_all` that wrote something
    /// (`None` means nothing of the buffer was written).
    pub fn of(err: &io::Error) -> Option<&PartialWrite> {
        err.get_ref()?.downcast_ref()
    }

    pub(super) fn error(written: usize, error: io::Error) -> io::Error {
        if written == 0 {
            return error;
        }
        io::Error::new(error.kind(), PartialWrite { written, error })
    }
}

impl PartialRead {
    /// The partial read behind `err`, if `err` came from a `read_exact` that read something
    /// (`None` means nothing of the buffer was filled).
    pub fn of(err: &io::Error) -> Option<&PartialRead> {
        err.get_ref()?.downcast_ref()
    }

    pub(super) fn error(read: usize, error: io::Error) -> io::Error {
        if read == 0 {
            return error;
        }
        io::Error::new(error.kind(), PartialRead { read, error })
    }
}

impl fmt::Display for PartialWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (after {} bytes were written)",
            self.error, self.written
        )
    }
}

impl fmt::Display for PartialRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (after {} bytes were read)", self.error, self.read)
    }
}

impl std::error::Error for PartialWrite {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl std::error::Error for PartialRead {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
