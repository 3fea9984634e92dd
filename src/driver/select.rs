//! Backend selection: the one place the backend is chosen, and the recorded reason.
//!
//! Setup tries io_uring with the newest flags first and steps down on the kernel's answer:
//!
//! | `io_uring_setup` says | meaning                                        | we do |
//! |---|---|---|
//! | `EINVAL`              | a flag is newer than this kernel               | drop the newest flag, retry |
//! | `ENOMEM`              | ring memory charged to RLIMIT_MEMLOCK (< 5.12) | halve the entries (down to 16), retry |
//! | `ENOSYS`              | no io_uring (old kernel, podman's seccomp)     | epoll |
//! | `EPERM` / `EACCES`    | forbidden (Docker ≥ 25 seccomp, `kernel.io_uring_disabled`) | epoll |
//!
//! Then IORING_REGISTER_PROBE checks the opcodes we submit; a missing required one means epoll.
//! Tiers come from the probe and the feature bits, never from `uname`; a tier cap
//! ([`tier`](super::tier)) filters those answers.
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use bitflags::bitflags;
use io_uring::{opcode, IoUring, Probe};

use super::blocking::BlockingPool;
use super::contract::FileOpcodes;
use super::fast_path::FastPath;
use super::lane::BlockingLane;
use super::tier::{tier_in_force, TierCap, UringFeature};
use super::ZeroCopy;
use super::{
    BackendChoice, BackendInfo, BackendKind, Driver, EpollDriver, UringCaps, UringDriver,
    UringInfo, UringTier,
};
use crate::buf::PoolConfig;

bitflags! {
    /// io_uring setup flags we ask for, newest first in [`SetupFlags::NEWEST_FIRST`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct SetupFlags: u8 {
        /// 5.19: completions are posted when we enter the kernel, not by interrupting us.
        const COOP_TASKRUN = 1 << 0;
        /// 6.0: only the creating thread submits (true of a per-core ring).
        const SINGLE_ISSUER = 1 << 1;
        /// 6.1: completion work runs only when we wait for it (needs SINGLE_ISSUER).
        const DEFER_TASKRUN = 1 << 2;
    }
}

impl SetupFlags {
    const NEWEST_FIRST: [SetupFlags; 3] = [
        SetupFlags::DEFER_TASKRUN,
        SetupFlags::SINGLE_ISSUER,
        SetupFlags::COOP_TASKRUN,
    ];

    /// The feature each flag is, for the tier cap.
    fn feature(self) -> UringFeature {
        if self == SetupFlags::COOP_TASKRUN {
            UringFeature::CoopTaskrun
        } else if self == SetupFlags::SINGLE_ISSUER {
            UringFeature::SingleIssuer
        } else {
            UringFeature::DeferTaskrun
        }
    }

    fn names(self) -> Vec<&'static str> {
        self.iter_names().map(|(n, _)| n).collect()
    }
}

/// ENOMEM halves the entries no further than this (a ring asked for smaller is tried as asked,
/// and not halved).
const MIN_ENTRIES: u32 = 16;

/// Opcodes without which the io_uring backend cannot run.
const REQUIRED_OPCODES: [(u8, &str); 11] = [
    (opcode::Nop::CODE, "NOP"),
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Timeout::CODE, "TIMEOUT"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::PollAdd::CODE, "POLL_ADD"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::RecvMsg::CODE, "RECVMSG"),
];

/// A successful setup: the ring and what was learned making it.
pub(crate) struct RingSetup<R> {
    pub ring: R,
    pub flags: SetupFlags,
    pub attempts: Vec<String>,
}

/// A failed setup: the last error and every attempt.
pub(crate) struct SetupFailure {
    pub error: io::Error,
    pub attempts: Vec<String>,
}

