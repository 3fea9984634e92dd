//! The file cases in the table on stdout: a section per case, their legend, and how the
//! runs read against the file targets.
use std::io::{self, Write};

use super::table::{num, rate_fmt, ratio_fmt, spread_fmt};
use super::{Case, FileFigures, Med, Row, Summary};

/// One file case: its title, the column heads and a line per runner.
pub fn section(out: &mut impl Write, s: &Summary, case: Case) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "== {}", case.title())?;
    writeln!(out, "{}", heads(case))?;
    for r in s.rows.iter().filter(|r| r.case == case) {
        match (&r.skipped, &r.med) {
            (Some(why), _) => writeln!(out, "{:<15} skipped: {why}", r.server)?,
            (None, Some(m)) => writeln!(out, "{}", figures(r, m))?,
            (None, None) => writeln!(
                out,
                "{:<15} FAILED: {}",
                r.server,
                r.first_error.as_deref().unwrap_or("no run finished")
            )?,
        }
    }
    Ok(())
}

fn heads(case: Case) -> String {
    let mut h = format!(
        "{:<15} {:>8} {:>4} {:>7} {:>6} {:>6}  {:>7} {:>7}  {:>7} {:>6} {:>6}  {:>7}",
        "runner",
        if case == Case::FileRandomRead {
            "reads/s"
        } else {
            "writes/s"
        },
        "±%",
        "MiB/s",
        "×epoll",
        "×tokio",
        "p50 µs",
        "p99 µs",
        "cpu µs",
        "×epoll",
        "×tokio",
        "threads"
    );
    if case == Case::FileWriteFsync {
        h += &format!("  {:>7} {:>7} {:>7}", "fsync/s", "f.p50", "f.p99");
    }
    h + &format!("  {:>4}", "err")
}

/// The line of a runner that ran.
fn figures(r: &Row, m: &Med) -> String {
    let f = m.file.unwrap_or(FileFigures {
        mib_s: f64::NAN,
        threads: f64::NAN,
        pool_peak: None,
        unpinned: None,
        syncs_s: f64::NAN,
        sync_p50_us: f64::NAN,
        sync_p99_us: f64::NAN,
    });
    let mut line = format!(
        "{:<15} {:>8} {:>4} {:>7} {:>6} {:>6}  {:>7} {:>7}  {:>7} {:>6} {:>6}  {:>7}",
        r.server,
        rate_fmt(r.case, m.rate),
        spread_fmt(m.rate_spread),
        num(f.mib_s),
        ratio_fmt(r.vs_epoll.map(|v| v.0)),
        ratio_fmt(r.vs_tokio.map(|v| v.0)),
        num(m.p50_us),
        num(m.p99_us),
        num(m.cpu_us),
        ratio_fmt(r.vs_epoll.map(|v| v.1)),
        ratio_fmt(r.vs_tokio.map(|v| v.1)),
        if f.threads.is_finite() {
            format!("{:.0}", f.threads)
        } else {
            "-".into()
        }
    );
    if r.case == Case::FileWriteFsync {
        line += &format!(
            "  {:>7} {:>7} {:>7}",
            num(f.syncs_s),
            num(f.sync_p50_us),
            num(f.sync_p99_us)
        );
    }
    line + &format!("  {:>4}", r.errors)
}

const LEGEND: &[&str] = &[
    "file cases: each run is one runner process pinned to the servers' core; reads/s, \
     writes/s, MiB/s: completed by it per second; ±%: half the range over the rounds.",
    "p50/p99: latency of each read or 64 KiB write as the runner's tasks see it, µs; \
     f.p50/f.p99: of each fsync (after every 16 writes).",
    "cpu µs: the runner's CPU time (getrusage: user+sys of all its threads, pool threads and \
     io_uring workers included) per read or per write (fsyncs included).",
    "×epoll, ×tokio: ÷ corering-epoll and ÷ tokio, the median of the ratios within each \
     round; threads: the most the runner had at once (sampled every 10 ms).",
];

const GO_NOTE: &str = "go: with GOMAXPROCS=1 a read served from the page cache never blocks \
     long enough for the scheduler to switch goroutines, so they read one at a time: its \
     p50/p99 are one pread's time, not a queue of 64.";

pub fn legend(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    if !s.cases.iter().any(Case::is_file) {
        return Ok(());
    }
    writeln!(out)?;
    for line in LEGEND {
        writeln!(out, "{line}")?;
    }
    if s.rows
        .iter()
        .any(|r| r.case.is_file() && r.server == "go" && r.med.is_some())
    {
        writeln!(out, "{GO_NOTE}")?;
    }
    for r in s.rows.iter().filter(|r| r.case.is_file()) {
        let unpinned = r.med.as_ref().and_then(|m| m.file?.unpinned);
        if let Some(n) = unpinned.filter(|n| *n > 0.0) {
            writeln!(
                out,
                "note: {} / {}: {n:.0} thread{} not pinned to the runner's core at the end \
                 (on some kernels io_uring's io-wq workers do not inherit the affinity)",
                r.server,
                r.case.label(),
                if n == 1.0 { "" } else { "s" }
            )?;
        }
    }
    Ok(())
}

/// The file targets: (case, base, the least rate ratio of corering-uring ÷ base).
const TARGETS: &[(Case, &str, f64)] = &[
    (Case::FileRandomRead, "corering-epoll", 2.0),
    (Case::FileRandomRead, "tokio", 1.0),
    (Case::FileWriteFsync, "corering-epoll", 1.0),
];

/// How corering-uring's rate reads against each file target.
pub fn targets(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let uring = |case: Case| {
        s.rows
            .iter()
            .find(|r| r.case == case && r.server == "corering-uring")
    };
    for &(case, base, want) in TARGETS {
        let Some(row) = uring(case) else { continue };
        let ratio = match base {
            "tokio" => row.vs_tokio,
            _ => row.vs_epoll,
        };
        let (verdict, x) = match ratio.map(|r| r.0).filter(|x| x.is_finite()) {
            Some(x) if x >= want => ("met", x),
            Some(x) => ("NOT met", x),
            None => ("unknown (a run is missing)", f64::NAN),
        };
        writeln!(
            out,
            "{}: corering-uring ÷ {base} {} ×{} (target ≥ {want}): {verdict}",
            case.label(),
            if case == Case::FileRandomRead {
                "reads/s"
            } else {
                "writes/s"
            },
            ratio_fmt(Some(x)),
        )?;
    }
    Ok(())
}
