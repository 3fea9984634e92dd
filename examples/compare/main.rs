// cargo run --release --example compare -- [--quick] [--servers a,b] [--conns 1,16,10000] [--sizes 64,4096] [--stream-conns 1,16] [--idle N] [--rounds N] [--seconds S] [--files | --files-only] [--file-dir DIR] [--http | --http-only] [--http-conns 16,256] [--hostile | --hostile-only] [--latency | --latency-only] [--poisson]
//! corering's comparison runner: echo servers on io_uring and on epoll — corering's two
//! backends, hand-written loops with no runtime (the floor), tokio, monoio and Go — each in its
//! own process pinned to one core, driven by one fixed load generator pinned to another core.
//! The cases: request/response echo (message sizes × connection counts up to 10,000),
//! streaming over 1 and 16 connections, and the server's memory per idle connection. With
//! `--files` (or `--files-only`), file I/O too: random 4 KiB reads from the page cache and
//! 64 KiB writes with fsync, each runner a process pinned to the servers' core (`files`). With
//! `--http` (or `--http-only`), HTTP/1.1 keep-alive GETs answered by hyper on corering (both
//! backends) and on tokio, driven by a hand-written keep-alive load generator (`http`). With
//! `--hostile` (or `--hostile-only`), an echo client measured beside connection storms:
//! resets, vanishing connections, slowloris (`hostile`). With `--latency` (or
//! `--latency-only`), an open-loop echo at fixed rates from 10 to 100% of the slowest
//! server's closed-loop peak: latency against offered load, and where each tail bends
//! (`latency`).
//!
//! Prints a progress line (stderr) and a table (stdout); writes JSON, CSV and an SVG chart under
//! `$CARGO_TARGET_DIR/corering-bench/` (default `target/corering-bench/`). `--help` lists the
//! options. The runner starts each server by running itself with the hidden
//! `--serve KIND --addr ADDR`, and each file runner with the hidden
//! `--file-bench KIND CASE PATH WARMUP SECONDS`.
#![warn(clippy::undocumented_unsafe_blocks)]
mod cli;
mod files;
mod hiccup;
mod hostile;
mod http;
mod idle;
mod latency;
mod launcher;
mod load;
mod plan;
mod raw_epoll;
mod raw_uring;
mod raw_uring_ms;
mod report;
mod rounds;
mod servers;
mod sys;

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

pub use cli::Config;
use cli::{check_fd_limit, parse_args, usage};
use launcher::{serve_main, Start};
pub use launcher::{Launcher, ServerProc};
use plan::{plan, Skips};
use report::{Case, RunResult, Sample};
use servers::{Control, ServerStats};

/// Some unit tests count this process's fds: every test that opens sockets takes this lock,
/// so that they run one at a time.
#[cfg(test)]
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve_main(&args);
    }
    if args.first().map(String::as_str) == Some("--file-bench") {
        return files::bench_main(&args);
    }
    let cfg = parse_args(args);
    match run(&cfg) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the runner reads at each end of the measured window.
struct Snap {
    cpu: Option<sys::CpuTime>,
    /// The load generator's own run time and run-queue wait.
    client: Option<(u64, u64)>,
    stats: Option<Result<ServerStats, String>>,
}

