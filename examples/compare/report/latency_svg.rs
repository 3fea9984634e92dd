//! latency.svg: p99 latency (log scale) against the offered load, one panel per message size
//! and connection count, one line per latency server, and the 1 ms line the knee is read
//! against.
use std::fmt::Write as _;

use super::case::size_label;
use super::svg::{axes, axis_label, key, series, Panel, PH, PW};
use super::{Case, Summary};
use crate::latency::{self, CONNS, KNEE_US, LOADS, SIZES};
use crate::Config;

/// The p99 median of `server` at `load` % in `size` × `conns`.
fn p99(s: &Summary, server: &str, size: usize, conns: usize, load: u32) -> Option<f64> {
    s.rows
        .iter()
        .find(|r| {
            r.server == server
                && matches!(r.case, Case::Latency { size: z, conns: c, load: l, .. }
                    if z == size && c == conns && l == load)
        })
        .filter(|r| r.skipped.is_none())
        .and_then(|r| r.med.as_ref())
        .map(|m| m.p99_us)
        .filter(|v| v.is_finite() && *v > 0.0)
}

/// The whole file.
pub fn chart(cfg: &Config, s: &Summary) -> String {
    let servers: Vec<&str> = latency::servers(cfg).collect();
    let legend_h = 22.0 * servers.len().div_ceil(4) as f64 + 10.0;
    let (width, height) = (
        PW * SIZES.len() as f64,
        PH * CONNS.len() as f64 + legend_h + 30.0,
    );
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" \
         font-size=\"14\" font-weight=\"bold\">corering compare: open-loop echo, p99 against \
         offered load ({} arrivals; medians of {} round{} × {} s; kernel {})</text>",
        cfg.arrivals.name(),
        cfg.rounds,
        if cfg.rounds == 1 { "" } else { "s" },
        cfg.seconds,
        crate::sys::kernel()
    );
    for (ci, &conns) in CONNS.iter().enumerate() {
        for (si, &size) in SIZES.iter().enumerate() {
            panel(&mut o, s, &servers, (size, conns), (si, ci));
        }
    }
    for (i, sv) in servers.iter().enumerate() {
        key(&mut o, i, PH * CONNS.len() as f64 + 40.0, sv, "");
    }
    o.push_str("</svg>\n");
    o
}

/// The panel of one case, in column `at.0` and row `at.1` of the grid.
fn panel(o: &mut String, s: &Summary, servers: &[&str], case: (usize, usize), at: (usize, usize)) {
    let (size, conns) = case;
    let all: Vec<f64> = servers
        .iter()
        .flat_map(|sv| {
            LOADS
                .iter()
                .filter_map(move |&l| p99(s, sv, size, conns, l))
        })
        .chain([KNEE_US])
        .collect();
    let (p, ticks) = Panel::log_scaled(&all, at, LOADS.len());
    let peak = latency::slowest_peak(&s.rows, size, conns).map_or(String::new(), |(r, _)| {
        format!(", peak {}", axis_label(r.round()))
    });
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"bold\">p99 µs (log), {}, {conns} \
         connections{peak}</text>",
        p.x0,
        p.y0 - 10.0,
        size_label(size)
    );
    // The loads at their true distances: 0% at the left edge, 100% at the right.
    let x = |load: u32| p.x0 + 12.0 + (p.w - 24.0) * load as f64 / 100.0;
    let labels: Vec<(f64, String)> = LOADS.iter().map(|&l| (x(l), format!("{l}%"))).collect();
    axes(
        o,
        &p,
        &ticks,
        &labels,
        "offered load, % of the slowest closed-loop peak",
    );
    let (y, x1) = (p.y(KNEE_US), p.x0 + p.w);
    let _ = writeln!(
        o,
        "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#555555\" \
         stroke-dasharray=\"2,3\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" \
         fill=\"#555555\">1 ms</text>",
        p.x0,
        x1 - 4.0,
        y - 4.0
    );
    for sv in servers {
        let pts: Vec<(f64, f64)> = LOADS
            .iter()
            .filter_map(|&l| p99(s, sv, size, conns, l).map(|v| (x(l), p.y(v))))
            .collect();
        series(o, sv, &pts);
    }
}
