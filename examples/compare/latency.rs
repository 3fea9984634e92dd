//! The latency cases (`--latency`, `--latency-only`): latency under a fixed offered load.
//! A closed loop lets a slow server slow its own load and hides its stalls; here the echo
//! requests go out on a schedule (`crate::load::open_loop`), and each latency runs from the
//! request's scheduled time.
//!
//! Two phases. First the closed-loop request/response cases of SIZES × CONNS run with the
//! matrix (for the latency servers at least): their medians give each server's peak. Then,
//! for each of those cases, every latency server is offered the same rates, LOADS % of the
//! *slowest* server's peak, rounds interleaved as in the matrix. The report gives
//! p50/p99/p99.9/max per rate and the knee: the offered rate at which a server's p99 passes
//! KNEE_US (`crate::report`'s latency table and latency.svg).
use std::io;
use std::time::Duration;

use crate::load::{self, Offer, Outcome};
use crate::report::{self, Case, Cell, Row};
use crate::{rounds, Config, Launcher};

/// The servers of the latency cases, as far as `--servers` names them.
pub const SERVERS: &[&str] = &["corering-uring", "corering-epoll", "tokio", "monoio-uring"];
/// The server the p99 ratios are taken against, and corering's other backend.
pub const BASE: &str = "tokio";
pub const EPOLL: &str = "corering-epoll";
/// The cases: message sizes and connection counts.
pub const SIZES: [usize; 2] = [64, 4096];
pub const CONNS: [usize; 2] = [16, 256];
/// The offered rates, in % of the slowest server's closed-loop peak.
pub const LOADS: [u32; 6] = [10, 25, 50, 75, 90, 100];
/// The knee: the rate at which p99 passes this many µs.
pub const KNEE_US: f64 = 1000.0;
/// The load at which the p99 targets are judged.
pub const TARGET_LOAD: u32 = 50;

/// The closed-loop cases the peaks come from (none without `--latency`).
pub fn peak_cases(cfg: &Config) -> Vec<Case> {
    match cfg.latency {
        true => SIZES
            .iter()
            .flat_map(|&size| CONNS.map(|conns| Case::Rr { conns, size }))
            .collect(),
        false => Vec::new(),
    }
}

/// The latency servers of this invocation.
pub fn servers(cfg: &Config) -> impl Iterator<Item = &'static str> + '_ {
    cfg.servers.iter().copied().filter(|s| SERVERS.contains(s))
}

/// The slowest closed-loop peak among the latency servers in the request/response case of
/// `size` × `conns`: its median rate (over the rounds that finished, errors or not: a
/// server that erred is still offered no more than it did) and the server.
pub fn slowest_peak(rows: &[Row], size: usize, conns: usize) -> Option<(f64, &'static str)> {
    rows.iter()
        .filter(|r| r.case == Case::Rr { conns, size } && SERVERS.contains(&r.server))
        .filter(|r| r.skipped.is_none())
        .filter_map(|r| Some((r.med.as_ref()?.rate, r.server)))
        .filter(|(rate, _)| rate.is_finite() && *rate > 0.0)
        .min_by(|a, b| a.0.total_cmp(&b.0))
}

/// The latency cases of one peak: the same rates for every server.
fn cases_at(peak: f64, size: usize, conns: usize) -> impl Iterator<Item = Case> {
    LOADS.into_iter().map(move |load| Case::Latency {
        conns,
        size,
        load,
        rate: ((peak * load as f64 / 100.0).round() as u64).max(1),
    })
}

