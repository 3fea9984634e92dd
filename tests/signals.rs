//! `Builder::shutdown_on_signals`: SIGTERM and then SIGINT make `Runtime::run` return on every
//! backend (accepts fail with `ShuttingDown`), and the calling thread's signal mask is
//! restored afterwards. The only test in its binary: signals and masks are process-wide.
//!
//! The signal is sent to the runtime's signal thread (tgkill) rather than to the process:
//! the test harness's main thread does not block SIGTERM/SIGINT, so a process-directed signal
//! would be delivered there and kill the process (see the README on signals).
mod support;

use std::sync::Arc;
use std::time::Duration;

use corering::{is_shutting_down, ShuttingDown};
use support::*;

/// The thread id of the runtime's signal thread ("corering-signals", cut to 15 bytes).
fn signal_thread() -> Option<libc::pid_t> {
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with("corering-signal") {
            return path.file_name()?.to_str()?.parse().ok();
        }
    }
    None
}

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

#[test]
fn sigterm_and_sigint_make_run_return() {
    each_builder("signals", |_, builder| {
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
                            // The thread names itself once it runs: look until it has.
                            let tid = within("the signal thread", async {
                                loop {
                                    match signal_thread() {
                                        Some(tid) => return tid,
                                        None => {
                                            corering::time::sleep(Duration::from_millis(1)).await
                                        }
                                    }
                                }
                            })
                            .await;
                            // SAFETY: tgkill with our own pid, a live thread of ours, and a
                            // signal that thread blocks and waits for.
                            let rc = unsafe {
                                libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, sig)
                            };
                            assert_eq!(rc, 0, "tgkill: {}", std::io::Error::last_os_error());
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
            assert!(signal_thread().is_none(), "the signal thread outlived run");
        }
    });
}
