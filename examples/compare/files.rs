//! The file cases (`--files`, `--files-only`): each run is a runner process pinned to the
//! servers' core, started as `compare --file-bench KIND CASE PATH WARMUP SECONDS` (the Go
//! runner is its own binary), that measures itself and prints one JSON line
//! (`measure::result_line`) at the end.
//!
//! - `file_random_read`: 64 reads of 4 KiB in flight at random 4 KiB-aligned offsets of a
//!   256 MiB file that was written once into `--file-dir` and read through (into the page
//!   cache) before each run.
//! - `file_write_fsync`: one writer, sequential 64 KiB writes to a fresh file in `--file-dir`,
//!   an fsync after every 16 (1 MiB); the run ends after `--seconds` or 256 MiB.
//!
//! The runner samples the process's thread count (`Threads:`) every 10 ms and keeps the
//! peak; the CPU time is the runner's own `getrusage(RUSAGE_SELF)` over its window.
mod corering;
mod go;
mod measure;
mod tokio;

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::report::{Case, FileFigures, RunResult, Sample};
use crate::{sys, Config, Launcher};

pub use go::SOURCE as GO_SOURCE;
pub use measure::{IN_FLIGHT, READ_FILE, READ_SIZE, SYNC_EVERY, WRITE_CHUNK};

/// The server kinds that have a file runner.
pub const RUNNERS: &[&str] = &["corering-uring", "corering-epoll", "tokio", "go"];

/// The read file's name in `--file-dir`.
const READ_NAME: &str = "random-read-256MiB.dat";

/// What a runner process is told to do.
#[derive(Clone, Copy)]
enum Workload {
    RandomRead,
    WriteFsync,
}

impl Workload {
    fn of(case: Case) -> Option<Workload> {
        match case {
            Case::FileRandomRead => Some(Workload::RandomRead),
            Case::FileWriteFsync => Some(Workload::WriteFsync),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Workload::RandomRead => "file_random_read",
            Workload::WriteFsync => "file_write_fsync",
        }
    }
}

/// A runner's orders, from its command line.
struct Params {
    workload: Workload,
    path: PathBuf,
    warmup: Duration,
    seconds: Duration,
}

// ---- the runner process -------------------------------------------------------------------

/// The hidden runner mode: `--file-bench KIND CASE PATH WARMUP SECONDS`.
pub fn bench_main(args: &[String]) -> ExitCode {
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let secs = |i: usize| arg(i).parse::<f64>().ok().filter(|s| *s >= 0.0);
    let workload = match arg(2) {
        "file_random_read" => Some(Workload::RandomRead),
        "file_write_fsync" => Some(Workload::WriteFsync),
        _ => None,
    };
    let (Some(workload), Some(warmup), Some(seconds)) = (workload, secs(4), secs(5)) else {
        eprintln!("usage: compare --file-bench KIND CASE PATH WARMUP SECONDS");
        return ExitCode::from(2);
    };
    let p = Params {
        workload,
        path: PathBuf::from(arg(3)),
        warmup: Duration::from_secs_f64(warmup),
        seconds: Duration::from_secs_f64(seconds),
    };
    let kind = arg(1);
    let res = match kind {
        "corering-uring" => corering::run(::corering::BackendChoice::Uring, &p),
        "corering-epoll" => corering::run(::corering::BackendChoice::Epoll, &p),
        "tokio" => tokio::run(&p).map(Ok),
        other => Err(io::Error::other(format!("no file runner {other:?}"))),
    };
    let line = match res {
        Ok(Ok(line)) => line,
        Ok(Err(why)) => format!("SKIP {why}"),
        Err(e) => {
            eprintln!("compare --file-bench {kind} {}: {e}", workload.name());
            return ExitCode::FAILURE;
        }
    };
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    ExitCode::SUCCESS
}

// ---- the runner's side --------------------------------------------------------------------

