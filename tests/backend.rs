//! Backend selection (not via the every-backend helper): forced backends are reported as asked;
//! where io_uring is forbidden (a per-thread seccomp filter returning EPERM or ENOSYS from
//! io_uring_setup) forcing io_uring is a clear `Err` and Auto falls back to a working epoll
//! runtime with a reason naming the errno; `CORERING_BACKEND` is tested in child processes;
//! small ring sizes (`Builder::entries`) are honoured, on every backend variant.
mod support;

use corering::{BackendChoice, BackendKind, Builder, Runtime};
use support::*;

#[test]
fn backend_kind_display() {
    assert_eq!(BackendKind::Uring.to_string(), "io_uring");
    assert_eq!(BackendKind::Epoll.to_string(), "epoll");
    assert!(matches!(BackendChoice::default(), BackendChoice::Auto));
}

#[test]
fn forced_epoll_is_reported_as_epoll() {
    let rt = Builder::new()
        .backend(BackendChoice::Epoll)
        .build()
        .expect("epoll runtime");
    let info = rt.backend();
    assert_eq!(info.kind(), BackendKind::Epoll);
    assert!(info.uring().is_none());
    assert!(info.to_string().contains("epoll"), "report: {info}");
    rt.block_on(async { assert_eq!(corering::backend(), BackendKind::Epoll) });
}

#[test]
fn forced_uring_is_reported_as_uring() {
    let rt = match Builder::new()
        .backend(BackendChoice::Uring)
        .entries(64)
        .build()
    {
        Ok(rt) => rt,
        Err(e) if io_uring_missing(&e) => return eprintln!("SKIP forced_uring on io_uring: {e}"),
        Err(e) => panic!("forced io_uring failed: {e:?}"),
    };
    let info = rt.backend();
    assert_eq!(info.kind(), BackendKind::Uring);
    let uring = info.uring().expect("uring info on an io_uring runtime");
    assert!(
        uring.entries >= 64,
        "asked for 64 entries, got {}",
        uring.entries
    );
    assert!(info.to_string().contains("io_uring"), "report: {info}");
    rt.block_on(async { assert_eq!(corering::backend(), BackendKind::Uring) });
}

#[test]
fn runtime_new_explains_its_choice() {
    let rt = Runtime::new().expect("Runtime::new");
    let info = rt.backend();
    assert!(!info.reason().is_empty(), "empty reason");
    eprintln!("Runtime::new chose:\n{info}");
    assert_eq!(info.uring().is_some(), info.kind() == BackendKind::Uring);
}

// ---- io_uring forbidden for one thread by seccomp ----

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

