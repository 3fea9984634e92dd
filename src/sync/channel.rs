//! A many-producer, single-consumer channel that crosses cores.
//!
//! The queue sits behind one mutex. The receiver takes the whole queue at once into a local
//! buffer, so a burst of messages costs it one lock; senders wake the receiver only when it is
//! parked (its waker is taken by the first send after it parked).
//!
//! Bounded channels count the messages in the receiver's local buffer against the capacity
//! (`in_receiver`), and give each place back as the message is handed out: an atomic
//! decrement, plus a lock only when a sender is waiting (`senders_parked`). A sender that
//! finds no room sets `senders_parked` and then looks again, and the receiver decrements and
//! then looks at `senders_parked` (both sequentially consistent), so one of them always sees
//! the other: no wake-up is lost.
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use slab::Slab;

struct State<T> {
    queue: VecDeque<T>,
    /// `None` for an unbounded channel.
    capacity: Option<usize>,
    receiver: Option<Waker>,
    /// Senders waiting for room (bounded only).
    /// Senders waiting for room, one entry per waiting send (bounded only).
    senders_waiting: Slab<Waker>,
    /// Bumped each time `senders_waiting` is emptied, so a send can tell its key went stale.
    waiting_gen: u64,
    senders: usize,
    receiver_alive: bool,
}

impl<T> State<T> {
    /// Empties the senders' wait list (their keys become stale).
    fn take_waiting(&mut self) -> Vec<Waker> {
        self.waiting_gen += 1;
        self.senders_waiting.drain().collect()
    }
}

/// A waiting send's place in `senders_waiting`: its key and the list's generation.
struct SendWait<'a, T> {
    chan: &'a Chan<T>,
    entry: Option<(usize, u64)>,
}

impl<T> SendWait<'_, T> {
    /// Files or refreshes this send's waker (one entry per send, however often it is polled).
    fn register(&mut self, state: &mut State<T>, waker: &Waker) {
        match self.entry {
            Some((key, gen)) if gen == state.waiting_gen => {
                state.senders_waiting[key].clone_from(waker);
            }
            _ => {
                let key = state.senders_waiting.insert(waker.clone());
                self.entry = Some((key, state.waiting_gen));
            }
        }
    }
}

impl<T> Drop for SendWait<'_, T> {
    fn drop(&mut self) {
        if let Some((key, gen)) = self.entry {
            let mut state = self.chan.lock();
            if gen == state.waiting_gen && state.senders_waiting.contains(key) {
                state.senders_waiting.remove(key);
            }
        }
    }
}

struct Chan<T> {
    state: Mutex<State<T>>,
    /// Bounded only: messages in the receiver's local buffer, not yet handed out.
    in_receiver: AtomicUsize,
    /// Bounded only: some sender waits for room (its waker is in `senders_waiting`).
    senders_parked: AtomicBool,
    /// Fixed at creation, so readable without the lock.
    bounded: bool,
}

impl<T> Chan<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn full(&self, state: &State<T>, cap: usize) -> bool {
        state.queue.len() + self.in_receiver.load(SeqCst) >= cap
    }

    /// Wakes the senders waiting for room, if any.
    fn wake_senders(&self) {
        if !self.senders_parked.load(SeqCst) {
            return;
        }
        let waiting = {
            let mut state = self.lock();
            self.senders_parked.store(false, SeqCst);
            state.take_waiting()
        };
        wake_all(waiting);
    }
}

fn make<T>(capacity: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        in_receiver: AtomicUsize::new(0),
        senders_parked: AtomicBool::new(false),
        bounded: capacity.is_some(),
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity,
            receiver: None,
            senders_waiting: Slab::new(),
            waiting_gen: 0,
            senders: 1,
            receiver_alive: true,
        }),
    });
    (
        Sender { chan: chan.clone() },
        Receiver {
            chan,
            local: VecDeque::new(),
        },
    )
}

/// A channel holding at most `capacity` messages; `send` waits for room.
///
/// # Panics
///
/// If `capacity` is 0.
pub fn channel<T: Send>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    assert!(capacity > 0, "channel capacity must be at least 1");
    make(Some(capacity))
}

/// A channel with no bound; `send` never waits.
pub fn unbounded<T: Send>() -> (Sender<T>, Receiver<T>) {
    make(None)
}

/// The sending half: `Clone`, `Send` and `Sync`; usable from any core or thread.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The message of a send to a channel whose receiver is gone.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SendError<T>(pub T);

