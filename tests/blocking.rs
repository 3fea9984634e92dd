//! The blocking pool on every backend: `spawn_blocking` with more jobs than threads, a
//! panicking job isolated, a job not yet started never run (its memory freed at once), and
//! file ops dropped while the pool holds them (every buffer a thread may still use stays
//! alive until its answer; every cancelled one is freed and its write never happens).
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};

use corering::fs::{File, OpenOptions};
use corering::{spawn, spawn_blocking};
use support::*;

fn more_jobs_than_threads(v: Variant) {
    let rt = v.builder().blocking_threads(2).build().unwrap();
    assert_eq!(rt.backend().blocking_threads(), 2);
    let ran = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        // Pairs meet at a barrier: two threads suffice, so no job waits for a third.
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let (ran, barrier) = (ran.clone(), barrier.clone());
                spawn_blocking(move || {
                    barrier.wait();
                    ran.fetch_add(1, Ordering::SeqCst);
                    i * 2
                })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i * 2);
        }
        let stats = corering::stats();
        assert!(stats.blocking_threads_peak <= 2, "{stats:?}");
        assert!(stats.blocking_threads_peak >= 1);
    });
    assert_eq!(ran.load(Ordering::SeqCst), 40);
}

fn a_panicking_job_ends_only_itself(v: Variant) {
    let rt = v.builder().blocking_threads(1).build().unwrap();
    rt.block_on(async {
        let failed = spawn_blocking(|| -> u32 { panic!("this job only") }).await;
        let err = failed.unwrap_err();
        assert!(err.is_panic(), "{err:?}");
        let payload = err.into_panic();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"this job only"));
        // The one thread survived it and runs the next job.
        assert_eq!(spawn_blocking(|| 7).await.unwrap(), 7);
        // A task awaiting nothing else goes on too.
        assert_eq!(spawn(async { 1 }).await.unwrap(), 1);
    });
}

/// Holds the pool's only thread until the returned sender is dropped or sent to; returns once
/// the job is on its thread.
async fn occupy_the_pool() -> (corering::JoinHandle<()>, mpsc::Sender<()>) {
    let (started_tx, started_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let handle = spawn_blocking(move || {
        started_tx.send(()).unwrap();
        let _ = release_rx.recv();
    });
    // The task hands the job over on its first poll; then wait (blocking the core, which the
    // job does not need) until a thread runs it.
    corering::yield_now().await;
    started_rx.recv_timeout(HANG_LIMIT).unwrap();
    (handle, release_tx)
}

fn a_job_not_started_never_runs(v: Variant) {
    let rt = v.builder().blocking_threads(1).build().unwrap();
    let counter = DropCounter::new();
    let ran = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let (busy, release) = occupy_the_pool().await;
        let owned = TrackedBuf::with_capacity(16, &counter);
        let queued = {
            let ran = ran.clone();
            spawn_blocking(move || {
                drop(owned);
                ran.fetch_add(1, Ordering::SeqCst);
            })
        };
        corering::yield_now().await;
        queued.abort();
        let err = queued.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert_eq!(counter.live(), 0, "a job that never ran keeps its memory");
        drop(release);
        busy.await.unwrap();
        // A later job runs after the cancelled one would have: it did not.
        spawn_blocking(|| ()).await.unwrap();
    });
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a cancelled job ran");
}

/// File writes queued behind a busy pool thread (epoll, or io_uring below 6.9 for set_len),
/// dropped: they never happen.
fn a_dropped_queued_write_never_happens(v: Variant) {
    let dir = std::env::temp_dir().join(format!(
        "corering-queued-{}-{}",
        v.label(),
        std::process::id()
    ));
    std::fs::write(&dir, b"untouched").unwrap();
    let rt = v.builder().blocking_threads(1).build().unwrap();
    rt.block_on(async {
        let file = OpenOptions::new().write(true).open(&dir).await.unwrap();
        let (busy, release) = occupy_the_pool().await;
        // A job queued behind `busy` on both backends: a blocking closure that writes.
        let raw = std::os::fd::AsRawFd::as_raw_fd(&file);
        let queued = spawn_blocking(move || {
            // SAFETY: a plain pwrite from a static buffer to an fd that is open (the test
            // keeps `file` until the end).
            unsafe { libc::pwrite(raw, b"CLOBBERED".as_ptr().cast(), 9, 0) };
        });
        corering::yield_now().await;
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        // On epoll a file op is queued the same way; dropped after its first poll.
        if v.kind == corering::BackendKind::Epoll {
            let mut write = Box::pin(file.write_at(b"CLOBBERED".to_vec(), 0));
            assert!(poll_once(write.as_mut()).is_pending());
            drop(write);
        }
        drop(release);
        busy.await.unwrap();
        spawn_blocking(|| ()).await.unwrap();
        file.close().await.unwrap();
    });
    assert_eq!(
        std::fs::read(&dir).unwrap(),
        b"untouched",
        "a cancelled write happened"
    );
    let _ = std::fs::remove_file(&dir);
}

