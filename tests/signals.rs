//! `Builder::shutdown_on_signals`: SIGTERM and then SIGINT make `Runtime::run` return on every
//! backend (accepts fail with `ShuttingDown`), and the calling thread's signal mask is
//! restored afterwards. The only test in its binary, its variants one at a time: signals and
//! masks are process-wide.
//!
//! The signal is sent to the whole process, as a shell's `kill` would: the runtime's handler
//! is process-wide, so the test harness's own threads are safe too.
mod support;

use std::sync::Arc;
use std::time::Duration;

use corering::{is_shutting_down, ShuttingDown};
use support::*;

/// Whether `sig` is blocked on this thread.
fn blocked(sig: libc::c_int) -> bool {
    // SAFETY: a zeroed sigset_t is a valid out-parameter; a null `set` only reads the mask.
    unsafe {
        let mut mask: libc::sigset_t = std::mem::zeroed();
        assert_eq!(
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask),
            0
        );
        libc::sigismember(&mask, sig) == 1
    }
}

/// Whether a thread named `corering-signal…` is listed in /proc/self/task.
fn signal_thread_listed() -> bool {
    std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .any(|comm| comm.starts_with("corering-signal"))
}

fn sigterm_and_sigint_make_run_return(v: Variant) {
    // Signals and masks are process-wide: one variant at a time.
    let _serial = serial();
    v.with_builder(|_, builder| {
        for sig in [libc::SIGTERM, libc::SIGINT] {
            assert!(!blocked(sig), "signal {sig} blocked before run");
            let rt = builder
                .clone()
                .cores(2)
                .pin_cores(false)
                .shutdown_on_signals(Duration::from_secs(30))
                .build()
                .expect("build");
            let stop = rt.shutdown_handle();
            let ports = Arc::new(ReusePort::default());
            let reports = rt
                .run(|core| {
                    let ports = ports.clone();
                    async move {
                        let listener = ports.bind(core).await;
                        if core == 0 {
                            // Process-directed, as `kill` from a shell would send it: whichever
                            // thread the kernel picks runs the runtime's handler.
                            // SAFETY: kill with our own pid and a signal the runtime handles.
                            let rc = unsafe { libc::kill(libc::getpid(), sig) };
                            assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
                        }
                        let err = within("accept", listener.accept())
                            .await
                            .expect_err("accepted a connection nobody made");
                        assert!(ShuttingDown::is(&err), "{err}");
                        is_shutting_down()
                    }
                })
                .expect("run");
            assert!(stop.is_requested(), "signal {sig} did not request shutdown");
            for r in reports {
                assert!(r.output.expect("root"), "core {}", r.core);
            }
            assert!(!blocked(sig), "signal {sig} still blocked after run");
            // `run` joined the signal thread; the kernel may still list a joined thread in
            // /proc/self/task for a moment (its exit is finished after the join's wake-up,
            // slowly under emulation), so wait, bounded, for it to go.
            assert!(
                eventually(|| !signal_thread_listed()),
                "the signal thread outlived run"
            );
        }
    });
}
each_variant!(sigterm_and_sigint_make_run_return);
