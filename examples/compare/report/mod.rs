//! The data model of a comparison: the cases, the figures of each run, and the medians and
//! ratios over the rounds. The outputs live in the submodules: the terminal table and the
//! final check (`table`), and the files (`json`, `csv`, `svg`).
mod csv;
mod json;
mod svg;
mod table;

use std::io;
use std::path::PathBuf;

use super::servers;
use super::Config;

pub use table::{check, print_table};

/// One case of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Request/response echo over `conns` connections with `size`-byte messages.
    Rr { conns: usize, size: usize },
    /// One connection streaming 64 KiB writes; figures per MiB.
    Stream,
}

impl Case {
    pub fn label(&self) -> String {
        match self {
            Case::Rr { conns, size } => format!("rr {} c={conns}", size_label(*size)),
            Case::Stream => "stream".into(),
        }
    }

    fn title(&self) -> String {
        match self {
            Case::Rr { conns, size } => format!(
                "request/response, {}, {conns} connection{} (per request)",
                size_label(*size),
                if *conns == 1 { "" } else { "s" }
            ),
            Case::Stream => "streaming, 1 connection, 64 KiB writes (per MiB echoed)".into(),
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Case::Rr { .. } => "request",
            Case::Stream => "MiB",
        }
    }
}

fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

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
}

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
    /// The runs that finished.
    fn samples(&self) -> Vec<&Sample> {
        self.runs
            .iter()
            .filter_map(|(_, r)| match r {
                RunResult::Ok(s) => Some(s),
                _ => None,
            })
            .collect()
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
    pub syscalls: Option<f64>,
    pub waits: Option<f64>,
    pub ops: Option<f64>,
    pub cq_overflows: u64,
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
            ..Med::default()
        }
    }

    fn of(samples: &[&Sample]) -> Med {
        let col = |f: fn(&Sample) -> f64| median(samples.iter().map(|s| f(s)).collect());
        let opt =
            |f: fn(&Sample) -> Option<f64>| median_opt(samples.iter().map(|s| f(s)).collect());
        let rate = col(|s| s.rate);
        Med {
            rate,
            rate_spread: spread(samples.iter().map(|s| s.rate), rate),
            p50_us: col(|s| s.p50_us),
            p99_us: col(|s| s.p99_us),
            p999_us: col(|s| s.p999_us),
            cpu_us: col(|s| s.cpu_us),
            sys_share: col(|s| s.sys_share),
            syscalls: opt(|s| s.syscalls),
            waits: opt(|s| s.waits),
            ops: opt(|s| s.ops),
            cq_overflows: samples.iter().map(|s| s.cq_overflows).sum(),
        }
    }
}

pub struct Row {
    pub server: &'static str,
    pub case: Case,
    pub skipped: Option<String>,
    pub med: Option<Med>,
    pub rounds_ok: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    /// This server ÷ its floor and ÷ tokio: (rate ratio, CPU ratio).
    pub vs_floor: Option<(f64, f64)>,
    pub vs_tokio: Option<(f64, f64)>,
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
            errors,
            first_error,
            vs_floor: None,
            vs_tokio: None,
        }
    }
}

pub struct Summary {
    pub rows: Vec<Row>,
    pub cases: Vec<Case>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn median_opt(v: Vec<Option<f64>>) -> Option<f64> {
    let some: Vec<f64> = v.into_iter().flatten().collect();
    (!some.is_empty()).then(|| median(some))
}

/// Half the range of `values` relative to their median `med`; unknown for a single value.
fn spread(values: impl Iterator<Item = f64>, med: f64) -> f64 {
    let (n, lo, hi) = values.fold((0, f64::INFINITY, 0.0f64), |(n, lo, hi), r| {
        (n + 1, lo.min(r), hi.max(r))
    });
    if n > 1 && med > 0.0 {
        (hi - lo) / 2.0 / med
    } else {
        f64::NAN
    }
}

/// The (round, rate, CPU) of every finished run of `server` in `case`.
fn by_round(cells: &[Cell], server: &str, case: Case) -> Vec<(usize, f64, f64)> {
    cells
        .iter()
        .filter(|c| c.server == server && c.case == case && c.skipped.is_none())
        .flat_map(|c| c.runs.iter())
        .filter_map(|(round, r)| match r {
            RunResult::Ok(s) => Some((*round, s.rate, s.cpu_us)),
            _ => None,
        })
        .collect()
}

/// `server` ÷ `base` in `case`: the median over the rounds of the ratios within each round
/// (the two ran minutes apart at most, so drift that hits a whole round cancels).
fn paired(cells: &[Cell], server: &str, base: &str, case: Case) -> Option<(f64, f64)> {
    let theirs = by_round(cells, base, case);
    let (mut rate, mut cpu) = (Vec::new(), Vec::new());
    for (round, r, c) in by_round(cells, server, case) {
        if let Some(&(_, br, bc)) = theirs.iter().find(|t| t.0 == round) {
            rate.push(r / br);
            cpu.push(c / bc);
        }
    }
    (!rate.is_empty()).then(|| (median(rate), median(cpu)))
}

/// The rows of every cell, with the ratios against the floor of the same kernel interface
/// and against tokio.
pub fn summarize(cells: &[Cell]) -> Summary {
    let mut cases: Vec<Case> = Vec::new();
    for cell in cells {
        if !cases.contains(&cell.case) {
            cases.push(cell.case);
        }
    }
    let mut rows: Vec<Row> = cells.iter().map(Row::of).collect();
    for row in rows.iter_mut() {
        let floor = servers::kind(row.server).and_then(|k| k.floor);
        row.vs_floor = floor.and_then(|f| paired(cells, row.server, f, row.case));
        if row.server != "tokio" {
            row.vs_tokio = paired(cells, row.server, "tokio", row.case);
        }
    }
    Summary { rows, cases }
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
}

/// Writes compare.json, compare.csv and compare.svg into the output directory.
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
    let svg_path = cfg.out.join("compare.svg");
    std::fs::write(&svg_path, svg::chart(cfg, s))?;
    Ok(vec![json_path, csv_path, svg_path])
}
