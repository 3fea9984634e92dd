//! The command line: the help text, the options, their defaults, and whether the fd limit
//! allows them.
use std::io;
use std::path::{Path, PathBuf};

use crate::load::Arrivals;
use crate::{servers, sys};

const HELP: &str = "\
usage: cargo run --release --example compare -- [options]

  --quick             small matrix (conns 1,64; sizes 64,4096; stream x1, x16; idle 1000;
                      1 round of 0.4 s), under a minute; exits non-zero unless every server
                      answered without error
  --servers a,b,...   servers to run (default: all); see the list below
  --conns 1,16,...    connection counts for request/response (default 1,16,256,1024,10000);
                      the fd limit is raised to the hard limit, which must allow each count
                      plus a few dozen
  --sizes 64,4096     message sizes in bytes (default 64,4096)
  --stream-conns 1,16 connection counts for streaming 64 KiB writes (default 1,16)
  --no-stream         leave out the streaming cases
  --idle N            memory per idle connection: the server's RSS growth when N connections
                      are open, each after one 64 B echo (default 1000; 0 leaves it out)
  --rounds N          rounds; every round runs every server once per case (default 5)
  --seconds S         measured seconds per run (default 1)
  --warmup S          warm-up seconds before each measured window (default 0.3)
  --server-core N     core the servers are pinned to (default: the second usable core, e.g. 1)
  --client-core N     core the load generator is pinned to (default: the first, e.g. 0)
  --out DIR           where JSON, CSV and SVG go (default $CARGO_TARGET_DIR/corering-bench,
                      or target/corering-bench without CARGO_TARGET_DIR)
  --files             add the file cases, each a runner process pinned to the servers' core:
                      file_random_read (4 KiB reads at random offsets of a 256 MiB file in
                      the page cache, 64 in flight) and file_write_fsync (sequential 64 KiB
                      writes, fsync every 1 MiB); runners: corering-uring, corering-epoll,
                      tokio and go, as far as --servers names them
  --files-only        run only the file cases (the network cases and their options are left
                      out)
  --file-dir DIR      where the file cases read and write: a directory on the disk to measure,
                      not tmpfs (default: files/ under the --out directory); the 256 MiB read
                      file is written there once and kept
  --http              add the http cases: HTTP/1.1 keep-alive GETs (closed loop, a 5 B body)
                      answered by hyper on corering (hyper-corering-uring, -epoll) and on
                      tokio (hyper-tokio); the echo servers do not run them, nor the http
                      servers the echo cases
  --http-only         run only the http cases
  --http-conns 16,256 connection counts of the http cases (default 16,256; --quick: 16);
                      implies --http
  --hostile           add the hostile cases: a request/response echo client (16 connections,
                      64 B, closed loop) measured alone (storm none) and beside each storm:
                      reset (2000 connections/s that send 32 B and close with RST), vanish
                      (2000 connections/s closed at once, nothing sent), slowloris (500
                      connections, each sending 1 byte every 250 ms); servers: corering-uring,
                      corering-epoll and tokio, as far as --servers names them
  --hostile-only      run only the hostile cases
  --latency           add the latency cases: the echo (64 B and 4 KiB, 16 and 256
                      connections) in an open loop, requests sent on a fixed schedule and
                      timed from it, at 10, 25, 50, 75, 90 and 100% of the slowest server's
                      closed-loop peak (measured first, in the same run); p50/p99/p99.9/max
                      per rate, the knee (the rate where p99 passes 1 ms) and latency.svg;
                      a round where the load generator fell behind its own schedule is left
                      out of the medians; before them, a stall meter spins on both cores;
                      servers: corering-uring, corering-epoll, tokio and monoio-uring, as far
                      as --servers names them
  --latency-only      run only the latency cases (and the closed-loop cases of their peaks)
  --poisson           the latency cases' requests arrive as a Poisson process (exponential
                      gaps of the same mean) instead of evenly spaced

Figures are medians over the rounds; ratios are medians of the ratios within each round.
The default matrix takes about 13 minutes. Exit status 1 if any run had an error.
servers:";

