//! The summary of a run: the medians over the rounds of every server in every case, and
//! the ratios of each server to its floor and to tokio (the medians of the ratios within each
//! round).
use super::{servers, Case, Cell, Row, Sample, Summary};

/// The median of the finite values of `v` (NaN if there are none).
pub fn median(mut v: Vec<f64>) -> f64 {
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

/// The median of the values that are known, if any are.
pub fn median_opt(v: Vec<Option<f64>>) -> Option<f64> {
    let some: Vec<f64> = v.into_iter().flatten().collect();
    (!some.is_empty()).then(|| median(some))
}

/// Half the range of `values` relative to their median `med`; unknown for a single value.
pub fn spread(values: impl Iterator<Item = f64>, med: f64) -> f64 {
    let (n, lo, hi) = values.fold((0, f64::INFINITY, 0.0f64), |(n, lo, hi), r| {
        (n + 1, lo.min(r), hi.max(r))
    });
    if n > 1 && med > 0.0 {
        (hi - lo) / 2.0 / med
    } else {
        f64::NAN
    }
}

/// The (round, figure) of every counted run of `server` in `case` (`Cell::counted`).
fn by_round(cells: &[Cell], server: &str, case: Case, f: Figure) -> Vec<(usize, f64)> {
    cells
        .iter()
        .filter(|c| c.server == server && c.case == case && c.skipped.is_none())
        .flat_map(|c| c.counted())
        .map(|(round, s)| (round, f(s)))
        .collect()
}

type Figure = fn(&Sample) -> f64;

/// `server` ÷ `base` in `case`: the median over the rounds of the ratios within each round
/// (the two ran minutes apart at most, so drift that hits a whole round cancels).
fn ratio(cells: &[Cell], server: &str, base: &str, case: Case, f: Figure) -> Option<f64> {
    let theirs = by_round(cells, base, case, f);
    let ratios: Vec<f64> = by_round(cells, server, case, f)
        .into_iter()
        .filter_map(|(round, x)| theirs.iter().find(|t| t.0 == round).map(|t| x / t.1))
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// The rate and CPU ratios of `server` ÷ `base`.
fn paired(cells: &[Cell], server: &str, base: &str, case: Case) -> Option<(f64, f64)> {
    let rate = ratio(cells, server, base, case, |s| s.rate)?;
    Some((rate, ratio(cells, server, base, case, |s| s.cpu_us)?))
}

fn rss_per_conn(s: &Sample) -> f64 {
    s.rss.map_or(f64::NAN, |m| m.per_conn)
}

/// Fills in the ratios of `row` against its floor and against tokio.
fn ratios(cells: &[Cell], row: &mut Row) {
    let (server, case) = (row.server, row.case);
    let floor = servers::kind(server).and_then(|k| k.floor);
    let tokio = (server != "tokio").then_some("tokio");
    if case.is_http() {
        let base = (server != crate::http::BASE).then_some(crate::http::BASE);
        row.vs_tokio = base.and_then(|b| paired(cells, server, b, case));
    } else if case.is_file() {
        let epoll = (server != "corering-epoll").then_some("corering-epoll");
        row.vs_epoll = epoll.and_then(|b| paired(cells, server, b, case));
        row.vs_tokio = tokio.and_then(|b| paired(cells, server, b, case));
    } else if let Case::Idle { .. } = case {
        row.rss_vs_floor = floor.and_then(|b| ratio(cells, server, b, case, rss_per_conn));
        row.rss_vs_tokio = tokio.and_then(|b| ratio(cells, server, b, case, rss_per_conn));
    } else {
        row.vs_floor = floor.and_then(|b| paired(cells, server, b, case));
        row.vs_tokio = tokio.and_then(|b| paired(cells, server, b, case));
    }
    if case.is_hostile() || case.is_latency() {
        row.p99_vs_tokio = tokio.and_then(|b| ratio(cells, server, b, case, |s| s.p99_us));
    }
    if case.is_latency() {
        let epoll = (server != crate::latency::EPOLL).then_some(crate::latency::EPOLL);
        row.p99_vs_epoll = epoll.and_then(|b| ratio(cells, server, b, case, |s| s.p99_us));
    }
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
        ratios(cells, row);
    }
    Summary { rows, cases }
}