/// Steps down through flags and sizes as the kernel's errors say. `build` is the real
/// `io_uring_setup` in production and a fake in tests.
pub(crate) fn setup_ring<R>(
    entries: u32,
    mut flags: SetupFlags,
    mut build: impl FnMut(u32, SetupFlags) -> io::Result<R>,
) -> Result<RingSetup<R>, SetupFailure> {
    let mut entries = entries;
    let mut attempts = Vec::new();
    loop {
        let label = format!("{entries} entries [{}]", flags.names().join(" "));
        match build(entries, flags) {
            Ok(ring) => {
                attempts.push(format!("{label}: ok"));
                return Ok(RingSetup {
                    ring,
                    flags,
                    attempts,
                });
            }
            Err(error) => {
                attempts.push(format!("{label}: {error}"));
                match error.raw_os_error() {
                    Some(libc::EINVAL) if !flags.is_empty() => {
                        let newest = SetupFlags::NEWEST_FIRST
                            .into_iter()
                            .find(|f| flags.contains(*f));
                        flags.remove(newest.unwrap_or(SetupFlags::all()));
                    }
                    Some(libc::ENOMEM) if entries / 2 >= MIN_ENTRIES => entries /= 2,
                    _ => return Err(SetupFailure { error, attempts }),
                }
            }
        }
    }
}

/// The real `io_uring_setup`, behind the tier cap: a flag newer than the cap gets the `EINVAL`
/// an older kernel answers, so [`setup_ring`] steps down exactly as it would there.
fn build_ring(cap: TierCap, entries: u32, flags: SetupFlags) -> io::Result<IoUring> {
    if flags.iter().any(|f| !cap.allows(f.feature())) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut builder = IoUring::builder();
    builder.setup_cqsize(entries * 2);
    if flags.contains(SetupFlags::COOP_TASKRUN) {
        // TASKRUN_FLAG (same kernel, 5.19): the ring says when task work waits for an enter.
        builder.setup_coop_taskrun().setup_taskrun_flag();
    }
    if flags.contains(SetupFlags::SINGLE_ISSUER) {
        builder.setup_single_issuer();
    }
    if flags.contains(SetupFlags::DEFER_TASKRUN) {
        builder.setup_defer_taskrun();
    }
    builder.build(entries)
}

/// `IORING_FEAT_*` bits the kernel reported, with the kernel version that brought each; bits
/// newer than the tier cap are not listed (a kernel at the cap would not report them).
fn feature_names(p: &io_uring::Parameters, cap: TierCap) -> Vec<&'static str> {
    let all = [
        (p.is_feature_single_mmap(), "SINGLE_MMAP", (5, 4)),
        (p.is_feature_nodrop(), "NODROP", (5, 5)),
        (p.is_feature_submit_stable(), "SUBMIT_STABLE", (5, 5)),
        (p.is_feature_rw_cur_pos(), "RW_CUR_POS", (5, 6)),
        (p.is_feature_cur_personality(), "CUR_PERSONALITY", (5, 6)),
        (p.is_feature_fast_poll(), "FAST_POLL", (5, 7)),
        (p.is_feature_poll_32bits(), "POLL_32BITS", (5, 9)),
        (p.is_feature_sqpoll_nonfixed(), "SQPOLL_NONFIXED", (5, 11)),
        (p.is_feature_ext_arg(), "EXT_ARG", (5, 11)),
        (p.is_feature_native_workers(), "NATIVE_WORKERS", (5, 12)),
        (p.is_feature_resource_tagging(), "RSRC_TAGS", (5, 13)),
        (p.is_feature_skip_cqe_on_success(), "CQE_SKIP", (5, 17)),
        (p.is_feature_linked_file(), "LINKED_FILE", (5, 17)),
        (p.is_feature_recvsend_bundle(), "RECVSEND_BUNDLE", (6, 10)),
    ];
    all.into_iter()
        .filter(|(on, _, (major, minor))| *on && cap.allows_version(*major, *minor))
        .map(|(_, n, _)| n)
        .collect()
}

/// Why io_uring could not be used, in words a user can act on.
fn explain(error: &io::Error) -> String {
    let hint = match error.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (before 5.1, or a seccomp profile such as podman's answers ENOSYS)",
        Some(libc::EPERM) | Some(libc::EACCES) => "io_uring is forbidden here (a seccomp profile such as Docker's, or the kernel.io_uring_disabled sysctl)",
        Some(libc::ENOMEM) => "not enough locked memory for a ring (RLIMIT_MEMLOCK; kernels before 5.12 charge ring memory to it)",
        Some(libc::EINVAL) => "the kernel rejected every ring configuration we tried",
        _ => "io_uring setup failed",
    };
    format!("io_uring unavailable: {hint}: {error}")
}

