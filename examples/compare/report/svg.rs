//! compare.svg: request/s and CPU µs per request against the connection count, one panel
//! per metric and message size, one line per server.
use std::fmt::Write as _;

use super::case::size_label;
use super::{Case, Med, Summary};
use crate::Config;

const COLORS: &[(&str, &str)] = &[
    ("corering-uring", "#d62728"),
    ("corering-epoll", "#ff7f0e"),
    ("raw-uring", "#7f7f7f"),
    ("raw-epoll", "#bcbd22"),
    ("tokio", "#1f77b4"),
    ("monoio-uring", "#2ca02c"),
    ("monoio-epoll", "#98df8a"),
    ("go", "#17becf"),
];

fn color(server: &str) -> &'static str {
    COLORS
        .iter()
        .find(|(n, _)| *n == server)
        .map_or("#000000", |(_, c)| c)
}

/// The floors are drawn dashed.
fn dash(server: &str) -> &'static str {
    if server.starts_with("raw-") {
        " stroke-dasharray=\"5,3\""
    } else {
        ""
    }
}

/// A chart panel's title and the figure it plots.
type Metric = (&'static str, fn(&Med) -> f64);

const METRICS: [Metric; 2] = [
    ("requests/s (log scale)", |m| m.rate),
    ("server CPU µs per request (log scale)", |m| m.cpu_us),
];

/// Panel size, and its margins left, right, top and bottom.
pub(super) const PW: f64 = 440.0;
pub(super) const PH: f64 = 270.0;
const MARGINS: (f64, f64, f64, f64) = (62.0, 16.0, 34.0, 42.0);

/// The 1-2-5 steps from the one at or below `lo` to the one at or above `hi`: the ticks of a
/// logarithmic axis.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && hi >= lo) {
        return vec![1.0, 10.0];
    }
    let mut steps = Vec::new();
    let mut p = 10f64.powf(lo.log10().floor() - 1.0);
    while steps.last().is_none_or(|&x| x < hi) {
        for m in [1.0, 2.0, 5.0] {
            steps.push(m * p);
        }
        p *= 10.0;
    }
    let first = steps
        .iter()
        .rposition(|&x| x <= lo * 1.0000001)
        .unwrap_or(0);
    let last = steps
        .iter()
        .position(|&x| x >= hi * 0.9999999)
        .unwrap_or(steps.len() - 1)
        .max(first + 1);
    steps[first..=last].to_vec()
}

pub(super) fn axis_label(x: f64) -> String {
    let (v, suffix) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    if (v - v.round()).abs() < 1e-6 {
        format!("{}{suffix}", v.round())
    } else if v >= 0.1 {
        format!("{v:.1}{suffix}")
    } else {
        format!("{v:.2}{suffix}")
    }
}

/// Where one panel's plot area lies, and its logarithmic value range.
pub(super) struct Panel {
    pub x0: f64,
    pub y0: f64,
    pub w: f64,
    pub h: f64,
    /// ln of the lowest and highest tick.
    pub llo: f64,
    pub lhi: f64,
    /// Points on the x axis (the connection counts).
    pub n: usize,
}

impl Panel {
    /// The panel in column `at.0` and row `at.1` of the grid, with `n` points on its x axis
    /// and a logarithmic y axis from the 1-2-5 tick at or below the least of `values` to the
    /// one at or above the largest; and those ticks.
    pub fn log_scaled(values: &[f64], at: (usize, usize), n: usize) -> (Panel, Vec<f64>) {
        let (ml, mr, mt, mb) = MARGINS;
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        let ticks = log_ticks(lo, hi);
        let p = Panel {
            x0: PW * at.0 as f64 + ml,
            y0: 30.0 + PH * at.1 as f64 + mt,
            w: PW - ml - mr,
            h: PH - mt - mb,
            llo: ticks[0].ln(),
            lhi: ticks[ticks.len() - 1].ln(),
            n,
        };
        (p, ticks)
    }

    pub fn x(&self, i: usize) -> f64 {
        if self.n == 1 {
            self.x0 + self.w / 2.0
        } else {
            self.x0 + 12.0 + (self.w - 24.0) * i as f64 / (self.n - 1) as f64
        }
    }

    /// A logarithmic axis: equal ratios are equal distances.
    pub fn y(&self, v: f64) -> f64 {
        self.y0 + self.h - self.h * (v.ln() - self.llo) / (self.lhi - self.llo)
    }
}

