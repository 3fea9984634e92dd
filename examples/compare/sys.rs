//! Process plumbing: CPU pinning, the fd limit, a process's CPU time and memory, machine
//! facts.
use std::io;
use std::path::{Path, PathBuf};

/// Pins the calling thread (and the threads it starts afterwards) to `core`.
pub fn pin_to(core: usize) -> io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it (the core is checked
    // against CPU_SETSIZE first).
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The cores this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid buffer for sched_getaffinity to fill; CPU_ISSET
    // reads inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Lifts the soft fd limit (RLIMIT_NOFILE) to the hard limit; returns the soft limit now in
/// force and the hard limit.
pub fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write a live rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return (1024, 1024);
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// CPU time of a process.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTime {
    /// User + system time of all its threads, in nanoseconds.
    pub total_ns: u64,
    /// Time its threads spent runnable but waiting for a core, in nanoseconds (0 if unknown).
    pub wait_ns: u64,
    /// User and system time from /proc/PID/stat (clock-tick resolution), in nanoseconds: only
    /// their ratio is used.
    pub user_ns: u64,
    /// See `user_ns`.
    pub sys_ns: u64,
}

/// The CPU time `pid` has used so far. The total comes from the per-thread `schedstat` files
/// (nanoseconds), falling back to `stat` (clock ticks) where those are missing.
pub fn cpu_time(pid: u32) -> io::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it follow the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let ticks = |i: usize| -> u64 { fields.get(i - 3).and_then(|f| f.parse().ok()).unwrap_or(0) };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let user_ns = ticks(14) * 1_000_000_000 / hz;
    let sys_ns = ticks(15) * 1_000_000_000 / hz;
    let (total_ns, wait_ns) = schedstat_ns(pid).unwrap_or((user_ns + sys_ns, 0));
    Ok(CpuTime {
        total_ns,
        wait_ns,
        user_ns,
        sys_ns,
    })
}

/// The resident memory of `pid` in bytes: `Rss` of /proc/PID/smaps_rollup (exact), else
/// `VmRSS` of /proc/PID/status (which the kernel may update late).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let from = |file: &str, key: &str| -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
        let line = text.lines().find(|l| l.starts_with(key))?;
        let kib: u64 = line[key.len()..]
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    from("smaps_rollup", "Rss:")
        .or_else(|| from("status", "VmRSS:"))
        .ok_or_else(|| io::Error::other(format!("no resident memory figure for process {pid}")))
}

/// Run time and run-queue wait of all threads of `pid`, in nanoseconds.
fn schedstat_ns(pid: u32) -> Option<(u64, u64)> {
    let (mut run, mut wait) = (0u64, 0u64);
    let mut any = false;
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = entry.ok()?.path().join("schedstat");
        // A thread may exit between the listing and the read: skip it.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let (r, w) = parse_schedstat(&text)?;
        run += r;
        wait += w;
        any = true;
    }
    any.then_some((run, wait))
}

fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut f = text.split_whitespace().map(|x| x.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

/// Run time and run-queue wait of the calling thread, in nanoseconds.
pub fn thread_schedstat() -> Option<(u64, u64)> {
    parse_schedstat(&std::fs::read_to_string("/proc/thread-self/schedstat").ok()?)
}

/// Whether io_uring can be set up here, or why not.
pub fn uring_available() -> Result<(), String> {
    match io_uring::IoUring::new(8) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("io_uring unavailable here ({e})")),
    }
}

/// The kernel release, e.g. "6.8.0-45-generic".
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU model name.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Finds an executable on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Waits until `fd` is readable or `timeout` passes; true if readable (or at end of file).
pub fn wait_readable(fd: std::os::fd::RawFd, timeout: std::time::Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one live pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 {
            return n > 0;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}

/// Clock ticks of some cores, from /proc/stat.
#[derive(Clone, Copy, Debug, Default)]
pub struct CoreTicks {
    /// user + nice + system: time spent running processes.
    pub busy: u64,
    /// Every state (idle and iowait included).
    pub total: u64,
    /// Time the hypervisor ran something else.
    pub steal: u64,
}

/// The ticks of `cores`, summed.
pub fn core_ticks(cores: &[usize]) -> Option<CoreTicks> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut t = CoreTicks::default();
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(cpu) = f.next().and_then(|n| n.strip_prefix("cpu")) else {
            continue;
        };
        if !cpu.parse().is_ok_and(|n: usize| cores.contains(&n)) {
            continue;
        }
        let v: Vec<u64> = f.map(|x| x.parse().unwrap_or(0)).collect();
        let get = |i: usize| v.get(i).copied().unwrap_or(0);
        t.busy += get(0) + get(1) + get(2);
        // guest time (8, 9) is already counted in user and nice.
        t.total += (0..8).map(get).sum::<u64>();
        t.steal += get(7);
    }
    Some(t)
}

/// User + system ticks of this process and of its children that have been waited for.
pub fn own_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14..=17; `rest` starts at field 3.
    (14..=17).map(|i| f.get(i - 3).copied().unwrap_or(0)).sum()
}

/// Sets TCP_NODELAY on `fd` (the floors' accepted sockets; errors are ignored as in a server).
pub fn set_nodelay(fd: std::os::fd::RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a live c_int of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The kind of file system `path` is on: its magic number (statfs `f_type`) and a name for
/// the common ones.
pub fn fs_type(path: &Path) -> io::Result<(u64, &'static str)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: a zeroed statfs is a valid buffer for statfs to fill; `c` is a live C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let magic = st.f_type as u64;
    let name = match magic {
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0xF2F5_2010 => "f2fs",
        0x2FC1_2FC1 => "zfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        _ => "unknown",
    };
    Ok((magic, name))
}

/// The thread count of `pid` (`Threads:` of /proc/PID/status).
pub fn thread_count(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Threads:"))?;
    line["Threads:".len()..].trim().parse().ok()
}