/// Asks the kernel (through the cap) which opcodes it has: the ones we can use, or why not.
fn probe_opcodes(
    ring: &IoUring,
    cap: TierCap,
) -> Result<(UringCaps, FastPath), (String, io::Error)> {
    let mut probe = Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        let why =
            format!("io_uring present but IORING_REGISTER_PROBE failed (kernel before 5.6?): {e}");
        return Err((why, e));
    }
    let missing: Vec<&str> = REQUIRED_OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if !missing.is_empty() {
        let why = format!("io_uring lacks required opcodes: {}", missing.join(" "));
        return Err((why, io::Error::from(io::ErrorKind::Unsupported)));
    }
    let fast = FastPath::probe(ring, &probe, cap);
    let caps = UringCaps {
        shutdown: probe.is_supported(opcode::Shutdown::CODE)
            && cap.allows(UringFeature::OpShutdown),
        multishot_accept: fast.multishot_accept,
        buf_ring: fast.buf_ring,
        multishot_recv: fast.multishot_recv,
        send_zc: fast.send_zc,
        files: probe_file_opcodes(&probe, cap),
    };
    Ok((caps, fast))
}

/// The file opcodes of [`FileOpcodes`] the ring has, behind the cap (those newer than 5.10
/// read as missing above it).
fn probe_file_opcodes(probe: &Probe, cap: TierCap) -> FileOpcodes {
    let all = [
        (FileOpcodes::OPENAT, opcode::OpenAt::CODE, None),
        (FileOpcodes::READ, opcode::Read::CODE, None),
        (FileOpcodes::WRITE, opcode::Write::CODE, None),
        (FileOpcodes::FSYNC, opcode::Fsync::CODE, None),
        (FileOpcodes::STATX, opcode::Statx::CODE, None),
        (FileOpcodes::FALLOCATE, opcode::Fallocate::CODE, None),
        (
            FileOpcodes::RENAMEAT,
            opcode::RenameAt::CODE,
            Some(UringFeature::OpPathAt),
        ),
        (
            FileOpcodes::UNLINKAT,
            opcode::UnlinkAt::CODE,
            Some(UringFeature::OpPathAt),
        ),
        (
            FileOpcodes::MKDIRAT,
            opcode::MkDirAt::CODE,
            Some(UringFeature::OpMkdirAt),
        ),
        (
            FileOpcodes::FTRUNCATE,
            opcode::Ftruncate::CODE,
            Some(UringFeature::OpFtruncate),
        ),
    ];
    let mut files = FileOpcodes::empty();
    for (flag, code, feature) in all {
        if probe.is_supported(code) && feature.is_none_or(|f| cap.allows(f)) {
            files |= flag;
        }
    }
    files
}

/// The file opcodes a ring lacks, by name (they run on the blocking pool).
fn missing_file_opcodes(files: FileOpcodes) -> Vec<&'static str> {
    FileOpcodes::all()
        .iter_names()
        .filter(|(_, f)| !files.contains(*f))
        .map(|(n, _)| n)
        .collect()
}

/// Bounds io-wq (5.15+; older kernels answer EINVAL and keep their default): the limits now
/// in force, bounded (regular files) and unbounded (sockets, pipes), or `None` if the kernel
/// cannot bound them.
fn bound_io_workers(ring: &IoUring, cap: TierCap, asked: IoWorkers) -> Option<[u32; 2]> {
    let mut limits = [asked.bounded, asked.unbounded];
    cap.gate(UringFeature::IowqMaxWorkers, || {
        ring.submitter().register_iowq_max_workers(&mut limits)
    })
    .ok()?;
    // Zeros change nothing and read back the limits in force.
    let mut now = [0u32, 0];
    ring.submitter()
        .register_iowq_max_workers(&mut now)
        .ok()
        .map(|()| now)
}

