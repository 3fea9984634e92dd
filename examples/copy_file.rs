// cargo run --example copy_file -- SRC DST   (CORERING_BACKEND=epoll to use the blocking pool)
//! Copies a file with corering's file ops: 8 reads of 64 KiB in flight at once, each written
//! at its offset as it arrives, then one fsync. On io_uring the reads and writes are ring
//! submissions; on epoll each runs on the blocking pool.
use std::rc::Rc;

use corering::fs::{File, OpenOptions};
use corering::{spawn, IoBuf};

const CHUNK: u64 = 64 * 1024;
const IN_FLIGHT: u64 = 8;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: copy_file SRC DST");
        std::process::exit(2);
    };
    let rt = corering::Runtime::new()?;
    println!("backend: {}", rt.backend().kind());
    rt.block_on(async {
        let from = Rc::new(File::open(src).await?);
        let len = from.metadata().await?.len();
        let to = Rc::new(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(dst)
                .await?,
        );
        // Worker `w` copies chunks w, w + IN_FLIGHT, w + 2 × IN_FLIGHT, …
        let workers: Vec<_> = (0..IN_FLIGHT)
            .map(|w| {
                let (from, to) = (from.clone(), to.clone());
                spawn(async move {
                    let mut buf = Vec::with_capacity(CHUNK as usize);
                    let mut pos = w * CHUNK;
                    while pos < len {
                        buf.clear();
                        let (res, b) = from.read_at(buf, pos).await;
                        let n = res?;
                        let (res, b) = to.write_all_at(b.slice(..n), pos).await;
                        res?;
                        buf = b.into_inner();
                        pos += IN_FLIGHT * CHUNK;
                    }
                    Ok::<_, std::io::Error>(())
                })
            })
            .collect();
        for w in workers {
            w.await.expect("copy task")?;
        }
        to.sync_all().await?;
        println!("copied {len} bytes from {src} to {dst}");
        Ok(())
    })
}
