//! [`Metadata`]: what `statx` says of a file.
use std::io;
use std::time::{Duration, SystemTime};

/// The metadata of a file (from `statx(2)`).
#[derive(Clone, Copy)]
pub struct Metadata {
    st: libc::statx,
}

impl Metadata {
    pub(crate) fn from_statx(st: libc::statx) -> Metadata {
        Metadata { st }
    }

    fn kind(&self) -> u32 {
        u32::from(self.st.stx_mode) & libc::S_IFMT
    }

    /// The size in bytes.
    pub fn len(&self) -> u64 {
        self.st.stx_size
    }

    /// Whether the size is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.kind() == libc::S_IFREG
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == libc::S_IFDIR
    }

    /// A symbolic link (only from an open `O_PATH | O_NOFOLLOW` file: path metadata follows
    /// links).
    pub fn is_symlink(&self) -> bool {
        self.kind() == libc::S_IFLNK
    }

    /// The permission bits and the file type (`st_mode`).
    pub fn mode(&self) -> u32 {
        u32::from(self.st.stx_mode)
    }

    /// Inode number.
    pub fn ino(&self) -> u64 {
        self.st.stx_ino
    }

    /// Hard links.
    pub fn nlink(&self) -> u32 {
        self.st.stx_nlink
    }

    /// Owner's user id.
    pub fn uid(&self) -> u32 {
        self.st.stx_uid
    }

    /// Owner's group id.
    pub fn gid(&self) -> u32 {
        self.st.stx_gid
    }

    /// The preferred I/O block size.
    pub fn blksize(&self) -> u32 {
        self.st.stx_blksize
    }

    /// 512-byte blocks allocated.
    pub fn blocks(&self) -> u64 {
        self.st.stx_blocks
    }

    /// Last modification.
    pub fn modified(&self) -> io::Result<SystemTime> {
        Ok(time(self.st.stx_mtime))
    }

    /// Last access.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        Ok(time(self.st.stx_atime))
    }

    /// Creation (birth), where the filesystem records it.
    pub fn created(&self) -> io::Result<SystemTime> {
        if self.st.stx_mask & libc::STATX_BTIME == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this filesystem does not record creation times",
            ));
        }
        Ok(time(self.st.stx_btime))
    }
}

fn time(t: libc::statx_timestamp) -> SystemTime {
    let secs = Duration::from_secs(t.tv_sec.unsigned_abs());
    let base = match t.tv_sec >= 0 {
        true => SystemTime::UNIX_EPOCH + secs,
        false => SystemTime::UNIX_EPOCH - secs,
    };
    base + Duration::from_nanos(t.tv_nsec.into())
}

impl std::fmt::Debug for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metadata")
            .field("len", &self.len())
            .field("mode", &format_args!("{:o}", self.mode()))
            .field("ino", &self.ino())
            .finish_non_exhaustive()
    }
}
