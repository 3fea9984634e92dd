//! The op table: one slot per operation the kernel (or the poller) knows about.
//!
//! A slot's index is both the io_uring `user_data` of its submission and the token an epoll
//! waiter is filed under. Its lifecycle is explicit:
//!
//! ```text
//!            insert                  kernel answers
//!   (none) ─────────▶ Waiting(waker) ───────────────▶ Completed(res, flags) ──▶ (none)
//!                        ▲ │                                   │ ▲    the future takes the
//!                        │ │ future dropped                    │ │    result and frees the slot
//!                        │ ▼                                   │ │
//!                        │ Orphaned(resources) ── answers ─────┼─┘ (resources finished and
//!                        │                                     │    freed, slot freed at once)
//!                        └──────────── rearm (epoll: readiness came, the retry said EAGAIN)
//! ```
//!
//! An op keeps one slot index from its first poll to its end on both backends, so a cancel
//! scope can name it by that index.
//!
//! A multishot op (io_uring only: an accept or a receive armed once for many completions) has
//! a slot of its own kind, `Multi`: its completions queue up in order until its owner takes
//! them, and the one without `IORING_CQE_F_MORE` ends it. Its owner gone, it becomes
//! `MultiOrphaned`: each later completion is released at once (a connection closed, a buffer
//! given back) and the last one frees the slot.
//!
//! ```text
//!   arm ──▶ Multi{queue, ended: false} ── last completion ──▶ Multi{queue, ended: true}
//!                 │ owner dropped                                 │ owner takes the last
//!                 ▼                                               ▼
//!           MultiOrphaned ── last completion ──▶ (none)         (none)
//! ```
//!
//! A future dropped after its completion arrived but before it was polled frees the slot and
//! finishes its resources at once. Nothing here wakes a waker or drops resources while the table
//! is borrowed: the callers get them back and act after releasing the borrow.
use std::collections::VecDeque;
use std::task::{Poll, Waker};

use slab::Slab;

/// `IORING_CQE_F_MORE`: more completions of this multishot op follow.
pub(crate) const CQE_F_MORE: u32 = 1 << 1;

/// What the kernel may still touch after a future was dropped: the op's own data, finished
/// with the completion's result when it arrives (e.g. a cancelled accept that still produced a
/// connection closes it here).
pub(crate) trait Orphan {
    /// Consumes the resources now that the kernel is done with them (`flags`: the
    /// completion's, e.g. the buffer a buffer-select recv took).
    fn finish(self: Box<Self>, res: i32, flags: u32);
}

/// What a multishot op whose owner is gone still gets from the kernel.
pub(crate) trait MultiOrphan {
    /// The owner is about to give the op up (called once, before any `release`).
    fn orphaned(&mut self) {}

    /// Releases what one completion produced (closes an accepted fd, gives a buffer back).
    /// Called while the driver is borrowed: it must not call into the driver.
    fn release(&mut self, res: i32, flags: u32);
}

/// One multishot op's completions, in order, until its owner takes them.
pub(crate) struct MultiSlot {
    /// The oldest completion, when it is the only one: most owners take each completion
    /// before the next comes, and an idle stream should not keep a queue's allocation.
    first: Option<(i32, u32)>,
    /// Completions after `first`, oldest first.
    queue: VecDeque<(i32, u32)>,
    waker: Option<Waker>,
    /// The last completion (no `F_MORE`) is in `queue`: the kernel has let go of the op.
    ended: bool,
    /// Completions queued untaken at which the op is paused (cancelled: its owner re-arms it
    /// once it takes them), so an owner that stops taking them stops the kernel too (a
    /// listener nobody accepts from holds no more fds, a stream nobody reads holds no more
    /// buffers and its peer meets TCP's flow control). 0: no bound.
    limit: u16,
    paused: bool,
}

impl MultiSlot {
    fn push(&mut self, cqe: (i32, u32)) {
        if self.first.is_none() && self.queue.is_empty() {
            self.first = Some(cqe);
        } else {
            self.queue.push_back(cqe);
        }
    }

    fn pop(&mut self) -> Option<(i32, u32)> {
        self.first.take().or_else(|| self.queue.pop_front())
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.queue.len()
    }
}

