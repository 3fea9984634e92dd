//! Cancellation storms over the stream ops `tests/soak.rs` does not drive: `read_exact` and
//! plain `write`, over 1,000 streams (scaled) at once, each op under a random 0–2 ms cancel,
//! through a cancel scope (the buffer and an honest count come back) or by plain drop (the
//! op's own rule holds: a dropped `read_exact` that had read bytes makes the stream refuse
//! reads; a dropped write the kernel may have sent part of makes it refuse writes, and the
//! close resets). Every byte is checked end to end: nothing lost, duplicated or reordered,
//! and a stream cut short never looks whole to its peer.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use corering::cancel::{CancelExt, CancelToken, Cancelled};
use corering::net::{PartialRead, TcpListener, TcpStream};
use corering::spawn;
use corering::time::{sleep, timeout};

use crate::each_variant;
use crate::scaled;
use crate::support::*;

/// Bytes each stream carries.
const BYTES: usize = 16 << 10;

/// The byte at offset `k` of stream `id`.
fn byte(id: usize, k: usize) -> u8 {
    ((id * 131 + k * 7 + k / 253) % 251) as u8
}

fn stream_of(id: usize) -> Vec<u8> {
    (0..BYTES).map(|k| byte(id, k)).collect()
}

/// Shrinks a socket's send and receive buffers to the kernel's least, so that a stream of
/// BYTES fills them and writes wait (where a cancel can find them in flight).
fn small_buffers(fd: &impl std::os::fd::AsFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(fd, sockopt::SndBuf, &4096).expect("SO_SNDBUF");
    setsockopt(fd, sockopt::RcvBuf, &4096).expect("SO_RCVBUF");
}

/// A cancel delay of 0–2 ms.
fn delay(rng: &mut Pattern) -> Duration {
    Duration::from_micros(rng.below(2001))
}

/// Checks that `got` is stream `id` from offset `at`.
fn check(id: usize, at: usize, got: &[u8]) {
    for (j, &b) in got.iter().enumerate() {
        assert_eq!(b, byte(id, at + j), "stream {id}: byte {} wrong", at + j);
    }
}

/// Sends stream `id` in random pieces with random pauses (so that reads wait part way).
async fn trickle(mut stream: TcpStream, id: usize) {
    let data = stream_of(id);
    let mut rng = Pattern::salted(0x5eed ^ id as u64);
    let mut at = 0;
    while at < BYTES {
        let n = (1 + rng.below(700) as usize).min(BYTES - at);
        let (res, _) = stream.write_all(data[at..at + n].to_vec()).await;
        match res {
            Ok(()) => {}
            // The reader stopped (refused after a dropped read_exact) and closed.
            Err(e) if is_reset(&e) => return,
            Err(e) => panic!("stream {id}: trickle write: {e}"),
        }
        at += n;
        sleep(Duration::from_micros(rng.below(500))).await;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write).await;
}

/// How one `read_exact` stream ended.
#[derive(Default)]
struct ReadFigures {
    whole: usize,
    refused: usize,
    scoped_cuts: usize,
    partial_counts: usize,
    dropped: usize,
}

/// Reads stream `id` with `read_exact`s of random sizes into pre-filled buffers (so that only
/// `PartialRead` can tell how much a cut one read), each under a random cancel.
async fn read_exact_client(addr: std::net::SocketAddr, id: usize, fig: Rc<RefCell<ReadFigures>>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let (res, _) = stream.write_all((id as u64).to_le_bytes().to_vec()).await;
    res.expect("send id");
    let mut rng = Pattern::salted(0xabcd ^ (id as u64) << 16);
    let mut got = 0;
    while got < BYTES {
        let size = (1 + rng.below(1500) as usize).min(BYTES - got);
        let buf = vec![0xEEu8; size];
        let (res, buf) = if rng.below(32) == 0 {
            match timeout(delay(&mut rng), stream.read_exact(buf)).await {
                Ok(done) => done,
                Err(_) => {
                    fig.borrow_mut().dropped += 1;
                    continue;
                }
            }
        } else {
            stream.read_exact(buf).cancel_after(delay(&mut rng)).await
        };
        match res {
            Ok(()) => {
                check(id, got, &buf);
                got += size;
            }
            Err(e) if Cancelled::is(&e) => {
                let n = PartialRead::of(&e).map_or(0, |p| p.read);
                check(id, got, &buf[..n]);
                got += n;
                let mut f = fig.borrow_mut();
                f.scoped_cuts += 1;
                f.partial_counts += usize::from(n > 0);
            }
            Err(e)
                if e.to_string()
                    .contains("read_exact of this stream was dropped") =>
            {
                fig.borrow_mut().refused += 1;
                return;
            }
            Err(e) => panic!("stream {id}: read_exact after {got} bytes: {e}"),
        }
    }
    let (res, _) = stream.read(Vec::with_capacity(8)).await;
    assert_eq!(
        res.expect("end of stream"),
        0,
        "stream {id}: bytes past the end"
    );
    fig.borrow_mut().whole += 1;
}

