// cargo run --release --example echo -- --addr 127.0.0.1:7000 --backend uring --cores 4
// cargo run --release --example echo -- --unix /tmp/echo.sock --cores 2
// cargo run --example echo -- --help
//! Echo server (TCP, or a Unix socket with `--unix`), one task per connection, owned
//! buffers, one executor per core.
//!
//! `--cores N` (default 1) runs N cores, each pinned to a CPU with its own ring (or epoll
//! instance) and its own SO_REUSEPORT listener on the same port; with `--unix PATH` the cores
//! accept on one socket bound at PATH (a stale socket file there is removed first, and the
//! file is removed at exit). `--backend` defaults to auto (`CORERING_BACKEND` overrides
//! auto). `--max-conns N` holds at most N connections open at once (each core its share;
//! the next ones wait in the listen backlog); `--exit-after N` serves N connections, then
//! exits. Errors are counted, not printed one by one: one summary line a second, when
//! something happened. An accept that fails for want of fds (EMFILE) backs off (1 ms
//! doubling to 1 s, or until a connection closes): see `guard.rs`. SIGINT or SIGTERM stops
//! accepting, lets the open connections drain for `--grace SECS` (default 5) and cancels the
//! rest. On exit it prints a table of per-core counters. `--help` prints the usage.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corering::net::{ListenOptions, TcpListener, TcpStream, UnixListener, UnixStream};
use corering::{BackendChoice, Builder, ShutdownHandle, ShuttingDown};

mod guard;
mod log;
mod table;

use guard::{AcceptBackoff, ConnLimit};
use log::Counters;

/// The drain deadline after `--exit-after`: the connections may take as long as they need.
const NO_DEADLINE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

const USAGE: &str = "usage: echo [--addr HOST:PORT | --unix PATH] [--backend auto|uring|epoll] \
     [--max-conns N] [--exit-after N] [--cores N] [--grace SECS]
  --addr HOST:PORT  serve TCP here (default 127.0.0.1:7000)
  --unix PATH       serve on a Unix socket at PATH instead (a stale socket file at PATH is
                    removed first; the file is removed at exit)
  --backend KIND    auto (default; CORERING_BACKEND overrides it), uring or epoll
  --max-conns N     at most N connections open at once (default: no cap)
  --exit-after N    serve N connections, then exit once they are done
  --cores N         executors, one per CPU, each with its own ring (default 1)
  --grace SECS      on SIGINT/SIGTERM, how long open connections may drain (default 5)
  --help            print this and exit";

fn usage(msg: &str) -> ! {
    eprintln!("echo: {msg}");
    eprintln!("{USAGE}");
    std::process::exit(2);
}

/// The command line.
struct Options {
    addr: String,
    unix: Option<PathBuf>,
    backend: BackendChoice,
    max_conns: usize,
    exit_after: usize,
    cores: usize,
    grace: Duration,
}

fn parse_args() -> Options {
    let mut o = Options {
        addr: "127.0.0.1:7000".to_string(),
        unix: None,
        backend: BackendChoice::Auto,
        max_conns: usize::MAX,
        exit_after: usize::MAX,
        cores: 1,
        grace: Duration::from_secs(5),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            // Not `println!`: `echo --help | head -1` must not panic on the closed pipe.
            let _ = writeln!(io::stdout(), "{USAGE}");
            std::process::exit(0);
        }
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("missing value after {flag}")));
        match (flag.as_str(), value.as_str()) {
            ("--addr", _) => o.addr = value,
            ("--unix", _) => o.unix = Some(PathBuf::from(value)),
            ("--backend", "auto") => o.backend = BackendChoice::Auto,
            ("--backend", "uring") => o.backend = BackendChoice::Uring,
            ("--backend", "epoll") => o.backend = BackendChoice::Epoll,
            ("--max-conns", n) => match n.parse() {
                Ok(n) if n > 0 => o.max_conns = n,
                _ => usage("bad --max-conns N"),
            },
            ("--exit-after", n) => o.exit_after = n.parse().unwrap_or_else(|_| usage("bad N")),
            ("--cores", n) => match n.parse() {
                Ok(n) if n > 0 => o.cores = n,
                _ => usage("bad --cores N"),
            },
            ("--grace", s) => match s.parse::<f64>() {
                Ok(s) if s >= 0.0 && s.is_finite() => o.grace = Duration::from_secs_f64(s),
                _ => usage("bad --grace SECS"),
            },
            _ => usage(&format!("bad option {flag} {value}")),
        }
    }
    o
}

