//! compare.csv: one line per server and case with the medians and ratios; unknown figures
//! are empty fields. The columns of the file cases come last (empty for the others).
use std::fmt::Write as _;

use super::{Case, Med, Row, Summary};

const HEADER: &str = "server,case,conns,size,unit,rate,rate_spread,rate_vs_floor,rate_vs_tokio,\
                      p50_us,p99_us,p999_us,cpu_us,cpu_vs_floor,cpu_vs_tokio,syscalls,\
                      rss_per_conn_bytes,rss_vs_floor,rss_vs_tokio,rounds_ok,errors,status,\
                      mib_s,rate_vs_corering_epoll,cpu_vs_corering_epoll,threads,fsync_rate,\
                      fsync_p50_us,fsync_p99_us\n";

/// A figure with four decimals, or nothing where it is not known.
fn f(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.4}")
    } else {
        String::new()
    }
}

fn fo(x: Option<f64>) -> String {
    x.map_or(String::new(), f)
}

fn status(r: &Row) -> String {
    match (&r.skipped, &r.med) {
        (Some(why), _) => format!("\"skipped: {}\"", why.replace('"', "'")),
        (None, None) => "failed".into(),
        (None, Some(_)) if r.errors > 0 => "errors".into(),
        _ => "ok".into(),
    }
}

fn line(out: &mut String, r: &Row) {
    let (kind, conns, size) = r.case.parts();
    // The hostile cases differ by their storm only: `hostile_reset` etc.
    let kind = match r.case {
        Case::Hostile { storm } => format!("{kind}_{}", storm.name()),
        // The latency cases differ by their load: `latency_50pct` etc.
        Case::Latency { load, .. } => format!("{kind}_{load}pct"),
        _ => kind.to_string(),
    };
    let m = r.med.clone().unwrap_or_else(Med::unknown);
    let _ = writeln!(
        out,
        "{},{kind},{conns},{size},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        r.server,
        r.case.unit(),
        f(m.rate),
        f(m.rate_spread),
        fo(r.vs_floor.map(|v| v.0)),
        fo(r.vs_tokio.map(|v| v.0)),
        f(m.p50_us),
        f(m.p99_us),
        f(m.p999_us),
        f(m.cpu_us),
        fo(r.vs_floor.map(|v| v.1)),
        fo(r.vs_tokio.map(|v| v.1)),
        fo(m.syscalls),
        fo(m.rss.map(|x| x.per_conn)),
        fo(r.rss_vs_floor),
        fo(r.rss_vs_tokio),
        r.rounds_ok,
        r.errors,
        status(r),
        file_fields(r, &m)
    );
}

/// The columns of the file cases.
fn file_fields(r: &Row, m: &Med) -> String {
    let Some(x) = m.file else {
        return ",,,,,,".into();
    };
    [
        f(x.mib_s),
        fo(r.vs_epoll.map(|v| v.0)),
        fo(r.vs_epoll.map(|v| v.1)),
        f(x.threads),
        f(x.syncs_s),
        f(x.sync_p50_us),
        f(x.sync_p99_us),
    ]
    .join(",")
}

/// The whole file.
pub fn table(s: &Summary) -> String {
    let mut out = String::from(HEADER);
    for r in &s.rows {
        line(&mut out, r);
    }
    out
}