fn poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    f.poll(&mut cx)
}

/// Many reads handed to the pool (epoll) or the ring, dropped at once: every buffer still
/// alive right after is one an op in flight holds, and all are freed once answered.
fn dropped_reads_free_their_buffers_only_when_answered(v: Variant) {
    let path = std::env::temp_dir().join(format!(
        "corering-dropped-{}-{}",
        v.label(),
        std::process::id()
    ));
    std::fs::write(&path, vec![5u8; 1 << 20]).unwrap();
    let counter = DropCounter::new();
    let rt = v.builder().blocking_threads(4).build().unwrap();
    rt.block_on(async {
        let file = File::open(&path).await.unwrap();
        let mut reads: Vec<_> = (0..32)
            .map(|i| Box::pin(file.read_at(TrackedBuf::with_capacity(1 << 16, &counter), i << 14)))
            .collect();
        for r in &mut reads {
            let _ = poll_once(r.as_mut());
        }
        corering::yield_now().await;
        drop(reads);
        // No answer is taken before the core parks again: the count is stable here.
        let stats = corering::stats().driver;
        let in_flight = (stats.ops_submitted - stats.ops_completed) as usize;
        assert_eq!(
            counter.live(),
            in_flight,
            "a buffer freed under an op, or kept for none"
        );
    });
    // block_on settled the orphans before returning.
    assert_eq!(counter.live(), 0, "a buffer outlived its op's answer");
    assert_eq!(rt.live_ops(), 0);
    let _ = std::fs::remove_file(&path);
}

/// A runtime dropped while a job runs: the job holds nothing of the runtime's, so the drop
/// does not wait for it, and it still runs to its end on its thread.
fn a_runtime_drop_lets_a_running_job_go(v: Variant) {
    let rt = v.builder().blocking_threads(1).build().unwrap();
    let finished = Arc::new(AtomicUsize::new(0));
    let (release, held) = mpsc::channel::<()>();
    rt.block_on(async {
        let finished = finished.clone();
        let (started_tx, started_rx) = mpsc::channel();
        drop(spawn_blocking(move || {
            started_tx.send(()).unwrap();
            let _ = held.recv();
            finished.fetch_add(1, Ordering::SeqCst);
        }));
        corering::yield_now().await;
        started_rx.recv_timeout(HANG_LIMIT).unwrap();
    });
    drop(rt);
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "the job ended before it was let go"
    );
    release.send(()).unwrap();
    assert!(
        eventually(|| finished.load(Ordering::SeqCst) == 1),
        "the job never finished"
    );
}

/// Two cores share one pool (two threads): each core's file reads and jobs come back to it,
/// on its own thread, with its own bytes.
fn cores_share_one_pool(v: Variant) {
    let dir = std::env::temp_dir().join(format!(
        "corering-cores-{}-{}",
        v.label(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for core in 0..2u8 {
        std::fs::write(dir.join(core.to_string()), vec![core + 1; 256 * 1024]).unwrap();
    }
    let rt = v
        .builder()
        .cores(2)
        .pin_cores(false)
        .blocking_threads(2)
        .build()
        .unwrap();
    let dir2 = dir.clone();
    let reports = rt
        .run(move |core| {
            let dir = dir2.clone();
            async move {
                let me = std::thread::current().id();
                let file = std::rc::Rc::new(File::open(dir.join(core.to_string())).await.unwrap());
                let reads: Vec<_> = (0..32u64)
                    .map(|i| {
                        let file = file.clone();
                        spawn(async move {
                            let (res, buf) = file.read_at(Vec::with_capacity(8192), i * 8192).await;
                            assert_eq!(res.unwrap(), 8192);
                            assert!(
                                buf.iter().all(|&b| b == core as u8 + 1),
                                "another core's bytes"
                            );
                            assert_eq!(
                                std::thread::current().id(),
                                me,
                                "answered on another thread"
                            );
                        })
                    })
                    .collect();
                let jobs: Vec<_> = (0..16).map(|i| spawn_blocking(move || i + core)).collect();
                for r in reads {
                    r.await.unwrap();
                }
                let mut sum = 0;
                for j in jobs {
                    sum += j.await.unwrap();
                }
                assert_eq!(std::thread::current().id(), me);
                (sum, corering::stats().blocking_threads_peak)
            }
        })
        .unwrap();
    for (core, r) in reports.iter().enumerate() {
        let (sum, peak) = *r.output.as_ref().expect("core output");
        assert_eq!(sum, (0..16).sum::<usize>() + 16 * core);
        assert!(peak <= 2, "the pool grew past its bound: {peak}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

each_variant!(
    cores_share_one_pool,
    more_jobs_than_threads,
    a_panicking_job_ends_only_itself,
    a_job_not_started_never_runs,
    a_dropped_queued_write_never_happens,
    dropped_reads_free_their_buffers_only_when_answered,
    a_runtime_drop_lets_a_running_job_go,
);
