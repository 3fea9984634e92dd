//! compare.json: the machine, the options, and every row with its medians, ratios and the
//! figures of each round. Numbers that are not known (NaN) are written as null.
use serde_json::{json, Value};

use super::{Case, Cell, FileFigures, Med, Row, Rss, RunInfo, RunResult, Sample, Summary};
use crate::hostile::StormFigures;
use crate::load::OpenFigures;
use crate::{servers, Config};

/// A number, or null where it is not finite.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn opt(x: Option<f64>) -> Value {
    x.map_or(Value::Null, num)
}

fn case(c: Case) -> Value {
    let (kind, conns, size) = c.parts();
    let kind = if kind == "rr" {
        "request_response"
    } else {
        kind
    };
    let mut v = json!({"kind": kind, "conns": conns, "size": size});
    if let Case::Hostile { storm } = c {
        v["storm"] = json!(storm.name());
    }
    if let Case::Latency { load, rate, .. } = c {
        v["rate"] = json!(rate);
        v["load_pct"] = json!(load);
    }
    v
}

/// Adds the open loop's own figures (the latency cases only) to an object.
fn add_open(v: &mut Value, open: Option<OpenFigures>) {
    if let Some(f) = open {
        v["max_us"] = num(f.max_us);
        v["offered_rate"] = num(f.offered);
        v["generator_lag_p99_us"] = num(f.lag_p99_us);
        v["generator_lag_max_us"] = num(f.lag_max_us);
        v["unanswered"] = num(f.unanswered);
    }
}

/// Adds what the storm did (the hostile cases only) to an object.
fn add_storm(v: &mut Value, storm: Option<StormFigures>) {
    if let Some(f) = storm {
        v["storm"] = json!({
            "rate": num(f.rate),
            "failed": num(f.failed),
            "open_peak": num(f.open_peak),
            "secs": num(f.secs),
        });
    }
}

/// Adds the figures of a file case to an object.
fn add_file(v: &mut Value, file: Option<FileFigures>) {
    if let Some(f) = file {
        v["mib_s"] = num(f.mib_s);
        v["threads"] = num(f.threads);
        v["pool_threads_peak"] = opt(f.pool_peak);
        v["unpinned_threads"] = opt(f.unpinned);
        v["fsync_rate"] = num(f.syncs_s);
        v["fsync_p50_us"] = num(f.sync_p50_us);
        v["fsync_p99_us"] = num(f.sync_p99_us);
    }
}

/// Adds the memory figures (idle connections only) to an object.
fn add_rss(v: &mut Value, rss: Option<Rss>) {
    if let Some(m) = rss {
        v["rss_before_bytes"] = num(m.before);
        v["rss_after_bytes"] = num(m.after);
        v["rss_per_conn_bytes"] = num(m.per_conn);
    }
}

fn sample(s: &Sample) -> Value {
    let mut v = json!({
        "counts": s.counts(),
        "rate": num(s.rate),
        "p50_us": num(s.p50_us),
        "p99_us": num(s.p99_us),
        "p999_us": num(s.p999_us),
        "cpu_us": num(s.cpu_us),
        "sys_share": num(s.sys_share),
        "syscalls": opt(s.syscalls),
        "waits": opt(s.waits),
        "ops": opt(s.ops),
        "cq_overflows": s.cq_overflows,
        "units": s.units,
        "secs": num(s.secs),
        "server_busy": num(s.server_busy),
        "server_wait": num(s.server_wait),
        "client_busy": num(s.client_busy),
        "client_wait": num(s.client_wait),
        "errors": s.errors,
        "first_error": s.first_error,
    });
    add_rss(&mut v, s.rss);
    add_file(&mut v, s.file.as_deref().copied());
    add_storm(&mut v, s.storm);
    add_open(&mut v, s.open);
    v
}

fn run(r: &RunResult) -> Value {
    match r {
        RunResult::Ok(s) => sample(s),
        RunResult::Failed(why) => json!({ "failed": why }),
        RunResult::Skipped(why) => json!({ "skipped": why }),
    }
}

