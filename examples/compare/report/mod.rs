//! The data model of a comparison: the cases, the figures of each run, and the medians and
//! ratios over the rounds. The outputs live in the submodules: the terminal table and the
//! final check (`table`), and the files (`json`, `csv`, `svg`).
mod case;
mod csv;
mod file_table;
mod hostile_table;
mod http_table;
mod json;
mod latency_svg;
mod latency_table;
mod summary;
mod svg;
mod table;

use std::io;
use std::path::PathBuf;

use super::servers;
use super::Config;
use crate::hostile::StormFigures;
use crate::load::OpenFigures;

pub use case::{Case, IDLE_ECHO, STREAM_CHUNK};
pub use summary::{median, summarize};
use summary::{median_opt, spread};
pub use table::{check, print_table};

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Requests/s (request/response) or MiB/s (streaming).
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Server CPU time (user + sys) per request or per MiB, µs.
    pub cpu_us: f64,
    /// The system share of that CPU time (0..1; from clock ticks, coarse).
    pub sys_share: f64,
    /// Shares of the measured window: the server's CPU time, and the time its threads waited
    /// for their core while runnable; the same for the load generator's thread.
    pub server_busy: f64,
    pub server_wait: f64,
    pub client_busy: f64,
    pub client_wait: f64,
    /// Server syscalls per unit: io_uring_enter, or epoll_wait + the I/O syscalls.
    pub syscalls: Option<f64>,
    /// io_uring_enter / epoll_wait calls per unit.
    pub waits: Option<f64>,
    /// Operations completed per unit.
    pub ops: Option<f64>,
    pub cq_overflows: u64,
    /// Requests or bytes in the window, and its length.
    pub units: u64,
    pub secs: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The idle-connection case only: the server's resident memory.
    pub rss: Option<Rss>,
    /// The file cases only: their own figures (boxed: most runs have none).
    pub file: Option<Box<FileFigures>>,
    /// The hostile cases only: what the storm did.
    pub storm: Option<StormFigures>,
    /// The latency cases only: the open loop's own figures.
    pub open: Option<OpenFigures>,
}

/// What a file run measures beyond the rate (operations/s) and the latency of each
/// operation (a read, or a 64 KiB write).
#[derive(Clone, Copy, Debug)]
pub struct FileFigures {
    pub mib_s: f64,
    /// The most threads the runner process had at once (sampled every 10 ms).
    pub threads: f64,
    /// corering: the most blocking-pool threads alive at once.
    pub pool_peak: Option<f64>,
    /// Threads at the end whose allowed CPUs differ from the pinned main thread's.
    pub unpinned: Option<f64>,
    /// fsyncs per second and their latency (the write case).
    pub syncs_s: f64,
    pub sync_p50_us: f64,
    pub sync_p99_us: f64,
}

impl FileFigures {
    /// The medians of the file figures of the runs that have them.
    fn median(samples: &[&Sample]) -> Option<FileFigures> {
        let f: Vec<FileFigures> = samples
            .iter()
            .filter_map(|s| s.file.as_deref().copied())
            .collect();
        let col = |g: fn(&FileFigures) -> f64| median(f.iter().map(g).collect());
        let opt = |g: fn(&FileFigures) -> Option<f64>| median_opt(f.iter().map(g).collect());
        (!f.is_empty()).then(|| FileFigures {
            mib_s: col(|x| x.mib_s),
            threads: col(|x| x.threads),
            pool_peak: opt(|x| x.pool_peak),
            unpinned: opt(|x| x.unpinned),
            syncs_s: col(|x| x.syncs_s),
            sync_p50_us: col(|x| x.sync_p50_us),
            sync_p99_us: col(|x| x.sync_p99_us),
        })
    }
}

/// A server's resident memory before and after it took the idle connections, in bytes, and
/// the growth per connection.
#[derive(Clone, Copy, Debug)]
pub struct Rss {
    pub before: f64,
    pub after: f64,
    pub per_conn: f64,
}

// One per run, a few hundred in all: boxing the sample would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum RunResult {
    Ok(Sample),
    Skipped(String),
    Failed(String),
}

/// Every run of one server in one case.
pub struct Cell {
    pub server: &'static str,
    pub case: Case,
    /// Each run with the round it ran in.
    pub runs: Vec<(usize, RunResult)>,
    pub skipped: Option<String>,
}