/// What the cores share.
struct Shared {
    addr: String,
    /// With `--unix`: the socket bound at the path, which every core accepts on (a dup each).
    unix: Option<std::os::unix::net::UnixListener>,
    cores: usize,
    /// `--max-conns`, split over the cores.
    max_conns: usize,
    exit_after: usize,
    /// Connections accepted on all cores (for `--exit-after`).
    accepted: AtomicUsize,
    /// The address core 0 bound (with port 0, the port the kernel chose), for the other cores.
    bound: OnceLock<SocketAddr>,
    listening: AtomicUsize,
    stop: ShutdownHandle,
    counters: Counters,
}

impl Shared {
    /// Core `core`'s share of `--max-conns` (the cores are at most as many as the cap).
    fn cap(&self, core: usize) -> usize {
        if self.max_conns == usize::MAX {
            return usize::MAX;
        }
        self.max_conns / self.cores + usize::from(core < self.max_conns % self.cores)
    }
}

/// Binds the Unix socket at `path`, first removing a stale socket file there (never any other
/// kind of file).
fn bind_unix(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            std::fs::remove_file(path)?;
        }
    }
    std::os::unix::net::UnixListener::bind(path)
}

fn main() -> std::process::ExitCode {
    match run(parse_args()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(o: Options) -> io::Result<()> {
    let unix = o.unix.as_deref().map(bind_unix).transpose()?;
    // A core with no share of the cap would hold a listener it never accepts on.
    let cores = o.cores.min(o.max_conns);
    let rt = Builder::new()
        .backend(o.backend)
        .cores(cores)
        .shutdown_on_signals(o.grace)
        .build()?;
    println!("{}", rt.backend());
    let kind = rt.backend().kind();
    let shared = Arc::new(Shared {
        addr: o.addr,
        unix,
        cores,
        max_conns: o.max_conns,
        exit_after: o.exit_after,
        accepted: AtomicUsize::new(0),
        bound: OnceLock::new(),
        listening: AtomicUsize::new(0),
        stop: rt.shutdown_handle(),
        counters: Counters::default(),
    });
    let reports = rt.run(|core| serve(shared.clone(), core));
    if let Some(path) = &o.unix {
        let _ = std::fs::remove_file(path);
    }
    let reports = reports?;
    table::print_table(kind, &reports);
    // A core that could not bind (e.g. the port is taken) reports the error.
    for r in reports {
        match r.output {
            Ok(Err(e)) => return Err(e),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            _ => {}
        }
    }
    Ok(())
}

/// One core: bind this core's listener, accept until shutdown, one task per connection.
/// Returns how many connections this core served.
async fn serve(shared: Arc<Shared>, core: usize) -> io::Result<usize> {
    let listener = match listen(&shared, core).await {
        Ok(l) => l,
        Err(e) => {
            shared.stop.shutdown(Duration::ZERO); // the other cores need not wait
            return Err(e);
        }
    };
    if shared.listening.fetch_add(1, Ordering::AcqRel) + 1 == shared.cores {
        let n = shared.cores;
        println!(
            "listening on {} ({n} core{})",
            listener.local_addr()?,
            if n == 1 { "" } else { "s" }
        );
    }
    if core == 0 {
        let shared = shared.clone();
        corering::spawn(async move { log::summaries(&shared.counters).await });
    }
    let mut limit = ConnLimit::new(shared.cap(core));
    let mut backoff = AcceptBackoff::new();
    let mut served = 0;
    let mut tasks = Vec::new();
    loop {
        limit.place().await;
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) if ShuttingDown::is(&e) => break,
            Err(e) => {
                let delay = backoff.after(&e);
                shared.counters.accept_failed(&e, delay);
                if let Some(delay) = delay {
                    limit.closed_or(delay).await; // out of fds: a close frees one
                }
                continue;
            }
        };
        backoff.reset();
        // `--exit-after`: the N-th connection on any core stops every core's accepts.
        let n = shared.accepted.fetch_add(1, Ordering::AcqRel);
        if n >= shared.exit_after {
            break; // accepted after the limit was reached elsewhere: dropped unserved
        }
        served += 1;
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let (permit, shared_in) = (limit.permit(), shared.clone());
        let task = corering::spawn(async move {
            let res = stream.echo().await;
            shared_in.counters.connection_ended(&res);
            drop(permit);
        });
        if shared.exit_after != usize::MAX {
            tasks.push(task); // to wait for at the end; otherwise drop = detach
        }
        if n + 1 == shared.exit_after {
            // Served them all: every core stops accepting and waits for its connections.
            shared.stop.shutdown(NO_DEADLINE);
            break;
        }
    }
    drop(listener);
    for task in tasks {
        let _ = task.await;
    }
    Ok(served)
}

