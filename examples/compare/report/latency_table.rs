//! The latency cases in the table on stdout: for each message size and connection count, a
//! line per offered rate and server (the latency percentiles, the answered rate, the load
//! generator's own lag), then the knees (the offered rate where each server's p99 passes
//! 1 ms), the legend, and the targets: at TARGET_LOAD % corering-uring's p99 at most
//! corering-epoll's and tokio's, and each corering backend's knee at least tokio's.
use std::io::{self, Write};

use serde_json::{json, Value};

use super::table::{num, rate_fmt, ratio_fmt, row_line};
use super::{Case, Med, Row, RunInfo, Summary};
use crate::latency::{self, Knee, BASE, CONNS, EPOLL, KNEE_US, SIZES, TARGET_LOAD};

/// The rows of the latency cases of `size` × `conns`, in increasing load.
fn rows_of(s: &Summary, size: usize, conns: usize) -> Vec<&Row> {
    let mut rows: Vec<&Row> = s
        .rows
        .iter()
        .filter(|r| matches!(r.case, Case::Latency { size: z, conns: c, .. } if z == size && c == conns))
        .collect();
    rows.sort_by_key(|r| load_of(r.case));
    rows
}

fn load_of(case: Case) -> u32 {
    match case {
        Case::Latency { load, .. } => load,
        _ => 0,
    }
}

fn rate_of(case: Case) -> f64 {
    match case {
        Case::Latency { rate, .. } => rate as f64,
        _ => f64::NAN,
    }
}

/// The column heads, and the widths every line keeps to.
fn heads() -> String {
    format!(
        "{:>4} {:>8}  {:<15} {:>7} {:>7} {:>7} {:>7}  {:>6} {:>6}  {:>8} {:>7} {:>5} {:>6} {:>3}",
        "load",
        "offered",
        "server",
        "p50 µs",
        "p99 µs",
        "p99.9",
        "max µs",
        "×epoll",
        "×tokio",
        "answered",
        "lag p99",
        "unans",
        "rounds",
        "err"
    )
}

/// The tables of every latency case (nothing if none ran).
pub fn table(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    for size in SIZES {
        for conns in CONNS {
            let rows = rows_of(s, size, conns);
            if rows.is_empty() {
                continue;
            }
            writeln!(out)?;
            let peak = latency::slowest_peak(&s.rows, size, conns)
                .map_or("unknown".into(), |(p, who)| format!("{p:.0} req/s ({who})"));
            writeln!(
                out,
                "== latency: open loop, {}, {conns} connections (per request); offered = % of \
                 the slowest closed-loop peak, {peak}",
                super::case::size_label(size)
            )?;
            writeln!(out, "{}", heads())?;
            for r in rows {
                let Case::Latency { load, rate, .. } = r.case else {
                    continue;
                };
                let who = format!("{:>3}% {:>8}  {:<15}", load, rate, r.server);
                row_line(out, &who, r, figures)?;
            }
        }
    }
    knees(out, s)
}

/// The figures of a server that ran, after its load, rate and name.
fn figures(r: &Row, m: &Med) -> String {
    let open = m.open.unwrap_or_default();
    format!(
        "{:>7} {:>7} {:>7} {:>7}  {:>6} {:>6}  {:>8} {:>7} {:>5} {:>6} {:>3}",
        num(m.p50_us),
        num(m.p99_us),
        num(m.p999_us),
        num(open.max_us),
        ratio_fmt(r.p99_vs_epoll),
        ratio_fmt(r.p99_vs_tokio),
        rate_fmt(r.case, m.rate),
        num(open.lag_p99_us),
        format!("{:.0}", open.unanswered),
        format!("{}/{}", r.rounds_ok, r.rounds_ok + r.rounds_disturbed),
        r.errors
    )
}

/// The knee of `server` in `size` × `conns`, from the medians of its p99; unknown unless it
/// has a figure at every load (a gap would compare servers on different grids).
pub fn knee(s: &Summary, server: &str, size: usize, conns: usize) -> Option<Knee> {
    let pts: Vec<(f64, f64)> = rows_of(s, size, conns)
        .into_iter()
        .filter(|r| r.server == server && r.skipped.is_none())
        .filter_map(|r| Some((rate_of(r.case), r.med.as_ref()?.p99_us)))
        .filter(|p| p.1.is_finite())
        .collect();
    (pts.len() == latency::LOADS.len()).then(|| Knee::of(&pts))?
}