/// Where the file cases run, ready for them.
pub struct Setup {
    dir: PathBuf,
    read_file: PathBuf,
    go_bin: Option<PathBuf>,
}

/// The file cases of this invocation (none without `--files`).
pub fn cases(cfg: &Config) -> Vec<Case> {
    if cfg.files {
        vec![Case::FileRandomRead, Case::FileWriteFsync]
    } else {
        Vec::new()
    }
}

/// Makes `--file-dir`, says what it is on, and writes the read file if it is not there yet;
/// `go_bin` is the Go runner, if it was built.
pub fn prepare(cfg: &Config, go_bin: Option<PathBuf>) -> io::Result<Setup> {
    let dir = cfg.file_dir.clone();
    std::fs::create_dir_all(&dir)?;
    let fs = match sys::fs_type(&dir) {
        Ok((_, name)) => name,
        Err(e) => {
            eprintln!("compare: statfs {}: {e}", dir.display());
            "unknown"
        }
    };
    if matches!(fs, "tmpfs" | "ramfs") {
        eprintln!(
            "compare: WARNING: --file-dir {} is on {fs} (memory): fsync there reaches no disk; \
             give a directory on a real disk for file_write_fsync",
            dir.display()
        );
    }
    let read_file = dir.join(READ_NAME);
    make_read_file(&read_file)?;
    eprintln!("compare: file cases in {} ({fs})", dir.display());
    Ok(Setup {
        dir,
        read_file,
        go_bin,
    })
}

/// Writes the 256 MiB read file (not sparse: every block holds data) unless a file of that
/// size is there, and syncs it so no writeback runs during the reads.
fn make_read_file(path: &Path) -> io::Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == measure::READ_FILE) {
        return Ok(());
    }
    eprintln!(
        "compare: writing the {} MiB read file {} (once)",
        measure::READ_FILE >> 20,
        path.display()
    );
    let mut f = std::fs::File::create(path)?;
    let mut block = vec![0u8; 1 << 20];
    let mut x: u64 = 0x243F_6A88_85A3_08D3;
    for _ in 0..measure::READ_FILE >> 20 {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&block)?;
    }
    f.sync_all()
}

/// Reads the whole read file, so that every page of it is in the page cache.
fn warm(path: &Path) -> io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut block = vec![0u8; 1 << 20];
    while f.read(&mut block)? > 0 {}
    Ok(())
}

/// A runner process; killed when dropped.
struct RunnerProc(Child);

impl Drop for RunnerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The command of `runner` for `workload` on `path`.
fn command(
    l: &Launcher,
    cfg: &Config,
    runner: &str,
    w: Workload,
    path: &Path,
) -> Result<Command, String> {
    let (warmup, seconds) = (cfg.warmup.to_string(), cfg.seconds.to_string());
    let setup = l.files.as_ref().ok_or("the file cases were not prepared")?;
    let mut cmd = if runner == "go" {
        let bin = setup
            .go_bin
            .as_ref()
            .ok_or("the Go file runner is not built")?;
        let mut c = Command::new(bin);
        c.arg("-case").arg(w.name()).arg("-path").arg(path);
        c.args(["-warmup", &warmup, "-seconds", &seconds]);
        c.env("GOMAXPROCS", "1");
        c
    } else {
        let mut c = Command::new(&l.exe);
        c.args(["--file-bench", runner, w.name()]).arg(path);
        c.args([warmup, seconds]);
        c
    };
    let log = l.log.try_clone().map_or(Stdio::null(), Stdio::from);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    let core = l.server_core;
    // SAFETY: the hook runs in the child between fork and exec; it only makes the
    // sched_setaffinity syscall on a stack-allocated set, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || sys::pin_to(core));
    }
    Ok(cmd)
}

