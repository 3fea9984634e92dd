//! Cancellation storms over `accept` and `connect`, 1,000 connections (scaled), each op under
//! a random cancel (scope or plain drop): no connection is lost (every client is served
//! exactly once, though accepts around it were cancelled), a cancelled connect that the kernel
//! completed anyway leaves nothing open, and afterwards no fd or op slot is left.
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use corering::cancel::{CancelExt, CancelToken, Cancelled};
use corering::net::{TcpListener, TcpStream};
use corering::spawn;
use corering::time::timeout;

use crate::each_variant;
use crate::scaled;
use crate::support::*;

/// A cancel delay for connection ops: a third at once (cancelled before the kernel answers,
/// where it has not already), the rest up to 200 µs (loopback connects take tens of µs).
fn short_delay(rng: &mut Pattern) -> Duration {
    match rng.below(3) {
        0 => Duration::ZERO,
        _ => Duration::from_micros(rng.below(201)),
    }
}

/// One client: sends its id and reads it back.
async fn id_round(mut stream: TcpStream, id: u64) {
    let (res, _) = stream.write_all(id.to_le_bytes().to_vec()).await;
    res.expect("send id");
    let (res, back) = stream.read_exact(vec![0u8; 8]).await;
    res.expect("echo of the id");
    assert_eq!(u64::from_le_bytes(back.try_into().expect("8")), id);
}

/// The server's side of one connection: echoes an id, or sees a connection that closed
/// before sending one (`None`).
async fn echo_id(mut stream: TcpStream) -> Option<u64> {
    let (res, id) = stream.read_exact(vec![0u8; 8]).await;
    match res {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof || is_reset(&e) => return None,
        Err(e) => panic!("server read: {e}"),
    }
    let (res, id) = stream.write_all(id).await;
    res.expect("echo");
    Some(u64::from_le_bytes(id.try_into().expect("8")))
}