/// The second phase: the peaks from the closed-loop cells, then the latency cases' rounds;
/// their cells are added to `cells`.
pub fn run_phase(cfg: &Config, cells: &mut Vec<Cell>, launcher: &Launcher) {
    if !cfg.latency {
        return;
    }
    let rows = report::summarize(cells).rows;
    let mut cases = Vec::new();
    for size in SIZES {
        for conns in CONNS {
            match slowest_peak(&rows, size, conns) {
                Some((peak, _)) => cases.extend(cases_at(peak, size, conns)),
                None => eprintln!(
                    "compare: latency {size} B c={conns}: no latency server has a closed-loop \
                     peak (each failed or was skipped); its latency cases are left out"
                ),
            }
        }
    }
    let mut new: Vec<Cell> = Vec::new();
    for &case in &cases {
        for server in servers(cfg) {
            // A server skipped in the closed loop is skipped here too, with its reason.
            let skipped = rows
                .iter()
                .find(|r| r.server == server && r.skipped.is_some())
                .and_then(|r| r.skipped.clone());
            new.push(Cell {
                server,
                case,
                runs: Vec::new(),
                skipped,
            });
        }
    }
    let runs = new.iter().filter(|c| c.skipped.is_none()).count();
    eprintln!(
        "compare: latency: {} rates × {} servers: {runs} runs × {} rounds (open loop, {} \
         arrivals)",
        cases.len(),
        servers(cfg).count(),
        cfg.rounds,
        cfg.arrivals.name()
    );
    rounds::run_all(cfg, &cases, &mut new, runs, launcher);
    cells.extend(new);
}

/// One latency run against the server listening on `addr`.
pub fn run<S>(
    addr: &str,
    cfg: &Config,
    case: Case,
    warmup: Duration,
    measure: Duration,
    mark: impl FnMut() -> S,
) -> io::Result<Outcome<S>> {
    let Case::Latency {
        conns, size, rate, ..
    } = case
    else {
        unreachable!("a latency case");
    };
    let streams = load::connect_all(addr, conns)?;
    let offer = Offer {
        rate: rate as f64,
        arrivals: cfg.arrivals,
        warmup,
        measure,
        drain: load::DRAIN,
    };
    load::open_loop(streams, size, offer, mark)
}

/// Where a server's p99 passes KNEE_US, from its (offered rate, p99 µs) points in
/// increasing rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Knee {
    /// Already above at the lowest rate offered.
    Below(f64),
    /// Between two offered rates: interpolated on log p99.
    At(f64),
    /// Never above, up to the highest rate offered.
    Beyond(f64),
}

impl Knee {
    pub fn of(points: &[(f64, f64)]) -> Option<Knee> {
        let first = points.first()?;
        if first.1 > KNEE_US {
            return Some(Knee::Below(first.0));
        }
        for w in points.windows(2) {
            let ((r0, p0), (r1, p1)) = (w[0], w[1]);
            if p1 > KNEE_US {
                let f = (KNEE_US.ln() - p0.ln()) / (p1.ln() - p0.ln());
                return Some(Knee::At(r0 + (r1 - r0) * f.clamp(0.0, 1.0)));
            }
        }
        Some(Knee::Beyond(points.last()?.0))
    }

    /// A number that orders knees: below the lowest rate is 0, beyond the highest infinite.
    pub fn key(self) -> f64 {
        match self {
            Knee::Below(_) => 0.0,
            Knee::At(r) => r,
            Knee::Beyond(_) => f64::INFINITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knee_is_where_p99_passes_one_millisecond() {
        let pts = [(10.0, 100.0), (20.0, 500.0), (30.0, 2000.0)];
        let Some(Knee::At(r)) = Knee::of(&pts) else {
            panic!("{:?}", Knee::of(&pts));
        };
        // log-linear between 500 µs at 20 and 2000 µs at 30: 1000 µs halfway.
        assert!((r - 25.0).abs() < 1e-9, "{r}");
        assert_eq!(Knee::of(&[(10.0, 1500.0)]), Some(Knee::Below(10.0)));
        assert_eq!(Knee::of(&pts[..2]), Some(Knee::Beyond(20.0)));
        assert!(Knee::Beyond(5.0).key() > Knee::At(1e9).key());
        assert_eq!(Knee::of(&[]), None);
    }
}