/// `read_exact` under random cancels: every byte a cut one read is counted and right; a
/// dropped one that had read bytes makes the stream refuse reads instead of skipping them.
fn read_exact_storm_counts_every_byte(v: Variant) {
    crate::storm_rounds("read_exact_storm_counts_every_byte", v, || {
        read_exact_storm_counts_every_byte_round(v)
    });
}

/// One round of [`read_exact_storm_counts_every_byte`].
fn read_exact_storm_counts_every_byte_round(v: Variant) {
    let conns = scaled(1000);
    raise_fd_limit();
    let _serial = serial(); // thousands of fds: not beside the tests that count them
    let fig = Rc::new(RefCell::new(ReadFigures::default()));
    v.with_runtime(|rt| {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let server = spawn(async move {
                let mut senders = Vec::new();
                for _ in 0..conns {
                    let (mut s, _) = listener.accept().await.expect("accept");
                    senders.push(spawn(async move {
                        let (res, id) = s.read_exact(vec![0u8; 8]).await;
                        res.expect("id");
                        let id = u64::from_le_bytes(id.try_into().expect("8 bytes"));
                        trickle(s, id as usize).await;
                    }));
                }
                for s in senders {
                    s.await.expect("sender");
                }
            });
            let clients: Vec<_> = (0..conns)
                .map(|id| spawn(read_exact_client(addr, id, fig.clone())))
                .collect();
            for c in clients {
                within("read_exact client", c).await.expect("client");
            }
            within("senders", server).await.expect("server");
        });
        assert!(turn_until(&rt, |rt| rt.live_ops() == 0), "op slots left");
    });
    let f = fig.borrow();
    assert_eq!(f.whole + f.refused, conns, "every stream ended one way");
    assert!(f.scoped_cuts > 0, "the storm cut nothing");
    crate::first_round_figure(format!(
        "FIGURE storm::read_exact::{}: {conns} streams, {} whole ({} bytes checked), {} refused \
         after a dropped read_exact, {} scope cuts ({} with a PartialRead count), {} drops",
        v.label(),
        f.whole,
        f.whole * BYTES,
        f.refused,
        f.scoped_cuts,
        f.partial_counts,
        f.dropped
    ));
}
each_variant!(read_exact_storm_counts_every_byte);

/// What the writer of one stream saw, and what its peer received.
struct WriteEnd {
    id: usize,
    /// The writer was told its stream takes no more writes (a dropped write's bytes unknown).
    cut: bool,
}