impl Cell {
    /// The runs that finished and count (see `Sample::counts`), with their rounds; every run
    /// that finished if none counts. The medians and the per-round ratios both take these.
    pub(super) fn counted(&self) -> Vec<(usize, &Sample)> {
        let all: Vec<(usize, &Sample)> = self
            .runs
            .iter()
            .filter_map(|(round, r)| match r {
                RunResult::Ok(s) => Some((*round, s)),
                _ => None,
            })
            .collect();
        match all.iter().any(|(_, s)| s.counts()) {
            true => all.into_iter().filter(|(_, s)| s.counts()).collect(),
            false => all,
        }
    }

    /// The runs the figures are made of (`counted`).
    fn samples(&self) -> Vec<&Sample> {
        self.counted().into_iter().map(|(_, s)| s).collect()
    }

    /// The runs that finished but do not count.
    fn disturbed(&self) -> usize {
        let ok = self
            .runs
            .iter()
            .filter(|(_, r)| matches!(r, RunResult::Ok(_)));
        ok.count() - self.counted().len()
    }
}

impl Sample {
    /// Whether the run counts in the medians and ratios: not one of the latency cases'
    /// where the load generator fell behind its own schedule (its lag p99 over a quarter
    /// of the p99), which measured the client's core, not the server.
    pub fn counts(&self) -> bool {
        self.open
            .is_none_or(|o| o.lag_p99_us.is_nan() || o.lag_p99_us <= self.p99_us / 4.0)
    }
}

/// Medians over the rounds that ran.
#[derive(Clone, Debug, Default)]
pub struct Med {
    pub rate: f64,
    /// Half the range of the rate over the rounds, relative to the median (0.05 = ±5%).
    pub rate_spread: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub cpu_us: f64,
    pub sys_share: f64,
    /// The server's CPU time as a share of the window (1.0 = its core busy throughout).
    pub server_busy: f64,
    pub syscalls: Option<f64>,
    pub waits: Option<f64>,
    pub ops: Option<f64>,
    pub cq_overflows: u64,
    /// Idle connections: the medians of the memory figures, and the spread of the growth
    /// per connection (as `rate_spread`).
    pub rss: Option<Rss>,
    pub rss_spread: f64,
    /// The file cases: the medians of their own figures.
    pub file: Option<FileFigures>,
    /// The hostile cases: the medians of the storm's figures.
    pub storm: Option<StormFigures>,
    /// The latency cases: the medians of the open loop's figures.
    pub open: Option<OpenFigures>,
}

impl Med {
    /// No figures: every number unknown.
    fn unknown() -> Med {
        Med {
            rate: f64::NAN,
            rate_spread: f64::NAN,
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            p999_us: f64::NAN,
            cpu_us: f64::NAN,
            sys_share: f64::NAN,
            server_busy: f64::NAN,
            rss_spread: f64::NAN,
            ..Med::default()
        }
    }

    fn of(samples: &[&Sample]) -> Med {
        let col = |f: fn(&Sample) -> f64| median(samples.iter().map(|s| f(s)).collect());
        let opt =
            |f: fn(&Sample) -> Option<f64>| median_opt(samples.iter().map(|s| f(s)).collect());
        let rate = col(|s| s.rate);
        let rss = rss_median(samples);
        Med {
            rate,
            rate_spread: spread(samples.iter().map(|s| s.rate), rate),
            p50_us: col(|s| s.p50_us),
            p99_us: col(|s| s.p99_us),
            p999_us: col(|s| s.p999_us),
            cpu_us: col(|s| s.cpu_us),
            sys_share: col(|s| s.sys_share),
            server_busy: col(|s| s.server_busy),
            syscalls: opt(|s| s.syscalls),
            waits: opt(|s| s.waits),
            ops: opt(|s| s.ops),
            cq_overflows: samples.iter().map(|s| s.cq_overflows).sum(),
            rss,
            rss_spread: spread(
                samples.iter().filter_map(|s| s.rss.map(|m| m.per_conn)),
                rss.map_or(f64::NAN, |m| m.per_conn),
            ),
            file: FileFigures::median(samples),
            storm: StormFigures::median(samples),
            open: open_median(samples),
        }
    }
}

/// The medians of the open loop's figures of the runs that have them.
fn open_median(samples: &[&Sample]) -> Option<OpenFigures> {
    let f: Vec<OpenFigures> = samples.iter().filter_map(|s| s.open).collect();
    let col = |g: fn(&OpenFigures) -> f64| median(f.iter().map(g).collect());
    (!f.is_empty()).then(|| OpenFigures {
        offered: col(|x| x.offered),
        max_us: col(|x| x.max_us),
        lag_p99_us: col(|x| x.lag_p99_us),
        lag_max_us: col(|x| x.lag_max_us),
        unanswered: col(|x| x.unanswered),
    })
}

