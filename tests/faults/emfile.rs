//! EMFILE, on every backend (in a child process: it lowers the fd limit): a listener whose
//! process is out of fds fails `accept` with EMFILE at once, again on each call (not a spin,
//! not a hang); an accept loop that backs off (10 ms, as `examples/echo` does) costs little
//! CPU while the fds stay gone; and once connections close, it accepts and serves every client
//! that waited in the backlog.
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use corering::net::TcpListener;
use corering::{spawn, time};

use crate::each_variant;
use crate::support::*;

const CLIENTS: usize = 12;
/// Server sockets that fit under the lowered limit at once.
const ROOM: u64 = 2;
/// How long the accept loop runs against EMFILE with nothing closing.
const WINDOW: Duration = Duration::from_millis(300);

fn set_fd_limit(soft: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard).expect("setrlimit");
}

/// Takes every free fd number below the highest open one (the limit bounds the number).
fn fill_fd_holes() -> Vec<std::os::fd::OwnedFd> {
    let top = open_fds().keys().max().copied().expect("fds");
    let mut fillers = Vec::new();
    loop {
        let fd = std::os::fd::OwnedFd::from(std::fs::File::open("/dev/null").expect("open"));
        if std::os::fd::AsRawFd::as_raw_fd(&fd) > top {
            return fillers;
        }
        fillers.push(fd);
    }
}

/// The process's CPU time (all threads), user + system.
fn cpu_time() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

fn emfile_accept_backs_off_and_recovers(v: Variant) {
    let out = run_child("emfile::child_emfile_backoff", &v.label(), &[]);
    out.lines()
        .filter_map(|l| l.find("FIGURE").map(|at| &l[at..]))
        .for_each(|l| eprintln!("{l}"));
}
each_variant!(emfile_accept_backs_off_and_recovers);

#[test]
#[ignore = "runs as a child process of emfile_accept_backs_off_and_recovers"]
fn child_emfile_backoff() {
    let v = Variant::from_label(&child_message().expect("from the parent")).expect("variant");
    if let Some(why) = skip_reason(v) {
        return println!("CHILD-SKIP: {why}");
    }
    let figures = v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Every client socket exists before the limit drops; they wait in the backlog.
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let fillers = fill_fd_holes();
        let top = open_fds().keys().max().copied().expect("fds") as u64;
        set_fd_limit(top + 1 + ROOM);
        // At the limit: EMFILE at once, and again at once.
        let mut held = Vec::new();
        let first = loop {
            match within("accept", listener.accept()).await {
                Ok((s, _)) => held.push(s),
                Err(e) => break e,
            }
            assert!(held.len() as u64 <= ROOM, "accepted past the fd limit");
        };
        assert_eq!(first.raw_os_error(), Some(libc::EMFILE), "{first}");
        let again = within("accept at the limit", listener.accept()).await;
        assert!(again.is_err(), "accepted past the fd limit");
        // The backoff loop against EMFILE, nothing closing: its CPU over the window.
        let errors = Rc::new(Cell::new(0usize));
        let (cpu0, t0) = (cpu_time(), Instant::now());
        let served = serve_with_backoff(listener, errors.clone(), 0);
        let server = spawn(served);
        time::sleep(WINDOW).await;
        let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
        let errors_in_window = errors.get();
        assert!(
            cpu < wall / 2,
            "{cpu:?} of CPU in {wall:?} of EMFILE: a busy loop"
        );
        assert!(
            errors_in_window as u128 <= wall.as_millis() / 10 + 2,
            "{errors_in_window} accept errors in {wall:?} with a 10 ms backoff"
        );
        // Connections close: fds come back, every waiting client is served.
        drop(held);
        drop(fillers);
        let clients = std::thread::spawn(move || each_client_echoes(clients));
        let served = within("serve after EMFILE", server).await.expect("server");
        while !clients.is_finished() {
            time::sleep(Duration::from_millis(5)).await;
        }
        clients.join().expect("clients");
        (cpu, wall, errors.get(), served)
    });
    let (cpu, wall, errors, served) = figures;
    println!(
        "FIGURE emfile::{}: {} ms CPU in {} ms of EMFILE ({errors} accept errors), \
         {served} clients served after",
        v.label(),
        cpu.as_millis(),
        wall.as_millis()
    );
    println!("CHILD-OK");
}

/// The accept loop of a server that backs off on errors: echoes one message per connection
/// and closes it; returns once it has served the clients not yet accepted.
async fn serve_with_backoff(
    listener: TcpListener,
    errors: Rc<Cell<usize>>,
    mut served: usize,
) -> usize {
    let want = CLIENTS - ROOM as usize;
    while served < want {
        match listener.accept().await {
            Ok((mut s, _)) => {
                let (res, buf) = s.read(vec![0u8; 64]).await;
                let n = res.expect("server read");
                let (res, _) = s
                    .write_all(buf.into_iter().take(n).collect::<Vec<u8>>())
                    .await;
                res.expect("server write");
                served += 1;
            }
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                errors.set(errors.get() + 1);
                time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    served
}

/// Each client that waited (the first `ROOM` were accepted and dropped): one echo, then the
/// server's close.
fn each_client_echoes(clients: Vec<std::net::TcpStream>) {
    for (i, mut c) in clients.into_iter().enumerate().skip(ROOM as usize) {
        c.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        c.write_all(&[i as u8; 8]).expect("client write");
        let mut back = [0u8; 8];
        c.read_exact(&mut back).expect("client read");
        assert_eq!(back, [i as u8; 8], "client {i}");
        let mut byte = [0u8];
        assert_eq!(c.read(&mut byte).expect("eof"), 0, "client {i}");
    }
}