/// Tries to make an io_uring driver: the driver, or why not.
fn try_uring(
    config: &DriverConfig,
    cap: (TierCap, &'static str),
    links: &CoreLinks,
) -> Result<(UringDriver, UringInfo), (String, io::Error)> {
    let (cap, cap_source) = cap;
    let setup = setup_ring(config.entries, SetupFlags::all(), |n, f| {
        build_ring(cap, n, f)
    })
    .map_err(|f| {
        let why = format!(
            "{} (attempts: {})",
            explain(&f.error),
            f.attempts.join("; ")
        );
        (why, f.error)
    })?;
    let ring = setup.ring;
    let (caps, fast) = probe_opcodes(&ring, cap)?;
    // Blocking-capable ops could otherwise start one io-wq worker per op: bound the pool.
    let io_workers = bound_io_workers(&ring, cap, config.io_workers);
    let params = ring.params();
    let ext_arg = params.is_feature_ext_arg() && cap.allows(UringFeature::ExtArg);
    let flags = setup.flags;
    let features = feature_names(params, cap);
    let entries = params.sq_entries();
    let modes = (ext_arg, flags.contains(SetupFlags::DEFER_TASKRUN));
    let tuning = (cap, config.pool, config.zero_copy);
    let driver = UringDriver::new(ring, caps, modes, tuning, (links.wake_fd, links.lane()))
        .map_err(|e| (format!("io_uring driver setup failed: {e}"), e))?;
    let registered_ring = driver.registered_ring();
    let tier = tier_in_force(|f| match f {
        UringFeature::ExtArg => ext_arg,
        UringFeature::OpShutdown => caps.shutdown,
        UringFeature::IowqMaxWorkers => io_workers.is_some(),
        UringFeature::OpPathAt => caps
            .files
            .contains(FileOpcodes::RENAMEAT | FileOpcodes::UNLINKAT),
        UringFeature::OpMkdirAt => caps.files.contains(FileOpcodes::MKDIRAT),
        UringFeature::OpFtruncate => caps.files.contains(FileOpcodes::FTRUNCATE),
        UringFeature::RegisteredRing => registered_ring,
        UringFeature::CoopTaskrun => flags.contains(SetupFlags::COOP_TASKRUN),
        UringFeature::MultishotAccept => caps.multishot_accept,
        UringFeature::BufRing => caps.buf_ring,
        UringFeature::SingleIssuer => flags.contains(SetupFlags::SINGLE_ISSUER),
        UringFeature::MultishotRecv => caps.multishot_recv,
        UringFeature::SendZc => caps.send_zc,
        UringFeature::DeferTaskrun => flags.contains(SetupFlags::DEFER_TASKRUN),
        // Kept off: a ring that does not use them is not at their tier.
        UringFeature::RecvBundle | UringFeature::IncrementalBuffers => false,
    });
    let info = UringInfo {
        // What the kernel made of the size asked for (rounded up to a power of two).
        entries,
        setup_flags: flags.names(),
        features,
        opcodes_missing: (!caps.shutdown)
            .then_some("SHUTDOWN")
            .into_iter()
            .chain(missing_file_opcodes(caps.files))
            .collect(),
        io_workers,
        ext_arg,
        attempts: setup.attempts,
        tier,
        tier_cap: cap.0.map(|t| (t, cap_source)),
        fast_path: fast.in_use(registered_ring),
        kept_off: fast.kept_off(),
    };
    Ok((driver, info))
}

/// What a [`Builder`](crate::Builder) asks of the driver.
#[derive(Clone, Debug)]
pub(crate) struct DriverConfig {
    pub backend: BackendChoice,
    pub entries: u32,
    /// Which io_uring interfaces to treat as absent.
    pub uring_tier: TierRequest,
    /// Each core's buffer pool.
    pub pool: PoolConfig,
    /// When writes are zero-copy sends.
    pub zero_copy: ZeroCopy,
    /// The bound on the runtime's blocking-pool threads.
    pub blocking_threads: usize,
    /// io_uring's io-wq limits, per ring.
    pub io_workers: IoWorkers,
    /// Who chose `backend` when the builder did not force it: [`Runtime::run`](
    /// crate::Runtime::run) gives every core the backend its first core chose, and says so
    /// in the errors of a core that cannot build it.
    pub chosen_by: Option<&'static str>,
}

/// io-wq worker limits per ring (`IORING_REGISTER_IOWQ_MAX_WORKERS`); 0 keeps the kernel's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoWorkers {
    /// Workers for regular files and block devices (the kernel's default: the SQ size,
    /// bounded by 4 × CPUs).
    pub bounded: u32,
    /// Workers for everything else (sockets, pipes; the kernel's default: RLIMIT_NPROC).
    pub unbounded: u32,
}

impl Default for IoWorkers {
    fn default() -> IoWorkers {
        IoWorkers {
            bounded: 0,
            unbounded: 64,
        }
    }
}

