//! The ecosystem bridge on every backend: hyper serving keep-alive requests through
//! `Compat` (one connection, and several at once), tokio's io traits with a payload large
//! enough for partial reads and writes, shutdown, the read-ahead handed back, and hyper's
//! timer and executor hooks.
mod support;

use std::cell::Cell;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use corering::compat::{Compat, HyperExecutor, HyperTimer};
use corering::net::{TcpListener, TcpStream};
use corering::spawn;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::rt::{Executor, Timer};
use hyper::{client::conn::http1 as client, server::conn::http1 as server};
use hyper::{service::service_fn, Request, Response};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers "hello <path>".
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {}", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Serves `conns` connections of `listener` with hyper over `Compat`, each in its own task.
fn serve(listener: TcpListener, conns: usize) -> corering::JoinHandle<()> {
    spawn(async move {
        for _ in 0..conns {
            let (stream, _) = listener.accept().await.expect("accept");
            spawn(async move {
                server::Builder::new()
                    .timer(HyperTimer)
                    .serve_connection(Compat::new(stream), service_fn(hello))
                    .await
                    .expect("serve_connection");
            });
        }
    })
}

/// One client connection (hyper's, over `Compat`): `requests` keep-alive requests, every
/// response checked.
async fn client_requests(addr: std::net::SocketAddr, conn: usize, requests: usize) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut send, connection) = client::handshake::<_, Full<Bytes>>(Compat::new(stream))
        .await
        .expect("handshake");
    let driver = spawn(connection);
    for i in 0..requests {
        let path = format!("/{conn}/{i}");
        let req = Request::get(path.as_str())
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send.ready().await.expect("ready");
        let res = send.send_request(req).await.expect("send_request");
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, format!("hello {path}").as_bytes());
    }
    drop(send); // the client connection ends; the server sees EOF
    driver
        .await
        .expect("client task")
        .expect("client connection");
}

fn hyper_keep_alive_1000_requests(v: Variant) {
    v.block_on(within("1,000 requests", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(listener, 1);
        client_requests(addr, 0, 1000).await;
        server.await.unwrap();
    }));
}

fn hyper_concurrent_connections(v: Variant) {
    const CONNS: usize = 8;
    v.block_on(within("8 connections", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = serve(listener, CONNS);
        let clients: Vec<_> = (0..CONNS)
            .map(|c| spawn(client_requests(addr, c, 100)))
            .collect();
        for c in clients {
            c.await.expect("client");
        }
        server.await.unwrap();
    }));
}

/// A pattern no two offsets of which repeat within 4 MiB.
fn payload(len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    Pattern::new(0x5eed).fill(&mut out);
    out
}

/// Writes `data` through `io` with tokio's traits, shuts the write side down, and reads the
/// echo back to end of stream (both at once, so partial reads and writes happen).
async fn echo_through<S: corering::compat::CompatStream>(io: Compat<S>, data: &[u8]) -> Vec<u8> {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (sent, got) = join(
        async {
            wr.write_all(data).await?;
            wr.shutdown().await
        },
        async {
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.map(|_| got)
        },
    )
    .await;
    sent.expect("write_all + shutdown");
    got.expect("read_to_end")
}

fn tokio_io_round_trip_4mib(v: Variant) {
    v.block_on(within("4 MiB round trip", async {
        let (client, server) = tcp_pair().await;
        let echo = spawn(echo_stream(server));
        let data = payload(4 << 20);
        let got = echo_through(Compat::new(client), &data).await;
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the echoed bytes differ");
        assert_eq!(echo.await.unwrap(), data.len());
    }));
}

/// The bridge over a Unix stream: 1 MiB each way through tokio's traits, then EOF.
fn tokio_io_over_a_unix_stream(v: Variant) {
    v.block_on(within("unix round trip", async {
        let (client, mut server) = corering::net::UnixStream::pair().expect("pair");
        let echo = spawn(async move {
            let mut total = 0;
            loop {
                let (res, buf) = server.read(Vec::with_capacity(1 << 16)).await;
                match res.expect("echo read") {
                    0 => return total,
                    n => total += n,
                }
                let (res, _) = server.write_all(buf).await;
                res.expect("echo write");
            }
        });
        let data = payload(1 << 20);
        let got = echo_through(Compat::new(client), &data).await;
        assert!(got == data, "the echoed bytes differ");
        assert_eq!(echo.await.unwrap(), data.len());
    }));
}

fn shutdown_gives_the_peer_eof(v: Variant) {
    v.block_on(within("shutdown", async {
        let (stream, mut peer) = std_peer_pair().await;
        let mut io = Compat::new(stream);
        io.write_all(b"bye").await.unwrap();
        io.shutdown().await.unwrap();
        // The bytes and the FIN are in the kernel: this read does not block.
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
        // The other direction still works.
        peer.write_all(b"back").unwrap();
        drop(peer);
        let mut back = Vec::new();
        io.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"back");
        // A second shutdown is a no-op.
        io.shutdown().await.unwrap();
    }));
}

