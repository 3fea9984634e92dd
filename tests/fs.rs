//! Files on every backend: round trips checked byte for byte, short reads at the end of the
//! file, errors as clear `io::Error`s, 10,000 random reads against the file's contents, a
//! dropped read whose buffer lives until its completion, `O_DIRECT`, and the path functions.
mod support;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use corering::fs::{self, File, OpenOptions};
use corering::{spawn, IoBuf, IoBufMut};
use support::*;

/// A directory of its own for one test variant, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str, v: Variant) -> TempDir {
        let name = format!("corering-{test}-{}-{}", v.label(), std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).expect("make the test directory");
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0; len];
    Pattern::new(seed).fill(&mut out);
    out
}

fn round_trip(v: Variant) {
    let dir = TempDir::new("round_trip", v);
    let path = dir.join("data");
    let data = pattern(3 * 1024 * 1024 + 17, 1);
    v.block_on(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .unwrap();
        // Written in uneven chunks at their offsets, then synced.
        let mut pos = 0;
        for chunk in data.chunks(100_003) {
            let (res, _) = file.write_all_at(chunk.to_vec(), pos).await;
            res.unwrap();
            pos += chunk.len() as u64;
        }
        file.sync_all().await.unwrap();
        file.sync_data().await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), data.len() as u64);
        let (res, back) = file.read_exact_at(vec![0u8; data.len()], 0).await;
        res.unwrap();
        assert!(back == data, "read back differs from what was written");
        file.close().await.unwrap();
        assert_eq!(fs::read(&path).await.unwrap(), data);
        let meta = fs::metadata(&path).await.unwrap();
        assert!(meta.is_file() && !meta.is_dir() && meta.len() == data.len() as u64);
        assert!(meta.modified().is_ok() && meta.nlink() == 1);
    });
    assert_eq!(std::fs::read(&path).unwrap(), data, "std sees other bytes");
}

fn short_reads_at_the_end(v: Variant) {
    let dir = TempDir::new("short_reads", v);
    let path = dir.join("small");
    std::fs::write(&path, b"0123456789").unwrap();
    v.block_on(async {
        let file = File::open(&path).await.unwrap();
        let (res, buf) = file.read_at(Vec::with_capacity(64), 6).await;
        assert_eq!((res.unwrap(), &buf[..]), (4, &b"6789"[..]));
        let (res, buf) = file.read_at(Vec::with_capacity(64), 10).await;
        assert_eq!(
            (res.unwrap(), buf.len()),
            (0, 0),
            "a read at the end gives 0"
        );
        let (res, _) = file.read_at(Vec::with_capacity(8), 1 << 40).await;
        assert_eq!(res.unwrap(), 0, "a read past the end gives 0");
        let (res, buf) = file.read_exact_at(vec![0u8; 8], 5).await;
        assert_eq!(res.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..5], b"56789", "what was read stays in the buffer");
        // A slice of a buffer: the read lands at its start.
        let (res, slice) = file.read_at(vec![b'x'; 6].slice(2..), 0).await;
        assert_eq!(res.unwrap(), 4);
        assert_eq!(&slice.into_inner()[..], b"xx0123");
    });
}

fn errors_are_clear(v: Variant) {
    let dir = TempDir::new("errors", v);
    let missing = dir.join("missing");
    let file_path = dir.join("file");
    std::fs::write(&file_path, b"abc").unwrap();
    v.block_on(async {
        let err = File::open(&missing).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = fs::metadata(&missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert_eq!(
            fs::remove_file(&missing).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let err = fs::read(&missing).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);

        // Writing to a file opened for reading only: EBADF.
        let ro = File::open(&file_path).await.unwrap();
        let (res, buf) = ro.write_at(b"zz".to_vec(), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(buf, b"zz", "the buffer comes back with the error");
        // Reading from a file opened for writing only: EBADF too.
        let wo = OpenOptions::new()
            .write(true)
            .open(&file_path)
            .await
            .unwrap();
        let (res, _) = wo.read_at(Vec::with_capacity(4), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EBADF));

        // A directory: opening it to write is EISDIR, reading it is EISDIR.
        let err = OpenOptions::new()
            .write(true)
            .open(&dir.0)
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
        let d = File::open(&dir.0).await.unwrap();
        assert!(d.metadata().await.unwrap().is_dir());
        let (res, _) = d.read_at(Vec::with_capacity(4), 0).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EISDIR));

        // create_new on an existing file, and options that cannot open anything.
        let err = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file_path)
            .await;
        assert_eq!(err.unwrap_err().kind(), ErrorKind::AlreadyExists);
        let err = OpenOptions::new().open(&file_path).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = File::open("nul\0byte").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        ro.close().await.unwrap();
        wo.close().await.unwrap();
        d.close().await.unwrap();
    });
}