/// Writes stream `id` with plain `write`s under random cancels: a scope gives the count the
/// kernel sent (`Ok(n)`, or nothing sent); a drop may leave the count unknown, and then every
/// later write is refused.
async fn write_client(
    addr: std::net::SocketAddr,
    id: usize,
    cancels: Rc<RefCell<usize>>,
) -> WriteEnd {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    small_buffers(&stream);
    let (res, _) = stream.write_all((id as u64).to_le_bytes().to_vec()).await;
    res.expect("send id");
    let data = stream_of(id);
    let mut rng = Pattern::salted(0x77 ^ (id as u64) << 20);
    let mut sent = 0;
    while sent < BYTES {
        let buf = data[sent..].to_vec();
        let res = if rng.below(4) == 0 {
            match timeout(delay(&mut rng), stream.write(buf)).await {
                Ok((res, _)) => res,
                Err(_) => {
                    *cancels.borrow_mut() += 1;
                    continue;
                }
            }
        } else {
            stream.write(buf).cancel_after(delay(&mut rng)).await.0
        };
        match res {
            Ok(n) => sent += n,
            Err(e) if Cancelled::is(&e) => *cancels.borrow_mut() += 1,
            Err(e) if e.to_string().contains("takes no more writes") => {
                return WriteEnd { id, cut: true };
            }
            Err(e) => panic!("stream {id}: write after {sent} bytes: {e}"),
        }
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .await
        .expect("shutdown");
    WriteEnd { id, cut: false }
}

/// The server side of the write storm: reads a stream to its end; its id, the bytes (all
/// checked) and whether it ended cleanly (FIN) or by a reset (`None`: reset before its id
/// could be read). Clean ends are counted in `clean`.
async fn drain(mut s: TcpStream, clean: Rc<Cell<usize>>) -> Option<(usize, usize, bool)> {
    let (res, id) = s.read_exact(vec![0u8; 8]).await;
    match res {
        Ok(()) => {}
        Err(e) if is_reset(&e) => return None,
        Err(e) => panic!("server read of an id: {e}"),
    }
    let id = u64::from_le_bytes(id.try_into().expect("8 bytes")) as usize;
    let mut rng = Pattern::salted(0xd5a1 ^ id as u64);
    let mut got = 0;
    loop {
        // Slow, small reads: the writer's buffers fill and its writes wait.
        sleep(Duration::from_micros(rng.below(300))).await;
        let (res, buf) = s
            .read(Vec::with_capacity(1 + rng.below(2048) as usize))
            .await;
        match res {
            Ok(0) => {
                clean.set(clean.get() + 1);
                return Some((id, got, true));
            }
            Ok(n) => {
                check(id, got, &buf[..n]);
                got += n;
                assert!(got <= BYTES, "stream {id}: bytes duplicated");
            }
            Err(e) if is_reset(&e) => return Some((id, got, false)),
            Err(e) => panic!("stream {id}: server read: {e}"),
        }
    }
}

/// Accepts and drains streams until `stop` is cancelled; what each drain saw.
async fn drain_all(
    listener: TcpListener,
    clean: Rc<Cell<usize>>,
    stop: CancelToken,
) -> Vec<Option<(usize, usize, bool)>> {
    let mut tasks = Vec::new();
    loop {
        match listener.accept().cancel_on(&stop).await {
            Ok((s, _)) => tasks.push(spawn(drain(s, clean.clone()))),
            Err(e) if Cancelled::is(&e) => break,
            Err(e) => panic!("accept: {e}"),
        }
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(within("a drain", t).await.expect("drain"));
    }
    out
}

/// Plain `write` under random cancels: the peer gets every stream byte for byte, in order,
/// never a byte twice; a stream whose writer was cut ends with a reset, never a clean end.
fn write_storm_never_duplicates(v: Variant) {
    crate::storm_rounds("write_storm_never_duplicates", v, || {
        write_storm_never_duplicates_round(v)
    });
}

/// One round of [`write_storm_never_duplicates`].
fn write_storm_never_duplicates_round(v: Variant) {
    let conns = scaled(1000);
    raise_fd_limit();
    let _serial = serial(); // thousands of fds: not beside the tests that count them
    let cancels = Rc::new(RefCell::new(0usize));
    let (ends, drained) = v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        small_buffers(&listener); // the accepted sockets inherit it
        let addr = listener.local_addr().expect("addr");
        let (clean, stop) = (Rc::new(Cell::new(0)), CancelToken::new());
        let server = spawn(drain_all(listener, clean.clone(), stop.clone()));
        let clients: Vec<_> = (0..conns)
            .map(|id| spawn(write_client(addr, id, cancels.clone())))
            .collect();
        let mut ends = Vec::new();
        for c in clients {
            ends.push(within("write client", c).await.expect("client"));
        }
        // A client may finish before the server accepts it (its bytes fit in the buffers),
        // and one cut and reset may never be accepted at all (io_uring's multishot accept
        // skips connections reset in the backlog): wait for the whole ones' clean ends.
        let whole = ends.iter().filter(|e| !e.cut).count();
        within("the whole streams' ends", async {
            while clean.get() < whole {
                sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        stop.cancel();
        (ends, within("drains", server).await.expect("server"))
    });
    let mut seen = vec![None; conns];
    for (id, got, clean) in drained.into_iter().flatten() {
        assert!(
            seen[id].replace((got, clean)).is_none(),
            "stream {id} accepted twice"
        );
    }
    let mut cut = 0;
    for end in &ends {
        if end.cut {
            cut += 1;
            let Some((got, clean)) = seen[end.id] else {
                continue; // reset before the server took it
            };
            assert!(
                !clean,
                "stream {}: cut after {got} bytes, yet closed cleanly",
                end.id
            );
        } else {
            let (got, clean) = seen[end.id].expect("every whole stream reached the server");
            assert!(
                clean && got == BYTES,
                "stream {}: {got} bytes, clean {clean}",
                end.id
            );
        }
    }
    assert!(*cancels.borrow() > 0, "the storm cancelled nothing");
    crate::first_round_figure(format!(
        "FIGURE storm::write::{}: {conns} streams, {} whole ({} bytes checked), {cut} cut and \
         reset, {} writes cancelled, none duplicated",
        v.label(),
        conns - cut,
        (conns - cut) * BYTES,
        cancels.borrow()
    ));
}
each_variant!(write_storm_never_duplicates);
