//! Unit tests of the storm threads (`cargo test --example compare`), each against a std
//! listener in this process that reads every connection to its end: a storm does to the
//! connections what its legend says, stops when told or by itself at its deadline, and
//! closes every socket it opened. No assert is about time: a test waits (up to LIMIT) for
//! the server to have seen enough, then stops the storm.
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{churn, slowloris, Tally, Until, RESET_SEND};

/// The longest a test waits for anything (a watchdog, not a measure).
const LIMIT: Duration = Duration::from_secs(60);
/// The connections a second of the churn storms in these tests.
const TEST_RATE: f64 = 200.0;
use crate::SERIAL;

/// How a connection the test server accepted ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Eof,
    Reset,
    Other(ErrorKind),
}

/// What the test server saw of one connection.
#[derive(Clone, Copy, Debug)]
struct Seen {
    bytes: usize,
    end: End,
}

/// A listener whose thread gives each connection a reader thread of its own.
struct Server {
    addr: SocketAddr,
    /// Every connection that has ended.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections that have sent at least `trickle` bytes so far.
    trickled: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    acceptor: JoinHandle<Vec<JoinHandle<()>>>,
}

impl Server {
    fn start(trickle: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let trickled = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, trickled2, stop2) = (seen.clone(), trickled.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || {
            let mut readers = Vec::new();
            for stream in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (seen, trickled) = (seen2.clone(), trickled2.clone());
                readers.push(std::thread::spawn(move || {
                    let s = read_to_end(stream, trickle, &trickled);
                    seen.lock().unwrap().push(s);
                }));
            }
            readers
        });
        Server {
            addr,
            seen,
            trickled,
            stop,
            acceptor,
        }
    }

    fn ended(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Stops accepting, waits for every reader, and returns what they saw.
    fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the acceptor, which sees the flag and drops this connection.
        let _ = TcpStream::connect(self.addr);
        for r in self.acceptor.join().expect("acceptor") {
            r.join().expect("reader");
        }
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}

/// Reads `stream` until its end; counts it in `trickled` once `trickle` bytes have come.
fn read_to_end(mut stream: TcpStream, trickle: usize, trickled: &AtomicUsize) -> Seen {
    // A storm that never closed its end shows as an error rather than a hang.
    let _ = stream.set_read_timeout(Some(LIMIT));
    let mut buf = [0u8; 64];
    let mut bytes = 0;
    let end = loop {
        match stream.read(&mut buf) {
            Ok(0) => break End::Eof,
            Ok(n) => {
                if bytes < trickle && bytes + n >= trickle {
                    trickled.fetch_add(1, Ordering::Relaxed);
                }
                bytes += n;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
            Err(e) => break End::Other(e.kind()),
        }
    };
    Seen { bytes, end }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Runs `storm` against a test server until `enough` says the server has seen enough (then
/// raises the stop flag) or the storm stops by itself at `deadline`; checks that every fd
/// opened is closed again. Returns whether `enough` held, the storm's tally and what the
/// server saw.
fn run_storm(
    trickle: usize,
    deadline: Duration,
    enough: impl Fn(&Server) -> bool,
    storm: impl FnOnce(SocketAddr, Until) -> Tally + Send,
) -> (bool, Tally, Vec<Seen>) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let fds = fd_count();
    let server = Server::start(trickle);
    let stop = AtomicBool::new(false);
    let until = Until {
        deadline: Instant::now() + deadline,
        stop: &stop,
    };
    let addr = server.addr;
    let (ok, tally) = std::thread::scope(|s| {
        let storm = s.spawn(move || storm(addr, until));
        let started = Instant::now();
        while !enough(&server) && !storm.is_finished() && started.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(5));
        }
        let ok = enough(&server);
        stop.store(true, Ordering::Relaxed);
        (ok, storm.join().expect("the storm thread panicked"))
    });
    let seen = server.finish();
    assert_eq!(
        fd_count(),
        fds,
        "fds left open after the storm and the server"
    );
    (ok, tally, seen)
}

/// The reset storm: every connection the server sees sends at most RESET_SEND bytes and
/// ends with an RST (ECONNRESET), never with a FIN, and the storm counts each one.
#[test]
fn reset_sends_part_of_a_request_then_an_rst() {
    let (ok, tally, seen) = run_storm(
        usize::MAX,
        LIMIT,
        |s| s.ended() >= 10,
        |addr, until| churn(addr, until, true, TEST_RATE),
    );
    assert!(ok, "the server saw {} connections end", seen.len());
    assert!(tally.events >= 10, "{tally:?}");
    for s in &seen {
        assert_eq!(s.end, End::Reset, "{s:?}");
        assert!(s.bytes <= RESET_SEND, "{s:?}");
    }
}

/// The vanish storm: every connection the server sees sends nothing and ends with a FIN.
#[test]
fn vanish_sends_nothing_and_closes() {
    let (ok, tally, seen) = run_storm(
        usize::MAX,
        LIMIT,
        |s| s.ended() >= 10,
        |addr, until| churn(addr, until, false, TEST_RATE),
    );
    assert!(ok, "the server saw {} connections end", seen.len());
    assert!(tally.events >= 10, "{tally:?}");
    for s in &seen {
        assert_eq!((s.bytes, s.end), (0, End::Eof), "{s:?}");
    }
}

/// Slowloris: opens all its connections, keeps each open while it trickles bytes into every
/// one of them (two or more each here), and closes each with a FIN at the end.
#[test]
fn slowloris_holds_every_connection_and_trickles_into_each() {
    const N: usize = 20;
    let (ok, tally, seen) = run_storm(
        2,
        LIMIT,
        |s| s.trickled.load(Ordering::Relaxed) >= N,
        |addr, until| slowloris(addr, until, N, Duration::from_millis(20)),
    );
    assert!(ok, "not every connection got two bytes: {seen:?}");
    assert_eq!((tally.open_peak, tally.failed), (N as u64, 0), "{tally:?}");
    assert!(tally.events >= 2 * N as u64, "{tally:?}");
    assert_eq!(seen.len(), N, "connections the server saw end");
    for s in &seen {
        assert!(s.bytes >= 2 && s.end == End::Eof, "{s:?}");
    }
}

/// Every storm stops by itself at its deadline, with no stop flag, and closes what it opened
/// (run_storm checks the fds).
#[test]
fn storms_stop_by_themselves_at_their_deadline() {
    let short = Duration::from_millis(100);
    let never = |_: &Server| false;
    run_storm(usize::MAX, short, never, |a, u| {
        churn(a, u, true, TEST_RATE)
    });
    run_storm(usize::MAX, short, never, |a, u| {
        churn(a, u, false, TEST_RATE)
    });
    let (_, _, seen) = run_storm(usize::MAX, short, never, |a, u| {
        slowloris(a, u, 50, Duration::from_millis(10))
    });
    assert!(seen.iter().all(|s| s.end == End::Eof), "{seen:?}");
}
