//! The tokio file workloads, on a current_thread runtime: every file op runs on tokio's
//! blocking pool, as `tokio::fs` runs them.
//!
//! `tokio::fs::File` has a cursor and no positional read, so 64 reads in flight on one file
//! would each need their own `File` and a seek first (two pool trips per read). The readers
//! do what `tokio::fs` does inside (its `asyncify`): one `spawn_blocking` per read, here a
//! `pread` (`FileExt::read_at`) on a shared `std::fs::File` opened with `tokio::fs`. The
//! writer uses `tokio::fs::File` itself: `write_all`, then `flush` (a tokio file write returns
//! before the pool has written it; the flush waits for that, so each write is one pool trip
//! that has ended when its latency is taken), and `sync_all` after every 16 writes.
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;

use super::measure::{self, Meter, Rng, Tally, IN_FLIGHT, READ_SIZE, SYNC_EVERY, WRITE_CAP};
use super::{Params, Workload};

/// Runs one workload; the result line.
pub fn run(p: &Params) -> io::Result<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let meter = Rc::new(Meter::new());
        let tally = match p.workload {
            Workload::RandomRead => random_read(&p.path, meter.clone(), p).await?,
            Workload::WriteFsync => write_fsync(&p.path, meter.clone(), p).await?,
        };
        Ok(measure::result_line(&meter, &tally, None))
    })
}

/// Sleeps through the warm-up, then marks the window until the deadline or until a
/// workload ends it.
async fn drive(meter: &Meter, p: &Params) {
    tokio::time::sleep(p.warmup).await;
    meter.begin();
    let deadline = Instant::now() + p.seconds;
    while let Some(nap) = meter.next_nap(deadline) {
        tokio::time::sleep(nap).await;
    }
    meter.finish();
}

async fn random_read(path: &Path, meter: Rc<Meter>, p: &Params) -> io::Result<Tally> {
    let file = Arc::new(tokio::fs::File::open(path).await?.into_std().await);
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| tokio::task::spawn_local(reader(file.clone(), meter.clone(), i)))
        .collect();
    drive(&meter, p).await;
    let mut tally = Tally::new();
    for t in tasks {
        match t.await {
            Ok(one) => tally.merge(one),
            Err(e) => tally.error(format!("a reader task failed: {e}")),
        }
    }
    Ok(tally)
}

/// One of the readers: a 4 KiB `pread` at a random offset on the blocking pool, again and
/// again (the buffer travels to the pool thread and back).
async fn reader(file: Arc<std::fs::File>, meter: Rc<Meter>, i: usize) -> Tally {
    let (mut rng, mut tally) = (Rng::new(i), Tally::new());
    let mut buf = vec![0u8; READ_SIZE];
    while meter.running() {
        let pos = rng.offset();
        let f = file.clone();
        let t0 = Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            let res = f.read_at(&mut buf, pos);
            (res, buf)
        });
        let (res, b) = match job.await {
            Ok(done) => done,
            Err(e) => {
                tally.error(format!("a read job failed: {e}"));
                break;
            }
        };
        buf = b;
        match res {
            Ok(READ_SIZE) => tally.op(&meter, t0, READ_SIZE),
            Ok(n) => tally.error(format!("short read: {n} bytes at {pos}")),
            Err(e) => tally.error(format!("read at {pos}: {e}")),
        }
        if tally.errors > 0 {
            break;
        }
    }
    tally
}

async fn write_fsync(path: &Path, meter: Rc<Meter>, p: &Params) -> io::Result<Tally> {
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .await?;
    let task = tokio::task::spawn_local(writer(file, meter.clone()));
    drive(&meter, p).await;
    task.await
        .map_err(|e| io::Error::other(format!("the writer task failed: {e}")))
}

/// The writer: sequential 64 KiB writes, an fsync after every 16.
async fn writer(mut file: tokio::fs::File, meter: Rc<Meter>) -> Tally {
    let (buf, mut tally, mut n) = (measure::chunk(), Tally::new(), 0u64);
    while meter.running() {
        let t0 = Instant::now();
        let res = match file.write_all(&buf).await {
            Ok(()) => file.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            tally.error(format!("write: {e}"));
            break;
        }
        tally.op(&meter, t0, buf.len());
        n += 1;
        if n % SYNC_EVERY == 0 {
            let t0 = Instant::now();
            if let Err(e) = file.sync_all().await {
                tally.error(format!("fsync: {e}"));
                break;
            }
            tally.sync(&meter, t0);
            if tally.bytes() >= WRITE_CAP {
                meter.finish();
            }
        }
    }
    tally
}
