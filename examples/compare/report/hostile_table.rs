//! The hostile cases in the table on stdout: one table with a line per storm and server (the
//! well-behaved client's figures, the server's CPU, what the storm did), its legend, and how
//! each corering server's p99 reads against tokio's under each storm (the target: at most
//! `TARGET_P99` times tokio's).
use std::io::{self, Write};

use super::table::{num, rate_fmt, ratio_fmt, row_line};
use super::{Case, Med, Row, Summary};
use crate::hostile::{Storm, BASE, GOOD_CONNS, GOOD_SIZE, SERVERS, TARGET_P99};

/// The column heads, and the widths every line keeps to.
fn heads() -> String {
    format!(
        "{:<9} {:<15} {:>8}  {:>7} {:>7} {:>7} {:>6}  {:>5} {:>7}  {:>8} {:>5}  {:>4}",
        "storm",
        "server",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "×tokio",
        "cpu%",
        "cpu µs",
        "storm/s",
        "fail",
        "err"
    )
}

/// The table of every hostile case (nothing if none ran).
pub fn table(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let cases: Vec<Case> = s.cases.iter().copied().filter(Case::is_hostile).collect();
    if cases.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "== hostile: request/response, {GOOD_SIZE} B, {GOOD_CONNS} connections (the \
         well-behaved client), alone and beside each storm (per request)"
    )?;
    writeln!(out, "{}", heads())?;
    for case in cases {
        let Case::Hostile { storm } = case else {
            continue;
        };
        for r in s.rows.iter().filter(|r| r.case == case) {
            let who = format!("{:<9} {:<15}", storm.name(), r.server);
            row_line(out, &who, r, figures)?;
        }
    }
    Ok(())
}

/// The figures of a server that ran, after its storm and name.
fn figures(r: &Row, m: &Med) -> String {
    let storm = m.storm.map_or((f64::NAN, f64::NAN), |f| (f.rate, f.failed));
    let cpu_pct = if m.server_busy.is_finite() {
        format!("{:.0}", m.server_busy * 100.0)
    } else {
        "-".into()
    };
    format!(
        "{:>8}  {:>7} {:>7} {:>7} {:>6}  {:>5} {:>7}  {:>8} {:>5}  {:>4}",
        rate_fmt(r.case, m.rate),
        num(m.p50_us),
        num(m.p99_us),
        num(m.p999_us),
        ratio_fmt(r.p99_vs_tokio),
        cpu_pct,
        num(m.cpu_us),
        rate_fmt(r.case, storm.0),
        if storm.1.is_finite() {
            format!("{:.0}", storm.1)
        } else {
            "-".into()
        },
        r.errors
    )
}

/// The legend: the storms, then the columns.
pub fn legend(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    if !s.cases.iter().any(Case::is_hostile) {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(
        out,
        "hostile cases: the well-behaved client is the request/response echo ({GOOD_CONNS} \
         connections, closed loop); its figures are taken with the storm running beside it:"
    )?;
    for storm in Storm::ALL {
        writeln!(out, "  {}", storm.about())?;
    }
    for line in LEGEND {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

const LEGEND: &[&str] = &[
    "  The storm's threads run in the runner, on the load generator's core, paced (they take \
     a share of that core: every server's client pays it alike); they start once the client \
     is connected and stop when its window ends.",
    "p50/p99/p99.9: the client's round-trip latency, µs; ×tokio: p99 ÷ tokio's p99 under \
     the same storm, the median of the ratios within each round.",
    "cpu%: the server's CPU time ÷ the window (100 = its core busy throughout); cpu µs: that \
     CPU per client request (the storm's share included).",
    "storm/s: storm connections opened per second (reset, vanish) or bytes sent per second \
     (slowloris), over the storm's whole run; fail: storm connections that failed to open or \
     broke while open (median per run).",
    "err: the client's errors, and anything left behind: fds the runner or (2 s after the \
     end) the server still held.",
];

/// How each corering server's p99 reads against tokio's under each storm.
pub fn targets(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    for &case in s.cases.iter().filter(|c| c.is_hostile()) {
        if case == (Case::Hostile { storm: Storm::None }) {
            continue;
        }
        for r in s.rows.iter().filter(|r| r.case == case) {
            if r.server == BASE || !SERVERS.contains(&r.server) || r.skipped.is_some() {
                continue;
            }
            let verdict = match r.p99_vs_tokio.filter(|x| x.is_finite()) {
                Some(x) if x <= TARGET_P99 => "met",
                Some(_) => "NOT met",
                None => "unknown (a run is missing)",
            };
            writeln!(
                out,
                "{}: {} p99 ÷ {BASE} p99 ×{} (target ≤ {TARGET_P99}): {verdict}",
                case.label(),
                r.server,
                ratio_fmt(r.p99_vs_tokio)
            )?;
        }
    }
    Ok(())
}
