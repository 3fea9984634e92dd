//! The listener's accept (a standing multishot accept on io_uring 5.19+, one op per accept
//! elsewhere): it survives EMFILE, a dropped accept future loses no connection, several tasks
//! may accept on one listener, `incoming` streams connections, and a dropped listener closes
//! the connections it had queued and leaves no op behind.
mod support;

use std::io::Read;

use std::rc::Rc;
use std::time::Duration;

use corering::net::TcpListener;
use corering::{spawn, time};
use futures_core::Stream;
use support::*;

fn set_fd_limit(soft: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    setrlimit(Resource::RLIMIT_NOFILE, soft.min(hard), hard).expect("setrlimit");
}

/// Takes every free fd number below the highest open one, so that exactly the numbers above
/// it are left (RLIMIT_NOFILE bounds the number, not the count).
fn fill_fd_holes() -> Vec<std::os::fd::OwnedFd> {
    let top = open_fds().keys().max().copied().expect("fds");
    let mut fillers = Vec::new();
    loop {
        let fd = std::fs::File::open("/dev/null").expect("open /dev/null");
        let fd = std::os::fd::OwnedFd::from(fd);
        if std::os::fd::AsRawFd::as_raw_fd(&fd) > top {
            return fillers;
        }
        fillers.push(fd);
    }
}

fn accept_survives_emfile(v: Variant) {
    run_child("child_accept_emfile", &v.label(), &[]);
}
each_variant!(accept_survives_emfile);

#[test]
#[ignore = "runs as a child process of accept_survives_emfile"]
fn child_accept_emfile() {
    let label = child_message().expect("from the parent");
    let v = Variant::from_label(&label).expect("variant");
    if let Some(why) = skip_reason(v) {
        return println!("CHILD-SKIP: {why}");
    }
    let saved = raise_fd_limit();
    v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Connections wait in the backlog; then the process runs out of fds.
        let clients: Vec<_> = (0..6)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let fillers = fill_fd_holes();
        let top = open_fds().keys().max().copied().expect("fds") as u64;
        set_fd_limit(top + 3);
        let mut accepted = Vec::new();
        let err = loop {
            match within("accept", listener.accept()).await {
                Ok((s, _)) => accepted.push(s),
                Err(e) => break e,
            }
            assert!(accepted.len() <= 2, "accepted past the fd limit");
        };
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
        // Asked again at once: the same error, not a spin and not a hang.
        let again = within("accept at the limit", listener.accept()).await;
        assert!(again.is_err(), "accepted past the fd limit");
        set_fd_limit(saved);
        drop(fillers);
        while accepted.len() < clients.len() {
            let (s, _) = within("accept after EMFILE", listener.accept())
                .await
                .expect("accept once fds are back");
            accepted.push(s);
        }
        // Every client got its own connection: each sees its server side close.
        drop(accepted);
        for mut c in clients {
            let mut byte = [0];
            assert_eq!(c.read(&mut byte).expect("eof"), 0);
        }
    });
    println!("CHILD-OK");
}

fn a_dropped_accept_loses_no_connection(v: Variant) {
    v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        for i in 0..20 {
            // Polled once, then dropped; the connection may be accepted in the kernel for it
            // (io_uring) meanwhile: the next accept must still return exactly this client.
            poll_once_then_drop(listener.accept()).await;
            let client = std::net::TcpStream::connect(addr).expect("connect");
            if i % 2 == 0 {
                time::sleep(Duration::from_millis(1)).await;
            }
            let (server, peer) = within("accept", listener.accept()).await.expect("accept");
            assert_eq!(peer, client.local_addr().unwrap(), "round {i}");
            drop((server, client));
        }
    });
}
each_variant!(a_dropped_accept_loses_no_connection);

fn several_tasks_accept_on_one_listener(v: Variant) {
    v.block_on(async {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").expect("bind"));
        let addr = listener.local_addr().expect("addr");
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let l = listener.clone();
                spawn(async move {
                    let mut n = 0;
                    while n < 5 {
                        let _ = l.accept().await.expect("accept");
                        n += 1;
                    }
                })
            })
            .collect();
        let clients: Vec<_> = (0..20)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        for t in tasks {
            within("acceptor", t).await.expect("acceptor");
        }
        drop(clients);
    });
}
each_variant!(several_tasks_accept_on_one_listener);

fn incoming_streams_connections(v: Variant) {
    v.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        let mut incoming = std::pin::pin!(listener.incoming());
        for _ in 0..3 {
            let next = std::future::poll_fn(|cx| incoming.as_mut().poll_next(cx));
            let (stream, peer) = within("next", next).await.expect("item").expect("accept");
            assert!(clients.iter().any(|c| c.local_addr().unwrap() == peer));
            drop(stream);
        }
    });
}
each_variant!(incoming_streams_connections);

fn a_dropped_listener_closes_what_it_queued(v: Variant) {
    v.with_runtime(|rt| {
        let clients = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let first = std::net::TcpStream::connect(addr).expect("connect");
            // One accept arms the standing accept (io_uring 5.19+) ...
            let _ = within("accept", listener.accept()).await.expect("accept");
            // ... which then takes these in without anyone asking.
            let rest: Vec<_> = (0..3)
                .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
                .collect();
            time::sleep(Duration::from_millis(5)).await;
            drop(listener);
            (first, rest)
        });
        assert!(
            turn_until(&rt, |rt| rt.live_ops() == 0),
            "the listener's accept outlived it"
        );
        for mut c in clients.1 {
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut byte = [0];
            // Queued by our accept and closed (EOF), or left in the closed listener's
            // backlog (reset): never left open with nobody on the other end.
            match c.read(&mut byte) {
                Ok(0) => {}
                Err(e) if is_reset(&e) => {}
                other => panic!("a connection queued by a dropped listener: {other:?}"),
            }
        }
        drop(clients.0);
    });
}
each_variant!(a_dropped_listener_closes_what_it_queued);
