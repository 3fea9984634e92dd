//! [`OpenOptions`]: how to open a file.
use std::io;
use std::path::Path;

use super::File;
use crate::op::fs::Open;
use crate::op::Op;

/// How to open a file, as [`std::fs::OpenOptions`] says it, plus the raw `open(2)` flags
/// (e.g. `O_DIRECT`) and mode.
///
/// ```
/// # corering::Runtime::new().unwrap().block_on(async {
/// use corering::fs::OpenOptions;
/// let path = std::env::temp_dir().join(format!("corering-opts-{}", std::process::id()));
/// let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).await.unwrap();
/// file.close().await.unwrap();
/// corering::fs::remove_file(&path).await.unwrap();
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: libc::mode_t,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> OpenOptions {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Nothing set (an open fails until `read`, `write` or `append` is); mode 0o666.
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut OpenOptions {
        self.read = on;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut OpenOptions {
        self.write = on;
        self
    }

    /// Open for appending (`O_APPEND`; implies writing).
    pub fn append(&mut self, on: bool) -> &mut OpenOptions {
        self.append = on;
        self
    }

    /// Truncate to 0 bytes (`O_TRUNC`; needs writing).
    pub fn truncate(&mut self, on: bool) -> &mut OpenOptions {
        self.truncate = on;
        self
    }

    /// Create the file if it does not exist (`O_CREAT`; needs writing).
    pub fn create(&mut self, on: bool) -> &mut OpenOptions {
        self.create = on;
        self
    }

    /// Create the file, failing if it exists (`O_CREAT | O_EXCL`; needs writing).
    pub fn create_new(&mut self, on: bool) -> &mut OpenOptions {
        self.create_new = on;
        self
    }

    /// The mode of a created file, before the umask (default 0o666).
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode as libc::mode_t;
        self
    }

    /// Extra `open(2)` flags, such as `libc::O_DIRECT` or `libc::O_NOATIME` (the access-mode
    /// bits are ignored: they come from `read`, `write` and `append`).
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.custom_flags = flags;
        self
    }

    /// Opens `path` with these options (`openat`).
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let flags = self.flags()?;
        let path = super::c_path(path.as_ref())?;
        let fd = Op::new(Open::new(path, flags, self.mode)).await?;
        Ok(File::from_owned(fd))
    }

    fn flags(&self) -> io::Result<i32> {
        let invalid = |why: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, why.to_string()));
        let access = match (self.read, self.write, self.append) {
            (false, false, false) => return invalid("open needs read, write or append"),
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
        };
        let writes = self.write || self.append;
        if !writes && (self.truncate || self.create || self.create_new) {
            return invalid("truncate, create and create_new need write or append");
        }
        if self.append && self.truncate && !self.create_new {
            return invalid("append and truncate together");
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }
}