fn bpf(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// Makes io_uring_setup fail with `errno` in the calling thread only (no TSYNC).
fn forbid_io_uring_setup(errno: i32) {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    let filter = [
        bpf(BPF_LD | BPF_W | BPF_ABS, 4, 0, 0), // seccomp_data.arch
        bpf(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 0, 3),
        bpf(BPF_LD | BPF_W | BPF_ABS, 0, 0, 0), // seccomp_data.nr
        bpf(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_io_uring_setup as u32,
            0,
            1,
        ),
        bpf(
            BPF_RET | BPF_K,
            libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
            0,
            0,
        ),
        bpf(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW, 0, 0),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut _,
    };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_NO_NEW_PRIVS,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    assert_eq!(
        rc,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies the program.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
    // Sanity check: the raw syscall now fails with `errno`.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(entries, params) with a writable, zeroed 120-byte io_uring_params.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, params.as_mut_ptr()) };
    assert_eq!(rc, -1, "filtered io_uring_setup succeeded");
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(errno));
}

fn mentions_errno(text: &str, errno: i32) -> bool {
    let text = text.to_lowercase();
    let (name, desc) = match errno {
        libc::EPERM => ("eperm", "operation not permitted"),
        _ => ("enosys", "function not implemented"),
    };
    text.contains(name) || text.contains(desc) || text.contains(&format!("os error {errno}"))
}

fn check_forbidden_io_uring(test: &str, errno: i32) {
    // An inherited CORERING_BACKEND would override Auto: rerun in a child without it.
    if std::env::var("CORERING_BACKEND").is_ok_and(|v| v != "auto") && !is_child() {
        return run_backend_child(test, None);
    }
    let outcome = std::thread::spawn(move || {
        forbid_io_uring_setup(errno);
        let err = match Builder::new().backend(BackendChoice::Uring).build() {
            Ok(_) => panic!("forced io_uring built although io_uring_setup fails with {errno}"),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert!(
            msg.contains("io_uring"),
            "error does not mention io_uring: {msg}"
        );
        assert!(
            err.kind() == std::io::ErrorKind::Unsupported
                || err.kind() == std::io::ErrorKind::PermissionDenied
                || err.raw_os_error() == Some(errno),
            "unexpected error kind: {err:?}"
        );

        let rt = Builder::new()
            .backend(BackendChoice::Auto)
            .build()
            .expect("Auto runtime");
        let info = rt.backend();
        assert_eq!(info.kind(), BackendKind::Epoll, "Auto did not fall back");
        assert!(info.uring().is_none());
        assert!(!info.reason().is_empty(), "empty fallback reason");
        assert!(
            mentions_errno(info.reason(), errno),
            "reason lacks errno {errno}: {}",
            info.reason()
        );
        rt.block_on(async {
            let (mut client, mut server) = tcp_pair().await;
            let (res, _) = client.write_all("echo me").await;
            res.expect("write");
            let (res, buf) = server.read_exact(vec![0u8; 7].into_boxed_slice()).await;
            res.expect("server read");
            let (res, _) = server.write_all(buf).await;
            res.expect("server write");
            let (res, back) = client.read_exact(vec![0u8; 7].into_boxed_slice()).await;
            res.expect("client read");
            assert_eq!(&back[..], b"echo me");
        });
        (msg, info.reason().to_owned())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    eprintln!(
        "forced io_uring error: {}\nAuto fallback reason: {}",
        outcome.0, outcome.1
    );
    if is_child() {
        println!("CHILD-OK");
    }
}

#[test]
fn io_uring_forbidden_with_eperm() {
    check_forbidden_io_uring("io_uring_forbidden_with_eperm", libc::EPERM);
}

#[test]
fn io_uring_forbidden_with_enosys() {
    check_forbidden_io_uring("io_uring_forbidden_with_enosys", libc::ENOSYS);
}

/// Under `Auto`, `run` gives every core the backend `build` chose; a core that cannot make it
/// fails the run with an error that names the core and says auto chose the backend (not
/// "asked for by the builder").
#[test]
fn auto_run_names_the_core_whose_ring_failed() {
    let test = "auto_run_names_the_core_whose_ring_failed";
    if std::env::var("CORERING_BACKEND").is_ok_and(|v| v != "auto") && !is_child() {
        return run_backend_child(test, None);
    }
    let msg = std::thread::spawn(|| {
        let rt = Builder::new()
            .backend(BackendChoice::Auto)
            .cores(2)
            .pin_cores(false)
            .build()
            .expect("Auto runtime");
        if rt.backend().kind() != BackendKind::Uring {
            return None;
        }
        // The core threads `run` spawns inherit this thread's filter.
        forbid_io_uring_setup(libc::EPERM);
        let err = rt.run(|_| async {}).expect_err("run without rings");
        Some(err.to_string())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let Some(msg) = msg else {
        return eprintln!("SKIP {test}: auto chose epoll here");
    };
    eprintln!("run error: {msg}");
    assert!(msg.contains(" of 2: "), "no core named: {msg}");
    assert!(msg.contains("chosen by auto"), "who chose: {msg}");
    assert!(mentions_errno(&msg, libc::EPERM), "no errno: {msg}");
    if is_child() {
        println!("CHILD-OK");
    }
}

// ---- CORERING_BACKEND, in child processes (the environment is process-global) ----

fn is_child() -> bool {
    child_message().is_some()
}

/// Runs `test` in a child with CORERING_BACKEND set to `backend` (or removed).
fn run_backend_child(test: &str, backend: Option<&str>) {
    run_child(test, "1", &[("CORERING_BACKEND", backend)]);
}

fn uring_available() -> bool {
    match Builder::new().backend(BackendChoice::Uring).build() {
        Ok(_) => true,
        Err(e) if io_uring_missing(&e) => false,
        Err(e) => panic!("forced io_uring failed: {e:?}"),
    }
}

#[test]
fn env_epoll_overrides_auto() {
    run_backend_child("child_env_epoll", Some("epoll"));
}

#[test]
#[ignore = "runs as a child process of env_epoll_overrides_auto, with CORERING_BACKEND=epoll"]
fn child_env_epoll() {
    let rt = Builder::new().build().expect("Auto runtime");
    assert_eq!(rt.backend().kind(), BackendKind::Epoll, "{}", rt.backend());
    assert!(!rt.backend().reason().is_empty());
    assert_eq!(
        Runtime::new().expect("Runtime::new").backend().kind(),
        BackendKind::Epoll
    );
    if uring_available() {
        let forced = Builder::new()
            .backend(BackendChoice::Uring)
            .build()
            .expect("forced");
        assert_eq!(
            forced.backend().kind(),
            BackendKind::Uring,
            "env overrode an explicit choice"
        );
    }
    println!("CHILD-OK");
}

#[test]
fn env_uring_overrides_auto() {
    run_backend_child("child_env_uring", Some("uring"));
}

#[test]
#[ignore = "runs as a child process of env_uring_overrides_auto, with CORERING_BACKEND=uring"]
fn child_env_uring() {
    let forced = Builder::new()
        .backend(BackendChoice::Epoll)
        .build()
        .expect("forced epoll");
    assert_eq!(
        forced.backend().kind(),
        BackendKind::Epoll,
        "env overrode an explicit choice"
    );
    if !uring_available() {
        eprintln!("SKIP child_env_uring on io_uring: io_uring unavailable");
    } else {
        let rt = Builder::new().build().expect("Auto runtime");
        assert_eq!(rt.backend().kind(), BackendKind::Uring, "{}", rt.backend());
    }
    println!("CHILD-OK");
}

fn small_ring_sizes_are_honoured(v: Variant) {
    // (asked for, what the kernel makes of it: rounded up to a power of two)
    for (asked, real) in [(8, 8), (5, 8), (1, 1)] {
        v.with_builder(|kind, builder| {
            let rt = builder.entries(asked).build().expect("build");
            match (kind, rt.backend().uring()) {
                (BackendKind::Uring, Some(u)) => {
                    assert_eq!(u.entries, real, "entries({asked}): {}", rt.backend());
                    assert!(
                        rt.backend()
                            .to_string()
                            .contains(&format!("{real} entries")),
                        "{}",
                        rt.backend()
                    );
                    // The small ring works.
                    let n = rt.block_on(async {
                        for _ in 0..3 * real {
                            corering::op::nop().await.expect("nop");
                        }
                        corering::spawn(async { 3 }).await.expect("join")
                    });
                    assert_eq!(n, 3);
                }
                (BackendKind::Epoll, None) => {}
                (kind, info) => panic!("{kind}: unexpected ring info {info:?}"),
            }
        });
    }
}
each_variant!(small_ring_sizes_are_honoured);
