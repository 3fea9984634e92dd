//! Shared helpers for the integration tests: run a test body on every backend (skipping
//! io_uring only where the kernel lacks it), fd accounting, a buffer that records its drop,
//! socket tweaks, a SIGPIPE probe, checksums and a hang watchdog.
#![allow(dead_code)]

mod child;
mod soak;
mod variant;
#[allow(unused_imports)]
pub use child::*;
#[allow(unused_imports)]
pub use soak::*;
#[allow(unused_imports)]
pub use variant::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corering::net::{ListenOptions, TcpListener, TcpStream};
use corering::{IoBuf, IoBufMut, Runtime, ShutdownHandle};

/// A whole test run on one backend is aborted after this long (a hang guard, not a timing assert).
pub const HANG_LIMIT: Duration = Duration::from_secs(300);

/// Requests shutdown when dropped (also while unwinding from a panic), so that one failing
/// core or client thread does not leave the other cores of `Runtime::run` waiting forever.
pub struct ShutdownOnDrop {
    pub handle: ShutdownHandle,
    pub grace: Duration,
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.handle.shutdown(self.grace);
    }
}

/// One SO_REUSEPORT listener per core of `Runtime::run`, all on one 127.0.0.1 port: core 0
/// picks the port, the other cores join it. `wait_bound` (a plain thread) waits until every
/// core listens.
#[derive(Default)]
pub struct ReusePort {
    port: AtomicU16,
    bound: AtomicUsize,
}

impl ReusePort {
    /// Inside core `core` of `Runtime::run`: this core's listener.
    pub async fn bind(&self, core: usize) -> TcpListener {
        let opts = ListenOptions {
            reuse_port: true,
            ..Default::default()
        };
        let listener = if core == 0 {
            let l = TcpListener::bind_with("127.0.0.1:0", opts).expect("bind core 0");
            let port = l.local_addr().expect("local_addr").port();
            self.port.store(port, Ordering::Release);
            l
        } else {
            let port = within("core 0 to pick the port", async {
                loop {
                    match self.port.load(Ordering::Acquire) {
                        0 => corering::time::sleep(Duration::from_millis(1)).await,
                        port => return port,
                    }
                }
            })
            .await;
            TcpListener::bind_with(("127.0.0.1", port), opts)
                .unwrap_or_else(|e| panic!("bind core {core} to port {port}: {e}"))
        };
        self.bound.fetch_add(1, Ordering::AcqRel);
        listener
    }

    /// On a plain thread: waits (hang guard 60 s) until `cores` listeners are bound.
    pub fn wait_bound(&self, cores: usize) -> SocketAddr {
        let give_up = Instant::now() + Duration::from_secs(60);
        while self.bound.load(Ordering::Acquire) < cores {
            assert!(
                Instant::now() < give_up,
                "hang guard: listeners not bound in 60 s"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        SocketAddr::from(([127, 0, 0, 1], self.port.load(Ordering::Acquire)))
    }
}

/// Echoes until EOF or an error; returns the number of bytes echoed.
pub async fn echo_stream(mut stream: TcpStream) -> usize {
    let mut buf = Vec::with_capacity(4096);
    let mut total = 0;
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return total,
            Ok(n) => n,
        };
        let (res, slice) = stream.write_all(b.slice(..n)).await;
        if res.is_err() {
            return total;
        }
        total += n;
        buf = slice.into_inner();
    }
}

/// A blocking std client round trip: writes `msg`, reads the same number of bytes back and
/// checks they match (read timeout 60 s as a hang guard).
pub fn std_echo_round(stream: &mut std::net::TcpStream, msg: &[u8]) {
    use std::io::{Read, Write};
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set_read_timeout");
    stream.write_all(msg).expect("client write");
    let mut back = vec![0; msg.len()];
    stream.read_exact(&mut back).expect("client read echo");
    assert_eq!(back, msg, "bad echo");
}

