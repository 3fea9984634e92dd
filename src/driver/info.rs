//! What backend runs, and why: the recorded decision.
use std::fmt;

use super::UringTier;

/// Which backend a runtime runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Completions on an io_uring ring.
    Uring,
    /// Readiness from epoll; the syscalls are made by the runtime.
    Epoll,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Uring => "io_uring",
            BackendKind::Epoll => "epoll",
        })
    }
}

/// Which backend a [`Builder`](crate::Builder) asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// io_uring where it works, else epoll. The `CORERING_BACKEND` environment variable
    /// (`uring`, `epoll` or `auto`) overrides this choice, and only this one.
    #[default]
    Auto,
    /// io_uring or an error: building fails where io_uring is unavailable.
    Uring,
    /// epoll, even where io_uring works.
    Epoll,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(BackendChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(BackendChoice::Uring),
            "epoll" => Ok(BackendChoice::Epoll),
            other => Err(format!(
                "unknown backend {other:?}: expected uring, epoll or auto"
            )),
        }
    }
}

/// The io_uring side of the decision: how the ring was set up and what the kernel offers.
#[derive(Clone, Debug, Default)]
pub struct UringInfo {
    /// Submission queue entries (the completion queue has twice as many).
    pub entries: u32,
    /// Setup flags the ring was created with (e.g. `SINGLE_ISSUER`).
    pub setup_flags: Vec<&'static str>,
    /// `IORING_FEAT_*` bits the kernel reported.
    pub features: Vec<&'static str>,
    /// Opcodes corering can use that this kernel lacks (each has a fallback).
    pub opcodes_missing: Vec<&'static str>,
    /// Whether `io_uring_enter` takes a timeout (5.11); without it a TIMEOUT entry bounds waits.
    pub ext_arg: bool,
    /// Every setup attempt, in order, with its outcome.
    pub attempts: Vec<String>,
    /// The tier in force: the newest [`UringTier`] all of whose interfaces this ring uses (at
    /// most the cap).
    pub tier: UringTier,
    /// The tier cap, and who set it (`Builder::uring_tier` or `CORERING_URING_TIER`); `None`
    /// when the backend uses what the kernel offers.
    pub tier_cap: Option<(UringTier, &'static str)>,
    /// The fast-path interfaces in use: of `REGISTERED_RING`, `MULTISHOT_ACCEPT`, `BUF_RING`,
    /// `MULTISHOT_RECV` and `SEND_ZC`, those this ring has (under the cap).
    pub fast_path: Vec<&'static str>,
    /// Interfaces this kernel offers that corering keeps off (`RECV_BUNDLE`,
    /// `PBUF_INCREMENTAL`: some kernels reorder data with them).
    pub kept_off: Vec<&'static str>,
    /// io-wq's worker limits for this ring, `[bounded, unbounded]` (bounded: regular files
    /// and block devices; unbounded: sockets, pipes), as the kernel reports them after
    /// [`Builder::io_workers`](crate::Builder::io_workers); `None` where the kernel cannot
    /// bound them (before 5.15, or capped below it).
    pub io_workers: Option<[u32; 2]>,
}

/// The backend a runtime runs and why it was chosen. `Display` prints a short report.
#[derive(Clone, Debug)]
pub struct BackendInfo {
    pub(crate) kind: BackendKind,
    pub(crate) reason: String,
    pub(crate) uring: Option<UringInfo>,
    pub(crate) blocking_threads: usize,
}

impl BackendInfo {
    /// The backend that runs.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }
    /// Why it was chosen (e.g. "asked for epoll", or why io_uring could not be used).
    pub fn reason(&self) -> &str {
        &self.reason
    }
    /// Ring details, on io_uring.
    pub fn uring(&self) -> Option<&UringInfo> {
        self.uring.as_ref()
    }
    /// The bound on the runtime's blocking-pool threads (file ops on epoll, opcodes the
    /// kernel lacks, [`spawn_blocking`](crate::spawn_blocking)).
    pub fn blocking_threads(&self) -> usize {
        self.blocking_threads
    }
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "backend: {}", self.kind)?;
        write!(f, "reason:  {}", self.reason)?;
        if let Some(u) = &self.uring {
            write!(
                f,
                "\nring:    {} entries, setup flags [{}]",
                u.entries,
                u.setup_flags.join(" ")
            )?;
            write!(f, "\nfeatures: [{}]", u.features.join(" "))?;
            match u.tier_cap {
                Some((cap, by)) => write!(f, "\ntier:    {} (capped at {cap} by {by})", u.tier)?,
                None => write!(f, "\ntier:    {} (what this kernel offers)", u.tier)?,
            }
            write!(f, "\nfast path: [{}]", u.fast_path.join(" "))?;
            if !u.kept_off.is_empty() {
                write!(f, " (offered, kept off: [{}])", u.kept_off.join(" "))?;
            }
            if !u.opcodes_missing.is_empty() {
                write!(
                    f,
                    "\nmissing opcodes (fallbacks in use): [{}]",
                    u.opcodes_missing.join(" ")
                )?;
            }
            match u.io_workers {
                Some([bounded, unbounded]) => write!(
                    f,
                    "\nio-wq:   at most {bounded} bounded, {unbounded} unbounded workers"
                )?,
                None => write!(f, "\nio-wq:   kernel default (no limit before 5.15)")?,
            }
            write!(
                f,
                "\nwait timeout: {}",
                if u.ext_arg {
                    "on io_uring_enter (EXT_ARG)"
                } else {
                    "TIMEOUT entry"
                }
            )?;
        }
        write!(
            f,
            "\nblocking pool: at most {} threads",
            self.blocking_threads
        )
    }
}
