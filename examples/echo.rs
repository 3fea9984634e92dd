// cargo run --release --example echo -- --addr 127.0.0.1:7000 --backend uring --cores 4
//! TCP echo server, one task per connection, owned buffers, one executor per core.
//!
//! `--cores N` (default 1) runs N cores, each pinned to a CPU with its own ring (or epoll
//! instance) and its own SO_REUSEPORT listener on the same port. `--backend` defaults to auto
//! (`CORERING_BACKEND` overrides auto). `--max-conns N` serves N connections, then exits.
//! SIGINT or SIGTERM stops accepting, lets the open connections drain for `--grace SECS`
//! (default 5) and cancels the rest. On exit it prints a table of per-core counters.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corering::net::{ListenOptions, TcpListener, TcpStream};
use corering::{BackendChoice, BackendKind, Builder, CoreReport, ShutdownHandle, ShuttingDown};

/// The drain deadline after `--max-conns`: the connections may take as long as they need.
const NO_DEADLINE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn usage(msg: &str) -> ! {
    eprintln!("echo: {msg}");
    eprintln!(
        "usage: echo [--addr HOST:PORT] [--backend auto|uring|epoll] [--max-conns N] \
         [--cores N] [--grace SECS]"
    );
    std::process::exit(2);
}

/// What the cores share.
struct Shared {
    addr: String,
    cores: usize,
    max_conns: usize,
    /// Connections accepted on all cores (for `--max-conns`).
    accepted: AtomicUsize,
    /// The address core 0 bound (with port 0, the port the kernel chose), for the other cores.
    bound: OnceLock<SocketAddr>,
    listening: AtomicUsize,
    stop: ShutdownHandle,
}

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7000".to_string();
    let (mut backend, mut max_conns) = (BackendChoice::Auto, usize::MAX);
    let (mut cores, mut grace) = (1, Duration::from_secs(5));
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage("missing value"));
        match (flag.as_str(), value.as_str()) {
            ("--addr", _) => addr = value,
            ("--backend", "auto") => backend = BackendChoice::Auto,
            ("--backend", "uring") => backend = BackendChoice::Uring,
            ("--backend", "epoll") => backend = BackendChoice::Epoll,
            ("--max-conns", n) => max_conns = n.parse().unwrap_or_else(|_| usage("bad N")),
            ("--cores", n) => match n.parse() {
                Ok(n) if n > 0 => cores = n,
                _ => usage("bad --cores N"),
            },
            ("--grace", s) => match s.parse::<f64>() {
                Ok(s) if s >= 0.0 && s.is_finite() => grace = Duration::from_secs_f64(s),
                _ => usage("bad --grace SECS"),
            },
            _ => usage(&format!("bad option {flag} {value}")),
        }
    }

    let rt = Builder::new()
        .backend(backend)
        .cores(cores)
        .shutdown_on_signals(grace)
        .build()?;
    println!("{}", rt.backend());
    let kind = rt.backend().kind();
    let shared = Arc::new(Shared {
        addr,
        cores,
        max_conns,
        accepted: AtomicUsize::new(0),
        bound: OnceLock::new(),
        listening: AtomicUsize::new(0),
        stop: rt.shutdown_handle(),
    });
    let reports = rt.run(|core| serve(shared.clone(), core))?;
    print_table(kind, &reports);
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
    let listener = match bind(&shared, core).await {
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
    let mut served = 0;
    let mut tasks = Vec::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) if ShuttingDown::is(&e) => break,
            Err(e) => {
                eprintln!("core {core}: accept: {e}"); // e.g. EMFILE: back off, don't spin
                corering::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // `--max-conns`: the N-th connection on any core stops every core's accepts.
        let n = shared.accepted.fetch_add(1, Ordering::AcqRel);
        if n >= shared.max_conns {
            break; // accepted after the limit was reached elsewhere: dropped unserved
        }
        served += 1;
        let task = corering::spawn(async move {
            if let Err(e) = echo(stream).await {
                eprintln!("{peer}: {e}");
            }
        });
        if shared.max_conns != usize::MAX {
            tasks.push(task); // to wait for at the end; otherwise drop = detach
        }
        if n + 1 == shared.max_conns {
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

/// Core 0 binds the address; the others join its port (which may have been 0) once it has.
async fn bind(shared: &Shared, core: usize) -> io::Result<TcpListener> {
    let opts = ListenOptions {
        reuse_port: shared.cores > 1,
        ..Default::default()
    };
    if core == 0 {
        let result = TcpListener::bind_with(shared.addr.as_str(), opts);
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
async fn echo(mut stream: TcpStream) -> io::Result<()> {
    // `None`: the peer closed its side.
    while let Some(buf) = stream.recv_pooled().await? {
        let (res, _buf) = stream.write_all(buf).await;
        res?;
    }
    Ok(())
}

/// The per-core counters: one row per core, then the totals.
fn print_table(kind: BackendKind, reports: &[CoreReport<io::Result<usize>>]) {
    let waits = match kind {
        BackendKind::Uring => "io_uring_enter",
        BackendKind::Epoll => "epoll_wait",
    };
    println!();
    println!(
        "{:>4} {:>4} {:>8} {:>8} {:>12} {:>12} {:>14} {:>10} {:>8} {:>6}",
        "core",
        "cpu",
        "conns",
        "tasks",
        "ops sub",
        "ops done",
        waits,
        "compl/wait",
        "remote",
        "cq ovf"
    );
    let mut total = [0u64; 7];
    for r in reports {
        let s = &r.stats;
        let conns = match &r.output {
            Ok(Ok(n)) => n.to_string(),
            Ok(Err(_)) => "error".into(),
            Err(e) if e.is_cancelled() => "cancelled".into(),
            Err(_) => "panicked".into(),
        };
        let cpu = r.cpu.map_or("-".into(), |c| c.to_string());
        let d = &s.driver;
        let row = [
            r.output
                .as_ref()
                .ok()
                .and_then(|o| o.as_ref().ok())
                .map_or(0, |&n| n as u64),
            s.tasks_spawned,
            d.ops_submitted,
            d.ops_completed,
            d.waits,
            s.remote_wakes,
            d.cq_overflows,
        ];
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        println!(
            "{:>4} {:>4} {:>8} {:>8} {:>12} {:>12} {:>14} {:>10.2} {:>8} {:>6}",
            r.core,
            cpu,
            conns,
            s.tasks_spawned,
            d.ops_submitted,
            d.ops_completed,
            d.waits,
            per_wait(d.ops_completed, d.waits),
            s.remote_wakes,
            d.cq_overflows
        );
    }
    let [conns, tasks, sub, done, waits, remote, ovf] = total;
    println!(
        "{:>4} {:>4} {:>8} {:>8} {:>12} {:>12} {:>14} {:>10.2} {:>8} {:>6}",
        "all",
        "",
        conns,
        tasks,
        sub,
        done,
        waits,
        per_wait(done, waits),
        remote,
        ovf
    );
}

fn per_wait(completed: u64, waits: u64) -> f64 {
    if waits == 0 {
        0.0
    } else {
        completed as f64 / waits as f64
    }
}