/// What ties a core's driver to the rest of its runtime: how another thread wakes the core
/// (its eventfd, which the driver waits on, and the call that writes it, coalesced through the
/// core's inbox), and the runtime's blocking pool.
pub(crate) struct CoreLinks {
    pub wake_fd: RawFd,
    pub notify: Arc<dyn Fn() + Send + Sync>,
    pub blocking: Arc<BlockingPool>,
}

impl CoreLinks {
    fn lane(&self) -> BlockingLane {
        BlockingLane::new(self.blocking.clone(), self.notify.clone())
    }
}

/// What a builder asked of the tier cap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum TierRequest {
    /// Nothing: `CORERING_URING_TIER` decides, and without it nothing is capped.
    #[default]
    FromEnv,
    /// No cap, whatever the environment says.
    Uncapped,
    /// Interfaces newer than this kernel version read as absent.
    Cap(UringTier),
}

/// The tier cap in force: the builder's, else `CORERING_URING_TIER`'s (an empty value, `none`
/// or `kernel` means no cap), and where it came from.
fn resolve_tier(asked: TierRequest) -> io::Result<(TierCap, &'static str)> {
    match asked {
        TierRequest::Cap(tier) => return Ok((TierCap(Some(tier)), "Builder::uring_tier")),
        TierRequest::Uncapped => return Ok((TierCap(None), "Builder::uring_tier")),
        TierRequest::FromEnv => {}
    }
    let Ok(value) = std::env::var("CORERING_URING_TIER") else {
        return Ok((TierCap(None), "the kernel"));
    };
    let value = value.trim();
    if value.is_empty()
        || value.eq_ignore_ascii_case("none")
        || value.eq_ignore_ascii_case("kernel")
    {
        return Ok((TierCap(None), "the kernel"));
    }
    value
        .parse::<UringTier>()
        .map(|t| (TierCap(Some(t)), "CORERING_URING_TIER"))
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("CORERING_URING_TIER: {e}"),
            )
        })
}

/// Applies `CORERING_BACKEND` to an `Auto` choice.
fn resolve(
    choice: BackendChoice,
    chosen_by: Option<&'static str>,
) -> io::Result<(BackendChoice, &'static str)> {
    if choice != BackendChoice::Auto {
        return Ok((choice, chosen_by.unwrap_or("asked for by the builder")));
    }
    match std::env::var("CORERING_BACKEND") {
        Ok(v) => v
            .parse::<BackendChoice>()
            .map(|c| (c, "asked for by CORERING_BACKEND"))
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("CORERING_BACKEND: {e}"),
                )
            }),
        Err(_) => Ok((BackendChoice::Auto, "auto")),
    }
}

