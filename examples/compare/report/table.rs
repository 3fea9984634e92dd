//! The table on stdout, and the final check of the run.
use std::io::{self, Write};

use super::{
    file_table, hostile_table, http_table, latency_table, Case, Med, Row, RunInfo, Summary,
};
use crate::Config;

pub(super) fn rate_fmt(case: Case, x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    match case {
        Case::Stream { .. } | Case::Idle { .. } => format!("{x:.0}"),
        _ if x >= 1e6 => format!("{:.2}M", x / 1e6),
        _ if x >= 1e4 => format!("{:.1}k", x / 1e3),
        _ if x >= 1e3 => format!("{:.2}k", x / 1e3),
        _ => format!("{x:.0}"),
    }
}

pub(super) fn num(x: f64) -> String {
    if !x.is_finite() {
        "-".into()
    } else if x >= 1000.0 {
        format!("{x:.0}")
    } else if x >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

pub(super) fn ratio_fmt(r: Option<f64>) -> String {
    match r {
        Some(x) if x.is_finite() => format!("{x:.2}"),
        _ => "-".into(),
    }
}

/// A row's line after `who` (its case and server): its figures, or why it has none.
pub(super) fn row_line(
    out: &mut impl Write,
    who: &str,
    r: &Row,
    figures: impl Fn(&Row, &Med) -> String,
) -> io::Result<()> {
    match (&r.skipped, &r.med) {
        (Some(why), _) => writeln!(out, "{who} skipped: {why}"),
        (None, Some(m)) => writeln!(out, "{who} {}", figures(r, m)),
        (None, None) => writeln!(
            out,
            "{who} FAILED: {}",
            r.first_error.as_deref().unwrap_or("no run finished")
        ),
    }
}

pub(super) fn spread_fmt(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}", x * 100.0)
    } else {
        "-".into()
    }
}

