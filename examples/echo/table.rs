//! The table of per-core counters `echo` prints at exit.
use std::io;

use corering::{BackendKind, CoreReport};

/// The per-core counters: one row per core, then the totals.
pub fn print_table(kind: BackendKind, reports: &[CoreReport<io::Result<usize>>]) {
    let waits = match kind {
        BackendKind::Uring => "io_uring_enter",
        BackendKind::Epoll => "epoll_wait",
    };
    println!();
    println!(
        "{:>4} {:>4} {:>8} {:>8} {:>12} {:>12} {:>14} {:>10} {:>8} {:>6}",
        "core",
        "cpu",
        "conns",
        "tasks",
        "ops sub",
        "ops done",
        waits,
        "compl/wait",
        "remote",
        "cq ovf"
    );
    let mut total = [0u64; 7];
    for r in reports {
        let s = &r.stats;
        let conns = match &r.output {
            Ok(Ok(n)) => n.to_string(),
            Ok(Err(_)) => "error".into(),
            Err(e) if e.is_cancelled() => "cancelled".into(),
            Err(_) => "panicked".into(),
        };
        let cpu = r.cpu.map_or("-".into(), |c| c.to_string());
        let d = &s.driver;
        let row = [
            r.output
                .as_ref()
                .ok()
                .and_then(|o| o.as_ref().ok())
                .map_or(0, |&n| n as u64),
            s.tasks_spawned,
            d.ops_submitted,
            d.ops_completed,
            d.waits,
            s.remote_wakes,
            d.cq_overflows,
        ];
        for (t, v) in total.iter_mut().zip(row) {
            *t += v;
        }
        println!(
            "{:>4} {:>4} {:>8} {:>8} {:>12} {:>12} {:>14} {:>10.2} {:>8} {:>6}",
            r.core,
            cpu,
            conns,
            s.tasks_spawned,
            d.ops_submitted,
            d.ops_completed,
            d.waits,
            per_wait(d.ops_completed, d.waits),
            s.remote_wakes,
            d.cq_overflows
        );
    }
    let [conns, tasks, sub, done, waits, remote, ovf] = total;
    println!(
        "{:>4} {:>4} {:>8} {:>8} {:>12} {:>12} {:>14} {:>10.2} {:>8} {:>6}",
        "all",
        "",
        conns,
        tasks,
        sub,
        done,
        waits,
        per_wait(done, waits),
        remote,
        ovf
    );
}

fn per_wait(completed: u64, waits: u64) -> f64 {
    if waits == 0 {
        0.0
    } else {
        completed as f64 / waits as f64
    }
}
