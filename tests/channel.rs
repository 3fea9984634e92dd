//! `corering::sync` channels on every backend: one million messages from both cores (and a
//! plain thread) to one receiver with none lost, duplicated or reordered per sender, on the
//! unbounded and the bounded channel; a receiver parked on one core woken by a send from
//! another; closing from either side; `try_send`/`try_recv`.
mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corering::sync::{channel, unbounded, Receiver, Sender, TryRecvError, TrySendError};
use corering::{spawn, yield_now};
use support::*;

/// Producer ids: core 0's task, core 1's root, a plain thread.
const PRODUCERS: usize = 3;

/// Receives until every sender is gone; checks that each producer's sequence numbers arrive
/// exactly once and in order. Returns the count per producer.
async fn drain(mut rx: Receiver<(usize, u64)>) -> [u64; PRODUCERS] {
    let mut next = [0u64; PRODUCERS];
    while let Some((from, seq)) = rx.recv().await {
        assert_eq!(
            seq, next[from],
            "producer {from}: lost, duplicated or reordered"
        );
        next[from] += 1;
    }
    next
}

async fn produce(tx: Sender<(usize, u64)>, from: usize, count: u64) {
    for seq in 0..count {
        tx.send((from, seq)).await.expect("receiver alive");
        if seq % 1024 == 0 {
            yield_now().await; // let the receiver on this core run now and then
        }
    }
}

/// Producers on a plain thread: `try_send`, retrying while full (hang guard 120 s).
fn produce_on_thread(tx: Sender<(usize, u64)>, from: usize, count: u64) {
    let give_up = Instant::now() + Duration::from_secs(120);
    for seq in 0..count {
        let mut msg = (from, seq);
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) => {
                    assert!(Instant::now() < give_up, "hang guard: channel stayed full");
                    msg = m;
                    std::thread::yield_now();
                }
                Err(TrySendError::Closed(_)) => panic!("receiver gone"),
            }
        }
    }
}

/// Core 0 receives; core 0 (a task), core 1 (its root) and a plain thread send `per_core`,
/// `per_core` and `on_thread` messages.
fn many_to_one(v: Variant, capacity: Option<usize>, per_core: u64, on_thread: u64) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let (tx, rx) = match capacity {
            Some(cap) => channel(cap),
            None => unbounded(),
        };
        let thread_tx = tx.clone();
        let thread = std::thread::spawn(move || produce_on_thread(thread_tx, 2, on_thread));
        // Each core takes its sender, so that the channel closes once they are done.
        let txs = Mutex::new(vec![Some(tx.clone()), Some(tx)]);
        let rx = Mutex::new(Some(rx));
        let reports = rt
            .run(|core| {
                let tx = txs.lock().unwrap()[core]
                    .take()
                    .expect("one sender per core");
                let rx = if core == 0 {
                    rx.lock().unwrap().take()
                } else {
                    None
                };
                async move {
                    match rx {
                        Some(rx) => {
                            let producer = spawn(produce(tx, 0, per_core));
                            let counts = within("drain", drain(rx)).await;
                            producer.await.expect("producer on core 0");
                            Some(counts)
                        }
                        None => {
                            produce(tx, 1, per_core).await;
                            None
                        }
                    }
                }
            })
            .expect("run");
        thread.join().expect("thread producer");
        let counts = reports[0].output.as_ref().expect("core 0").expect("counts");
        assert_eq!(counts, [per_core, per_core, on_thread]);
        assert!(reports[1].output.is_ok());
    });
}

fn one_million_messages_unbounded_from_both_cores(v: Variant) {
    many_to_one(v, None, 500_000, 0);
}
each_variant!(one_million_messages_unbounded_from_both_cores);

fn unbounded_from_both_cores_and_a_thread(v: Variant) {
    many_to_one(v, None, 100_000, 100_000);
}
each_variant!(unbounded_from_both_cores_and_a_thread);

fn bounded_from_both_cores_and_a_thread(v: Variant) {
    many_to_one(v, Some(64), 100_000, 50_000);
}
each_variant!(bounded_from_both_cores_and_a_thread);

fn one_million_messages_bounded_capacity_1024(v: Variant) {
    many_to_one(v, Some(1024), 500_000, 0);
}
each_variant!(one_million_messages_bounded_capacity_1024);

/// Polls `inner` once, then sets `parked` (so the other side knows the receiver is parked),
/// then waits for it.
async fn after_first_poll<F: Future>(parked: &AtomicBool, inner: F) -> F::Output {
    let mut inner = std::pin::pin!(inner);
    let mut first = true;
    std::future::poll_fn(|cx| {
        let poll = Pin::new(&mut inner).poll(cx);
        if std::mem::take(&mut first) {
            parked.store(true, Ordering::SeqCst);
        }
        poll
    })
    .await
}

