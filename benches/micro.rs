// cargo bench --bench micro            (one group: cargo bench --bench micro -- nop)
//! Micro-benchmarks of corering's per-operation costs, on each backend. Bench names carry the
//! parameters: `nop/uring`, `spawn_join/epoll`, `timer/sleep_1us/uring`, `tcp_rtt/epoll/64`.
//!
//! - `nop/B`: one no-op op through the backend and back (io_uring: a NOP entry and its
//!   completion; epoll: an op that completes at once) — the floor of per-op overhead.
//! - `spawn_join/B`: spawn a task that returns at once, and await its JoinHandle.
//! - `timer/insert_cancel`: register a sleep with the runtime's timers and drop it unfired.
//! - `timer/sleep_1us/B`: sleep 1 µs: the timer fires through a real park, so this shows the
//!   backend's wait granularity (epoll_wait counts milliseconds; io_uring waits take a timespec).
//! - `tcp_rtt/B/SIZE`: one loopback TCP round trip of SIZE bytes between a client task and an
//!   echo task on the same runtime (write, the echo reads and writes back, read).
//!
//! Backends that cannot run here (io_uring in a container that forbids it) are skipped with a
//! note on stderr.
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use corering::net::{TcpListener, TcpStream};
use corering::{BackendChoice, Builder, IoBuf, Runtime};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BACKENDS: [(&str, BackendChoice); 2] = [
    ("uring", BackendChoice::Uring),
    ("epoll", BackendChoice::Epoll),
];

/// The runtimes that can run here, by backend name.
fn runtimes() -> Vec<(&'static str, Runtime)> {
    BACKENDS
        .iter()
        .filter_map(
            |&(name, choice)| match Builder::new().backend(choice).build() {
                Ok(rt) => Some((name, rt)),
                Err(e) => {
                    eprintln!("skipping the {name} benches: {e}");
                    None
                }
            },
        )
        .collect()
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

fn nop(c: &mut Criterion) {
    let mut g = c.benchmark_group("nop");
    for (name, rt) in runtimes() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        corering::op::nop().await.expect("nop");
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join");
    for (name, rt) in runtimes() {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for i in 0..iters {
                        let v = corering::spawn(async move { i }).await.expect("join");
                        std::hint::black_box(v);
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// Polls `fut` once, then drops it.
async fn poll_once(fut: impl Future) {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        let _ = fut.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
}

fn timer(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer");
    let rts = runtimes();
    if let Some((_, rt)) = rts.first() {
        g.bench_function("insert_cancel", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        poll_once(corering::time::sleep(Duration::from_secs(1))).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    for (name, rt) in &rts {
        g.bench_function(format!("sleep_1us/{name}"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        corering::time::sleep(Duration::from_micros(1)).await;
                    }
                    t.elapsed()
                })
            })
        });
    }
    g.finish();
}

fn tcp_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp_rtt");
    for (name, rt) in runtimes() {
        for size in [64usize, 4096] {
            // An echo task and a connected client, kept across the runtime's block_on calls.
            let (mut client, server) = rt.block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let server = corering::spawn(async move {
                    let (mut s, _) = listener.accept().await.expect("accept");
                    s.set_nodelay(true).expect("nodelay");
                    let mut buf = Vec::with_capacity(size);
                    loop {
                        let (res, b) = s.read(buf).await;
                        let n = match res {
                            Ok(n) if n > 0 => n,
                            _ => return,
                        };
                        let (res, slice) = s.write_all(b.slice(..n)).await;
                        res.expect("echo write");
                        buf = slice.into_inner();
                        buf.clear();
                    }
                });
                let client = TcpStream::connect(addr).await.expect("connect");
                client.set_nodelay(true).expect("nodelay");
                (client, server)
            });
            let mut bufs = Some((vec![7u8; size], vec![0u8; size]));
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(format!("{name}/{size}"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let (mut msg, mut back) = bufs.take().expect("buffers");
                        let t = Instant::now();
                        for _ in 0..iters {
                            let (res, m) = client.write_all(msg).await;
                            res.expect("write");
                            let (res, bk) = client.read_exact(back).await;
                            res.expect("read");
                            (msg, back) = (m, bk);
                        }
                        let elapsed = t.elapsed();
                        bufs = Some((msg, back));
                        elapsed
                    })
                })
            });
            // Dropped inside the runtime, so that its driver forgets the fd.
            rt.block_on(async move { drop(client) });
            let _ = rt.block_on(server);
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = nop, spawn_join, timer, tcp_rtt
}
criterion_main!(benches);
