//! Cancelling and dropping ops that run on the blocking pool (every file op on epoll; file
//! opcodes the kernel lacks and `spawn_blocking` on io_uring), on every variant: an answer
//! that came stands against a later cancel; a dropped queued op never runs; a running job of
//! `spawn_blocking` is let go, not waited for; the counters balance after every path; and
//! offsets io_uring would read as "the file position" are refused as pread(2) refuses them.
mod support;

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use corering::fs::{self, File, OpenOptions};
use corering::{spawn, spawn_blocking, CancelExt, CancelToken, Cancelled};
use support::*;

fn tmp(name: &str, v: Variant) -> PathBuf {
    let file = format!("corering-pool-{name}-{}-{}", v.label(), std::process::id());
    std::env::temp_dir().join(file)
}

/// Open fds of this process on `path`.
fn fds_on(path: &std::path::Path) -> usize {
    let target = path.to_string_lossy().into_owned();
    open_fds().values().filter(|t| **t == target).count()
}

fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    f.poll(&mut cx)
}

/// Whether the runtime runs `opcode` on the pool (epoll, or io_uring without it).
fn on_the_pool(rt: &corering::Runtime, opcode: &str) -> bool {
    rt.backend()
        .uring()
        .is_none_or(|u| u.opcodes_missing.contains(&opcode))
}

/// Three answers taken in one turn, then a cancel before their futures look: an open that
/// succeeded is not reported cancelled (its fd would leak), a write that happened is not
/// reported cancelled. Only two outcomes are honest: done and said so, or cancelled and not done.
fn a_cancel_after_the_answer_lets_it_stand(v: Variant) {
    let _serial = serial();
    let path = tmp("cancel-open", v);
    std::fs::write(&path, b"old").unwrap();
    let rt = v.builder().blocking_threads(1).build().unwrap();
    let (opened, wrote, open_after) = rt.block_on(async {
        let token = CancelToken::new();
        let writer = Rc::new(OpenOptions::new().write(true).open(&path).await.unwrap());
        let canceller = {
            let token = token.clone();
            spawn(async move {
                fs::metadata(std::env::temp_dir()).await.unwrap();
                token.cancel();
            })
        };
        let open = {
            let (token, path) = (token.clone(), path.clone());
            spawn(async move {
                OpenOptions::new()
                    .read(true)
                    .open(&path)
                    .cancel_on(&token)
                    .await
                    .map(drop)
            })
        };
        let write = {
            let (token, writer) = (token.clone(), writer.clone());
            spawn(async move {
                writer
                    .write_at(b"NEW".to_vec(), 0)
                    .cancel_on(&token)
                    .await
                    .0
            })
        };
        // Keeps the core busy while the jobs run, so that the next turn takes all answers.
        let hold = spawn(async { std::thread::sleep(Duration::from_millis(200)) });
        canceller.await.unwrap();
        hold.await.unwrap();
        let opened = open.await.unwrap();
        let wrote = write.await.unwrap();
        drop(writer);
        (opened, wrote, fds_on(&path))
    });
    let contents = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    if let Err(e) = &opened {
        assert!(Cancelled::is(e), "{e}");
        assert_eq!(open_after, 0, "open said cancelled, and its fd leaked");
    }
    assert_eq!(open_after, 0, "an fd stayed open on the file");
    if let Err(e) = &wrote {
        assert!(Cancelled::is(e), "{e}");
        assert_eq!(contents, b"old", "write said cancelled, and it happened");
    }
}

