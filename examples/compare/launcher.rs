//! Starting the servers under test: the runner's side (`Launcher::start`, a process per run,
//! pinned to the servers' core, that says `READY data=ADDR ctl=ADDR` or `SKIP why` on its
//! first line) and the server's side (`serve_main`, the hidden `--serve KIND --addr ADDR`).
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use crate::{files, servers, sys};

/// The hidden server mode: `--serve KIND --addr ADDR`.
pub fn serve_main(args: &[String]) -> ExitCode {
    let kind = args.get(1).map(String::as_str).unwrap_or("");
    let addr = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("--addr"), Some(a)) => a.as_str(),
        _ => "127.0.0.1:0",
    };
    // The runner raised its own limit before starting us, and we inherit it; a server started
    // by hand gets the same.
    sys::raise_nofile();
    match servers::serve(kind, addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare --serve {kind}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A server process under test; killed when dropped.
pub struct ServerProc {
    pub child: Child,
    pub data: String,
    pub ctl: Option<String>,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub enum Start {
    Up(ServerProc),
    Skip(String),
    Fail(String),
}

/// How to start each server.
pub struct Launcher {
    pub exe: PathBuf,
    pub go_bin: Option<PathBuf>,
    pub server_core: usize,
    pub log: std::fs::File,
    /// The file cases' directory and Go runner, when they run.
    pub files: Option<files::Setup>,
}

impl Launcher {
    pub fn start(&self, kind: &str) -> Start {
        let mut cmd = if kind == "go" {
            let Some(bin) = &self.go_bin else {
                return Start::Skip("go is not built".into());
            };
            let mut c = Command::new(bin);
            c.args(["-addr", "127.0.0.1:0", "-buf", &servers::BUF.to_string()]);
            c.env("GOMAXPROCS", "1");
            c
        } else {
            let mut c = Command::new(&self.exe);
            c.args(["--serve", kind, "--addr", "127.0.0.1:0"]);
            c
        };
        let log = match self.log.try_clone() {
            Ok(f) => Stdio::from(f),
            Err(_) => Stdio::null(),
        };
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
        let core = self.server_core;
        // SAFETY: the hook runs in the child between fork and exec; it only makes the
        // sched_setaffinity syscall on a stack-allocated set, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || sys::pin_to(core));
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Start::Fail(format!("could not start: {e}")),
        };
        let stdout = child.stdout.take().expect("piped");
        let first = if sys::wait_readable(stdout.as_raw_fd(), Duration::from_secs(20)) {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line
        } else {
            String::new()
        };
        let proc_ = ServerProc {
            child,
            data: String::new(),
            ctl: None,
        };
        let line = first.trim();
        if let Some(reason) = line.strip_prefix("SKIP ") {
            return Start::Skip(reason.to_string());
        }
        let Some(rest) = line.strip_prefix("READY ") else {
            return Start::Fail(format!(
                "did not start (said {line:?}; see {})",
                self.log_path_hint()
            ));
        };
        let mut proc_ = proc_;
        for field in rest.split_whitespace() {
            match field.split_once('=') {
                Some(("data", a)) => proc_.data = a.to_string(),
                Some(("ctl", a)) if a != "-" => proc_.ctl = Some(a.to_string()),
                _ => {}
            }
        }
        if proc_.data.is_empty() {
            return Start::Fail(format!("bad READY line {line:?}"));
        }
        Start::Up(proc_)
    }

    fn log_path_hint(&self) -> &'static str {
        "servers.log in the output directory"
    }
}
