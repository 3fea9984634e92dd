//! The cancellation soak, on every backend: 1,000 echo connections whose every read and write
//! runs under a random 0–2 ms cancel (buffer-returning scopes, and plain drops for reads);
//! every byte is checked end to end (none lost, duplicated or reordered) and afterwards no fd,
//! op slot or buffer is left.
mod support;

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::time::Duration;

use corering::cancel::{CancelExt, Cancelled};
use corering::net::{OwnedReadHalf, OwnedWriteHalf, PartialWrite, TcpListener, TcpStream};
use corering::time::timeout;
use corering::{spawn, BufResult};
use support::*;

const CONNS: usize = 1000;

thread_local! {
    /// The open files (`socket:[inode]`) this thread's soak made: each variant runs on its own
    /// thread, and its check looks for these only, so variants can run side by side.
    static SOCKETS: RefCell<HashSet<String>> = RefCell::new(HashSet::new());
}

/// Notes the open file behind `fd` as one of this soak's.
fn record(fd: &impl AsRawFd) {
    let target = fd_target(fd.as_raw_fd()).expect("an open socket");
    SOCKETS.with(|s| s.borrow_mut().insert(target));
}
const BYTES: usize = 8 * 1024;

/// The byte at offset `k` of connection `id`'s stream.
fn pattern(id: usize, k: usize) -> u8 {
    ((id * 31 + k * 7 + k / 251) % 253) as u8
}

/// xorshift64: the soak's deterministic randomness.
struct Rng(u64);