fn parked_receiver_is_woken_from_another_core(v: Variant) {
    v.with_builder(|_, builder| {
        let rt = builder.cores(2).pin_cores(false).build().expect("build");
        let (tx, rx) = channel::<u32>(4);
        let (tx, rx) = (Mutex::new(Some(tx)), Mutex::new(Some(rx)));
        let parked = Arc::new(AtomicBool::new(false));
        let reports = rt
            .run(|core| {
                let parked = parked.clone();
                let rx = (core == 0).then(|| rx.lock().unwrap().take()).flatten();
                let tx = (core == 1).then(|| tx.lock().unwrap().take()).flatten();
                async move {
                    match (rx, tx) {
                        (Some(mut rx), _) => {
                            let before = corering::stats().remote_wakes;
                            let got = after_first_poll(&parked, rx.recv());
                            let got = within("recv", got).await;
                            let woken = corering::stats().remote_wakes - before;
                            let end = within("end", rx.recv()).await;
                            (got, end, woken)
                        }
                        (None, Some(tx)) => {
                            let up = settle(|| parked.load(Ordering::SeqCst)).await;
                            assert!(up, "the receiver never parked");
                            tx.send(7).await.expect("send");
                            (None, None, 0)
                        }
                        (None, None) => unreachable!("two cores"),
                    }
                }
            })
            .expect("run");
        let (got, end, woken) = reports[0].output.as_ref().expect("core 0");
        assert_eq!((*got, *end), (Some(7), None));
        assert!(*woken >= 1, "the wake did not come through core 0's inbox");
        assert!(reports[0].stats.remote_wakes >= 1);
    });
}
each_variant!(parked_receiver_is_woken_from_another_core);

fn closing_either_side_and_try_ops(v: Variant) {
    v.block_on(async {
        // try_send / try_recv on a bounded channel.
        let (tx, mut rx) = channel::<u32>(2);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        tx.try_send(1).expect("room");
        tx.send(2).await.expect("room");
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        // A send waiting for room completes once the receiver comes back for more.
        let waiting = spawn({
            let tx = tx.clone();
            async move { tx.send(3).await }
        });
        yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(within("recv 3", rx.recv()).await, Some(3));
        within("waiting send", waiting)
            .await
            .unwrap()
            .expect("sent");
        // Every sender gone: what is queued comes out, then None / Closed.
        tx.send(4).await.expect("send");
        drop(tx);
        assert_eq!(rx.recv().await, Some(4));
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));

        // Receiver gone: sends fail and give the value back, including one waiting for room.
        let (tx, rx) = channel::<String>(1);
        tx.send("a".into()).await.expect("room");
        let blocked = spawn({
            let tx = tx.clone();
            async move { tx.send("b".into()).await }
        });
        yield_now().await;
        assert!(!blocked.is_finished());
        drop(rx);
        let err = within("blocked send", blocked)
            .await
            .unwrap()
            .expect_err("closed");
        assert_eq!(err.0, "b");
        assert!(tx.is_closed());
        assert_eq!(tx.send("c".into()).await.expect_err("closed").0, "c");
        assert!(matches!(tx.try_send("d".into()), Err(TrySendError::Closed(d)) if d == "d"));

        // A receiver waiting on an unbounded channel wakes when the last sender goes.
        let (tx, mut rx) = unbounded::<()>();
        let recv = spawn(async move { rx.recv().await });
        yield_now().await;
        assert!(!recv.is_finished());
        drop(tx);
        assert_eq!(within("recv after close", recv).await.unwrap(), None);
    });
}
each_variant!(closing_either_side_and_try_ops);

/// "At most `capacity` messages": a message the receiver has returned no longer takes room,
/// so a sender waiting for room must get it without the receiver calling `recv` again.
fn bounded_room_is_given_back_when_a_message_is_received(v: Variant) {
    v.block_on(async {
        let (tx, mut rx) = channel::<u32>(1);
        tx.send(1).await.expect("room");
        let waiting = spawn(async move { tx.send(2).await });
        yield_now().await;
        assert!(!waiting.is_finished());
        assert_eq!(rx.recv().await, Some(1));
        within("waiting send", waiting)
            .await
            .unwrap()
            .expect("sent");
        assert_eq!(rx.recv().await, Some(2));
    });
}
each_variant!(bounded_room_is_given_back_when_a_message_is_received);

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Sender<Vec<u8>>>();
    send::<Receiver<u32>>();
}

/// The receiver as a `futures_core::Stream`: messages from a plain thread (which parks the
/// receiving core between them) come in order, and the stream ends once the sender is gone.
fn receiver_is_a_stream_that_ends_when_senders_go(v: Variant) {
    use futures_core::Stream;
    v.block_on(async {
        let (tx, rx) = channel::<u64>(16);
        let thread = std::thread::spawn(move || produce_on_thread_plain(tx, 10_000));
        let mut rx = std::pin::pin!(rx);
        let mut next = 0;
        let ended = within("stream", async {
            while let Some(seq) = std::future::poll_fn(|cx| rx.as_mut().poll_next(cx)).await {
                assert_eq!(seq, next, "lost, duplicated or reordered");
                next += 1;
            }
        });
        ended.await;
        assert_eq!(next, 10_000);
        // Ended streams stay ended.
        assert_eq!(
            std::future::poll_fn(|cx| rx.as_mut().poll_next(cx)).await,
            None
        );
        thread.join().expect("producer thread");
    });
}
each_variant!(receiver_is_a_stream_that_ends_when_senders_go);

fn produce_on_thread_plain(tx: Sender<u64>, count: u64) {
    let give_up = Instant::now() + Duration::from_secs(120);
    for seq in 0..count {
        let mut msg = seq;
        while let Err(e) = tx.try_send(msg) {
            match e {
                TrySendError::Full(m) => msg = m,
                TrySendError::Closed(_) => panic!("receiver gone"),
            }
            assert!(Instant::now() < give_up, "hang guard: channel stayed full");
            std::thread::yield_now();
        }
    }
}