/// Accepts until `want` ids were echoed, each accept under a random cancel where `rng` is
/// given (else plain, cut only by the end); returns the ids and the accepts cancelled.
async fn accept_storm(
    listener: TcpListener,
    want: usize,
    mut rng: Option<Pattern>,
) -> (HashSet<u64>, usize) {
    let (mut cancels, mut tasks) = (0, Vec::new());
    let ids = Rc::new(RefCell::new(HashSet::new()));
    let all_served = CancelToken::new();
    while ids.borrow().len() < want {
        let accept = listener.accept();
        let res = match rng.as_mut().map(|rng| (rng.below(2), short_delay(rng))) {
            None => accept.cancel_on(&all_served).await,
            Some((0, d)) => accept.cancel_after(d).await,
            Some((_, d)) => match timeout(d, accept).await {
                Ok(res) => res,
                Err(_) => {
                    cancels += 1;
                    continue;
                }
            },
        };
        match res {
            Ok((stream, _)) => {
                let (ids, all_served) = (ids.clone(), all_served.clone());
                tasks.push(spawn(async move {
                    if let Some(id) = echo_id(stream).await {
                        assert!(ids.borrow_mut().insert(id), "id {id} served twice");
                        if ids.borrow().len() == want {
                            all_served.cancel();
                        }
                    }
                }));
            }
            Err(e) if Cancelled::is(&e) => {
                cancels += usize::from(rng.is_some());
                corering::yield_now().await;
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    for t in tasks {
        t.await.expect("echo task");
    }
    let ids = ids.take();
    (ids, cancels)
}

/// `accept` under random cancels while clients connect: every client is served once.
fn accept_storm_loses_no_connection(v: Variant) {
    crate::storm_rounds("accept_storm_loses_no_connection", v, || {
        accept_storm_loses_no_connection_round(v)
    });
}

/// One round of [`accept_storm_loses_no_connection`].
fn accept_storm_loses_no_connection_round(v: Variant) {
    let conns = scaled(1000);
    raise_fd_limit();
    let _serial = serial();
    let before = count_open_fds();
    let (ids, cancels) = v.with_runtime(|rt| {
        let out = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let clients: Vec<_> = (0..conns as u64)
                .map(|id| {
                    spawn(async move {
                        let s = TcpStream::connect(addr).await.expect("connect");
                        id_round(s, id).await;
                    })
                })
                .collect();
            let out = within(
                "accept storm",
                accept_storm(listener, conns, Some(Pattern::salted(0xacce))),
            )
            .await;
            for c in clients {
                within("client", c).await.expect("client");
            }
            out
        });
        assert!(turn_until(&rt, |rt| rt.live_ops() == 0), "op slots left");
        out
    });
    assert_eq!(ids.len(), conns, "clients served");
    assert!(eventually(|| count_open_fds() <= before), "fds left");
    crate::first_round_figure(format!(
        "FIGURE storm::accept::{}: {conns} connections served once each, {cancels} accepts \
         cancelled, fds {before} before and {} after",
        v.label(),
        count_open_fds()
    ));
}
each_variant!(accept_storm_loses_no_connection);

/// `connect` under random cancels, retried until it succeeds: every client is served once,
/// the connections of cancelled connects reach the server (if at all) as closed ones, and
/// nothing is left open.
fn connect_storm_leaves_nothing_behind(v: Variant) {
    crate::storm_rounds("connect_storm_leaves_nothing_behind", v, || {
        connect_storm_leaves_nothing_behind_round(v)
    });
}

/// One round of [`connect_storm_leaves_nothing_behind`].
fn connect_storm_leaves_nothing_behind_round(v: Variant) {
    let conns = scaled(1000);
    raise_fd_limit();
    let _serial = serial();
    let before = count_open_fds();
    let cancels = Rc::new(Cell::new(0usize));
    let ids = v.with_runtime(|rt| {
        let ids = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let clients: Vec<_> = (0..conns as u64)
                .map(|id| {
                    let cancels = cancels.clone();
                    spawn(async move {
                        let mut rng = Pattern::salted(0xc0 ^ id << 24);
                        for attempt in 0u32.. {
                            // Each retry allows more time (a slow emulated kernel's handshake
                            // outlasts 200 µs: the storm must not livelock its own clients).
                            let d = short_delay(&mut rng)
                                + Duration::from_micros(attempt.min(14).pow(2) as u64 * 50);
                            let res = match rng.below(2) {
                                0 => TcpStream::connect(addr).cancel_after(d).await.map(Some),
                                _ => match timeout(d, TcpStream::connect(addr)).await {
                                    Ok(res) => res.map(Some),
                                    Err(_) => Ok(None), // dropped
                                },
                            };
                            match res {
                                Ok(Some(s)) => return id_round(s, id).await,
                                Ok(None) => cancels.set(cancels.get() + 1),
                                Err(e) if Cancelled::is(&e) => cancels.set(cancels.get() + 1),
                                Err(e) => panic!("connect: {e}"),
                            }
                        }
                        unreachable!("attempts without end")
                    })
                })
                .collect();
            // Plain accepts: every connection is taken, those of cancelled connects too.
            let (ids, _) = within("accepts", accept_storm(listener, conns, None)).await;
            for c in clients {
                within("client", c).await.expect("client");
            }
            ids
        });
        assert!(turn_until(&rt, |rt| rt.live_ops() == 0), "op slots left");
        ids
    });
    assert_eq!(ids.len(), conns, "clients served");
    assert!(eventually(|| count_open_fds() <= before), "fds left");
    crate::first_round_figure(format!(
        "FIGURE storm::connect::{}: {conns} connections served once each, {} connects \
         cancelled, fds {before} before and {} after",
        v.label(),
        cancels.get(),
        count_open_fds()
    ));
}
each_variant!(connect_storm_leaves_nothing_behind);