impl Rng {
    fn salted(seed: u64) -> Rng {
        Rng((seed ^ salt()) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// A cancel delay of 0–2 ms.
    fn delay(&mut self) -> Duration {
        Duration::from_micros(self.next() % 2001)
    }
}

/// The read side the soak drives: a stream, or its owned read half.
trait SoakRead {
    /// One read under a random cancel: a scope (buffer back), or a plain `timeout` drop
    /// (the rescue keeps the bytes). `None` when cancelled.
    async fn read_some(&mut self, rng: &mut Rng) -> Option<Vec<u8>> {
        let r = rng.next();
        let buf = Vec::with_capacity(1 + (r as usize % 3000));
        let res = if r & 1 == 0 {
            self.read_scoped(buf, rng.delay()).await
        } else {
            self.read_dropped(buf, rng.delay()).await?
        };
        match res {
            (Ok(n), buf) => Some(buf[..n].to_vec()),
            (Err(e), _) if Cancelled::is(&e) => None,
            (Err(e), _) => panic!("read: {e}"),
        }
    }

    async fn read_scoped(&mut self, buf: Vec<u8>, d: Duration) -> BufResult<usize, Vec<u8>>;
    async fn read_dropped(
        &mut self,
        buf: Vec<u8>,
        d: Duration,
    ) -> Option<BufResult<usize, Vec<u8>>>;
}

/// The write side the soak drives: a stream, or its owned write half.
trait SoakWrite {
    /// Writes all of `data`, each attempt under a random cancel; returns how many attempts
    /// were cancelled.
    async fn write_all_some(&mut self, rng: &mut Rng, data: &[u8]) -> usize {
        let (mut sent, mut cancels) = (0, 0);
        while sent < data.len() {
            let (res, _) = self.write_scoped(data[sent..].to_vec(), rng.delay()).await;
            match res {
                Ok(()) => return cancels,
                Err(e) if Cancelled::is(&e) => {
                    cancels += 1;
                    sent += PartialWrite::of(&e).map_or(0, |p| p.written);
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        cancels
    }

    async fn write_scoped(&mut self, buf: Vec<u8>, d: Duration) -> BufResult<(), Vec<u8>>;
}

macro_rules! soak_read {
    ($($ty:ty),*) => {$(
        impl SoakRead for $ty {
            async fn read_scoped(&mut self, buf: Vec<u8>, d: Duration) -> BufResult<usize, Vec<u8>> {
                self.read(buf).cancel_after(d).await
            }
            async fn read_dropped(&mut self, buf: Vec<u8>, d: Duration) -> Option<BufResult<usize, Vec<u8>>> {
                timeout(d, self.read(buf)).await.ok()
            }
        }
    )*};
}

macro_rules! soak_write {
    ($($ty:ty),*) => {$(
        impl SoakWrite for $ty {
            async fn write_scoped(&mut self, buf: Vec<u8>, d: Duration) -> BufResult<(), Vec<u8>> {
                self.write_all(buf).cancel_after(d).await
            }
        }
    )*};
}

soak_read!(TcpStream, OwnedReadHalf);
soak_write!(TcpStream, OwnedWriteHalf);

/// Server side: echoes under random cancels until end of stream, then shuts down writing.
async fn echo(mut stream: TcpStream, seed: u64) -> usize {
    let mut rng = Rng::salted(seed | 1);
    let mut cancels = 0;
    loop {
        let Some(bytes) = stream.read_some(&mut rng).await else {
            cancels += 1;
            continue;
        };
        if bytes.is_empty() {
            stream
                .shutdown(std::net::Shutdown::Write)
                .await
                .expect("shutdown");
            return cancels;
        }
        cancels += stream.write_all_some(&mut rng, &bytes).await;
    }
}

/// Client side: sends its pattern from one task and checks the echo in another.
async fn client(addr: std::net::SocketAddr, id: usize) -> usize {
    let stream = TcpStream::connect(addr).await.expect("connect");
    record(&stream);
    let (mut rd, mut wr) = stream.into_split();
    let writer = spawn(async move {
        let mut rng = Rng::salted(0x9e37_79b9_7f4a_7c15 ^ id as u64);
        let data: Vec<u8> = (0..BYTES).map(|k| pattern(id, k)).collect();
        let cancels = wr.write_all_some(&mut rng, &data).await;
        wr.shutdown().await.expect("shutdown");
        cancels
    });
    let mut rng = Rng::salted(0x51_7cc1_b727_220a ^ id as u64);
    let (mut got, mut cancels) = (0usize, 0usize);
    loop {
        let Some(bytes) = rd.read_some(&mut rng).await else {
            cancels += 1;
            continue;
        };
        if bytes.is_empty() {
            break;
        }
        for (j, &b) in bytes.iter().enumerate() {
            assert_eq!(
                b,
                pattern(id, got + j),
                "conn {id}: byte {} lost, duplicated or reordered",
                got + j
            );
        }
        got += bytes.len();
    }
    assert_eq!(got, BYTES, "conn {id}: bytes lost");
    cancels + writer.await.expect("writer")
}

/// `CORERING_SOAK=SECS`: rounds run (fresh seeds each) until SECS have passed; else one.
fn cancellation_soak_loses_nothing_and_leaks_nothing(v: Variant) {
    raise_fd_limit();
    let mut cancels = 0;
    let (rounds, took) = soak_rounds(|| cancels += soak_round(v));
    eprintln!(
        "FIGURE soak::{}: {rounds} rounds in {:.0} s, {} streams, {} bytes checked each way, \
         {cancels} ops cancelled, nothing lost, duplicated or left open",
        v.label(),
        took.as_secs_f64(),
        rounds as usize * CONNS,
        rounds as usize * CONNS * BYTES
    );
}
each_variant!(cancellation_soak_loses_nothing_and_leaks_nothing);

/// One round: CONNS streams under random cancels; returns the ops cancelled.
fn soak_round(v: Variant) -> usize {
    v.with_runtime(|rt| {
        let cancels = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            record(&listener);
            let addr = listener.local_addr().expect("local_addr");
            let server = spawn(async move {
                let mut echoers = Vec::with_capacity(CONNS);
                for i in 0..CONNS {
                    let (stream, _) = listener.accept().await.expect("accept");
                    record(&stream);
                    echoers.push(spawn(echo(stream, 0xdead_beef ^ (i as u64) << 20)));
                }
                let mut cancels = 0;
                for e in echoers {
                    cancels += e.await.expect("echo task");
                }
                cancels
            });
            let clients: Vec<_> = (0..CONNS).map(|id| spawn(client(addr, id))).collect();
            let mut cancels = 0;
            for c in clients {
                cancels += within("client", c).await.expect("client task");
            }
            cancels + within("server", server).await.expect("server task")
        });
        eprintln!(
            "{cancels} ops cancelled, {} bytes echoed each way",
            CONNS * BYTES
        );
        assert!(cancels > 0, "the soak cancelled nothing");
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "op slots left: {}",
            rt.live_ops()
        );
        let made = SOCKETS.with(|s| s.take());
        assert_eq!(made.len(), 2 * CONNS + 1, "sockets recorded");
        let left: Vec<_> = open_fds()
            .into_values()
            .filter(|target| made.contains(target))
            .collect();
        assert!(
            left.is_empty(),
            "sockets left open after the soak: {left:?}"
        );
        cancels
    })
}
