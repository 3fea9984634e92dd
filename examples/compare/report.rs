//! Medians over rounds, ratios, and the outputs: the table, JSON, CSV and the SVG chart.
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;

use super::servers;
use super::Config;

/// One case of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Request/response echo over `conns` connections with `size`-byte messages.
    Rr { conns: usize, size: usize },
    /// One connection streaming 64 KiB writes; figures per MiB.
    Stream,
}

impl Case {
    pub fn label(&self) -> String {
        match self {
            Case::Rr { conns, size } => format!("rr {} c={conns}", size_label(*size)),
            Case::Stream => "stream".into(),
        }
    }

    fn title(&self) -> String {
        match self {
            Case::Rr { conns, size } => format!(
                "request/response, {}, {conns} connection{} (per request)",
                size_label(*size),
                if *conns == 1 { "" } else { "s" }
            ),
            Case::Stream => "streaming, 1 connection, 64 KiB writes (per MiB echoed)".into(),
        }
    }

    fn unit(&self) -> &'static str {
        match self {
            Case::Rr { .. } => "request",
            Case::Stream => "MiB",
        }
    }
}

fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The figures of one run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Requests/s (request/response) or MiB/s (streaming).
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// Server CPU time (user + sys) per request or per MiB, µs.
    pub cpu_us: f64,
    /// The system share of that CPU time (0..1; from clock ticks, coarse).
    pub sys_share: f64,
    /// Shares of the measured window: the server's CPU time, and the time its threads waited
    /// for their core while runnable; the same for the load generator's thread.
    pub server_busy: f64,
    pub server_wait: f64,
    pub client_busy: f64,
    pub client_wait: f64,
    /// Server syscalls per unit: io_uring_enter, or epoll_wait + the I/O syscalls.
    pub syscalls: Option<f64>,
    /// io_uring_enter / epoll_wait calls per unit.
    pub waits: Option<f64>,
    /// Operations completed per unit.
    pub ops: Option<f64>,
    pub cq_overflows: u64,
    /// Requests or bytes in the window, and its length.
    pub units: u64,
    pub secs: f64,
    pub errors: u64,
    pub first_error: Option<String>,
}

pub enum RunResult {
    Ok(Sample),
    Skipped(String),
    Failed(String),
}

/// Every run of one server in one case.
pub struct Cell {
    pub server: &'static str,
    pub case: Case,
    /// Each run with the round it ran in.
    pub runs: Vec<(usize, RunResult)>,
    pub skipped: Option<String>,
}

/// Medians over the rounds that ran.
#[derive(Clone, Debug, Default)]
pub struct Med {
    pub rate: f64,
    /// Half the range of the rate over the rounds, relative to the median (0.05 = ±5%).
    pub rate_spread: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub cpu_us: f64,
    pub sys_share: f64,
    pub syscalls: Option<f64>,
    pub waits: Option<f64>,
    pub ops: Option<f64>,
    pub cq_overflows: u64,
}

pub struct Row {
    pub server: &'static str,
    pub case: Case,
    pub skipped: Option<String>,
    pub med: Option<Med>,
    pub rounds_ok: usize,
    pub errors: u64,
    pub first_error: Option<String>,
    /// This server ÷ its floor and ÷ tokio: (rate ratio, CPU ratio).
    pub vs_floor: Option<(f64, f64)>,
    pub vs_tokio: Option<(f64, f64)>,
}

pub struct Summary {
    pub rows: Vec<Row>,
    pub cases: Vec<Case>,
}