/// Whether knee `k` is at least `base`, where the rates offered can tell.
fn knee_verdict(k: Knee, base: Knee) -> &'static str {
    match (k, base) {
        (Knee::Below(_), Knee::Below(_)) => "tie: both pass 1 ms at the lowest rate",
        (Knee::Beyond(_), Knee::Beyond(_)) => "tie: neither passes 1 ms up to the highest rate",
        _ if k.key() >= base.key() => "met",
        _ => "NOT met",
    }
}

/// A knee as the table writes it: the rate, and its share of the slowest peak.
fn knee_fmt(k: Option<Knee>, peak: f64) -> String {
    let pct = |r: f64| format!("{:.0}%", r / peak * 100.0);
    match k {
        None => "-".into(),
        Some(Knee::Below(r)) => format!("< {r:.0} (< {})", pct(r)),
        Some(Knee::At(r)) => format!("{r:.0} ({})", pct(r)),
        Some(Knee::Beyond(r)) => format!("> {r:.0} (> {})", pct(r)),
    }
}

/// One line per case: each server's knee.
fn knees(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    let mut head = false;
    for size in SIZES {
        for conns in CONNS {
            let Some((peak, _)) = latency::slowest_peak(&s.rows, size, conns) else {
                continue;
            };
            let servers: Vec<&str> = servers_of(s, size, conns);
            if servers.is_empty() {
                continue;
            }
            if !head {
                writeln!(out)?;
                writeln!(
                    out,
                    "knees: the offered req/s where p99 passes {KNEE_US:.0} µs (log-linear \
                     between the two rates around it; % of the slowest peak)"
                )?;
                head = true;
            }
            let parts: Vec<String> = servers
                .iter()
                .map(|sv| format!("{sv} {}", knee_fmt(knee(s, sv, size, conns), peak)))
                .collect();
            writeln!(
                out,
                "  {} c={conns}: {}",
                super::case::size_label(size),
                parts.join(", ")
            )?;
        }
    }
    Ok(())
}

/// The servers with a row in the latency cases of `size` × `conns`, in the order they ran.
fn servers_of(s: &Summary, size: usize, conns: usize) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for r in rows_of(s, size, conns) {
        if !v.contains(&r.server) {
            v.push(r.server);
        }
    }
    v
}

/// The legend of the latency tables, and what this machine's own stalls allow them to show.
pub fn legend(out: &mut impl Write, s: &Summary, info: &RunInfo) -> io::Result<()> {
    if !s.cases.iter().any(Case::is_latency) {
        return Ok(());
    }
    writeln!(out)?;
    for line in LEGEND {
        writeln!(out, "{line}")?;
    }
    for h in &info.hiccups {
        writeln!(
            out,
            "this machine: a thread spinning on core {} (before the latency cases, {} s) \
             lost {:.2}% of its time in stalls; {:.1} stalls over 1 ms a second, the longest \
             {:.0} µs. A tail below that is beyond what this machine can show.",
            h.core,
            crate::hiccup::SPAN.as_secs(),
            h.stalled * 100.0,
            h.over_1ms_s,
            h.max_us
        )?;
    }
    Ok(())
}

const LEGEND: &[&str] = &[
    "latency cases: the echo in an open loop. Requests go out on a fixed schedule of `offered` \
     req/s (the same rates for every server: the % of the slowest latency server's closed-loop \
     peak), spread over the connections in turn; a connection whose answers are late sends the \
     next request behind them.",
    "p50/p99/p99.9/max: µs from each request's scheduled send time to the end of its echo, so a \
     stall is charged to every request it delays; ×epoll, ×tokio: p99 ÷ corering-epoll's and \
     tokio's at the same rate, medians of the per-round ratios.",
    "answered: requests/s answered from the window's start until its last request was answered \
     (the schedule runs on meanwhile; below offered once a server is past its capacity); lag \
     p99: how late the load generator itself took its requests from the schedule, µs (a large \
     lag means the client, not the server, fell behind; the time it spends on a large batch of \
     answers is not in it, and is charged to the server); unans: requests still unanswered 2 s \
     after the window, in the percentiles at their age.",
    "rounds: the rounds in the figures ÷ those that ran. A round where the load generator fell \
     behind its own schedule (its lag p99 over a quarter of the p99: it measured the client's \
     core) is left out of the medians and ratios; if every round did, all are kept, and a note \
     says so.",
];