fn median(m: &Med) -> Value {
    let mut v = json!({
        "rate": num(m.rate),
        "rate_spread": num(m.rate_spread),
        "p50_us": num(m.p50_us),
        "p99_us": num(m.p99_us),
        "p999_us": num(m.p999_us),
        "cpu_us": num(m.cpu_us),
        "sys_share": num(m.sys_share),
        "server_busy": num(m.server_busy),
        "syscalls": opt(m.syscalls),
        "waits": opt(m.waits),
        "ops": opt(m.ops),
        "cq_overflows": m.cq_overflows,
    });
    add_rss(&mut v, m.rss);
    add_file(&mut v, m.file);
    add_storm(&mut v, m.storm);
    add_open(&mut v, m.open);
    if m.rss.is_some() {
        v["rss_spread"] = num(m.rss_spread);
    }
    v
}

/// A (rate, CPU) ratio pair.
fn pair(p: Option<(f64, f64)>) -> Value {
    p.map_or(
        Value::Null,
        |(rate, cpu)| json!({"rate": num(rate), "cpu_us": num(cpu)}),
    )
}

/// A ratio: of rate and CPU, or of memory per idle connection.
fn vs(p: Option<(f64, f64)>, rss: Option<f64>) -> Value {
    match rss {
        Some(x) => json!({ "rss_per_conn_bytes": num(x) }),
        None => pair(p),
    }
}

fn row(r: &Row, cells: &[Cell]) -> Value {
    let rounds: Vec<Value> = cells
        .iter()
        .find(|c| c.server == r.server && c.case == r.case)
        .map(|c| c.runs.iter().map(|(_, x)| run(x)).collect())
        .unwrap_or_default();
    let floor = servers::kind(r.server)
        .and_then(|k| k.floor)
        .filter(|_| !r.case.is_file());
    let mut v = json!({
        "server": r.server,
        "floor": floor,
        "case": case(r.case),
        "unit": r.case.unit(),
        "skipped": r.skipped,
        "errors": r.errors,
        "first_error": r.first_error,
        "rounds_ok": r.rounds_ok,
        "rounds_disturbed": r.rounds_disturbed,
        "median": r.med.as_ref().map_or(Value::Null, median),
        "vs_floor": vs(r.vs_floor, r.rss_vs_floor),
        "vs_tokio": vs(r.vs_tokio, r.rss_vs_tokio),
        "rounds": rounds,
    });
    if r.case.is_file() {
        v["vs_corering_epoll"] = pair(r.vs_epoll);
    }
    if (r.case.is_hostile() || r.case.is_latency()) && r.server != crate::hostile::BASE {
        v["vs_tokio"]["p99_us"] = opt(r.p99_vs_tokio);
    }
    if r.case.is_latency() {
        v["vs_corering_epoll"] = json!({ "p99_us": opt(r.p99_vs_epoll) });
    }
    v
}

fn machine(info: &RunInfo) -> Value {
    json!({
        "kernel": crate::sys::kernel(),
        "cpu": crate::sys::cpu_model(),
        "server_core": info.server_core,
        "client_core": info.client_core,
        "other_load": num(info.other),
        "other_load_before": num(info.busy_before),
        "steal": num(info.steal),
        "hiccups": info.hiccups.iter().map(|h| json!({
            "core": h.core,
            "over_1ms_per_s": num(h.over_1ms_s),
            "max_us": num(h.max_us),
            "stalled_share": num(h.stalled),
        })).collect::<Vec<_>>(),
    })
}

