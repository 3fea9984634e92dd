//! What a run will do, found before the first run: the cases, a cell for each server in
//! each (the echo servers in the network cases, the http servers in the http cases, three in
//! the hostile cases; the latency cases get theirs once the peaks are known, in
//! `latency::run_phase`), and which servers cannot run here (io_uring missing, no Go), with the
//! Go programs built where they will run.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::report::{Case, Cell};
use crate::{files, hostile, http, latency, servers, sys, Config};

/// Why servers cannot run here, found before the first run: io_uring missing, or no Go
/// (the echo server and the file runner are built apart).
pub struct Skips {
    uring: Result<(), String>,
    pub go_echo: Result<PathBuf, String>,
    pub go_files: Result<PathBuf, String>,
}

impl Skips {
    /// Checks io_uring, and builds the Go programs that will run.
    pub fn find(cfg: &Config) -> Skips {
        let unused = || Err("not asked for".to_string());
        let go = cfg.servers.contains(&"go");
        let network = !cfg.conns.is_empty() || !cfg.stream.is_empty() || cfg.idle > 0;
        Skips {
            uring: sys::uring_available(),
            go_echo: match go && network {
                true => build_go(&cfg.out, "go-echo", servers::GO_SOURCE),
                false => unused(),
            },
            go_files: match go && cfg.files {
                true => build_go(&cfg.out, "go-files", files::GO_SOURCE),
                false => unused(),
            },
        }
    }

    /// Why `server` cannot run `case`, if it cannot.
    fn of(&self, server: &str, case: Case) -> Option<String> {
        let kind = servers::kind(server).expect("validated");
        if let (true, Err(why)) = (kind.uring, &self.uring) {
            return Some(why.clone());
        }
        match (server, case.is_file()) {
            ("go", false) => self.go_echo.as_ref().err().cloned(),
            ("go", true) => self.go_files.as_ref().err().cloned(),
            _ => None,
        }
    }
}

/// The cases of this invocation, and a cell for each server in each (in the file cases, for
/// each server that has a file runner).
pub fn plan(cfg: &Config, skips: &Skips) -> (Vec<Case>, Vec<Cell>) {
    let mut cases: Vec<Case> = Vec::new();
    for &size in &cfg.sizes {
        for &conns in &cfg.conns {
            cases.push(Case::Rr { conns, size });
        }
    }
    cases.extend(cfg.stream.iter().map(|&conns| Case::Stream { conns }));
    if cfg.idle > 0 {
        cases.push(Case::Idle { conns: cfg.idle });
    }
    cases.extend(files::cases(cfg));
    cases.extend(http::cases(cfg));
    cases.extend(hostile::cases(cfg));
    // The closed-loop cases the latency peaks come from, where the matrix lacks them: for
    // the latency servers only.
    let mut peak_only = Vec::new();
    for case in latency::peak_cases(cfg) {
        if !cases.contains(&case) {
            cases.push(case);
            peak_only.push(case);
        }
    }
    let mut cells: Vec<Cell> = Vec::new();
    for &case in &cases {
        for &server in &cfg.servers {
            if !runs_in(server, case)
                || (peak_only.contains(&case) && !latency::SERVERS.contains(&server))
            {
                continue;
            }
            cells.push(Cell {
                server,
                case,
                runs: Vec::new(),
                skipped: skips.of(server, case),
            });
        }
    }
    (cases, cells)
}

/// Whether `server` has a cell in `case`: the file cases have their runners, the hostile
/// cases theirs, the http cases the http servers, the network cases the echo servers.
fn runs_in(server: &str, case: Case) -> bool {
    if case.is_file() {
        files::RUNNERS.contains(&server)
    } else if case.is_hostile() {
        hostile::SERVERS.contains(&server)
    } else {
        case.is_http() == http::is_http_server(server)
    }
}

/// Builds the Go program `source` into `out/NAME/NAME` (the echo server `go-echo`, the file
/// runner `go-files`) if `go` is on PATH.
fn build_go(out: &Path, name: &str, source: &str) -> Result<PathBuf, String> {
    let go = sys::which("go").ok_or("go is not installed (not on PATH)")?;
    let dir = out.join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let src = dir.join("main.go");
    let bin = dir.join(name);
    let unchanged = std::fs::read_to_string(&src).ok().as_deref() == Some(source);
    if unchanged && bin.exists() {
        return Ok(bin);
    }
    let write =
        |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()));
    write(&src, source)?;
    write(
        &dir.join("go.mod"),
        &format!(
            "module coreringbench/{}\n\ngo 1.18\n",
            name.replace('-', "")
        ),
    )?;
    let res = Command::new(go)
        .args(["build", "-o", name, "."])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("go build: {e}"))?;
    if !res.status.success() {
        let err = String::from_utf8_lossy(&res.stderr);
        return Err(format!("go build failed: {}", err.trim()));
    }
    Ok(bin)
}