fn offsets_past_i64_are_refused(v: Variant) {
    let path = tmp("umax", v);
    std::fs::write(&path, b"untouched").unwrap();
    v.block_on(async {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .await
            .unwrap();
        let (res, _) = file.write_at(b"CLOBBER".to_vec(), u64::MAX).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        let (res, _) = file.read_at(Vec::with_capacity(4), 1 << 63).await;
        assert_eq!(res.unwrap_err().raw_os_error(), Some(libc::EINVAL));
        file.close().await.unwrap();
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"untouched");
    let _ = std::fs::remove_file(&path);
}

fn close_after_a_forgotten_op_says_so(v: Variant) {
    let path = tmp("forget-close", v);
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    v.block_on(async {
        let file = File::open(&path).await.unwrap();
        let mut read = Box::pin(file.read_at(Vec::with_capacity(16), 0));
        let _ = poll_once(read.as_mut());
        std::mem::forget(read);
        let err = file.close().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
    });
    let _ = std::fs::remove_file(&path);
}

/// A running `spawn_blocking` job whose handle is aborted: the task ends at once, nothing of
/// the runtime waits for the job, and the job still runs to its end with what it owns.
fn an_aborted_running_job_is_let_go(v: Variant) {
    let counter = DropCounter::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let rt = v.builder().blocking_threads(1).build().unwrap();
    let (release, started) = (mpsc::channel::<()>(), mpsc::channel());
    rt.block_on(async {
        let owned = TrackedBuf::with_capacity(8, &counter);
        let (rx, started_tx, ran) = (release.1, started.0, ran.clone());
        let job = spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let _ = rx.recv();
            drop(owned);
            ran.fetch_add(1, Ordering::SeqCst);
        });
        corering::yield_now().await;
        started.1.recv_timeout(HANG_LIMIT).unwrap();
        job.abort();
        assert!(job.await.unwrap_err().is_cancelled());
        let stats = corering::stats().driver;
        assert_eq!(
            stats.ops_submitted, stats.ops_completed,
            "the let-go job still counts"
        );
    });
    assert_eq!(rt.live_ops(), 0, "block_on left a slot for the let-go job");
    assert_eq!(
        counter.live(),
        1,
        "the running job's memory was freed under it"
    );
    drop(rt);
    release.0.send(()).unwrap();
    assert!(
        eventually(|| ran.load(Ordering::SeqCst) == 1),
        "the job did not finish"
    );
    assert!(eventually(|| counter.live() == 0));
}

/// Every way a pool op can end, then the counters: queued and dropped, queued and cancelled
/// by a scope then dropped, running and dropped, answered and dropped.
fn the_counters_balance_after_every_pool_path(v: Variant) {
    let path = tmp("acct", v);
    let dir = tmp("acct-dir", v);
    std::fs::write(&path, vec![1u8; 8192]).unwrap();
    let rt = v.builder().blocking_threads(1).build().unwrap();
    rt.block_on(async {
        let file = OpenOptions::new().write(true).open(&path).await.unwrap();
        let (release, held) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel();
        let busy = spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let _ = held.recv();
        });
        corering::yield_now().await;
        started.recv_timeout(HANG_LIMIT).unwrap();
        let mut queued = Box::pin(file.set_len(1));
        let _ = poll_once(queued.as_mut());
        drop(queued);
        let token = CancelToken::new();
        let mut scoped = Box::pin(fs::create_dir(&dir).cancel_on(&token));
        let _ = poll_once(scoped.as_mut());
        token.cancel();
        drop(scoped);
        drop(release);
        busy.await.unwrap();
        for pause in [Duration::ZERO, Duration::from_millis(20)] {
            let mut op = Box::pin(file.set_len(3));
            let _ = poll_once(op.as_mut());
            corering::time::sleep(pause).await;
            drop(op);
        }
        file.close().await.unwrap();
    });
    let stats = rt.stats().driver;
    assert_eq!(stats.ops_submitted, stats.ops_completed, "{stats:?}");
    assert_eq!(rt.live_ops(), 0);
    if on_the_pool(&rt, "MKDIRAT") {
        assert!(!dir.exists(), "a cancelled queued mkdir ran");
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&dir);
}

each_variant!(
    a_cancel_after_the_answer_lets_it_stand,
    offsets_past_i64_are_refused,
    close_after_a_forgotten_op_says_so,
    an_aborted_running_job_is_let_go,
    the_counters_balance_after_every_pool_path,
);
