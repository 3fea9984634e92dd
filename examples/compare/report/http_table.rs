//! The http cases in the table on stdout: a section per case, their legend, and how
//! hyper on corering's io_uring backend reads against the target (at least hyper-tokio's
//! requests/s, at most its CPU per request).
use std::io::{self, Write};

use super::table::{num, rate_fmt, ratio_fmt, spread_fmt};
use super::{Case, Med, Row, Summary};
use crate::http::BASE;

/// The server the target is about.
const SUBJECT: &str = "hyper-corering-uring";

/// One http case: its title, the column heads and a line per server.
pub fn section(out: &mut impl Write, s: &Summary, case: Case) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "== {}", case.title())?;
    writeln!(
        out,
        "{:<20} {:>8} {:>4} {:>6}  {:>7} {:>7} {:>7}  {:>8} {:>6}  {:>7}  {:>4}",
        "server",
        "req/s",
        "±%",
        "×tokio",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "cpu µs",
        "×tokio",
        "syscall",
        "err"
    )?;
    for r in s.rows.iter().filter(|r| r.case == case) {
        match (&r.skipped, &r.med) {
            (Some(why), _) => writeln!(out, "{:<20} skipped: {why}", r.server)?,
            (None, Some(m)) => writeln!(out, "{}", figures(r, m))?,
            (None, None) => writeln!(
                out,
                "{:<20} FAILED: {}",
                r.server,
                r.first_error.as_deref().unwrap_or("no run finished")
            )?,
        }
    }
    Ok(())
}

/// The line of a server that ran.
fn figures(r: &Row, m: &Med) -> String {
    format!(
        "{:<20} {:>8} {:>4} {:>6}  {:>7} {:>7} {:>7}  {:>8} {:>6}  {:>7}  {:>4}",
        r.server,
        rate_fmt(r.case, m.rate),
        spread_fmt(m.rate_spread),
        ratio_fmt(r.vs_tokio.map(|v| v.0)),
        num(m.p50_us),
        num(m.p99_us),
        num(m.p999_us),
        num(m.cpu_us),
        ratio_fmt(r.vs_tokio.map(|v| v.1)),
        m.syscalls.map_or("-".into(), num),
        r.errors
    )
}

const LEGEND: &[&str] = &[
    "http cases: each connection sends a GET, reads the whole response (status 200, \
     Content-Length body) and sends the next (keep-alive, closed loop); req/s: responses \
     per second; ±%: half the range over the rounds.",
    "p50/p99/p99.9: request-to-response latency seen by the load generator, µs; cpu µs: \
     server CPU time (user+sys, all its threads) per request.",
    "×tokio: ÷ hyper-tokio, the median of the ratios within each round; syscall: server \
     syscalls per request from corering's counters (io_uring_enter, or epoll_wait + I/O).",
];

pub fn legend(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    if !s.cases.iter().any(Case::is_http) {
        return Ok(());
    }
    writeln!(out)?;
    for line in LEGEND {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// How hyper-corering-uring reads against hyper-tokio in each http case: requests/s at
/// least ×1.0 and CPU per request at most ×1.0.
pub fn targets(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    for &case in s.cases.iter().filter(|c| c.is_http()) {
        let Some(row) = s
            .rows
            .iter()
            .find(|r| r.case == case && r.server == SUBJECT)
        else {
            continue;
        };
        let verdict = match row.vs_tokio.filter(|v| v.0.is_finite() && v.1.is_finite()) {
            Some((rate, cpu)) if rate >= 1.0 && cpu <= 1.0 => "met",
            Some(_) => "NOT met",
            None => "unknown (a run is missing)",
        };
        writeln!(
            out,
            "{}: {SUBJECT} ÷ {BASE} req/s ×{} (target ≥ 1.0), CPU per request ×{} (target \
             ≤ 1.0): {verdict}",
            case.label(),
            ratio_fmt(row.vs_tokio.map(|v| v.0)),
            ratio_fmt(row.vs_tokio.map(|v| v.1)),
        )?;
    }
    Ok(())
}
