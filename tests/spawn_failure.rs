//! `Runtime::run` when a core thread cannot be spawned: it returns the spawn error, with every
//! thread it already started released and joined (no panic, no hang), on every backend; and
//! `Builder::stack_size` is the core threads' stack size.
mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::*;

/// A stack no system can map: larger than the whole user address space (2^60 bytes is past
/// even 57-bit addressing; on 32 bits, 3.75 GiB is past a 3 GiB user space).
const ABSURD_STACK: usize = if usize::BITS >= 64 {
    (1u64 << 60) as usize
} else {
    0xF000_0000
};

fn run_returns_err_when_no_core_thread_can_be_spawned(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder
            .cores(2)
            .pin_cores(false)
            .stack_size(ABSURD_STACK)
            .build()
            .expect("build");
        let started = AtomicUsize::new(0);
        let res = rt.run(|_| {
            started.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        let err = res.expect_err("run with an unmappable stack size");
        eprintln!("spawn error: {err} ({err:?})");
        assert_eq!(started.load(Ordering::SeqCst), 0, "a root future started");
        // The runtime is still usable afterwards.
        assert_eq!(rt.block_on(async { 5 }), 5);
    });
}
each_variant!(run_returns_err_when_no_core_thread_can_be_spawned);

/// The stack size of the calling thread, as pthreads reports it.
fn own_stack_size() -> usize {
    // SAFETY: pthread_attr_t is plain data, filled by pthread_getattr_np before it is read and
    // destroyed after; the out-pointers are live locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_getattr_np(libc::pthread_self(), &mut attr), 0);
        let mut addr = std::ptr::null_mut();
        let mut size = 0;
        assert_eq!(libc::pthread_attr_getstack(&attr, &mut addr, &mut size), 0);
        libc::pthread_attr_destroy(&mut attr);
        size
    }
}

fn core_threads_get_the_stack_size_asked_for(v: Variant) {
    const MIB: usize = 1 << 20;
    v.with_builder(|_, builder| {
        for asked in [MIB, 16 * MIB] {
            let rt = builder
                .clone()
                .cores(2)
                .pin_cores(false)
                .stack_size(asked)
                .build()
                .expect("build");
            let reports = rt.run(|_| async { own_stack_size() }).expect("run");
            for r in reports {
                let size = r.output.expect("core output");
                // At least what was asked (16 MiB is past the 2 MiB default), and at most what
                // glibc's stack cache may hand out for it: a cached stack of an exited thread
                // up to 4 times the size asked for (other tests' threads exit at any time).
                assert!(size >= asked, "core {}: stack {size} < {asked}", r.core);
                assert!(
                    size <= 4 * asked + MIB,
                    "core {}: stack {size} for {asked}",
                    r.core
                );
            }
        }
    });
}
each_variant!(core_threads_get_the_stack_size_asked_for);

// ---- The partial case, in a child process: the first core thread spawns, a later one fails ----

fn is_child() -> bool {
    child_message().is_some()
}

/// The number of threads of this process, from /proc/self/status.
fn thread_count() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads: line in /proc/self/status")
}

/// Sets the soft RLIMIT_NPROC (the hard limit stays).
fn set_nproc_soft(soft: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for getrlimit to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut lim) };
    assert_eq!(rc, 0, "getrlimit: {}", io::Error::last_os_error());
    lim.rlim_cur = soft.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit; lowering the soft limit, or raising it up to the hard
    // limit, needs no privilege.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// Whether RLIMIT_NPROC = threads + 1 lets exactly one more thread start (some sandboxes and
/// emulated kernels do not enforce it). Leaves the limit unlimited (up to the hard limit).
fn nproc_limit_enforced() -> bool {
    set_nproc_soft(thread_count() + 1);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let first = std::thread::Builder::new()
        .spawn(move || {
            let _ = rx.recv();
        })
        .expect("the first thread under the limit");
    let second = std::thread::Builder::new().spawn(|| {});
    let enforced = second.is_err();
    if let Ok(t) = second {
        t.join().expect("second probe thread");
    }
    drop(tx);
    first.join().expect("first probe thread");
    set_nproc_soft(libc::RLIM_INFINITY);
    enforced
}

fn run_returns_err_when_a_later_core_thread_cannot_be_spawned(v: Variant) {
    // RLIMIT_NPROC counts every thread of the user `nobody`, in all processes: one child at a
    // time, or the variants' children would use up each other's room.
    let _serial = serial();
    run_child("child_later_core_thread_spawn_fails", &v.label(), &[]);
}
each_variant!(run_returns_err_when_a_later_core_thread_cannot_be_spawned);

#[test]
#[ignore = "runs as a child process of run_returns_err_when_a_later_core_thread_cannot_be_spawned, on the variant the parent names"]
fn child_later_core_thread_spawn_fails() {
    assert!(is_child(), "run through its parent test");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("CHILD-SKIP: not root, cannot switch to a uid with a thread limit of its own");
        return;
    }
    // RLIMIT_NPROC does not bind root (CAP_SYS_RESOURCE): become `nobody` for good; glibc
    // applies it to every thread of the process.
    // SAFETY: setresuid has no memory preconditions; this child process is ours to demote.
    if unsafe { libc::setresuid(65534, 65534, 65534) } != 0 {
        println!(
            "CHILD-SKIP: setresuid(65534): {}",
            io::Error::last_os_error()
        );
        return;
    }
    if !nproc_limit_enforced() {
        println!("CHILD-SKIP: this kernel does not enforce RLIMIT_NPROC on threads");
        return;
    }
    let label = child_message().expect("the variant, from the parent");
    let v = Variant::from_label(&label).expect("a variant label");
    v.with_builder(|_, builder| {
        let rt = builder.cores(4).pin_cores(false).build().expect("build");
        // Room for one more thread: core 0 starts, a later core's spawn fails.
        set_nproc_soft(thread_count() + 1);
        let started = AtomicUsize::new(0);
        let res = rt.run(|_| {
            started.fetch_add(1, Ordering::SeqCst);
            async {}
        });
        set_nproc_soft(libc::RLIM_INFINITY);
        let err = res.expect_err("run with room for one core thread of four");
        eprintln!("spawn error: {err} ({err:?})");
        assert_eq!(started.load(Ordering::SeqCst), 0, "a root future started");
        assert_eq!(rt.block_on(async { 5 }), 5);
    });
    println!("CHILD-OK");
}