/// The options of one invocation.
pub struct Config {
    pub servers: Vec<&'static str>,
    pub conns: Vec<usize>,
    pub sizes: Vec<usize>,
    /// Connection counts of the streaming cases (none: no streaming).
    pub stream: Vec<usize>,
    /// Connections of the idle-memory case (0: none).
    pub idle: usize,
    pub rounds: usize,
    pub seconds: f64,
    pub warmup: f64,
    /// `None`: the second core this process may use (the first for the load generator).
    pub server_core: Option<usize>,
    pub client_core: Option<usize>,
    pub out: PathBuf,
    pub quick: bool,
    /// Whether the file cases run, and where.
    pub files: bool,
    pub file_dir: PathBuf,
    /// Connection counts of the http cases (none: no http cases).
    pub http: Vec<usize>,
    /// Whether the hostile cases run.
    pub hostile: bool,
    /// Whether the latency cases run, and how their requests are spaced.
    pub latency: bool,
    pub arrivals: Arrivals,
}

pub fn usage(msg: &str) -> ! {
    eprintln!("compare: {msg} (--help lists the options)");
    std::process::exit(2);
}

fn list<T: std::str::FromStr>(v: &str, what: &str) -> Vec<T> {
    let out: Vec<T> = v
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| usage(&format!("bad {what} {s:?}")))
        })
        .collect();
    if out.is_empty() {
        usage(&format!("empty {what} list"));
    }
    out
}

fn default_out() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("corering-bench");
    }
    // target/<profile>/examples/compare → target/
    let exe = std::env::current_exe().ok();
    let target = exe.as_deref().and_then(|e| {
        let examples = e.parent()?;
        (examples.file_name()? == "examples").then(|| examples.parent()?.parent())?
    });
    target
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("corering-bench")
}

fn help() -> ! {
    println!("{HELP}");
    for k in servers::all() {
        println!("  {:<16} {}", k.name, k.about);
    }
    std::process::exit(0);
}

fn number<T: std::str::FromStr>(v: &str, flag: &str) -> T {
    v.parse().unwrap_or_else(|_| usage(&format!("bad {flag}")))
}

fn server_list(v: &str) -> Vec<&'static str> {
    let names: Vec<String> = list(v, "server");
    names
        .iter()
        .map(|n| {
            servers::kind(n)
                .unwrap_or_else(|| usage(&format!("no server {n:?}")))
                .name
        })
        .collect()
}

/// The options as given: `None` where the default applies.
#[derive(Default)]
struct Given {
    quick: bool,
    servers: Option<Vec<&'static str>>,
    conns: Option<Vec<usize>>,
    sizes: Option<Vec<usize>>,
    stream: Option<Vec<usize>>,
    idle: Option<usize>,
    rounds: Option<usize>,
    seconds: Option<f64>,
    warmup: Option<f64>,
    server_core: Option<usize>,
    client_core: Option<usize>,
    out: Option<PathBuf>,
    files: bool,
    files_only: bool,
    file_dir: Option<PathBuf>,
    http: bool,
    http_only: bool,
    http_conns: Option<Vec<usize>>,
    hostile: bool,
    hostile_only: bool,
    latency: bool,
    latency_only: bool,
    poisson: bool,
}

pub fn parse_args(args: Vec<String>) -> Config {
    let mut g = Given::default();
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--help" | "-h" => help(),
            "--quick" => g.quick = true,
            "--no-stream" => g.stream = Some(Vec::new()),
            "--servers" => g.servers = Some(server_list(&value())),
            "--conns" => g.conns = Some(list(&value(), "connection count")),
            "--sizes" => g.sizes = Some(list(&value(), "size")),
            "--stream-conns" => g.stream = Some(list(&value(), "streaming connection count")),
            "--idle" => g.idle = Some(number(&value(), "--idle")),
            "--rounds" => g.rounds = Some(number(&value(), "--rounds")),
            "--seconds" => g.seconds = Some(number(&value(), "--seconds")),
            "--warmup" => g.warmup = Some(number(&value(), "--warmup")),
            "--server-core" => g.server_core = Some(number(&value(), "--server-core")),
            "--client-core" => g.client_core = Some(number(&value(), "--client-core")),
            "--out" => g.out = Some(PathBuf::from(value())),
            "--files" => g.files = true,
            "--files-only" => g.files_only = true,
            "--file-dir" => g.file_dir = Some(PathBuf::from(value())),
            "--http" => g.http = true,
            "--http-only" => g.http_only = true,
            "--http-conns" => g.http_conns = Some(list(&value(), "http connection count")),
            "--hostile" => g.hostile = true,
            "--hostile-only" => g.hostile_only = true,
            "--latency" => g.latency = true,
            "--latency-only" => g.latency_only = true,
            "--poisson" => g.poisson = true,
            other => usage(&format!("unknown option {other:?}")),
        }
    }
    g.config()
}

