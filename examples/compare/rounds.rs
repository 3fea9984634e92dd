//! The rounds: every round runs every case once on every server that has a cell in it, the
//! servers in an order rotated each round; a progress line on stderr meanwhile.
use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use crate::report::{Case, Cell, RunResult};
use crate::{Config, Launcher};

/// Runs `runs` cells (those not skipped) for `cfg.rounds` rounds, adding each result to its
/// cell; a server that says it cannot run here is marked skipped in every case.
pub fn run_all(cfg: &Config, cases: &[Case], cells: &mut [Cell], runs: usize, launcher: &Launcher) {
    let mut progress = Progress {
        tty: io::stderr().is_terminal(),
        total: runs * cfg.rounds,
        done: 0,
        started: Instant::now(),
    };
    for round in 0..cfg.rounds {
        for &case in cases {
            // Rotate the server order each round so that no server always runs first.
            let n = cfg.servers.len();
            for k in 0..n {
                let server = cfg.servers[(k + round) % n];
                // The file cases have cells for their runners only.
                let Some(cell) = cells
                    .iter_mut()
                    .find(|c| c.server == server && c.case == case)
                else {
                    continue;
                };
                if cell.skipped.is_some() {
                    continue;
                }
                progress.show(&format!(
                    "round {}/{}  {:<18} {server}",
                    round + 1,
                    cfg.rounds,
                    case.label()
                ));
                let result = crate::run_one(launcher, cfg, server, case);
                progress.done += 1;
                if let RunResult::Skipped(why) = &result {
                    // A server that says it cannot run here will not run in later cases either.
                    for c in cells.iter_mut().filter(|c| c.server == server) {
                        c.skipped = Some(why.clone());
                    }
                    continue;
                }
                cell.runs.push((round, result));
            }
        }
    }
    progress.finish();
}

/// Prints progress on stderr: one line rewritten in place on a terminal, else a line per run.
struct Progress {
    tty: bool,
    total: usize,
    done: usize,
    started: Instant,
}

impl Progress {
    fn show(&mut self, msg: &str) {
        let left = if self.done > 0 {
            let per = self.started.elapsed().as_secs_f64() / self.done as f64;
            let s = (per * (self.total - self.done) as f64) as u64;
            format!("{}m{:02}s left", s / 60, s % 60)
        } else {
            "...".into()
        };
        let line = format!("[{:>3}/{}, {left}] {msg}", self.done + 1, self.total);
        let mut err = io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!(
            "ran {} runs in {:.0} s",
            self.done,
            self.started.elapsed().as_secs_f64()
        );
    }
}
