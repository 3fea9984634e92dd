//! Dropping 10,000 in-flight reads (half aborted, half left pending when the runtime is
//! dropped) leaves no fd (sockets, ring fd, eventfd, epoll fd), no op slot and no buffer behind.
//! Its variants run one at a time (`serial`) so that the /proc/self/fd counts are not
//! disturbed by each other.
mod support;

use corering::net::{TcpListener, TcpStream};
use corering::{spawn, yield_now};
use support::*;

const PAIRS: usize = 5000;
const READS: usize = 2 * PAIRS;

fn dropping_10000_inflight_reads_and_the_runtime_leaks_nothing(v: Variant) {
    let _serial = serial();
    let limit = raise_fd_limit();
    assert!(
        limit >= (READS + 200) as u64,
        "RLIMIT_NOFILE hard limit {limit} is too low for {READS} sockets"
    );
    let kind = v.label();
    {
        let before = open_fds();
        let rt = v.runtime();
        let drops = DropCounter::new();

        // Every read task owns its stream and a TrackedBuf; no data is ever sent.
        let handles = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("local_addr");
            let mut handles = Vec::with_capacity(READS);
            for _ in 0..PAIRS {
                let client = TcpStream::connect(addr).await.expect("connect");
                let (server, _) = listener.accept().await.expect("accept");
                for mut stream in [client, server] {
                    let buf = TrackedBuf::with_capacity(1024, &drops);
                    handles.push(spawn(async move {
                        let (res, _buf) = stream.read(buf).await;
                        res
                    }));
                }
            }
            for _ in 0..10 {
                yield_now().await;
            }
            handles
        });
        assert_eq!(drops.created(), READS);
        assert_eq!(
            drops.dropped(),
            0,
            "buffers dropped while their reads are in flight"
        );
        assert!(
            handles.iter().all(|h| !h.is_finished()),
            "a read completed without data"
        );
        eprintln!(
            "{kind}: live_ops with {READS} reads in flight: {}",
            rt.live_ops()
        );
        let during = count_open_fds();
        assert!(
            during >= before.len() + READS,
            "fd accounting missed sockets: {during}"
        );

        // Abort both ends of the first half of the pairs: their reads are cancelled and their
        // streams closed; the buffers must come back once the cancels complete.
        let (aborted, pending) = handles.split_at(PAIRS);
        for h in aborted {
            h.abort();
        }
        let settled = turn_until(&rt, |_| drops.dropped() == PAIRS);
        assert!(
            settled,
            "{kind}: {} of {PAIRS} aborted reads' buffers dropped",
            drops.dropped()
        );
        assert!(
            turn_until(&rt, |rt| rt.live_ops() <= PAIRS),
            "{kind}: live_ops {} > {PAIRS} reads still pending: aborted reads kept their slots",
            rt.live_ops()
        );
        assert!(
            pending.iter().all(|h| !h.is_finished()),
            "a pending read completed"
        );

        // Detach the rest and drop the runtime with their reads still in flight.
        drop(handles);
        drop(rt);
        assert_eq!(
            drops.dropped(),
            READS,
            "{kind}: buffers still alive after the runtime was dropped"
        );
        let after = open_fds();
        let leaked: Vec<_> = after
            .iter()
            .filter(|(fd, target)| before.get(fd) != Some(target))
            .collect();
        assert!(
            leaked.is_empty() && after.len() <= before.len(),
            "{kind}: {} fds before, {} after the runtime was dropped; new: {:?}",
            before.len(),
            after.len(),
            &leaked[..leaked.len().min(20)]
        );
    }
}
each_variant!(dropping_10000_inflight_reads_and_the_runtime_leaks_nothing);