/// The medians of the memory figures of the runs that have them.
fn rss_median(samples: &[&Sample]) -> Option<Rss> {
    let rss: Vec<Rss> = samples.iter().filter_map(|s| s.rss).collect();
    let col = |f: fn(&Rss) -> f64| median(rss.iter().map(f).collect());
    (!rss.is_empty()).then(|| Rss {
        before: col(|m| m.before),
        after: col(|m| m.after),
        per_conn: col(|m| m.per_conn),
    })
}

pub struct Row {
    pub server: &'static str,
    pub case: Case,
    pub skipped: Option<String>,
    pub med: Option<Med>,
    pub rounds_ok: usize,
    /// Rounds that finished but were left out (`Sample::counts`).
    pub rounds_disturbed: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    /// This server ÷ its floor and ÷ tokio (in the http cases ÷ hyper-tokio): (rate ratio,
    /// CPU ratio).
    pub vs_floor: Option<(f64, f64)>,
    pub vs_tokio: Option<(f64, f64)>,
    /// Idle connections: memory per connection ÷ the floor's and ÷ tokio's.
    pub rss_vs_floor: Option<f64>,
    pub rss_vs_tokio: Option<f64>,
    /// The file cases: this runner ÷ corering-epoll (rate ratio, CPU ratio); they have no
    /// floor.
    pub vs_epoll: Option<(f64, f64)>,
    /// The hostile and latency cases: p99 latency ÷ tokio's; the latency cases: ÷
    /// corering-epoll's too.
    pub p99_vs_tokio: Option<f64>,
    pub p99_vs_epoll: Option<f64>,
}

impl Row {
    /// The row of one cell, without the ratios.
    fn of(cell: &Cell) -> Row {
        let samples = cell.samples();
        let mut errors: u64 = samples.iter().map(|s| s.errors).sum();
        let mut first_error = samples.iter().find_map(|s| s.first_error.clone());
        for (_, r) in &cell.runs {
            if let RunResult::Failed(why) = r {
                errors += 1;
                first_error.get_or_insert(why.clone());
            }
        }
        Row {
            server: cell.server,
            case: cell.case,
            skipped: cell.skipped.clone(),
            med: (!samples.is_empty()).then(|| Med::of(&samples)),
            rounds_ok: samples.len(),
            rounds_disturbed: cell.disturbed(),
            errors,
            first_error,
            vs_floor: None,
            vs_tokio: None,
            rss_vs_floor: None,
            rss_vs_tokio: None,
            vs_epoll: None,
            p99_vs_tokio: None,
            p99_vs_epoll: None,
        }
    }
}

pub struct Summary {
    pub rows: Vec<Row>,
    pub cases: Vec<Case>,
}

/// Where the run ran, and how quiet the machine was.
pub struct RunInfo {
    pub server_core: usize,
    pub client_core: usize,
    /// Share of the two cores' time that other processes used just before the start.
    pub busy_before: f64,
    /// Share of the two cores' time used by processes other than the runner and its servers
    /// during the run, and the share the hypervisor stole.
    pub other: f64,
    pub steal: f64,
    /// The latency cases: what a thread spinning on each of the two cores saw before them.
    pub hiccups: Vec<crate::hiccup::Hiccups>,
}

/// Writes compare.json, compare.csv, compare.svg (when the matrix has request/response
/// cases) and latency.svg (when the latency cases ran) into the output directory.
pub fn write_files(
    cfg: &Config,
    s: &Summary,
    cells: &[Cell],
    info: &RunInfo,
) -> io::Result<Vec<PathBuf>> {
    let json_path = cfg.out.join("compare.json");
    std::fs::write(&json_path, json::document(cfg, s, cells, info))?;
    let csv_path = cfg.out.join("compare.csv");
    std::fs::write(&csv_path, csv::table(s))?;
    let mut written = vec![json_path, csv_path];
    // The chart shows the request/response cases of the matrix only.
    if !cfg.sizes.is_empty() && !cfg.conns.is_empty() {
        let svg_path = cfg.out.join("compare.svg");
        std::fs::write(&svg_path, svg::chart(cfg, s))?;
        written.push(svg_path);
    }
    if s.cases.iter().any(Case::is_latency) {
        let svg_path = cfg.out.join("latency.svg");
        std::fs::write(&svg_path, latency_svg::chart(cfg, s))?;
        written.push(svg_path);
    }
    Ok(written)
}
