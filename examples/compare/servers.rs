//! The echo servers under test, each started as its own process (`compare --serve KIND`), and
//! the control protocol through which a server reports its syscall counters.
//!
//! Every server: binds `--addr`, prints `READY data=ADDR ctl=ADDR` (or `ctl=-`) on stdout, then
//! echoes whatever each connection sends, with a BUF-byte buffer per connection and TCP_NODELAY
//! on. The control port, where there is one, answers each read with one line:
//! `STATS waits=.. io_syscalls=.. ops_submitted=.. ops_completed=.. cq_overflows=..`.
mod go;

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream as StdStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use go::SOURCE as GO_SOURCE;

/// Read buffer size of every server, per connection.
pub const BUF: usize = 16 * 1024;

/// One server the runner knows.
pub struct ServerKind {
    pub name: &'static str,
    /// The hand-written server its overhead is measured from (`None` for the floors).
    pub floor: Option<&'static str>,
    /// Whether it needs io_uring.
    pub uring: bool,
    /// One line for the legend.
    pub about: &'static str,
}

pub const KINDS: &[ServerKind] = &[
    ServerKind {
        name: "corering-uring",
        floor: Some("raw-uring"),
        uring: true,
        about: "corering, io_uring backend (Builder::backend(Uring)), task per connection",
    },
    ServerKind {
        name: "corering-epoll",
        floor: Some("raw-epoll"),
        uring: false,
        about: "corering, epoll backend (Builder::backend(Epoll)), task per connection",
    },
    ServerKind {
        name: "raw-uring",
        floor: None,
        uring: true,
        about: "hand-written io_uring loop (io-uring crate): accept/recv/send, no runtime",
    },
    ServerKind {
        name: "raw-uring-ms",
        floor: None,
        uring: true,
        about: "hand-written: multishot accept + multishot recv into a buffer ring, DEFER_TASKRUN, registered ring fd",
    },
    ServerKind {
        name: "raw-epoll",
        floor: None,
        uring: false,
        about: "hand-written level-triggered epoll loop (libc), no runtime",
    },
    ServerKind {
        name: "tokio",
        floor: Some("raw-epoll"),
        uring: false,
        about: "tokio current_thread runtime, task per connection",
    },
    ServerKind {
        name: "monoio-uring",
        floor: Some("raw-uring"),
        uring: true,
        about: "monoio, io_uring driver, task per connection",
    },
    ServerKind {
        name: "monoio-epoll",
        floor: Some("raw-epoll"),
        uring: false,
        about: "monoio, legacy (epoll via mio) driver, task per connection",
    },
    ServerKind {
        name: "go",
        floor: Some("raw-epoll"),
        uring: false,
        about: "Go, goroutine per connection, GOMAXPROCS=1 (needs `go` on PATH)",
    },
];

/// Every server the runner knows: the echo servers, then the http servers.
pub fn all() -> impl Iterator<Item = &'static ServerKind> {
    KINDS.iter().chain(crate::http::KINDS)
}

pub fn kind(name: &str) -> Option<&'static ServerKind> {
    all().find(|k| k.name == name)
}

/// A server's counters at one moment (see the module docs for the wire format).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerStats {
    pub waits: u64,
    pub io_syscalls: u64,
    pub ops_submitted: u64,
    pub ops_completed: u64,
    pub cq_overflows: u64,
}

impl ServerStats {
    fn line(&self) -> String {
        format!(
            "STATS waits={} io_syscalls={} ops_submitted={} ops_completed={} cq_overflows={}\n",
            self.waits, self.io_syscalls, self.ops_submitted, self.ops_completed, self.cq_overflows
        )
    }

    fn parse(line: &str) -> Option<ServerStats> {
        let mut s = ServerStats::default();
        for field in line.strip_prefix("STATS ")?.split_whitespace() {
            let (k, v) = field.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "waits" => s.waits = v,
                "io_syscalls" => s.io_syscalls = v,
                "ops_submitted" => s.ops_submitted = v,
                "ops_completed" => s.ops_completed = v,
                "cq_overflows" => s.cq_overflows = v,
                _ => {}
            }
        }
        Some(s)
    }

    /// The change from `earlier` to `self`.
    pub fn since(&self, earlier: &ServerStats) -> ServerStats {
        ServerStats {
            waits: self.waits.saturating_sub(earlier.waits),
            io_syscalls: self.io_syscalls.saturating_sub(earlier.io_syscalls),
            ops_submitted: self.ops_submitted.saturating_sub(earlier.ops_submitted),
            ops_completed: self.ops_completed.saturating_sub(earlier.ops_completed),
            cq_overflows: self.cq_overflows.saturating_sub(earlier.cq_overflows),
        }
    }
}

/// The runner's end of a control connection.
pub struct Control {
    reader: BufReader<StdStream>,
}

impl Control {
    pub fn connect(addr: &str) -> io::Result<Control> {
        let s = StdStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.set_nodelay(true)?;
        Ok(Control {
            reader: BufReader::new(s),
        })
    }

    pub fn query(&mut self) -> io::Result<ServerStats> {
        self.reader.get_mut().write_all(b"s")?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        ServerStats::parse(line.trim_end())
            .ok_or_else(|| io::Error::other(format!("bad stats line {line:?}")))
    }
}