/// The whole file.
pub fn chart(cfg: &Config, s: &Summary) -> String {
    let legend_h = 22.0 * charted(cfg, s).count().div_ceil(4) as f64 + 10.0;
    let width = PW * cfg.sizes.len() as f64;
    let height = PH * METRICS.len() as f64 + legend_h + 30.0;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        o,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"20\" \
         font-size=\"14\" font-weight=\"bold\">corering compare: echo, request/response \
         (medians of {} round{} × {} s; kernel {})</text>",
        cfg.rounds,
        if cfg.rounds == 1 { "" } else { "s" },
        cfg.seconds,
        crate::sys::kernel()
    );
    for (mi, metric) in METRICS.iter().enumerate() {
        for (si, &size) in cfg.sizes.iter().enumerate() {
            panel(&mut o, cfg, s, metric, size, (si, mi));
        }
    }
    legend(&mut o, cfg, s);
    o.push_str("</svg>\n");
    o
}

/// The panel of one metric and message size, in column `si` and row `mi` of the grid.
fn panel(
    o: &mut String,
    cfg: &Config,
    s: &Summary,
    metric: &Metric,
    size: usize,
    at: (usize, usize),
) {
    let (mname, mget) = metric;
    let value = |server: &str, c: usize| -> Option<f64> {
        s.rows
            .iter()
            .find(|r| r.server == server && r.case == Case::Rr { conns: c, size })
            .filter(|r| r.skipped.is_none())
            .and_then(|r| r.med.as_ref())
            .map(mget)
            .filter(|v| v.is_finite())
    };
    let all: Vec<f64> = cfg
        .servers
        .iter()
        .flat_map(|sv| cfg.conns.iter().filter_map(move |&c| value(sv, c)))
        .filter(|v| *v > 0.0)
        .collect();
    let (p, ticks) = Panel::log_scaled(&all, at, cfg.conns.len());
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"bold\">{mname}, {}</text>",
        p.x0,
        p.y0 - 10.0,
        size_label(size)
    );
    let labels: Vec<(f64, String)> = (cfg.conns.iter().enumerate())
        .map(|(i, c)| (p.x(i), c.to_string()))
        .collect();
    axes(o, &p, &ticks, &labels, "connections");
    for sv in &cfg.servers {
        let pts: Vec<(f64, f64)> = cfg
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, &c)| value(sv, c).filter(|v| *v > 0.0).map(|v| (p.x(i), p.y(v))))
            .collect();
        series(o, sv, &pts);
    }
}

/// The grid lines with their values, the labels on the x axis (each at its x), the axis's
/// name, and the frame.
pub(super) fn axes(
    o: &mut String,
    p: &Panel,
    ticks: &[f64],
    labels: &[(f64, String)],
    xname: &str,
) {
    let x0 = p.x0;
    for &v in ticks {
        let y = p.y(v);
        let _ = writeln!(
            o,
            "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#dddddd\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            x0 + p.w,
            x0 - 6.0,
            y + 4.0,
            axis_label(v)
        );
    }
    for (x, c) in labels {
        let _ = writeln!(
            o,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{c}</text>",
            p.y0 + p.h + 16.0
        );
    }
    let (y0, w, h) = (p.y0, p.w, p.h);
    let _ = writeln!(
        o,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555555\">{xname}</text>\
         <rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" \
         stroke=\"#888888\"/>",
        x0 + w / 2.0,
        y0 + h + 32.0
    );
}

/// One server's line and points.
pub(super) fn series(o: &mut String, sv: &str, pts: &[(f64, f64)]) {
    if pts.is_empty() {
        return;
    }
    let (col, dash) = (color(sv), dash(sv));
    let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        o,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"{dash}/>",
        path.join(" ")
    );
    for (x, y) in pts {
        let _ = writeln!(
            o,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{col}\"><title>{sv}</title></circle>"
        );
    }
}

/// The servers with a row in the request/response cases (the http servers have none).
fn charted<'a>(cfg: &'a Config, s: &'a Summary) -> impl Iterator<Item = &'a &'static str> {
    cfg.servers.iter().filter(|sv| {
        s.rows
            .iter()
            .any(|r| r.server == **sv && matches!(r.case, Case::Rr { .. }))
    })
}

/// A key per server, four to a line, below the panels.
fn legend(o: &mut String, cfg: &Config, s: &Summary) {
    let ly = 30.0 + PH * METRICS.len() as f64 + 10.0;
    for (i, sv) in charted(cfg, s).enumerate() {
        let skipped = s
            .rows
            .iter()
            .any(|r| r.server == *sv && r.skipped.is_some());
        key(o, i, ly, sv, if skipped { " (skipped)" } else { "" });
    }
}

/// The key of the `i`-th server of a legend whose first line is at `ly`, four to a line:
/// its line style and its name, with `note` after it.
pub(super) fn key(o: &mut String, i: usize, ly: f64, sv: &str, note: &str) {
    let x = 20.0 + 200.0 * (i % 4) as f64;
    let y = ly + 22.0 * (i / 4) as f64;
    let _ = writeln!(
        o,
        "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{}/>\
         <text x=\"{}\" y=\"{}\">{sv}{note}</text>",
        x + 24.0,
        color(sv),
        dash(sv),
        x + 30.0,
        y + 4.0
    );
}
