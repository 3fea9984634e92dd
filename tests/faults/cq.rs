//! CQ pressure, on every backend: a ring of 16 submission entries (32 completion entries)
//! under `scaled(2000)` tasks at once, each doing several waves of kernel nops, kernel
//! timeouts, runtime timers, or echo round trips over its own connection, so that every loop
//! turn has far more completions than the completion queue holds. Nothing may be lost (every
//! task ends, with the right bytes) and nothing may stall (the hang guards): completions the
//! kernel held back on overflow come in on later turns. Rings with and without DEFER_TASKRUN
//! (and COOP_TASKRUN, SINGLE_ISSUER) are the tier cap variants; on epoll (where the ring size
//! means nothing) the same load must pass too. Prints the driver's counters, `cq_overflows`
//! (loop turns that found completions held back) among them.
use std::time::Duration;

use corering::net::{TcpListener, TcpStream};
use corering::spawn;

use crate::each_variant;
use crate::support::*;

/// Waves of ops each task runs.
const WAVES: usize = 4;

/// One task's load, by its number: nops, kernel timeouts, runtime timers or echo round trips.
async fn load(id: usize, addr: std::net::SocketAddr) -> usize {
    match id % 4 {
        0 => {
            for _ in 0..WAVES * 2 {
                corering::op::nop().await.expect("nop");
            }
        }
        1 => {
            for w in 0..WAVES {
                let d = Duration::from_micros(((id * 7 + w * 13) % 500) as u64);
                corering::op::kernel_timeout(d)
                    .await
                    .expect("kernel timeout");
            }
        }
        2 => {
            for w in 0..WAVES {
                corering::time::sleep(Duration::from_micros(((id + w) % 300) as u64)).await;
                corering::yield_now().await;
            }
        }
        _ => return round_trips(id, addr).await,
    }
    0
}

/// `WAVES` echo round trips of 1–1024 bytes over one connection, each checked; returns the
/// bytes that came back.
async fn round_trips(id: usize, addr: std::net::SocketAddr) -> usize {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut back = 0;
    for w in 0..WAVES {
        let len = 1 + (id * 131 + w * 17) % 1024;
        let msg: Vec<u8> = (0..len).map(|k| (id + w * 3 + k) as u8).collect();
        let (res, msg) = stream.write_all(msg).await;
        res.expect("write");
        let (res, got) = stream.read_exact(Vec::with_capacity(len)).await;
        res.expect("the echo");
        assert_eq!(got, msg, "task {id}: wave {w} came back wrong");
        back += len;
    }
    back
}

/// The echo server: one task per connection, until `conns` have ended.
async fn serve(listener: TcpListener, conns: usize) {
    let mut echoers = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (stream, _) = listener.accept().await.expect("accept");
        echoers.push(spawn(echo_stream(stream)));
    }
    for e in echoers {
        e.await.expect("echo task");
    }
}

/// A 16-entry ring under thousands of concurrent completions loses none and never stalls.
fn a_16_entry_ring_under_thousands_of_completions_loses_none(v: Variant) {
    raise_fd_limit();
    let rt = v.builder().entries(16).build().expect("a 16-entry runtime");
    if let Some(ring) = rt.backend().uring() {
        assert_eq!(ring.entries, 16, "the ring asked for");
    }
    let tasks = crate::scaled(2000).max(4);
    let echoed = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let server = spawn(serve(listener, tasks.div_ceil(4)));
        let all: Vec<_> = (0..tasks).map(|id| spawn(load(id, addr))).collect();
        let mut echoed = 0;
        for task in all {
            echoed += within("a task under CQ pressure", task)
                .await
                .expect("task");
        }
        within("the echo server", server).await.expect("server");
        echoed
    });
    assert!(
        turn_until(&rt, |rt| rt.live_ops() == 0),
        "op slots left: {}",
        rt.live_ops()
    );
    let d = rt.stats().driver;
    assert_eq!(d.ops_submitted, d.ops_completed, "completions missing");
    assert_eq!(d.cq_dropped, 0, "the kernel dropped completions");
    let flags = rt.backend().uring().map(|r| r.setup_flags.join("|"));
    eprintln!(
        "FIGURE a_16_entry_ring_under_thousands_of_completions_loses_none::{}: tasks={tasks} \
         bytes_echoed={echoed} ops={} cq_overflows={} cq_dropped={} waits={} setup={}",
        v.label(),
        d.ops_completed,
        d.cq_overflows,
        d.cq_dropped,
        d.waits,
        flags.as_deref().unwrap_or("epoll")
    );
    if v.is_uring() {
        assert!(
            d.cq_overflows > 0,
            "the CQ never overflowed: the load is too light"
        );
    }
}
each_variant!(a_16_entry_ring_under_thousands_of_completions_loses_none);