/// Geometric mean and range of a ratio over the request/response cases.
fn geomean(v: &[f64]) -> Option<(f64, f64, f64)> {
    let v: Vec<f64> = v
        .iter()
        .copied()
        .filter(|x| x.is_finite() && *x > 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    let g = (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp();
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((g, lo, hi))
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", x * 100.0)
    } else {
        "unknown".into()
    }
}

pub fn print_table(
    out: &mut impl Write,
    cfg: &Config,
    s: &Summary,
    info: &RunInfo,
) -> io::Result<()> {
    heading(out, cfg, info)?;
    for &case in s
        .cases
        .iter()
        .filter(|c| !c.is_hostile() && !c.is_latency())
    {
        section(out, s, case)?;
    }
    hostile_table::table(out, s)?;
    latency_table::table(out, s)?;
    legend(out, s)?;
    file_table::legend(out, s)?;
    http_table::legend(out, s)?;
    hostile_table::legend(out, s)?;
    latency_table::legend(out, s, info)?;
    writeln!(out)?;
    overhead(out, s)?;
    file_table::targets(out, s)?;
    http_table::targets(out, s)?;
    hostile_table::targets(out, s)?;
    latency_table::targets(out, s)
}

/// Where and how the figures were taken.
fn heading(out: &mut impl Write, cfg: &Config, info: &RunInfo) -> io::Result<()> {
    writeln!(
        out,
        "corering compare — kernel {}, {}; servers pinned to core {}, load generator to core {}; \
         medians of {} round{} × {} s",
        crate::sys::kernel(),
        crate::sys::cpu_model(),
        info.server_core,
        info.client_core,
        cfg.rounds,
        if cfg.rounds == 1 { "" } else { "s" },
        cfg.seconds
    )?;
    writeln!(
        out,
        "other processes used {} of the two cores' time during the run ({} just before it); \
         hypervisor steal {}",
        pct(info.other),
        pct(info.busy_before),
        pct(info.steal)
    )
}

/// One case: its title, the column heads and a line per server.
fn section(out: &mut impl Write, s: &Summary, case: Case) -> io::Result<()> {
    if case.is_file() {
        return file_table::section(out, s, case);
    }
    if case.is_http() {
        return http_table::section(out, s, case);
    }
    writeln!(out)?;
    writeln!(out, "== {}", case.title())?;
    writeln!(out, "{}", heads(case))?;
    for r in s.rows.iter().filter(|r| r.case == case) {
        if let Some(why) = &r.skipped {
            writeln!(out, "{:<15} skipped: {why}", r.server)?;
            continue;
        }
        match &r.med {
            Some(m) if matches!(case, Case::Idle { .. }) => writeln!(out, "{}", memory(r, m))?,
            Some(m) => writeln!(out, "{}", figures(r, m))?,
            None => writeln!(
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
    let rate_h = match case {
        Case::Rr { .. } | Case::Http { .. } | Case::Hostile { .. } | Case::Latency { .. } => {
            "req/s"
        }
        Case::FileRandomRead | Case::FileWriteFsync => "ops/s",
        Case::Stream { .. } => "MiB/s",
        Case::Idle { .. } => {
            return format!(
                "{:<15} {:>10} {:>4} {:>6} {:>6}  {:>10} {:>10}  {:>4}",
                "server", "bytes/conn", "±%", "×floor", "×tokio", "RSS before", "RSS after", "err"
            )
        }
    };
    format!(
        "{:<15} {:>8} {:>4} {:>6} {:>6}  {:>7} {:>7} {:>7}  {:>8} {:>6} {:>6}  {:>7}  {:>4}",
        "server",
        rate_h,
        "±%",
        "×floor",
        "×tokio",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "cpu µs",
        "×floor",
        "×tokio",
        "syscall",
        "err"
    )
}

/// The line of a server that ran.
fn figures(r: &Row, m: &Med) -> String {
    format!(
        "{:<15} {:>8} {:>4} {:>6} {:>6}  {:>7} {:>7} {:>7}  {:>8} {:>6} {:>6}  {:>7}  {:>4}",
        r.server,
        rate_fmt(r.case, m.rate),
        spread_fmt(m.rate_spread),
        ratio_fmt(r.vs_floor.map(|v| v.0)),
        ratio_fmt(r.vs_tokio.map(|v| v.0)),
        num(m.p50_us),
        num(m.p99_us),
        num(m.p999_us),
        num(m.cpu_us),
        ratio_fmt(r.vs_floor.map(|v| v.1)),
        ratio_fmt(r.vs_tokio.map(|v| v.1)),
        m.syscalls.map_or("-".into(), num),
        r.errors
    )
}

fn mib(bytes: f64) -> String {
    if bytes.is_finite() {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else {
        "-".into()
    }
}

/// The line of a server in the idle-connection case.
fn memory(r: &Row, m: &Med) -> String {
    let rss = m.rss.map_or((f64::NAN, f64::NAN, f64::NAN), |x| {
        (x.per_conn, x.before, x.after)
    });
    format!(
        "{:<15} {:>10} {:>4} {:>6} {:>6}  {:>10} {:>10}  {:>4}",
        r.server,
        rate_fmt(r.case, rss.0),
        spread_fmt(m.rss_spread),
        ratio_fmt(r.rss_vs_floor),
        ratio_fmt(r.rss_vs_tokio),
        mib(rss.1),
        mib(rss.2),
        r.errors
    )
}

const LEGEND: &[&str] = &[
    "req/s, MiB/s: echoes completed per second (closed loop, one load-generator thread); \
     ±%: half its range over the rounds.",
    "p50/p99/p99.9: round-trip latency seen by the load generator, µs.",
    "cpu µs: server CPU time (user+sys, all its threads) per request or per MiB.",
    "×floor: ÷ the hand-written loop on the same interface (raw-uring for io_uring servers, \
     raw-epoll for the rest), the median of the ratios within each round;",
    "        below 1 in req/s = slower, above 1 in cpu = more CPU per request. ×tokio: ÷ tokio.",
    "syscall: server syscalls per request (per MiB when streaming) from its own counters: \
     io_uring_enter calls,",
    "         or epoll_wait + read/write/accept/epoll_ctl; shown for corering and the floors.",
];

const IDLE_LEGEND: &str = "bytes/conn: growth of the server's resident memory (Rss of \
     /proc/PID/smaps_rollup) from before the idle connections were opened to after, ÷ their \
     count;\n            kernel socket buffers are not included. ×floor, ×tokio: the same ratio \
     of bytes/conn.";

fn legend(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    if s.cases
        .iter()
        .all(|c| c.is_file() || c.is_http() || c.is_hostile() || c.is_latency())
    {
        return Ok(());
    }
    writeln!(out)?;
    for line in LEGEND {
        writeln!(out, "{line}")?;
    }
    if s.cases.iter().any(|c| matches!(c, Case::Idle { .. })) {
        writeln!(out, "{IDLE_LEGEND}")?;
    }
    Ok(())
}

/// corering's overhead above the floor of its backend, over the request/response cases.
fn overhead(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    for (server, floor) in [
        ("corering-uring", "raw-uring"),
        ("corering-epoll", "raw-epoll"),
    ] {
        let ratios: Vec<(f64, f64)> = s
            .rows
            .iter()
            .filter(|r| r.server == server && matches!(r.case, Case::Rr { .. }))
            .filter_map(|r| r.vs_floor)
            .collect();
        let rate = geomean(&ratios.iter().map(|r| r.0).collect::<Vec<_>>());
        let cpu = geomean(&ratios.iter().map(|r| r.1).collect::<Vec<_>>());
        if let (Some(rate), Some(cpu)) = (rate, cpu) {
            writeln!(
                out,
                "{server} vs {floor}, geometric mean over {} request/response cases: CPU per \
                 request ×{:.2} (range {:.2}–{:.2}), req/s ×{:.2} (range {:.2}–{:.2})",
                ratios.len(),
                cpu.0,
                cpu.1,
                cpu.2,
                rate.0,
                rate.1,
                rate.2
            )?;
        }
    }
    Ok(())
}

/// Prints the checks and returns whether every server that was not skipped answered every
/// run without error.
pub fn check(s: &Summary, out: &mut impl Write) -> io::Result<bool> {
    let mut ok = true;
    for r in s.rows.iter().filter(|r| r.skipped.is_none()) {
        if r.med.is_none() || r.errors > 0 {
            ok = false;
            writeln!(
                out,
                "ERROR: {} / {}: {} error{} ({})",
                r.server,
                r.case.label(),
                r.errors.max(1),
                if r.errors == 1 { "" } else { "s" },
                r.first_error.as_deref().unwrap_or("no run finished")
            )?;
        }
        if let Some(m) = r.med.as_ref().filter(|m| m.cq_overflows > 0) {
            writeln!(
                out,
                "note: {} / {}: {} completion-queue overflows",
                r.server,
                r.case.label(),
                m.cq_overflows
            )?;
        }
    }
    skipped(s, out)?;
    if ok {
        writeln!(out, "check: every server answered every run without error")?;
    }
    Ok(ok)
}

/// One line per skipped server, with the first reason given.
fn skipped(s: &Summary, out: &mut impl Write) -> io::Result<()> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in &s.rows {
        if let Some(why) = &r.skipped {
            if !seen.iter().any(|(n, _)| *n == r.server) {
                seen.push((r.server, why));
            }
        }
    }
    for (name, why) in seen {
        writeln!(out, "skipped {name}: {why}")?;
    }
    Ok(())
}