/// The state of one slot.
pub(crate) enum Lifecycle {
    /// In flight (submitted to the ring, or parked on readiness); the waker of the future that
    /// waits for it.
    Waiting(Waker),
    /// The kernel answered (`res` is the CQE result: a count or `-errno`; epoll: readiness
    /// arrived, `res == 0`), and the future has not yet taken it.
    Completed { res: i32, flags: u32 },
    /// The future was dropped while the op was in flight; these resources stay alive until the
    /// completion arrives.
    Orphaned(Box<dyn Orphan>),
    /// A multishot op with a live owner.
    Multi(MultiSlot),
    /// A multishot op whose owner is gone, until its last completion.
    MultiOrphaned(Box<dyn MultiOrphan>),
}

/// What to do after a completion was recorded.
pub(crate) enum OnComplete {
    /// Wake this waker (after releasing the table borrow).
    Wake(Waker),
    /// The future is gone: finish these resources with `res` (after releasing the borrow).
    Finish(Box<dyn Orphan>, i32, u32),
    /// A multishot op with no owner ended: drop what it held (after releasing the borrow).
    Release(Box<dyn MultiOrphan>),
    /// Nothing: the token was unknown (e.g. a cancel's own completion) or already completed.
    Nothing,
}

/// What to do after a future was dropped while it held a slot.
pub(crate) enum OnDrop {
    /// The op is still in flight; the resources are parked in the slot. For io_uring the caller
    /// submits a cancel for this slot.
    Orphaned,
    /// The completion had already arrived: the slot is free; finish the resources with `res`.
    AlreadyDone(Box<dyn Orphan>, i32, u32),
}

/// One core's op slots.
#[derive(Default)]
pub(crate) struct OpTable {
    slots: Slab<Lifecycle>,
    /// The generation of each slot index's current op (`gens[i]` for `slots[i]`): an io_uring
    /// `user_data` carries it beside the index, so a late answer or cancel aimed at an op that
    /// is gone never reaches the next op filed under the same index.
    gens: Vec<u32>,
    next_gen: u32,
    /// How many slots are `Orphaned` (or `MultiOrphaned`).
    orphaned: usize,
    /// Multishot ops to pause (see `MultiSlot::limit`).
    to_pause: Vec<usize>,
}

impl OpTable {
    /// Files a new in-flight op; its index is its token.
    pub fn insert(&mut self, waker: &Waker) -> usize {
        let index = self.slots.insert(Lifecycle::Waiting(waker.clone()));
        self.new_generation(index);
        index
    }

