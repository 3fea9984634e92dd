//! The corering file workloads, on either backend: on io_uring each read and write is a ring
//! submission (a page-cache hit completes inline; the kernel's io-wq workers take what must
//! wait, fsync always), on epoll each file op is one syscall on the runtime's blocking pool.
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::time::Instant;

use corering::fs::{File, OpenOptions};
use corering::BackendChoice;

use super::measure::{self, Meter, Rng, Tally, IN_FLIGHT, READ_SIZE, SYNC_EVERY, WRITE_CAP};
use super::{Params, Workload};

/// Runs one workload in a corering runtime on `choice`; the result line, or why it cannot
/// run here (`Ok(Err(reason))`).
pub fn run(choice: BackendChoice, p: &Params) -> io::Result<Result<String, String>> {
    let rt = match corering::Builder::new().backend(choice).build() {
        Ok(rt) => rt,
        Err(e) if choice == BackendChoice::Uring => {
            return Ok(Err(format!("corering could not start on io_uring: {e}")));
        }
        Err(e) => return Err(e),
    };
    rt.block_on(async {
        let meter = Rc::new(Meter::new());
        let tally = match p.workload {
            Workload::RandomRead => random_read(&p.path, meter.clone(), p).await?,
            Workload::WriteFsync => write_fsync(&p.path, meter.clone(), p).await?,
        };
        let peak = corering::stats().blocking_threads_peak;
        Ok(Ok(measure::result_line(&meter, &tally, Some(peak))))
    })
}

/// Sleeps through the warm-up, then marks the window until the deadline or until a
/// workload ends it.
async fn drive(meter: &Meter, p: &Params) {
    corering::time::sleep(p.warmup).await;
    meter.begin();
    let deadline = Instant::now() + p.seconds;
    while let Some(nap) = meter.next_nap(deadline) {
        corering::time::sleep(nap).await;
    }
    meter.finish();
}

async fn random_read(path: &Path, meter: Rc<Meter>, p: &Params) -> io::Result<Tally> {
    let file = Rc::new(File::open(path).await?);
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|i| corering::spawn(reader(file.clone(), meter.clone(), i)))
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

/// One of the readers: a 4 KiB read at a random offset, again and again.
async fn reader(file: Rc<File>, meter: Rc<Meter>, i: usize) -> Tally {
    let (mut rng, mut tally) = (Rng::new(i), Tally::new());
    let mut buf = Vec::with_capacity(READ_SIZE);
    while meter.running() {
        let pos = rng.offset();
        let t0 = Instant::now();
        let (res, b) = file.read_at(buf, pos).await;
        buf = b;
        match res {
            Ok(READ_SIZE) => tally.op(&meter, t0, READ_SIZE),
            Ok(n) => tally.error(format!("short read: {n} bytes at {pos}")),
            Err(e) => tally.error(format!("read at {pos}: {e}")),
        }
        if tally.errors > 0 {
            break;
        }
        buf.clear();
    }
    tally
}

async fn write_fsync(path: &Path, meter: Rc<Meter>, p: &Params) -> io::Result<Tally> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .await?;
    let task = corering::spawn(writer(file, meter.clone()));
    drive(&meter, p).await;
    task.await
        .map_err(|e| io::Error::other(format!("the writer task failed: {e}")))
}

/// The writer: sequential 64 KiB writes, an fsync after every 16.
async fn writer(file: File, meter: Rc<Meter>) -> Tally {
    let (mut buf, mut tally, mut pos, mut n) = (measure::chunk(), Tally::new(), 0u64, 0u64);
    while meter.running() {
        let t0 = Instant::now();
        let (res, b) = file.write_all_at(buf, pos).await;
        buf = b;
        if let Err(e) = res {
            tally.error(format!("write at {pos}: {e}"));
            break;
        }
        tally.op(&meter, t0, buf.len());
        (pos, n) = (pos + buf.len() as u64, n + 1);
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
    if let Err(e) = file.close().await {
        tally.error(format!("close: {e}"));
    }
    tally
}