fn into_parts_hands_back_what_was_read_ahead(v: Variant) {
    v.block_on(within("into_parts", async {
        let (stream, mut peer) = std_peer_pair().await;
        peer.write_all(b"abcdef").unwrap();
        let mut io = Compat::new(stream);
        let mut two = [0; 2];
        io.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        assert_eq!(io.read_buffer(), b"cdef");
        let (stream, unread) = io.into_parts();
        assert_eq!(unread, b"cdef");
        // A read left in flight (its future dropped after one poll) is dropped with the
        // adapter; what arrives for it is read by the stream.
        let mut io = Compat::new(stream);
        let mut more = [0; 8];
        assert!(!poll_once_then_drop(io.read(&mut more)).await);
        let (mut stream, unread) = io.into_parts();
        assert!(unread.is_empty());
        peer.write_all(b"xyz").unwrap();
        let (res, buf) = stream.read(Vec::with_capacity(16)).await;
        assert_eq!(res.unwrap(), 3);
        assert_eq!(buf, b"xyz");
    }));
}

/// Polls both sleeps until one fires; says which (true: `a`).
async fn first_of(
    a: &mut Pin<Box<dyn hyper::rt::Sleep>>,
    b: &mut Pin<Box<dyn hyper::rt::Sleep>>,
) -> bool {
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        b.as_mut().poll(cx).map(|()| false)
    })
    .await
}

fn hyper_timer_sleeps_and_resets(v: Variant) {
    v.block_on(within("timer", async {
        let timer = HyperTimer;
        let hour = Duration::from_secs(3600);
        let (mut long, mut short) = (timer.sleep(hour), timer.sleep(Duration::from_millis(1)));
        assert!(
            !first_of(&mut long, &mut short).await,
            "the short sleep fires first"
        );
        // Moved nearer, the hour-long sleep fires (it was registered at an hour).
        timer.reset(&mut long, Instant::now() + Duration::from_millis(1));
        long.as_mut().await;
        // Moved later, a fired sleep waits again: another sleep fires before it.
        timer.reset(&mut short, Instant::now() + hour);
        let mut next = timer.sleep_until(Instant::now() + Duration::from_millis(2));
        assert!(
            !first_of(&mut short, &mut next).await,
            "the reset sleep waits again"
        );
        // Moved nearer again, after being polled at an hour.
        timer.reset(&mut short, Instant::now());
        short.as_mut().await;
    }));
}

/// hyper's header-read timeout runs on `HyperTimer`: a client that sends nothing is dropped.
fn hyper_header_timeout_fires(v: Variant) {
    v.block_on(within("header timeout", async {
        let (stream, _peer) = std_peer_pair().await;
        let err = server::Builder::new()
            .timer(HyperTimer)
            .header_read_timeout(Duration::from_millis(20))
            .serve_connection(Compat::new(stream), service_fn(hello))
            .await
            .expect_err("the connection times out");
        assert!(err.is_timeout(), "{err}");
    }));
}

/// A `HyperTimer` sleep polled under one runtime and awaited under a later one on the same
/// thread (a hyper connection future carried from one `block_on` to the next) fires there.
fn hyper_sleep_moves_to_the_runtime_that_polls_it(v: Variant) {
    let mut carried = None;
    v.block_on(async {
        let mut sleep = HyperTimer.sleep(Duration::from_millis(50));
        let polled = std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
        assert!(polled.is_pending(), "a 50 ms sleep was ready at once");
        carried = Some(sleep);
    });
    let mut sleep = carried.expect("the sleep");
    v.block_on(async move {
        let task = spawn(async move { sleep.as_mut().await });
        within("the carried sleep", task).await.expect("task");
    });
}

fn hyper_executor_runs_a_spawned_future(v: Variant) {
    v.block_on(within("executor", async {
        let ran = Rc::new(Cell::new(false));
        let flag = ran.clone();
        HyperExecutor.execute(async move { flag.set(true) });
        assert!(settle(|| ran.get()).await, "the spawned future ran");
    }));
}

each_variant!(
    hyper_keep_alive_1000_requests,
    hyper_concurrent_connections,
    tokio_io_round_trip_4mib,
    tokio_io_over_a_unix_stream,
    shutdown_gives_the_peer_eof,
    into_parts_hands_back_what_was_read_ahead,
    hyper_timer_sleeps_and_resets,
    hyper_header_timeout_fires,
    hyper_executor_runs_a_spawned_future,
    hyper_sleep_moves_to_the_runtime_that_polls_it,
);