/// How corering's p99 at TARGET_LOAD and its knees read against the targets.
pub fn targets(out: &mut impl Write, s: &Summary) -> io::Result<()> {
    for size in SIZES {
        for conns in CONNS {
            let rows = rows_of(s, size, conns);
            let at = |sv: &str| {
                rows.iter()
                    .find(|r| r.server == sv && load_of(r.case) == TARGET_LOAD)
                    .copied()
            };
            let label = format!("latency {} c={conns}", super::case::size_label(size));
            if let Some(r) = at("corering-uring").filter(|r| r.skipped.is_none()) {
                writeln!(
                    out,
                    "{label} at {TARGET_LOAD}%: corering-uring p99 ÷ {EPOLL} ×{} (target ≤ 1): \
                     {}; ÷ {BASE} ×{} (target ≤ 1): {}",
                    ratio_fmt(r.p99_vs_epoll),
                    verdict(r.p99_vs_epoll.map(|x| x <= 1.0)),
                    ratio_fmt(r.p99_vs_tokio),
                    verdict(r.p99_vs_tokio.map(|x| x <= 1.0))
                )?;
            }
            let Some(base) = knee(s, BASE, size, conns) else {
                continue;
            };
            for sv in ["corering-uring", EPOLL] {
                if let Some(k) = knee(s, sv, size, conns) {
                    let peak =
                        latency::slowest_peak(&s.rows, size, conns).map_or(f64::NAN, |p| p.0);
                    writeln!(
                        out,
                        "{label} knee: {sv} {} vs {BASE} {} (target ≥): {}",
                        knee_fmt(Some(k), peak),
                        knee_fmt(Some(base), peak),
                        knee_verdict(k, base)
                    )?;
                }
            }
            lagging(out, &label, &rows)?;
        }
    }
    Ok(())
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "unknown (a run is missing)",
    }
}

/// A note for each row whose rounds all had the load generator fall behind (the medians are
/// then of rounds that do not count).
fn lagging(out: &mut impl Write, label: &str, rows: &[&Row]) -> io::Result<()> {
    for r in rows {
        let Some(m) = r.med.as_ref() else { continue };
        let lag = m.open.map_or(f64::NAN, |o| o.lag_p99_us);
        if r.rounds_ok > 0 && r.rounds_disturbed == 0 && lag > m.p99_us / 4.0 {
            writeln!(
                out,
                "note: {label} {}% {}: in every round the load generator's own lag p99 was \
                 over a quarter of the p99 (medians {} µs and {} µs): the client fell behind \
                 its schedule, and these figures are the client's",
                load_of(r.case),
                r.server,
                num(lag),
                num(m.p99_us)
            )?;
        }
    }
    Ok(())
}

/// The knees for compare.json: per case and server, the kind and the rate.
pub fn knees_json(s: &Summary) -> Value {
    let mut v = Vec::new();
    for size in SIZES {
        for conns in CONNS {
            let peak = latency::slowest_peak(&s.rows, size, conns);
            for sv in servers_of(s, size, conns) {
                let (kind, rate) = match knee(s, sv, size, conns) {
                    Some(Knee::Below(r)) => ("below", r),
                    Some(Knee::At(r)) => ("at", r),
                    Some(Knee::Beyond(r)) => ("beyond", r),
                    None => ("unknown", f64::NAN),
                };
                v.push(json!({
                    "server": sv,
                    "size": size,
                    "conns": conns,
                    "peak": peak.map(|p| p.0),
                    "peak_server": peak.map(|p| p.1),
                    "knee": kind,
                    "knee_rate": rate.is_finite().then_some(rate),
                }));
            }
        }
    }
    Value::Array(v)
}