fn run_one(launcher: &Launcher, cfg: &Config, server: &str, case: Case) -> RunResult {
    if case.is_file() {
        return files::run_one(launcher, cfg, server, case);
    }
    let mut srv = match launcher.start(server) {
        Start::Up(p) => p,
        Start::Skip(why) => return RunResult::Skipped(why),
        Start::Fail(why) => return RunResult::Failed(why),
    };
    let mut ctl = match srv.ctl.as_deref().map(Control::connect).transpose() {
        Ok(c) => c,
        Err(e) => return RunResult::Failed(format!("control connection: {e}")),
    };
    let pid = srv.child.id();
    let mark = || Snap {
        cpu: sys::cpu_time(pid).ok(),
        client: sys::thread_schedstat(),
        stats: ctl
            .as_mut()
            .map(|c| c.query().map_err(|e| format!("stats query: {e}"))),
    };
    let warmup = Duration::from_secs_f64(cfg.warmup);
    let measure = Duration::from_secs_f64(cfg.seconds);
    let outcome = match case {
        Case::Rr { conns, size } => {
            load::request_response(&srv.data, conns, size, warmup, measure, mark)
        }
        Case::Stream { conns } => load::stream(&srv.data, conns, warmup, measure, mark),
        Case::Http { conns } => http::load(&srv.data, conns, warmup, measure, mark),
        Case::Hostile { storm } => hostile::run(&srv.data, pid, storm, warmup, measure, mark),
        Case::Latency { .. } => latency::run(&srv.data, cfg, case, warmup, measure, mark),
        Case::Idle { conns } => return idle::run(srv, conns),
        Case::FileRandomRead | Case::FileWriteFsync => unreachable!("run by files::run_one"),
    };
    // The load generator's connections are closed by now; did the server survive?
    let exited = srv.child.try_wait().ok().flatten();
    let out = match outcome {
        Ok(o) => o,
        Err(e) => return RunResult::Failed(format!("load generator: {e}")),
    };
    drop(srv);
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let units = if case.per_request() {
        out.units as f64
    } else {
        out.units as f64 / (1024.0 * 1024.0)
    };
    let mut errors = out.errors;
    let mut first_error = out.first_error;
    if let Some(status) = exited {
        errors += 1;
        first_error.get_or_insert(format!("server exited during the run: {status}"));
    }
    let window_ns = secs * 1e9;
    let (mut server_busy, mut server_wait) = (f64::NAN, f64::NAN);
    let (cpu_us, sys_share) = match (out.start.cpu, out.end.cpu) {
        (Some(a), Some(b)) => {
            let total = b.total_ns.saturating_sub(a.total_ns) as f64;
            server_busy = total / window_ns;
            server_wait = b.wait_ns.saturating_sub(a.wait_ns) as f64 / window_ns;
            let user = b.user_ns.saturating_sub(a.user_ns) as f64;
            let sys = b.sys_ns.saturating_sub(a.sys_ns) as f64;
            let share = if user + sys > 0.0 {
                sys / (user + sys)
            } else {
                f64::NAN
            };
            (total / 1000.0 / units.max(1e-9), share)
        }
        _ => (f64::NAN, f64::NAN),
    };
    let (client_busy, client_wait) = match (out.start.client, out.end.client) {
        (Some(a), Some(b)) => (
            b.0.saturating_sub(a.0) as f64 / window_ns,
            b.1.saturating_sub(a.1) as f64 / window_ns,
        ),
        _ => (f64::NAN, f64::NAN),
    };
    let mut stats_delta = None;
    match (out.start.stats, out.end.stats) {
        (Some(Ok(a)), Some(Ok(b))) => stats_delta = Some(b.since(&a)),
        (Some(Err(e)), _) | (_, Some(Err(e))) => {
            errors += 1;
            first_error.get_or_insert(e);
        }
        _ => {}
    }
    let q = |p: f64| {
        out.hist
            .as_ref()
            .filter(|h| !h.is_empty())
            .map_or(f64::NAN, |h| h.value_at_quantile(p) as f64 / 1000.0)
    };
    if out.units == 0 {
        errors += 1;
        first_error.get_or_insert("no responses in the measured window".into());
    }
    RunResult::Ok(Sample {
        rate: units / secs,
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
        cpu_us,
        sys_share,
        server_busy,
        server_wait,
        client_busy,
        client_wait,
        syscalls: stats_delta.map(|d| (d.waits + d.io_syscalls) as f64 / units.max(1e-9)),
        waits: stats_delta.map(|d| d.waits as f64 / units.max(1e-9)),
        ops: stats_delta.map(|d| d.ops_completed as f64 / units.max(1e-9)),
        cq_overflows: stats_delta.map_or(0, |d| d.cq_overflows),
        units: out.units,
        secs,
        errors,
        first_error,
        rss: None,
        file: None,
        storm: out.storm,
        open: out.open,
    })
}