/// Why [`Sender::try_send`] did not send.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The channel is full.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message now.
    Empty,
    /// No message, and every sender is gone.
    Closed,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting for room in a bounded channel.
    ///
    /// # Errors
    ///
    /// The receiver is gone; the value comes back.
    pub async fn send(&self, value: T) -> Result<(), SendError<T>> {
        let mut value = Some(value);
        let mut wait = SendWait {
            chan: &self.chan,
            entry: None,
        };
        poll_fn(|cx| {
            let mut state = self.chan.lock();
            if !state.receiver_alive {
                return Poll::Ready(Err(SendError(value.take().expect("sent once"))));
            }
            if let Some(cap) = state.capacity {
                if self.chan.full(&state, cap) {
                    wait.register(&mut state, cx.waker());
                    self.chan.senders_parked.store(true, SeqCst);
                    // Look again after announcing ourselves: the receiver may have handed a
                    // message out meanwhile without seeing the flag.
                    if self.chan.full(&state, cap) {
                        return Poll::Pending;
                    }
                }
            }
            state.queue.push_back(value.take().expect("sent once"));
            let receiver = state.receiver.take();
            drop(state);
            if let Some(w) = receiver {
                w.wake();
            }
            Poll::Ready(Ok(()))
        })
        .await
    }

    /// Sends `value` if there is room now.
    ///
    /// # Errors
    ///
    /// The channel is full, or the receiver is gone; the value comes back.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut state = self.chan.lock();
        if !state.receiver_alive {
            return Err(TrySendError::Closed(value));
        }
        if let Some(cap) = state.capacity {
            if self.chan.full(&state, cap) {
                return Err(TrySendError::Full(value));
            }
        }
        state.queue.push_back(value);
        let receiver = state.receiver.take();
        drop(state);
        if let Some(w) = receiver {
            w.wake();
        }
        Ok(())
    }

    /// Whether the receiver is gone.
    pub fn is_closed(&self) -> bool {
        !self.chan.lock().receiver_alive
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let receiver = {
            let mut state = self.chan.lock();
            state.senders -= 1;
            if state.senders > 0 {
                return;
            }
            state.receiver.take()
        };
        if let Some(w) = receiver {
            w.wake();
        }
    }
}

/// The receiving half: one per channel. `Send`, so it can be handed to the core that will
/// read from it.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// Messages taken from the shared queue in one go, returned one by one.
    local: VecDeque<T>,
}

impl<T> Receiver<T> {
    /// The next message; `None` once every sender is gone and the channel is empty.
    pub async fn recv(&mut self) -> Option<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next message: `Ready(None)` once every sender is gone and the channel is
    /// empty; `Pending` registers `cx`'s waker to be woken by the next send (or the last
    /// sender's drop). The receiver is also a [`Stream`](futures_core::Stream) of messages.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.try_recv() {
            Ok(v) => Poll::Ready(Some(v)),
            Err(TryRecvError::Closed) => Poll::Ready(None),
            Err(TryRecvError::Empty) => {
                let mut state = self.chan.lock();
                // Re-check under the lock: a send may have landed since try_recv.
                if !state.queue.is_empty() || state.senders == 0 {
                    drop(state);
                    cx.waker().wake_by_ref();
                } else {
                    state.receiver = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// The next message if there is one now.
    ///
    /// # Errors
    ///
    /// `Empty` if none is queued, `Closed` if none ever will be.
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        if let Some(v) = self.local.pop_front() {
            self.handed_out();
            return Ok(v);
        }
        let closed = {
            let mut state = self.chan.lock();
            if state.queue.is_empty() {
                state.senders == 0
            } else {
                std::mem::swap(&mut self.local, &mut state.queue);
                if state.capacity.is_some() {
                    // Still counted against the capacity until handed out one by one.
                    self.chan.in_receiver.fetch_add(self.local.len(), SeqCst);
                }
                false
            }
        };
        match self.local.pop_front() {
            Some(v) => {
                self.handed_out();
                Ok(v)
            }
            None if closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// One message left the receiver: in a bounded channel its place is free again.
    fn handed_out(&self) {
        if self.chan.bounded {
            self.chan.in_receiver.fetch_sub(1, SeqCst);
            self.chan.wake_senders();
        }
    }
}

fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

/// The messages, in order; the stream ends once every sender is gone and the channel is empty.
///
/// ```
/// use futures_core::Stream;
/// # corering::Runtime::new().unwrap().block_on(async {
/// let (tx, mut rx) = corering::sync::unbounded::<u32>();
/// tx.try_send(7).unwrap();
/// drop(tx);
/// let mut rx = std::pin::Pin::new(&mut rx);
/// assert_eq!(std::future::poll_fn(|cx| rx.as_mut().poll_next(cx)).await, Some(7));
/// assert_eq!(std::future::poll_fn(|cx| rx.as_mut().poll_next(cx)).await, None);
/// # });
/// ```
// Never structurally pinned: the messages are only moved out, never borrowed across polls.
impl<T> Unpin for Receiver<T> {}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.local.len(), None)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let (waiting, queue) = {
            let mut state = self.chan.lock();
            state.receiver_alive = false;
            (state.take_waiting(), std::mem::take(&mut state.queue))
        };
        // Messages are dropped outside the lock: their drop may do anything.
        drop(queue);
        wake_all(waiting);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("buffered", &self.local.len())
            .finish()
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the receiver is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

impl<T> fmt::Debug for TrySendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("Full(..)"),
            TrySendError::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}