fn median(mut v: Vec<f64>) -> f64 {
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

fn median_opt(v: Vec<Option<f64>>) -> Option<f64> {
    let some: Vec<f64> = v.into_iter().flatten().collect();
    (!some.is_empty()).then(|| median(some))
}

pub fn summarize(cfg: &Config, cells: &[Cell]) -> Summary {
    let mut rows: Vec<Row> = Vec::new();
    let mut cases: Vec<Case> = Vec::new();
    for cell in cells {
        if !cases.contains(&cell.case) {
            cases.push(cell.case);
        }
        let samples: Vec<&Sample> = cell
            .runs
            .iter()
            .filter_map(|(_, r)| match r {
                RunResult::Ok(s) => Some(s),
                _ => None,
            })
            .collect();
        let mut errors: u64 = samples.iter().map(|s| s.errors).sum();
        let mut first_error = samples.iter().find_map(|s| s.first_error.clone());
        for (_, r) in &cell.runs {
            if let RunResult::Failed(why) = r {
                errors += 1;
                first_error.get_or_insert(why.clone());
            }
        }
        let med = (!samples.is_empty()).then(|| {
            let col = |f: fn(&Sample) -> f64| median(samples.iter().map(|s| f(s)).collect());
            let opt =
                |f: fn(&Sample) -> Option<f64>| median_opt(samples.iter().map(|s| f(s)).collect());
            let rates: Vec<f64> = samples.iter().map(|s| s.rate).collect();
            let (lo, hi) = rates.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &r| {
                (lo.min(r), hi.max(r))
            });
            let rate = col(|s| s.rate);
            Med {
                rate,
                rate_spread: if samples.len() > 1 && rate > 0.0 {
                    (hi - lo) / 2.0 / rate
                } else {
                    f64::NAN
                },
                p50_us: col(|s| s.p50_us),
                p99_us: col(|s| s.p99_us),
                p999_us: col(|s| s.p999_us),
                cpu_us: col(|s| s.cpu_us),
                sys_share: col(|s| s.sys_share),
                syscalls: opt(|s| s.syscalls),
                waits: opt(|s| s.waits),
                ops: opt(|s| s.ops),
                cq_overflows: samples.iter().map(|s| s.cq_overflows).sum(),
            }
        });
        rows.push(Row {
            server: cell.server,
            case: cell.case,
            skipped: cell.skipped.clone(),
            med,
            rounds_ok: samples.len(),
            errors,
            first_error,
            vs_floor: None,
            vs_tokio: None,
        });
    }
    // Ratios against the floor of the same kernel interface, and against tokio: within each
    // round (the two ran minutes apart at most, so drift that hits a whole round cancels),
    // then the median over the rounds.
    let by_round = |server: &str, case: Case| -> Vec<(usize, f64, f64)> {
        cells
            .iter()
            .filter(|c| c.server == server && c.case == case && c.skipped.is_none())
            .flat_map(|c| c.runs.iter())
            .filter_map(|(round, r)| match r {
                RunResult::Ok(s) => Some((*round, s.rate, s.cpu_us)),
                _ => None,
            })
            .collect()
    };
    let paired = |server: &str, base: &str, case: Case| -> Option<(f64, f64)> {
        let theirs = by_round(base, case);
        let (mut rate, mut cpu) = (Vec::new(), Vec::new());
        for (round, r, c) in by_round(server, case) {
            if let Some(&(_, br, bc)) = theirs.iter().find(|t| t.0 == round) {
                rate.push(r / br);
                cpu.push(c / bc);
            }
        }
        (!rate.is_empty()).then(|| (median(rate), median(cpu)))
    };
    for row in rows.iter_mut() {
        let floor = servers::kind(row.server).and_then(|k| k.floor);
        row.vs_floor = floor.and_then(|f| paired(row.server, f, row.case));
        if row.server != "tokio" {
            row.vs_tokio = paired(row.server, "tokio", row.case);
        }
    }
    let _ = cfg;
    Summary { rows, cases }
}

fn rate_fmt(case: Case, x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    match case {
        Case::Stream => format!("{x:.0}"),
        Case::Rr { .. } if x >= 1e6 => format!("{:.2}M", x / 1e6),
        Case::Rr { .. } if x >= 1e4 => format!("{:.1}k", x / 1e3),
        Case::Rr { .. } if x >= 1e3 => format!("{:.2}k", x / 1e3),
        Case::Rr { .. } => format!("{x:.0}"),
    }
}