/// Chooses the backend, makes its driver and records why.
pub(crate) fn select(
    config: &DriverConfig,
    links: &CoreLinks,
) -> io::Result<(Driver, BackendInfo)> {
    let (choice, source) = resolve(config.backend, config.chosen_by)?;
    // Read only on the way to io_uring: the variable means nothing to a forced epoll.
    let cap = || resolve_tier(config.uring_tier);
    let epoll = |reason: String| -> io::Result<(Driver, BackendInfo)> {
        let driver = EpollDriver::new(links.wake_fd, config.pool, links.lane())?;
        Ok((
            Driver::Epoll(driver),
            BackendInfo {
                kind: BackendKind::Epoll,
                reason,
                uring: None,
                blocking_threads: links.blocking.max_threads(),
            },
        ))
    };
    match choice {
        BackendChoice::Epoll => epoll(format!("epoll {source}")),
        BackendChoice::Uring => match try_uring(config, cap()?, links) {
            Ok((d, info)) => Ok((
                Driver::Uring(d),
                BackendInfo {
                    kind: BackendKind::Uring,
                    reason: format!("io_uring {source}"),
                    uring: Some(info),
                    blocking_threads: links.blocking.max_threads(),
                },
            )),
            Err((why, e)) => Err(io::Error::new(
                if e.kind() == io::ErrorKind::Other {
                    io::ErrorKind::Unsupported
                } else {
                    e.kind()
                },
                format!("corering: io_uring backend {source} but {why}"),
            )),
        },
        BackendChoice::Auto => match try_uring(config, cap()?, links) {
            Ok((d, info)) => Ok((
                Driver::Uring(d),
                BackendInfo {
                    kind: BackendKind::Uring,
                    reason: format!("io_uring works here ({source})"),
                    uring: Some(info),
                    blocking_threads: links.blocking.max_threads(),
                },
            )),
            Err((why, _)) => epoll(format!("fell back to epoll: {why}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(e: i32) -> io::Error {
        io::Error::from_raw_os_error(e)
    }

    #[test]
    fn einval_drops_newest_flags_first() {
        let mut seen = Vec::new();
        let out = setup_ring(256, SetupFlags::all(), |n, f| {
            seen.push(f);
            if f.contains(SetupFlags::SINGLE_ISSUER) {
                Err(errno(libc::EINVAL))
            } else {
                Ok(n)
            }
        })
        .ok()
        .unwrap();
        assert_eq!(out.flags, SetupFlags::COOP_TASKRUN);
        assert_eq!(
            seen,
            vec![
                SetupFlags::all(),
                SetupFlags::SINGLE_ISSUER | SetupFlags::COOP_TASKRUN,
                SetupFlags::COOP_TASKRUN
            ]
        );
        assert_eq!(out.attempts.len(), 3);
    }

    #[test]
    fn einval_with_no_flags_left_fails() {
        let err = setup_ring(64, SetupFlags::all(), |_, _| {
            Err::<(), _>(errno(libc::EINVAL))
        })
        .err()
        .unwrap();
        assert_eq!(err.error.raw_os_error(), Some(libc::EINVAL));
        assert_eq!(err.attempts.len(), 4);
    }

    #[test]
    fn enomem_halves_entries_down_to_the_minimum() {
        let mut sizes = Vec::new();
        let err = setup_ring(256, SetupFlags::all(), |n, _| {
            sizes.push(n);
            Err::<(), _>(errno(libc::ENOMEM))
        })
        .err()
        .unwrap();
        assert_eq!(sizes, vec![256, 128, 64, 32, 16]);
        assert_eq!(err.error.raw_os_error(), Some(libc::ENOMEM));

        let ok = setup_ring(256, SetupFlags::all(), |n, _| {
            if n > 64 {
                Err(errno(libc::ENOMEM))
            } else {
                Ok(n)
            }
        })
        .ok()
        .unwrap();
        assert_eq!(ok.ring, 64);
    }

    #[test]
    fn small_sizes_are_tried_as_asked() {
        for asked in [1, 8, 15] {
            let ok = setup_ring(asked, SetupFlags::all(), |n, _| Ok::<_, io::Error>(n))
                .ok()
                .unwrap();
            assert_eq!(ok.ring, asked);
        }
        // Below the minimum, ENOMEM does not halve further: one attempt.
        let mut sizes = Vec::new();
        let err = setup_ring(8, SetupFlags::all(), |n, _| {
            sizes.push(n);
            Err::<(), _>(errno(libc::ENOMEM))
        })
        .err()
        .unwrap();
        assert_eq!(sizes, vec![8]);
        assert_eq!(err.error.raw_os_error(), Some(libc::ENOMEM));
        // From an odd size, halving stops before going below the minimum.
        let mut sizes = Vec::new();
        let _ = setup_ring(100, SetupFlags::all(), |n, _| {
            sizes.push(n);
            Err::<(), _>(errno(libc::ENOMEM))
        });
        assert_eq!(sizes, vec![100, 50, 25]);
    }

    #[test]
    fn enosys_and_eperm_give_up_at_once() {
        for e in [libc::ENOSYS, libc::EPERM] {
            let mut calls = 0;
            let err = setup_ring(256, SetupFlags::all(), |_, _| {
                calls += 1;
                Err::<(), _>(errno(e))
            })
            .err()
            .unwrap();
            assert_eq!(calls, 1);
            assert!(explain(&err.error).contains("io_uring unavailable"));
        }
    }

    #[test]
    fn backend_choice_parses() {
        assert_eq!(
            "uring".parse::<BackendChoice>().unwrap(),
            BackendChoice::Uring
        );
        assert_eq!(
            "EPOLL".parse::<BackendChoice>().unwrap(),
            BackendChoice::Epoll
        );
        assert_eq!(
            "auto".parse::<BackendChoice>().unwrap(),
            BackendChoice::Auto
        );
        assert!("kqueue".parse::<BackendChoice>().is_err());
    }
}