const FILE_LEN: usize = 4 * 1024 * 1024;
const READS: usize = 10_000;
const IN_FLIGHT: usize = 64;

fn random_reads_match_the_contents(v: Variant) {
    let dir = TempDir::new("random_reads", v);
    let path = dir.join("random");
    let data = Rc::new(pattern(FILE_LEN, 7));
    std::fs::write(&path, &*data).unwrap();
    v.block_on(async {
        let file = Rc::new(File::open(&path).await.unwrap());
        let tasks: Vec<_> = (0..IN_FLIGHT)
            .map(|t| {
                let (file, data) = (file.clone(), data.clone());
                spawn(async move {
                    let mut rng = Pattern::new(t as u64 + 100);
                    let mut buf = Vec::with_capacity(4096);
                    for _ in 0..READS / IN_FLIGHT + 1 {
                        let mut word = [0u8; 8];
                        rng.fill(&mut word);
                        let pos = u64::from_le_bytes(word) as usize % FILE_LEN;
                        let len = (word[0] as usize * 16 + 1).min(4096);
                        buf.clear();
                        let (res, b) = file.read_at(buf.slice(..len), pos as u64).await;
                        buf = b.into_inner();
                        let n = res.unwrap();
                        assert_eq!(n, len.min(FILE_LEN - pos), "short read at {pos}");
                        assert!(buf[..n] == data[pos..pos + n], "wrong bytes at {pos}");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// A read on io_uring held in the kernel (a pipe with no data yet: `READ` waits for it),
/// dropped: its buffer lives until the completion comes, and the pipe's bytes it took are
/// not invented. On epoll a regular file's read runs on the pool; a pool job is covered in
/// tests/blocking.rs.
fn dropped_read_keeps_its_buffer(v: Variant) {
    if !v.is_uring() {
        eprintln!(
            "SKIP dropped_read_keeps_its_buffer::epoll: pool jobs are tested in tests/blocking.rs"
        );
        return;
    }
    let counter = DropCounter::new();
    let (rx, tx) = nix::unistd::pipe().unwrap();
    let rt = v.runtime();
    let file = File::from_std(std::fs::File::from(rx));
    rt.block_on(async {
        let buf = TrackedBuf::with_capacity(64, &counter);
        let mut read = Box::pin(file.read_at(buf, 0));
        assert!(futures_poll_once(read.as_mut()).is_pending());
        corering::yield_now().await;
        drop(read);
        assert_eq!(
            counter.dropped(),
            0,
            "freed while the kernel may still write into it"
        );
    });
    // block_on has settled the orphan: the kernel answered the cancel, then it was freed.
    assert_eq!(counter.live(), 0, "the buffer outlived its completion");
    assert_eq!(rt.live_ops(), 0);
    nix::unistd::write(&tx, b"later").unwrap();
    rt.block_on(async {
        let (res, buf) = file.read_at(Vec::with_capacity(64), 0).await;
        assert_eq!(
            &buf[..res.unwrap()],
            b"later",
            "the cancelled read took bytes"
        );
    });
}

/// Polls a future once with a waker that does nothing.
fn futures_poll_once<F: std::future::Future>(
    f: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    f.poll(&mut cx)
}

/// A 4 KiB-aligned buffer for `O_DIRECT`.
struct Aligned {
    ptr: *mut u8,
    len: usize,
    init: usize,
}

impl Aligned {
    const ALIGN: usize = 4096;
    fn new(len: usize) -> Aligned {
        let layout = std::alloc::Layout::from_size_align(len, Aligned::ALIGN).unwrap();
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Aligned {
            ptr,
            len,
            init: len,
        }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: `init` bytes from `ptr` are initialised (all are, zeroed at allocation).
        unsafe { std::slice::from_raw_parts(self.ptr, self.init) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, Aligned::ALIGN).unwrap();
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) };
    }
}

// SAFETY: the heap allocation does not move with the value and lives until drop; all `len`
// bytes are initialised (zeroed) and writable.
unsafe impl IoBuf for Aligned {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.len
    }
}

// SAFETY: as above.
unsafe impl IoBufMut for Aligned {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.init = self.init.max(pos);
    }
}

fn direct_io_with_an_aligned_buffer(v: Variant) {
    // /var/tmp is disk-backed where /tmp may be tmpfs (O_DIRECT there only from 6.6).
    let base = Path::new("/var/tmp");
    let dir = TempDir(base.join(format!(
        "corering-direct-{}-{}",
        v.label(),
        std::process::id()
    )));
    if std::fs::create_dir(&dir.0).is_err() {
        eprintln!("SKIP direct_io::{}: /var/tmp is not writable", v.label());
        return;
    }
    let path = dir.join("direct");
    v.block_on(async {
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .await;
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!(
                    "SKIP direct_io::{}: this filesystem refuses O_DIRECT ({e})",
                    v.label()
                );
                return;
            }
            Err(e) => panic!("open O_DIRECT: {e}"),
        };
        let mut out = Aligned::new(64 * 1024);
        // SAFETY: writes stay inside the allocation.
        let bytes = unsafe { std::slice::from_raw_parts_mut(out.stable_mut_ptr(), out.len) };
        Pattern::new(3).fill(bytes);
        let (res, out) = file.write_all_at(out, 4096).await;
        res.unwrap();
        file.sync_data().await.unwrap();
        let (res, back) = file.read_exact_at(Aligned::new(64 * 1024), 4096).await;
        res.unwrap();
        assert!(back.bytes() == out.bytes(), "O_DIRECT read back differs");
        // A misaligned buffer: the kernel's EINVAL, returned, never a crash (tmpfs, which
        // takes O_DIRECT from 6.6, needs no alignment and reads).
        let (res, _) = file.read_at(vec![0u8; 4097].slice(1..), 4096).await;
        if let Err(e) = res {
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{e}");
        }
        file.close().await.unwrap();
    });
}

fn paths_and_sizes(v: Variant) {
    let dir = TempDir::new("paths", v);
    v.block_on(async {
        let sub = dir.join("sub");
        fs::create_dir(&sub).await.unwrap();
        assert_eq!(
            fs::create_dir(&sub).await.unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert!(fs::metadata(&sub).await.unwrap().is_dir());
        let a = sub.join("a");
        let (res, _) = fs::write(&a, b"first".to_vec()).await;
        res.unwrap();
        let b = sub.join("b");
        fs::rename(&a, &b).await.unwrap();
        assert_eq!(
            fs::metadata(&a).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(fs::read(&b).await.unwrap(), b"first");
        let file = OpenOptions::new().write(true).open(&b).await.unwrap();
        file.set_len(2).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 2);
        file.set_len(10_000).await.unwrap();
        file.allocate(0, 64 * 1024).await.unwrap();
        let meta = file.metadata().await.unwrap();
        assert_eq!(meta.len(), 64 * 1024, "fallocate mode 0 grows the file");
        file.close().await.unwrap();
        let back = fs::read(&b).await.unwrap();
        assert_eq!(&back[..2], b"fi");
        assert!(
            back[2..].iter().all(|&x| x == 0),
            "the extension reads as zeroes"
        );
        let err = fs::remove_dir(&sub).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
        fs::remove_file(&b).await.unwrap();
        fs::remove_dir(&sub).await.unwrap();
        assert_eq!(
            fs::metadata(&sub).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    });
}

each_variant!(
    round_trip,
    short_reads_at_the_end,
    errors_are_clear,
    random_reads_match_the_contents,
    dropped_read_keeps_its_buffer,
    direct_io_with_an_aligned_buffer,
    paths_and_sizes,
);