/// Waits for the runner to end (killing it after `limit`), sampling its thread count every
/// 10 ms: its exit status and the peak count.
fn watch(p: &mut RunnerProc, limit: Duration) -> Result<(std::process::ExitStatus, u64), String> {
    let (pid, started, mut peak) = (p.0.id(), Instant::now(), 0);
    loop {
        if let Some(status) = p.0.try_wait().map_err(|e| e.to_string())? {
            return Ok((status, peak));
        }
        peak = peak.max(sys::thread_count(pid).unwrap_or(0));
        if started.elapsed() > limit {
            return Err(format!("did not finish within {} s", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One run of `runner` in the file case `case`.
pub fn run_one(l: &Launcher, cfg: &Config, runner: &str, case: Case) -> RunResult {
    let (Some(w), Some(setup)) = (Workload::of(case), l.files.as_ref()) else {
        return RunResult::Failed("not a prepared file case".into());
    };
    let path = match w {
        Workload::RandomRead => setup.read_file.clone(),
        Workload::WriteFsync => setup.dir.join(format!("write-fsync-{runner}.dat")),
    };
    let ready = match w {
        Workload::RandomRead => warm(&path),
        Workload::WriteFsync => std::fs::remove_file(&path).or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }),
    };
    if let Err(e) = ready {
        return RunResult::Failed(format!("{}: {e}", path.display()));
    }
    let result = command(l, cfg, runner, w, &path).and_then(|mut cmd| {
        let mut p = RunnerProc(cmd.spawn().map_err(|e| format!("could not start: {e}"))?);
        let limit = Duration::from_secs_f64(cfg.warmup + cfg.seconds + 30.0);
        let (status, peak) = watch(&mut p, limit)?;
        let mut out = String::new();
        if let Some(mut s) = p.0.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if !status.success() {
            return Err(format!(
                "exited with {status} (see servers.log in the output directory)"
            ));
        }
        Ok((out, peak))
    });
    if matches!(w, Workload::WriteFsync) {
        let _ = std::fs::remove_file(&path);
    }
    match result {
        Ok((out, peak)) => parse(&out, peak),
        Err(why) => RunResult::Failed(why),
    }
}

/// The run's figures from the runner's result line.
fn parse(out: &str, threads: u64) -> RunResult {
    let line = out.lines().last().unwrap_or("").trim();
    if let Some(why) = line.strip_prefix("SKIP ") {
        return RunResult::Skipped(why.to_string());
    }
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return RunResult::Failed(format!("bad result line {line:?}"));
    };
    let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let u = |k: &str| v[k].as_u64().unwrap_or(0);
    let (ops, secs, cpu) = (u("ops"), f("secs"), f("user_s") + f("sys_s"));
    let mut errors = u("errors");
    let mut first_error = v["first_error"].as_str().map(str::to_string);
    if ops == 0 {
        errors += 1;
        first_error.get_or_insert("no operations in the measured window".into());
    }
    let per_s = |n: f64| n / secs.max(1e-9);
    RunResult::Ok(Sample {
        rate: per_s(ops as f64),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        p999_us: f("p999_us"),
        cpu_us: cpu * 1e6 / (ops as f64).max(1e-9),
        sys_share: f("sys_s") / cpu,
        server_busy: cpu / secs.max(1e-9),
        server_wait: f64::NAN,
        client_busy: f64::NAN,
        client_wait: f64::NAN,
        syscalls: None,
        waits: None,
        ops: None,
        cq_overflows: 0,
        units: ops,
        secs,
        errors,
        first_error,
        rss: None,
        file: Some(Box::new(FileFigures {
            mib_s: per_s(f("bytes")) / (1024.0 * 1024.0),
            threads: threads as f64,
            pool_peak: v["pool_peak"].as_f64(),
            unpinned: v["unpinned_threads"].as_f64(),
            syncs_s: per_s(f("syncs")),
            sync_p50_us: f("sync_p50_us"),
            sync_p99_us: f("sync_p99_us"),
        })),
        storm: None,
        open: None,
    })
}