    fn new_generation(&mut self, index: usize) {
        if index >= self.gens.len() {
            self.gens.resize(index + 1, 0);
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        self.gens[index] = self.next_gen;
    }

    /// The io_uring `user_data` naming the op now in `index`: generation and index.
    pub fn user_data(&self, index: usize) -> u64 {
        (u64::from(self.gens[index]) << 32) | index as u64
    }

    /// The slot a `user_data` names, if that op is still in it.
    pub fn index_of(&self, user_data: u64) -> Option<usize> {
        let index = (user_data & u64::from(u32::MAX)) as usize;
        let current = self.slots.contains(index) && u64::from(self.gens[index]) == user_data >> 32;
        current.then_some(index)
    }

    /// How many slots are occupied (in flight, completed-but-not-taken, or orphaned).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// How many ops were given up by their futures and still wait for the kernel's answer.
    pub fn orphaned(&self) -> usize {
        self.orphaned
    }

    /// Whether `index` is an op still waiting (not completed, not orphaned).
    pub fn is_waiting(&self, index: usize) -> bool {
        matches!(self.slots.get(index), Some(Lifecycle::Waiting(_)))
    }

    /// The indices of every op still waiting on the kernel (for cancelling at shutdown).
    pub fn in_flight(&self) -> Vec<usize> {
        self.slots
            .iter()
            .filter(|(_, s)| match s {
                Lifecycle::Completed { .. } => false,
                Lifecycle::Multi(m) => !m.ended,
                _ => true,
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Records the kernel's answer for `index`.
    pub fn complete(&mut self, index: usize, res: i32, flags: u32) -> OnComplete {
        let Some(slot) = self.slots.get_mut(index) else {
            return OnComplete::Nothing;
        };
        match slot {
            Lifecycle::Waiting(_) => {
                let Lifecycle::Waiting(waker) =
                    std::mem::replace(slot, Lifecycle::Completed { res, flags })
                else {
                    unreachable!("matched Waiting above")
                };
                OnComplete::Wake(waker)
            }
            Lifecycle::Completed { .. } => OnComplete::Nothing,
            Lifecycle::Orphaned(_) => match self.slots.remove(index) {
                Lifecycle::Orphaned(resources) => {
                    self.orphaned -= 1;
                    OnComplete::Finish(resources, res, flags)
                }
                _ => unreachable!("matched Orphaned above"),
            },
            Lifecycle::Multi(m) => {
                if m.ended {
                    return OnComplete::Nothing;
                }
                m.push((res, flags));
                m.ended = flags & CQE_F_MORE == 0;
                let full = m.limit > 0 && m.len() >= usize::from(m.limit);
                if full && !m.ended && !m.paused {
                    m.paused = true;
                    self.to_pause.push(index);
                }
                let waker = m.waker.take();
                waker.map_or(OnComplete::Nothing, OnComplete::Wake)
            }
            Lifecycle::MultiOrphaned(rest) => {
                rest.release(res, flags);
                if flags & CQE_F_MORE != 0 {
                    return OnComplete::Nothing;
                }
                self.orphaned -= 1;
                match self.slots.remove(index) {
                    Lifecycle::MultiOrphaned(rest) => OnComplete::Release(rest),
                    _ => unreachable!("matched MultiOrphaned above"),
                }
            }
        }
    }

    /// Files a new multishot op, paused once `limit` completions wait untaken (0: never);
    /// its index is its token.
    pub fn insert_multi(&mut self, limit: u16) -> usize {
        let index = self.slots.insert(Lifecycle::Multi(MultiSlot {
            first: None,
            queue: VecDeque::new(),
            waker: None,
            ended: false,
            limit,
            paused: false,
        }));
        self.new_generation(index);
        index
    }

    /// The multishot ops that reached their bound since the last call: the caller cancels
    /// them.
    pub fn take_pauses(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.to_pause)
    }

    /// The next completion of the multishot op in `index`, and whether it was the last (the
    /// slot is then free); else records `waker`.
    pub fn poll_multi(&mut self, index: usize, waker: &Waker) -> Poll<(i32, u32, bool)> {
        let Some(Lifecycle::Multi(m)) = self.slots.get_mut(index) else {
            unreachable!("multishot slot {index} polled after its owner gave it up")
        };
        let Some((res, flags)) = m.pop() else {
            match &mut m.waker {
                Some(w) if w.will_wake(waker) => {}
                w => *w = Some(waker.clone()),
            }
            return Poll::Pending;
        };
        let last = m.ended && m.len() == 0;
        if last {
            self.slots.remove(index);
        }
        Poll::Ready((res, flags, last))
    }

    /// The owner of the multishot op in `index` is gone: `rest` releases what its queued
    /// completions produced, now, and what later ones produce. Returns `rest` back if the op
    /// had already ended (the slot is then free; drop `rest` after releasing the borrow), or
    /// `None` if it stays filed until its last completion (the caller cancels it).
    pub fn orphan_multi(
        &mut self,
        index: usize,
        mut rest: Box<dyn MultiOrphan>,
    ) -> Option<Box<dyn MultiOrphan>> {
        let Some(slot @ Lifecycle::Multi(_)) = self.slots.get_mut(index) else {
            unreachable!("multishot slot {index} orphaned twice")
        };
        let Lifecycle::Multi(m) = slot else {
            unreachable!("matched Multi above")
        };
        while let Some((res, flags)) = m.pop() {
            rest.release(res, flags);
        }
        if m.ended {
            self.slots.remove(index);
            return Some(rest);
        }
        *slot = Lifecycle::MultiOrphaned(rest);
        self.orphaned += 1;
        None
    }

    /// Whether `index` is a multishot op the kernel still holds (owned or orphaned).
    pub fn is_multi_armed(&self, index: usize) -> bool {
        match self.slots.get(index) {
            Some(Lifecycle::Multi(m)) => !m.ended,
            Some(Lifecycle::MultiOrphaned(_)) => true,
            _ => false,
        }
    }

    /// Ends the op in `index` with `res` whether or not its answer had come (epoll: a cancel
    /// overrides a readiness the future has not acted on yet). Orphaned or unknown: nothing.
    pub fn override_result(&mut self, index: usize, res: i32) -> OnComplete {
        match self.slots.get_mut(index) {
            Some(Lifecycle::Completed { res: r, .. }) => {
                *r = res;
                OnComplete::Nothing
            }
            Some(Lifecycle::Waiting(_)) => self.complete(index, res, 0),
            _ => OnComplete::Nothing,
        }
    }

    /// Polls the slot of a live future: its result if completed (freeing the slot), else
    /// records `waker` and stays pending.
    pub fn poll(&mut self, index: usize, waker: &Waker) -> Poll<(i32, u32)> {
        match self.slots.get_mut(index) {
            Some(Lifecycle::Waiting(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                Poll::Pending
            }
            Some(Lifecycle::Completed { res, flags }) => {
                let out = (*res, *flags);
                self.slots.remove(index);
                Poll::Ready(out)
            }
            _ => unreachable!("op slot {index} polled after its future gave it up"),
        }
    }

    /// As [`poll`](OpTable::poll), but a completed slot stays filed (as `Completed`) for the
    /// caller to [`rearm`](OpTable::rearm) or [`remove`](OpTable::remove).
    pub fn poll_keep(&mut self, index: usize, waker: &Waker) -> Poll<(i32, u32)> {
        match self.slots.get_mut(index) {
            Some(Lifecycle::Completed { res, flags }) => Poll::Ready((*res, *flags)),
            _ => self.poll(index, waker),
        }
    }

    /// The future that owns `index` is being dropped with `resources` the kernel may still use.
    pub fn orphan(&mut self, index: usize, resources: Box<dyn Orphan>) -> OnDrop {
        match self.slots.get_mut(index) {
            Some(slot @ Lifecycle::Waiting(_)) => {
                *slot = Lifecycle::Orphaned(resources);
                self.orphaned += 1;
                OnDrop::Orphaned
            }
            Some(Lifecycle::Completed { res, flags }) => {
                let (res, flags) = (*res, *flags);
                self.slots.remove(index);
                OnDrop::AlreadyDone(resources, res, flags)
            }
            _ => unreachable!("op slot {index} orphaned twice"),
        }
    }

    /// Puts a completed slot back to waiting, keeping its index (epoll: readiness arrived but
    /// the retried syscall said EAGAIN).
    pub fn rearm(&mut self, index: usize, waker: &Waker) {
        if let Some(slot @ Lifecycle::Completed { .. }) = self.slots.get_mut(index) {
            *slot = Lifecycle::Waiting(waker.clone());
        }
    }

    /// Frees a slot whose op needs no completion (an epoll waiter given up by its future).
    pub fn remove(&mut self, index: usize) {
        if let Some(Lifecycle::Orphaned(_) | Lifecycle::MultiOrphaned(_)) =
            self.slots.try_remove(index)
        {
            self.orphaned -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<CountingWaker>, Waker) {
        let w = Arc::new(CountingWaker(AtomicUsize::new(0)));
        (w.clone(), Waker::from(w))
    }

    /// Resources that record how they were finished.
    struct Recorder(Rc<RefCell<Vec<i32>>>);
    impl Orphan for Recorder {
        fn finish(self: Box<Self>, res: i32, _flags: u32) {
            self.0.borrow_mut().push(res);
        }
    }

    fn wake(action: OnComplete) {
        match action {
            OnComplete::Wake(w) => w.wake(),
            _ => panic!("expected a wake"),
        }
    }

    #[test]
    fn complete_after_poll_wakes_then_yields_result() {
        let mut table = OpTable::default();
        let (count, w) = waker();
        let i = table.insert(&w);
        assert!(table.poll(i, &w).is_pending());
        wake(table.complete(i, 42, 7));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(table.poll(i, &w), Poll::Ready((42, 7)));
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn complete_before_poll_is_kept_for_the_poll() {
        let mut table = OpTable::default();
        let (_, w) = waker();
        let i = table.insert(&w);
        wake(table.complete(i, -libc::ECONNRESET, 0));
        assert_eq!(table.poll(i, &w), Poll::Ready((-libc::ECONNRESET, 0)));
    }

    #[test]
    fn complete_after_drop_finishes_resources_then() {
        let mut table = OpTable::default();
        let (count, w) = waker();
        let log = Rc::new(RefCell::new(Vec::new()));
        let i = table.insert(&w);
        assert!(matches!(
            table.orphan(i, Box::new(Recorder(log.clone()))),
            OnDrop::Orphaned
        ));
        assert!(
            log.borrow().is_empty(),
            "resources must outlive the in-flight op"
        );
        assert_eq!(table.len(), 1);
        match table.complete(i, 5, 0) {
            OnComplete::Finish(r, res, flags) => r.finish(res, flags),
            _ => panic!("expected finish"),
        }
        assert_eq!(*log.borrow(), vec![5]);
        assert_eq!(table.len(), 0);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "a dropped future is not woken"
        );
    }

    #[test]
    fn cancel_racing_completion_either_order() {
        // Order A: the op's CQE arrives before the future is dropped.
        let mut table = OpTable::default();
        let (_, w) = waker();
        let log = Rc::new(RefCell::new(Vec::new()));
        let i = table.insert(&w);
        wake(table.complete(i, 3, 0));
        match table.orphan(i, Box::new(Recorder(log.clone()))) {
            OnDrop::AlreadyDone(r, res, flags) => r.finish(res, flags),
            OnDrop::Orphaned => panic!("completion already arrived"),
        }
        assert_eq!(*log.borrow(), vec![3]);
        assert_eq!(table.len(), 0);
        // The cancel's answer (-ENOENT/-EALREADY) then names no slot: nothing happens.
        assert!(matches!(
            table.complete(i, -libc::ENOENT, 0),
            OnComplete::Nothing
        ));

        // Order B: dropped first, then the op completes with -ECANCELED.
        let i = table.insert(&w);
        assert!(matches!(
            table.orphan(i, Box::new(Recorder(log.clone()))),
            OnDrop::Orphaned
        ));
        match table.complete(i, -libc::ECANCELED, 0) {
            OnComplete::Finish(r, res, flags) => r.finish(res, flags),
            _ => panic!("expected finish"),
        }
        assert_eq!(*log.borrow(), vec![3, -libc::ECANCELED]);
    }

    #[test]
    fn duplicate_completion_is_ignored() {
        let mut table = OpTable::default();
        let (count, w) = waker();
        let i = table.insert(&w);
        wake(table.complete(i, 1, 0));
        assert!(matches!(table.complete(i, 2, 0), OnComplete::Nothing));
        assert_eq!(table.poll(i, &w), Poll::Ready((1, 0)));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn poll_updates_the_waker() {
        let mut table = OpTable::default();
        let (first, w1) = waker();
        let (second, w2) = waker();
        let i = table.insert(&w1);
        assert!(table.poll(i, &w2).is_pending());
        wake(table.complete(i, 0, 0));
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn rearm_keeps_the_index_and_orphans_are_counted() {
        let mut table = OpTable::default();
        let (count, w) = waker();
        let i = table.insert(&w);
        wake(table.complete(i, 0, 0));
        assert!(!table.is_waiting(i));
        table.rearm(i, &w);
        assert!(table.is_waiting(i) && table.poll(i, &w).is_pending());
        let log = Rc::new(RefCell::new(Vec::new()));
        assert!(matches!(
            table.orphan(i, Box::new(Recorder(log.clone()))),
            OnDrop::Orphaned
        ));
        assert_eq!(table.orphaned(), 1);
        match table.complete(i, -libc::ECANCELED, 0) {
            OnComplete::Finish(r, res, flags) => r.finish(res, flags),
            _ => panic!("expected finish"),
        }
        assert_eq!((table.orphaned(), table.len()), (0, 0));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_user_data_names_one_op_not_its_index() {
        let mut table = OpTable::default();
        let (_, w) = waker();
        let i = table.insert(&w);
        let first = table.user_data(i);
        assert_eq!(table.index_of(first), Some(i));
        wake(table.complete(i, 0, 0));
        assert!(table.poll(i, &w).is_ready());
        assert_eq!(table.index_of(first), None, "freed");
        let j = table.insert(&w);
        assert_eq!(j, i, "the index is reused");
        assert_eq!(
            table.index_of(first),
            None,
            "a stale user_data names nothing"
        );
        assert_eq!(table.index_of(table.user_data(j)), Some(j));
    }

    #[test]
    fn in_flight_lists_waiting_and_orphaned_only() {
        let mut table = OpTable::default();
        let (_, w) = waker();
        let a = table.insert(&w);
        let b = table.insert(&w);
        let c = table.insert(&w);
        wake(table.complete(b, 0, 0));
        let log = Rc::new(RefCell::new(Vec::new()));
        let _ = table.orphan(c, Box::new(Recorder(log)));
        assert_eq!(table.in_flight(), vec![a, c]);
    }
}