/// Turns `rt` (bounded: ~3,000 short turns) until `done(rt)` holds; returns whether it did.
pub fn turn_until(rt: &Runtime, mut done: impl FnMut(&Runtime) -> bool) -> bool {
    for _ in 0..3000 {
        if done(rt) {
            return true;
        }
        rt.block_on(async {
            corering::yield_now().await;
            corering::time::sleep(Duration::from_millis(1)).await;
        });
    }
    done(rt)
}

/// On a plain thread: checks `done()` every millisecond until it holds, for at most 30 s (a
/// bound for what the kernel finishes by itself, such as reaping an exited thread); returns
/// whether it held.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(30);
    while !done() {
        if Instant::now() > give_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

/// Inside a runtime: yields/sleeps (bounded) until `done()` holds; returns whether it did.
pub async fn settle(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..3000 {
        if done() {
            return true;
        }
        corering::yield_now().await;
        corering::time::sleep(Duration::from_millis(1)).await;
    }
    done()
}

/// Awaits `f`, panicking if it takes more than 60 s (hang guard only).
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match corering::time::timeout(Duration::from_secs(60), f).await {
        Ok(v) => v,
        Err(_) => panic!("hang guard: {what} did not finish within 60 s"),
    }
}

/// Aborts the process if not dropped within `limit`: catches hangs the runtime's own timers
/// cannot (e.g. a park that never wakes).
pub struct Watchdog {
    _tx: mpsc::Sender<()>,
}

impl Watchdog {
    pub fn start(what: String, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("WATCHDOG: {what} still running after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog { _tx: tx }
    }
}

/// Polls `fut` exactly once, then drops it (still in flight if it was pending). Returns
/// whether it was ready.
pub async fn poll_once_then_drop<F: Future>(fut: F) -> bool {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx).is_ready())).await
}

/// A corering stream connected to a std peer: (stream, peer). The peer has a 60 s read
/// timeout as a hang guard.
pub async fn std_peer_pair() -> (TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (peer, _) = listener.accept().expect("accept");
    peer.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("set_read_timeout");
    (stream, peer)
}

/// Runs two futures to completion together, polling both on every wake.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    use std::task::Poll;
    let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// After letting the runtime turn a few times (so whatever it had queued is submitted),
/// asserts that `peer` has received nothing.
pub async fn assert_nothing_arrives(peer: &mut std::net::TcpStream) {
    use std::io::Read;
    for _ in 0..5 {
        corering::time::sleep(Duration::from_millis(2)).await;
    }
    peer.set_nonblocking(true).expect("nonblocking");
    let mut got = [0u8; 64];
    match peer.read(&mut got) {
        Ok(n) => panic!("the peer got {:?}", String::from_utf8_lossy(&got[..n])),
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
    }
}

/// A connected loopback pair: (client, server).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (client, server)
}

/// Raises the RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < hard {
        // Raising soft up to hard needs no privilege.
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
    hard
}

/// The process's open fds (number -> link target) from /proc/self/fd, minus the fd used to
/// read the directory itself.
/// What `fd` is open on, as /proc/self/fd names it (`socket:[inode]`: unique while open).
pub fn fd_target(fd: RawFd) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
    Some(link.to_string_lossy().into_owned())
}

pub fn open_fds() -> BTreeMap<i32, String> {
    let own_dir = format!("/proc/{}/fd", std::process::id());
    let mut fds = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/fd").expect("read /proc/self/fd") {
        let entry = entry.expect("dir entry");
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy().into_owned();
            if target != own_dir {
                fds.insert(fd, target);
            }
        }
    }
    fds
}

/// Number of open fds of this process.
pub fn count_open_fds() -> usize {
    open_fds().len()
}

/// Resets the connection on close: SO_LINGER {on, 0} makes close() send RST.
pub fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is an open socket owned by the caller; the pointer and length describe a
    // valid `linger` that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        io::Error::last_os_error()
    );
}