fn run(cfg: &Config) -> io::Result<bool> {
    if cfg!(debug_assertions) {
        eprintln!("compare: WARNING: a debug build; run with --release for meaningful numbers");
    }
    let cores = sys::allowed_cores();
    if cores.is_empty() {
        return Err(io::Error::other("sched_getaffinity reports no usable core"));
    }
    let (mut server_core, mut client_core) = (
        cfg.server_core.unwrap_or(cores[1.min(cores.len() - 1)]),
        cfg.client_core.unwrap_or(cores[0]),
    );
    if cores.len() == 1 {
        eprintln!(
            "compare: only core {} is available: server and load generator share it",
            cores[0]
        );
        (server_core, client_core) = (cores[0], cores[0]);
    } else {
        for c in [server_core, client_core] {
            if !cores.contains(&c) {
                usage(&format!("core {c} is not available (allowed: {cores:?})"));
            }
        }
        if server_core == client_core {
            eprintln!("compare: server and load generator share core {server_core}");
        }
    }
    sys::pin_to(client_core)?;
    check_fd_limit(cfg)?;
    std::fs::create_dir_all(&cfg.out)?;

    // Servers that cannot run here are skipped up front, with the reason.
    let skips = Skips::find(cfg);
    let (cases, mut cells) = plan(cfg, &skips);
    let files = match cells.iter().any(|c| c.case.is_file()) {
        true => Some(files::prepare(cfg, skips.go_files.as_ref().ok().cloned())?),
        false => None,
    };
    let log_path = cfg.out.join("servers.log");
    let launcher = Launcher {
        exe: std::env::current_exe()?,
        go_bin: skips.go_echo.as_ref().ok().cloned(),
        server_core,
        log: std::fs::File::create(&log_path)?,
        files,
    };
    let runs: usize = cells.iter().filter(|c| c.skipped.is_none()).count();
    eprintln!(
        "compare: {} servers × {} cases: {runs} runs × {} rounds, {} s + {} s warm-up each; \
         servers on core {server_core}, load on core {client_core}; output in {}",
        cfg.servers.len(),
        cases.len(),
        cfg.rounds,
        cfg.seconds,
        cfg.warmup,
        cfg.out.display()
    );
    // How busy the two cores are before we start: other work there adds noise.
    let mut bench_cores = vec![server_core, client_core];
    bench_cores.dedup();
    let busy_before = {
        let a = sys::core_ticks(&bench_cores);
        std::thread::sleep(Duration::from_millis(300));
        match (a, sys::core_ticks(&bench_cores)) {
            (Some(a), Some(b)) => {
                let total = b.total.saturating_sub(a.total).max(1) as f64;
                b.busy.saturating_sub(a.busy) as f64 / total
            }
            _ => f64::NAN,
        }
    };
    if busy_before > 0.15 {
        eprintln!(
            "compare: WARNING: other processes already use {:.0}% of cores {bench_cores:?}; \
             expect noisy figures",
            busy_before * 100.0
        );
    }
    // The machine's own stalls bound what the latency cases can show: measured first.
    let hiccups = match cfg.latency {
        true => hiccup::measure(&bench_cores),
        false => Vec::new(),
    };
    let (ticks_start, own_start) = (sys::core_ticks(&bench_cores), sys::own_ticks());
    rounds::run_all(cfg, &cases, &mut cells, runs, &launcher);
    // The latency cases' rates come from the closed-loop peaks just measured.
    latency::run_phase(cfg, &mut cells, &launcher);

    let summary = report::summarize(&cells);
    let mut stdout = io::stdout().lock();
    let (other, steal) = match (ticks_start, sys::core_ticks(&bench_cores)) {
        (Some(a), Some(b)) => {
            let total = b.total.saturating_sub(a.total).max(1) as f64;
            let busy = b.busy.saturating_sub(a.busy) as f64;
            let ours = sys::own_ticks().saturating_sub(own_start) as f64;
            (
                ((busy - ours) / total).max(0.0),
                b.steal.saturating_sub(a.steal) as f64 / total,
            )
        }
        _ => (f64::NAN, f64::NAN),
    };
    let info = report::RunInfo {
        server_core,
        client_core,
        busy_before,
        other,
        steal,
        hiccups,
    };
    report::print_table(&mut stdout, cfg, &summary, &info)?;
    let files = report::write_files(cfg, &summary, &cells, &info)?;
    writeln!(stdout)?;
    for f in files.iter().chain([&log_path]) {
        writeln!(stdout, "wrote {}", f.display())?;
    }
    let ok = report::check(&summary, &mut stdout)?;
    Ok(ok)
}