/// This core's listener: TCP, or a dup of the Unix socket `main` bound.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted connection.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    fn local_addr(&self) -> io::Result<String> {
        Ok(match self {
            Listener::Tcp(l) => l.local_addr()?.to_string(),
            Listener::Unix(l) => format!("unix:{}", l.local_addr()?),
        })
    }

    /// The next connection and its peer's address.
    async fn accept(&self) -> io::Result<(Conn, String)> {
        Ok(match self {
            Listener::Tcp(l) => l
                .accept()
                .await
                .map(|(s, a)| (Conn::Tcp(s), a.to_string()))?,
            Listener::Unix(l) => l
                .accept()
                .await
                .map(|(s, a)| (Conn::Unix(s), a.to_string()))?,
        })
    }
}

async fn listen(shared: &Shared, core: usize) -> io::Result<Listener> {
    match &shared.unix {
        Some(l) => UnixListener::from_std(l.try_clone()?).map(Listener::Unix),
        None => bind(shared, core).await.map(Listener::Tcp),
    }
}

/// Core 0 binds the address; the others join its port (which may have been 0) once it has.
async fn bind(shared: &Shared, core: usize) -> io::Result<TcpListener> {
    let opts = ListenOptions {
        reuse_port: shared.cores > 1,
        ..Default::default()
    };
    if core == 0 {
        let result = TcpListener::bind_with(shared.addr.as_str(), opts)
            .map_err(|e| io::Error::new(e.kind(), format!("bind {}: {e}", shared.addr)));
        let addr = match &result {
            Ok(l) => l.local_addr()?,
            Err(_) => SocketAddr::from(([0, 0, 0, 0], 0)), // port 0: the others give up too
        };
        let _ = shared.bound.set(addr);
        return result;
    }
    let addr = loop {
        if let Some(addr) = shared.bound.get() {
            break *addr;
        }
        if corering::is_shutting_down() {
            return Err(io::Error::other("stopped before core 0 had bound"));
        }
        corering::time::sleep(Duration::from_millis(1)).await;
    };
    if addr.port() == 0 {
        return Err(io::Error::other("core 0 could not bind"));
    }
    TcpListener::bind_with(addr, opts)
}

/// Pooled reads: while a connection waits for bytes it holds no buffer (the core's pool lends
/// one when bytes arrive, and takes it back when the write is done).
macro_rules! echo_pooled {
    ($stream:expr) => {{
        let stream = &mut $stream;
        // `None`: the peer closed its side.
        while let Some(buf) = stream.recv_pooled().await? {
            let (res, _buf) = stream.write_all(buf).await;
            res?;
        }
        Ok(())
    }};
}

impl Conn {
    /// Echoes until the peer closes its side.
    async fn echo(self) -> io::Result<()> {
        match self {
            Conn::Tcp(mut s) => echo_pooled!(s),
            Conn::Unix(mut s) => echo_pooled!(s),
        }
    }
}