/// Blocks SIGPIPE in the current thread so that a send without MSG_NOSIGNAL leaves the signal
/// pending (blocked signals are queued even when ignored) instead of killing the process or
/// vanishing. `take_pending` reports and consumes it; drop restores the old mask.
pub struct SigpipeProbe {
    old: libc::sigset_t,
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

impl SigpipeProbe {
    pub fn block() -> SigpipeProbe {
        let set = sigpipe_set();
        // SAFETY: zeroed sigset_t is a valid out-parameter for pthread_sigmask.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid sigsets for the duration of the call.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        assert_eq!(rc, 0, "pthread_sigmask");
        SigpipeProbe { old }
    }

    /// Whether a SIGPIPE is pending for this thread or process; consumes it.
    pub fn take_pending(&self) -> bool {
        let set = sigpipe_set();
        // SAFETY: zeroed sigset_t is a valid out-parameter; sigpending fills it.
        let pending = unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE) == 1
        };
        if pending {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: valid sigset and timespec; SIGPIPE is blocked, so it can be waited for.
            unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) };
        }
        pending
    }
}

impl Drop for SigpipeProbe {
    fn drop(&mut self) {
        self.take_pending();
        // SAFETY: `self.old` is the mask saved by `block` on this thread.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Counts how many `TrackedBuf`s were created and dropped.
#[derive(Clone, Default)]
pub struct DropCounter {
    created: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl DropCounter {
    pub fn new() -> DropCounter {
        DropCounter::default()
    }
    pub fn created(&self) -> usize {
        self.created.load(Ordering::SeqCst)
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
    /// Buffers created but not yet dropped.
    pub fn live(&self) -> usize {
        self.created() - self.dropped()
    }
}

/// A Vec-backed buffer that records its drop in a `DropCounter`.
pub struct TrackedBuf {
    pub data: Vec<u8>,
    counter: DropCounter,
}

impl TrackedBuf {
    /// An empty buffer with room for at least `cap` bytes (reads fill up to the capacity).
    pub fn with_capacity(cap: usize, counter: &DropCounter) -> TrackedBuf {
        TrackedBuf::from_vec(Vec::with_capacity(cap), counter)
    }
    pub fn from_vec(data: Vec<u8>, counter: &DropCounter) -> TrackedBuf {
        counter.created.fetch_add(1, Ordering::SeqCst);
        TrackedBuf {
            data,
            counter: counter.clone(),
        }
    }
}

impl Drop for TrackedBuf {
    fn drop(&mut self) {
        self.counter.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: the pointer is the Vec's heap allocation, which does not move when the TrackedBuf is
// moved and is only freed on drop; [0, len) is initialised and capacity bytes are allocated.
unsafe impl IoBuf for TrackedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.capacity()
    }
}

// SAFETY: as for IoBuf; the mutable pointer covers the whole capacity.
unsafe impl IoBufMut for TrackedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.data.len() {
            assert!(pos <= self.data.capacity(), "set_init past capacity");
            // SAFETY: the caller guarantees [0, pos) was initialised; pos <= capacity.
            unsafe { self.data.set_len(pos) };
        }
    }
}

/// 64-bit FNV-1a, a streaming checksum.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// A deterministic byte stream (xorshift64) for test payloads.
pub struct Pattern(u64);

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern(seed | 1)
    }
    /// The next 64 bits (xorshift64).
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let x = self.next_u64();
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// True for the error kinds a reset peer may produce.
pub fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// A Unix socket path in the temp dir that no other test (or run) uses; removed when dropped.
pub struct TempPath(pub std::path::PathBuf);

impl TempPath {
    pub fn new(what: &str) -> TempPath {
        let path = std::env::temp_dir().join(format!("{}.sock", unique_name(what)));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A name no other test (or run) uses: `corering-{what}-{pid}-{counter}`, e.g. for a Unix
/// socket's abstract name.
pub fn unique_name(what: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("corering-{what}-{}-{n}", std::process::id())
}