fn config(cfg: &Config) -> Value {
    json!({
        "rounds": cfg.rounds,
        "seconds": num(cfg.seconds),
        "warmup": num(cfg.warmup),
        "conns": cfg.conns,
        "sizes": cfg.sizes,
        "stream": !cfg.stream.is_empty(),
        "stream_conns": cfg.stream,
        "idle": cfg.idle,
        "quick": cfg.quick,
        "server_buffer": servers::BUF,
        "files": cfg.files,
        "http_conns": cfg.http,
        "hostile": cfg.hostile,
        "latency": cfg.latency,
        "latency_arrivals": cfg.arrivals.name(),
        "file_dir": cfg.file_dir.display().to_string(),
        "file_fs": cfg
            .files
            .then(|| crate::sys::fs_type(&cfg.file_dir).ok().map(|(_, name)| name))
            .flatten(),
    })
}

/// The whole file.
pub fn document(cfg: &Config, s: &Summary, cells: &[Cell], info: &RunInfo) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let doc = json!({
        "tool": "corering examples/compare",
        "corering_version": env!("CARGO_PKG_VERSION"),
        "unix_time": now,
        "machine": machine(info),
        "config": config(cfg),
        "units": {
            "request_response": "rate = requests/s, cpu_us and syscalls per request",
            "stream": "rate = MiB/s, cpu_us and syscalls per MiB",
            "idle": "rss_per_conn_bytes = (rss_after_bytes - rss_before_bytes) / conns: the \
                     growth of the server's resident memory when conns connections are open, \
                     each after one echo of size bytes; rate and cpu_us are null",
            "file_random_read": "rate = reads/s (size bytes each, conns = reads in flight), \
                                 mib_s, cpu_us per read (the runner's user+sys over the \
                                 window, all threads), p50/p99 per read, threads = the peak \
                                 thread count of the runner process; vs_corering_epoll and \
                                 vs_tokio = medians of the per-round ratios",
            "http": "rate = requests/s (HTTP/1.1 keep-alive GETs, one in flight per \
                     connection, conns connections, a size-byte body), cpu_us and syscalls \
                     per request, p50/p99 per request; vs_tokio = ÷ hyper-tokio, the median \
                     of the per-round ratios",
            "hostile": "the request/response echo (conns connections, size bytes, closed \
                        loop) beside case.storm (none, reset, vanish, slowloris): rate = \
                        requests/s, p50/p99/p999_us per request, cpu_us = server CPU per \
                        request (the storm's share included), server_busy = the server's CPU \
                        ÷ the window; vs_tokio.p99_us = p99 ÷ tokio's, the median of the \
                        per-round ratios; storm.rate = storm connections/s (reset, vanish) or \
                        bytes/s (slowloris) over the storm's run, storm.failed = storm \
                        connections that failed to open or broke, storm.open_peak = most \
                        storm connections open at once",
            "latency": "the echo in an open loop: requests of size bytes sent on a fixed \
                        schedule of case.rate requests/s (case.load_pct % of the slowest \
                        latency server's closed-loop peak in the request_response case of \
                        the same size and conns), spread over conns connections, several in \
                        flight on one connection when answers are late; each latency runs \
                        from the request's scheduled send time (no coordinated omission); \
                        rate = answered requests/s, p50/p99/p999/max_us per request, \
                        offered_rate = requests scheduled per second of the window, \
                        generator_lag = how late the load generator itself took a request \
                        from its schedule, unanswered = requests with no answer 2 s after \
                        the window (recorded at their age); vs_tokio.p99_us and \
                        vs_corering_epoll.p99_us = medians of the per-round p99 ratios; \
                        latency_knees: where each server's p99 passes 1 ms",
            "file_write_fsync": "rate = writes/s of size bytes, fsync every 16 writes; \
                                 mib_s, cpu_us per write (fsyncs included), p50/p99 per \
                                 write, fsync_rate and fsync_p50_us/fsync_p99_us per fsync",
        },
        "results": s.rows.iter().map(|r| row(r, cells)).collect::<Vec<_>>(),
    });
    let mut doc = doc;
    if s.cases.iter().any(Case::is_latency) {
        doc["latency_knees"] = super::latency_table::knees_json(s);
    }
    let mut text = serde_json::to_string_pretty(&doc).expect("a Value always serializes");
    text.push('\n');
    text
}