impl Given {
    /// The options with the defaults filled in (those of `--quick` where it was given).
    fn config(self) -> Config {
        let quick = self.quick;
        let mut conns = self.conns.unwrap_or(if quick {
            vec![1, 64]
        } else {
            vec![1, 16, 256, 1024, 10000]
        });
        let mut sizes = self.sizes.unwrap_or(vec![64, 4096]);
        let mut stream = self.stream.unwrap_or(vec![1, 16]);
        let mut idle = self.idle.unwrap_or(1000);
        if self.files_only || self.http_only || self.hostile_only || self.latency_only {
            (conns, sizes, stream, idle) = (Vec::new(), Vec::new(), Vec::new(), 0);
        }
        let http = match self.http || self.http_only || self.http_conns.is_some() {
            true => self
                .http_conns
                .unwrap_or(if quick { vec![16] } else { vec![16, 256] }),
            false => Vec::new(),
        };
        if [&conns, &sizes, &stream, &http]
            .iter()
            .any(|v| v.contains(&0))
        {
            usage("connection counts and sizes must be at least 1");
        }
        let out = self.out.unwrap_or_else(default_out);
        let cfg = Config {
            servers: self
                .servers
                .unwrap_or_else(|| servers::all().map(|k| k.name).collect()),
            conns,
            sizes,
            stream,
            idle,
            rounds: self.rounds.unwrap_or(if quick { 1 } else { 5 }).max(1),
            seconds: self.seconds.unwrap_or(if quick { 0.4 } else { 1.0 }),
            warmup: self.warmup.unwrap_or(if quick { 0.2 } else { 0.3 }),
            server_core: self.server_core,
            client_core: self.client_core,
            file_dir: self.file_dir.unwrap_or_else(|| out.join("files")),
            out,
            quick,
            files: self.files || self.files_only,
            http,
            hostile: self.hostile || self.hostile_only,
            latency: self.latency || self.latency_only,
            arrivals: match self.poisson {
                true => Arrivals::Poisson,
                false => Arrivals::Constant,
            },
        };
        if !(cfg.seconds > 0.0 && cfg.warmup >= 0.0) {
            usage("--seconds must be positive and --warmup not negative");
        }
        cfg
    }
}

/// File descriptors a process needs beyond its connections: the listener or epoll fd, the
/// control connection, the log, the standard streams, a runtime's own (eventfd, ring).
const SPARE_FDS: usize = 64;

/// Lifts the soft fd limit to the hard limit (the servers inherit it) and fails, saying what
/// to do, if that is below the largest connection count asked for.
pub fn check_fd_limit(cfg: &Config) -> io::Result<()> {
    let (soft, hard) = sys::raise_nofile();
    let (count, what) = [
        (cfg.conns.iter().max(), "--conns"),
        (cfg.stream.iter().max(), "--stream-conns"),
        (cfg.http.iter().max(), "--http-conns"),
        (Some(&cfg.idle), "--idle"),
        (
            cfg.hostile.then_some(&crate::hostile::MAX_CONNS),
            "--hostile",
        ),
        (
            cfg.latency
                .then(|| crate::latency::CONNS.iter().max())
                .flatten(),
            "--latency",
        ),
    ]
    .into_iter()
    .filter_map(|(n, what)| Some((*n?, what)))
    .max()
    .unwrap_or((1, "--conns"));
    let need = count + SPARE_FDS;
    if (soft as usize) < need {
        return Err(io::Error::other(format!(
            "{count} connections ({what}) need about {need} file descriptors in the load \
             generator and in each server, but RLIMIT_NOFILE allows {soft} (hard limit {hard}); \
             raise the hard limit (e.g. `ulimit -Hn {need}` as root, or LimitNOFILE= for a \
             service) or ask for fewer connections"
        )));
    }
    Ok(())
}