fn num(x: f64) -> String {
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

fn ratio_fmt(r: Option<f64>) -> String {
    match r {
        Some(x) if x.is_finite() => format!("{x:.2}"),
        _ => "-".into(),
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

/// Where the run ran, and how quiet the machine was.
pub struct RunInfo {
    pub server_core: usize,
    pub client_core: usize,
    /// Share of the two cores' time that other processes used just before the start.
    pub busy_before: f64,
    /// Share of the two cores' time used by processes other than the runner and its servers
    /// during the run, and the share the hypervisor stole.
    pub other: f64,
    pub steal: f64,
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
    writeln!(
        out,
        "corering compare — kernel {}, {}; servers pinned to core {}, load generator to core {}; \
         medians of {} round{} × {} s",
        super::sys::kernel(),
        super::sys::cpu_model(),
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
    )?;
    for &case in &s.cases {
        writeln!(out)?;
        writeln!(out, "== {}", case.title())?;
        let rate_h = match case {
            Case::Rr { .. } => "req/s",
            Case::Stream => "MiB/s",
        };
        writeln!(
            out,
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
        )?;
        for r in s.rows.iter().filter(|r| r.case == case) {
            if let Some(why) = &r.skipped {
                writeln!(out, "{:<15} skipped: {why}", r.server)?;
                continue;
            }
            let Some(m) = &r.med else {
                writeln!(
                    out,
                    "{:<15} FAILED: {}",
                    r.server,
                    r.first_error.as_deref().unwrap_or("no run finished")
                )?;
                continue;
            };
            writeln!(
                out,
                "{:<15} {:>8} {:>4} {:>6} {:>6}  {:>7} {:>7} {:>7}  {:>8} {:>6} {:>6}  {:>7}  {:>4}",
                r.server,
                rate_fmt(case, m.rate),
                if m.rate_spread.is_finite() {
                    format!("{:.0}", m.rate_spread * 100.0)
                } else {
                    "-".into()
                },
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
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "req/s, MiB/s: echoes completed per second (closed loop, one load-generator thread); \
         ±%: half its range over the rounds."
    )?;
    writeln!(
        out,
        "p50/p99/p99.9: round-trip latency seen by the load generator, µs."
    )?;
    writeln!(
        out,
        "cpu µs: server CPU time (user+sys, all its threads) per request or per MiB."
    )?;
    writeln!(
        out,
        "×floor: ÷ the hand-written loop on the same interface (raw-uring for io_uring servers, \
         raw-epoll for the rest), the median of the ratios within each round;"
    )?;
    writeln!(
        out,
        "        below 1 in req/s = slower, above 1 in cpu = more CPU per request. ×tokio: ÷ tokio."
    )?;
    writeln!(
        out,
        "syscall: server syscalls per request (per MiB when streaming) from its own counters: \
         io_uring_enter calls,"
    )?;
    writeln!(
        out,
        "         or epoll_wait + read/write/accept/epoll_ctl; shown for corering and the floors."
    )?;

    // corering's overhead above the floor of its backend, over the request/response cases.
    writeln!(out)?;
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
    for r in &s.rows {
        if r.skipped.is_some() {
            continue;
        }
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
        if let Some(m) = &r.med {
            if m.cq_overflows > 0 {
                writeln!(
                    out,
                    "note: {} / {}: {} completion-queue overflows",
                    r.server,
                    r.case.label(),
                    m.cq_overflows
                )?;
            }
        }
    }
    let mut skipped: Vec<(&str, &str)> = Vec::new();
    for r in &s.rows {
        if let Some(why) = &r.skipped {
            if !skipped.iter().any(|(n, _)| *n == r.server) {
                skipped.push((r.server, why));
            }
        }
    }
    for (name, why) in skipped {
        writeln!(out, "skipped {name}: {why}")?;
    }
    if ok {
        writeln!(out, "check: every server answered every run without error")?;
    }
    Ok(ok)
}

// ---- files -------------------------------------------------------------------------------

fn js(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn jn(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

fn jo(x: Option<f64>) -> String {
    x.map_or("null".into(), jn)
}

fn case_json(c: Case) -> String {
    match c {
        Case::Rr { conns, size } => {
            format!("{{\"kind\":\"request_response\",\"conns\":{conns},\"size\":{size}}}")
        }
        Case::Stream => "{\"kind\":\"stream\",\"conns\":1,\"size\":65536}".into(),
    }
}

fn sample_json(s: &Sample) -> String {
    format!(
        "{{\"rate\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"cpu_us\":{},\"sys_share\":{},\
         \"syscalls\":{},\"waits\":{},\"ops\":{},\"cq_overflows\":{},\"units\":{},\"secs\":{},\
         \"server_busy\":{},\"server_wait\":{},\"client_busy\":{},\"client_wait\":{},\
         \"errors\":{},\"first_error\":{}}}",
        jn(s.rate),
        jn(s.p50_us),
        jn(s.p99_us),
        jn(s.p999_us),
        jn(s.cpu_us),
        jn(s.sys_share),
        jo(s.syscalls),
        jo(s.waits),
        jo(s.ops),
        s.cq_overflows,
        s.units,
        jn(s.secs),
        jn(s.server_busy),
        jn(s.server_wait),
        jn(s.client_busy),
        jn(s.client_wait),
        s.errors,
        s.first_error.as_deref().map_or("null".into(), js)
    )
}

pub fn write_files(
    cfg: &Config,
    s: &Summary,
    cells: &[Cell],
    info: &RunInfo,
) -> io::Result<Vec<PathBuf>> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // JSON
    let mut j = String::new();
    let _ = write!(
        j,
        "{{\n\"tool\":\"corering examples/compare\",\"corering_version\":{},\"unix_time\":{now},\n\
         \"machine\":{{\"kernel\":{},\"cpu\":{},\"server_core\":{},\"client_core\":{},\
         \"other_load\":{},\"other_load_before\":{},\"steal\":{}}},\n\
         \"config\":{{\"rounds\":{},\"seconds\":{},\"warmup\":{},\"conns\":{:?},\"sizes\":{:?},\
         \"stream\":{},\"quick\":{},\"server_buffer\":{}}},\n\"units\":{{\"request_response\":\
         \"rate = requests/s, cpu_us and syscalls per request\",\"stream\":\"rate = MiB/s, cpu_us \
         and syscalls per MiB\"}},\n\"results\":[",
        js(env!("CARGO_PKG_VERSION")),
        js(&super::sys::kernel()),
        js(&super::sys::cpu_model()),
        info.server_core,
        info.client_core,
        jn(info.other),
        jn(info.busy_before),
        jn(info.steal),
        cfg.rounds,
        jn(cfg.seconds),
        jn(cfg.warmup),
        cfg.conns,
        cfg.sizes,
        cfg.stream,
        cfg.quick,
        servers::BUF
    );
    for (i, r) in s.rows.iter().enumerate() {
        let cell = cells
            .iter()
            .find(|c| c.server == r.server && c.case == r.case);
        let rounds: Vec<String> = cell
            .map(|c| {
                c.runs
                    .iter()
                    .map(|(_, run)| match run {
                        RunResult::Ok(smp) => sample_json(smp),
                        RunResult::Failed(why) => format!("{{\"failed\":{}}}", js(why)),
                        RunResult::Skipped(why) => format!("{{\"skipped\":{}}}", js(why)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let med = r.med.as_ref().map_or("null".into(), |m| {
            format!(
                "{{\"rate\":{},\"rate_spread\":{},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\
                 \"cpu_us\":{},\"sys_share\":{},\"syscalls\":{},\"waits\":{},\"ops\":{},\
                 \"cq_overflows\":{}}}",
                jn(m.rate),
                jn(m.rate_spread),
                jn(m.p50_us),
                jn(m.p99_us),
                jn(m.p999_us),
                jn(m.cpu_us),
                jn(m.sys_share),
                jo(m.syscalls),
                jo(m.waits),
                jo(m.ops),
                m.cq_overflows
            )
        });
        let pair = |p: Option<(f64, f64)>| {
            p.map_or("null".into(), |(a, b)| {
                format!("{{\"rate\":{},\"cpu_us\":{}}}", jn(a), jn(b))
            })
        };
        let _ = write!(
            j,
            "{}\n{{\"server\":{},\"floor\":{},\"case\":{},\"unit\":{},\"skipped\":{},\
             \"errors\":{},\"first_error\":{},\"rounds_ok\":{},\"median\":{med},\
             \"vs_floor\":{},\"vs_tokio\":{},\"rounds\":[{}]}}",
            if i == 0 { "" } else { "," },
            js(r.server),
            servers::kind(r.server)
                .and_then(|k| k.floor)
                .map_or("null".into(), js),
            case_json(r.case),
            js(r.case.unit()),
            r.skipped.as_deref().map_or("null".into(), js),
            r.errors,
            r.first_error.as_deref().map_or("null".into(), js),
            r.rounds_ok,
            pair(r.vs_floor),
            pair(r.vs_tokio),
            rounds.join(",")
        );
    }
    j.push_str("\n]}\n");
    let json_path = cfg.out.join("compare.json");
    std::fs::write(&json_path, j)?;

    // CSV
    let mut c = String::from(
        "server,case,conns,size,unit,rate,rate_spread,rate_vs_floor,rate_vs_tokio,p50_us,p99_us,p999_us,\
         cpu_us,cpu_vs_floor,cpu_vs_tokio,syscalls,rounds_ok,errors,status\n",
    );
    let f = |x: f64| {
        if x.is_finite() {
            format!("{x:.4}")
        } else {
            String::new()
        }
    };
    let fo = |x: Option<f64>| x.map_or(String::new(), f);
    for r in &s.rows {
        let (kind, conns, size) = match r.case {
            Case::Rr { conns, size } => ("rr", conns, size),
            Case::Stream => ("stream", 1, 65536),
        };
        let status = match (&r.skipped, &r.med) {
            (Some(why), _) => format!("\"skipped: {}\"", why.replace('"', "'")),
            (None, None) => "failed".into(),
            (None, Some(_)) if r.errors > 0 => "errors".into(),
            _ => "ok".into(),
        };
        let m = r.med.clone().unwrap_or(Med {
            rate: f64::NAN,
            rate_spread: f64::NAN,
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            p999_us: f64::NAN,
            cpu_us: f64::NAN,
            sys_share: f64::NAN,
            ..Med::default()
        });
        let _ = writeln!(
            c,
            "{},{kind},{conns},{size},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{status}",
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
            r.rounds_ok,
            r.errors
        );
    }
    let csv_path = cfg.out.join("compare.csv");
    std::fs::write(&csv_path, c)?;

    let svg_path = cfg.out.join("compare.svg");
    std::fs::write(&svg_path, svg(cfg, s))?;
    Ok(vec![json_path, csv_path, svg_path])
}

// ---- the chart ---------------------------------------------------------------------------

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

/// A chart panel's title and the figure it plots.
type Metric = (&'static str, fn(&Med) -> f64);

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

fn axis_label(x: f64) -> String {
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

/// Request/s and CPU µs per request against the connection count: one panel per metric and
/// message size, one line per server.
fn svg(cfg: &Config, s: &Summary) -> String {
    let (pw, ph) = (440.0, 270.0);
    let (ml, mr, mt, mb) = (62.0, 16.0, 34.0, 42.0);
    let sizes = &cfg.sizes;
    let conns = &cfg.conns;
    let metrics: [Metric; 2] = [
        ("requests/s (log scale)", |m| m.rate),
        ("server CPU µs per request (log scale)", |m| m.cpu_us),
    ];
    let servers: Vec<&str> = cfg.servers.clone();
    let legend_h = 22.0 * servers.len().div_ceil(4) as f64 + 10.0;
    let width = pw * sizes.len() as f64;
    let height = ph * metrics.len() as f64 + legend_h + 30.0;
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
        super::sys::kernel()
    );
    for (mi, (mname, mget)) in metrics.iter().enumerate() {
        for (si, &size) in sizes.iter().enumerate() {
            let x0 = pw * si as f64 + ml;
            let y0 = 30.0 + ph * mi as f64 + mt;
            let (w, h) = (pw - ml - mr, ph - mt - mb);
            let value = |server: &str, c: usize| -> Option<f64> {
                s.rows
                    .iter()
                    .find(|r| r.server == server && r.case == Case::Rr { conns: c, size })
                    .filter(|r| r.skipped.is_none())
                    .and_then(|r| r.med.as_ref())
                    .map(mget)
                    .filter(|v| v.is_finite())
            };
            let all: Vec<f64> = servers
                .iter()
                .flat_map(|sv| conns.iter().filter_map(move |&c| value(sv, c)))
                .filter(|v| *v > 0.0)
                .collect();
            let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = all.iter().copied().fold(0.0, f64::max);
            // A logarithmic axis: equal ratios are equal distances.
            let ticks = log_ticks(lo, hi);
            let (llo, lhi) = (ticks[0].ln(), ticks[ticks.len() - 1].ln());
            let ypos = move |v: f64| y0 + h - h * (v.ln() - llo) / (lhi - llo);
            let _ = writeln!(
                o,
                "<text x=\"{}\" y=\"{}\" font-size=\"12\" font-weight=\"bold\">{mname}, {}</text>",
                x0,
                y0 - 10.0,
                size_label(size)
            );
            for &v in &ticks {
                let y = ypos(v);
                let _ = writeln!(
                    o,
                    "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#dddddd\"/>\
                     <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                    x0 + w,
                    x0 - 6.0,
                    y + 4.0,
                    axis_label(v)
                );
            }
            let xs = |i: usize| {
                if conns.len() == 1 {
                    x0 + w / 2.0
                } else {
                    x0 + 12.0 + (w - 24.0) * i as f64 / (conns.len() - 1) as f64
                }
            };
            for (i, c) in conns.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{c}</text>",
                    xs(i),
                    y0 + h + 16.0
                );
            }
            let _ = writeln!(
                o,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555555\">connections</text>\
                 <rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" \
                 stroke=\"#888888\"/>",
                x0 + w / 2.0,
                y0 + h + 32.0
            );
            for sv in &servers {
                let pts: Vec<(f64, f64)> = conns
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &c)| {
                        value(sv, c).filter(|v| *v > 0.0).map(|v| (xs(i), ypos(v)))
                    })
                    .collect();
                if pts.is_empty() {
                    continue;
                }
                let col = color(sv);
                let dash = if sv.starts_with("raw-") {
                    " stroke-dasharray=\"5,3\""
                } else {
                    ""
                };
                let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    o,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"{dash}/>",
                    path.join(" ")
                );
                for (x, y) in &pts {
                    let _ = writeln!(
                        o,
                        "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{col}\"><title>{sv}</title></circle>"
                    );
                }
            }
        }
    }
    let ly = 30.0 + ph * metrics.len() as f64 + 10.0;
    for (i, sv) in servers.iter().enumerate() {
        let x = 20.0 + 200.0 * (i % 4) as f64;
        let y = ly + 22.0 * (i / 4) as f64;
        let dash = if sv.starts_with("raw-") {
            " stroke-dasharray=\"5,3\""
        } else {
            ""
        };
        let skipped = s
            .rows
            .iter()
            .any(|r| r.server == *sv && r.skipped.is_some());
        let _ = writeln!(
            o,
            "<line x1=\"{x}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"2\"{dash}/>\
             <text x=\"{}\" y=\"{}\">{sv}{}</text>",
            x + 24.0,
            color(sv),
            x + 30.0,
            y + 4.0,
            if skipped { " (skipped)" } else { "" }
        );
    }
    o.push_str("</svg>\n");
    o
}