/// `compare --serve KIND --addr ADDR`: runs one server until killed.
pub fn serve(kind: &str, addr: &str) -> io::Result<()> {
    match kind {
        "corering-uring" => corering_server(corering::BackendChoice::Uring, addr),
        "corering-epoll" => corering_server(corering::BackendChoice::Epoll, addr),
        "raw-uring" => super::raw_uring::serve(addr),
        "raw-uring-ms" => super::raw_uring_ms::serve(addr),
        "raw-epoll" => super::raw_epoll::serve(addr),
        "tokio" => tokio_server(addr),
        "monoio-uring" => monoio_uring_server(addr),
        "monoio-epoll" => monoio_epoll_server(addr),
        other => crate::http::serve(other, addr),
    }
}

pub fn ready(data: impl std::fmt::Display, ctl: Option<std::net::SocketAddr>) {
    let ctl = ctl.map_or("-".to_string(), |a| a.to_string());
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "READY data={data} ctl={ctl}");
    let _ = out.flush();
}

/// Says why this server cannot run here; the runner shows the row as skipped.
pub fn skip(reason: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "SKIP {reason}")?;
    out.flush()
}

// ---- corering ----------------------------------------------------------------------------

/// The buffer pool of the corering servers: `CORERING_COMPARE_POOL=count,size` (default
/// 1024 buffers of 16 KiB, as raw-uring-ms: 4 KiB buffers cost half as much again per MiB streamed).
fn pool_config() -> (u16, u32) {
    let asked = std::env::var("CORERING_COMPARE_POOL").ok();
    let parsed = asked.as_deref().and_then(|v| {
        let (count, size) = v.split_once(',')?;
        Some((count.trim().parse().ok()?, size.trim().parse().ok()?))
    });
    parsed.unwrap_or((1024, 16 * 1024))
}

fn corering_server(choice: corering::BackendChoice, addr: &str) -> io::Result<()> {
    let (count, size) = pool_config();
    let builder = corering::Builder::new().buffer_pool(count, size);
    let rt = match builder.backend(choice).build() {
        Ok(rt) => rt,
        Err(e) if choice == corering::BackendChoice::Uring => {
            return skip(&format!("corering could not start on io_uring: {e}"));
        }
        Err(e) => return Err(e),
    };
    rt.block_on(async move {
        use corering::net::TcpListener;
        let listener = TcpListener::bind(addr)?;
        let ctl = TcpListener::bind("127.0.0.1:0")?;
        ready(listener.local_addr()?, Some(ctl.local_addr()?));
        spawn_control(ctl);
        loop {
            let (mut stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(_) => {
                    // e.g. EMFILE: back off rather than spin.
                    corering::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            corering::spawn(async move {
                let _ = stream.set_nodelay(true);
                // Pooled reads: an idle connection holds no buffer.
                while let Ok(Some(buf)) = stream.recv_pooled().await {
                    if stream.write_all(buf).await.0.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

/// Serves a corering server's control port from a task on the current core: each read is
/// answered with the line of that core's counters.
pub fn spawn_control(ctl: corering::net::TcpListener) {
    corering::spawn(async move {
        loop {
            let Ok((mut stream, _)) = ctl.accept().await else {
                return;
            };
            corering::spawn(async move {
                let mut buf = Vec::with_capacity(64);
                loop {
                    let (res, b) = stream.read(buf).await;
                    if !matches!(res, Ok(n) if n > 0) {
                        return;
                    }
                    let s = corering::stats();
                    let line = ServerStats {
                        waits: s.driver.waits,
                        io_syscalls: s.driver.io_syscalls,
                        ops_submitted: s.driver.ops_submitted,
                        ops_completed: s.driver.ops_completed,
                        cq_overflows: s.driver.cq_overflows,
                    }
                    .line();
                    if stream.write_all(line.into_bytes()).await.0.is_err() {
                        return;
                    }
                    buf = b;
                    buf.clear();
                }
            });
        }
    });
}

// ---- tokio -------------------------------------------------------------------------------

fn tokio_server(addr: &str) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(listener.local_addr()?, None);
        loop {
            let (mut stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(_) => {
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = match stream.read(&mut buf).await {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    })
}

// ---- monoio ------------------------------------------------------------------------------

async fn monoio_accept_loop(addr: &str) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let listener = monoio::net::TcpListener::bind(addr)?;
    ready(listener.local_addr()?, None);
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(_) => continue,
        };
        monoio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let mut buf = Vec::with_capacity(BUF);
            loop {
                let (res, b) = stream.read(buf).await;
                if !matches!(res, Ok(n) if n > 0) {
                    return;
                }
                let (res, b) = stream.write_all(b).await;
                if res.is_err() {
                    return;
                }
                buf = b;
                buf.clear();
            }
        });
    }
}

fn monoio_uring_server(addr: &str) -> io::Result<()> {
    let mut rt = match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new().build() {
        Ok(rt) => rt,
        Err(e) => return skip(&format!("monoio could not start on io_uring: {e}")),
    };
    rt.block_on(monoio_accept_loop(addr))
}

fn monoio_epoll_server(addr: &str) -> io::Result<()> {
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new().build()?;
    rt.block_on(monoio_accept_loop(addr))
}

// ---- counters and control thread of the hand-written servers ------------------------------

/// A counter written by one thread (the server loop) and read by another (the control
/// thread): a plain load and store, no locked instruction on the hot path.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves the control port of a hand-written server from a thread of its own, which sleeps
/// in the kernel until the runner asks.
pub fn control_thread(
    stats: impl Fn() -> ServerStats + Send + 'static,
) -> io::Result<std::net::SocketAddr> {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut byte = [0u8; 64];
            while matches!(stream.read(&mut byte), Ok(n) if n > 0) {
                if stream.write_all(stats().line().as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    Ok(addr)
}

pub fn announce(data: std::net::SocketAddr, ctl: std::net::SocketAddr) {
    ready(data, Some(ctl));
}
