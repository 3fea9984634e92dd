//! One core's lane to the blocking pool: which of its op slots are pool jobs, and their
//! answers coming back. Both backends keep one; it completes slots exactly as a CQE does.
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::blocking::{BlockingCall, BlockingPool, DoneList, Ticket};
use super::slots::OpTable;
use super::{DriverStats, Ready};

pub(crate) struct BlockingLane {
    pool: Arc<BlockingPool>,
    done: Arc<DoneList>,
    /// The ticket of the job in each slot, by slot index (`None`: not a pool job, or its
    /// answer was taken).
    tickets: Vec<Option<Arc<Ticket>>>,
    /// Jobs handed to the pool whose answer has not been taken.
    in_flight: usize,
    answers: Vec<(u64, i32)>,
}

impl BlockingLane {
    pub fn new(pool: Arc<BlockingPool>, notify: Arc<dyn Fn() + Send + Sync>) -> BlockingLane {
        BlockingLane {
            pool,
            done: Arc::new(DoneList::new(notify)),
            tickets: Vec::new(),
            in_flight: 0,
            answers: Vec::new(),
        }
    }

    /// Hands `call` to the pool for the op filed in `index` (named `user_data`).
    pub fn submit(&mut self, index: usize, user_data: u64, call: BlockingCall) -> io::Result<()> {
        let ticket = self.pool.submit(call, user_data, &self.done)?;
        if index >= self.tickets.len() {
            self.tickets.resize(index + 1, None);
        }
        self.tickets[index] = Some(ticket);
        self.in_flight += 1;
        Ok(())
    }

    /// Whether `index` is a pool job whose answer has not been taken.
    pub fn owns(&self, index: usize) -> bool {
        matches!(self.tickets.get(index), Some(Some(_)))
    }

    /// Cancels the pool job in `index` if no thread has started it: it never runs, and the
    /// slot is the caller's to complete or free; the job's call (with what it owns) goes to
    /// `ready`, dropped when it runs. False if it runs (or is not a pool job).
    pub fn cancel(&mut self, index: usize, ready: &mut Ready) -> bool {
        let ticket = match self.tickets.get(index) {
            Some(Some(ticket)) if ticket.cancel() => self.tickets[index].take(),
            _ => return false,
        };
        self.in_flight -= 1;
        if let Some(call) = ticket.and_then(|t| self.pool.take_cancelled(&t)) {
            ready.discarded.push(call);
        }
        true
    }

    /// Pool jobs in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether answers wait (the next wait must not block).
    pub fn has_answers(&self) -> bool {
        self.done.has_answers()
    }

    /// Completes the slots whose answers came, as CQEs would.
    pub fn take_answers(&mut self, ops: &mut OpTable, ready: &mut Ready, stats: &mut DriverStats) {
        self.done.take(&mut self.answers);
        for (user_data, res) in self.answers.drain(..) {
            let Some(index) = ops.index_of(user_data) else {
                continue;
            };
            if let Some(slot) = self.tickets.get_mut(index) {
                if slot.take().is_some() {
                    self.in_flight -= 1;
                }
            }
            stats.ops_completed += 1;
            ready.push(ops.complete(index, res, 0));
        }
    }

    /// Blocks until an answer comes or `timeout` passes (for a core that waits for nothing
    /// else: shutdown, settling).
    pub fn wait(&self, timeout: Duration) {
        self.done.wait(timeout);
    }

    /// Cancels every job not yet started (shutdown): each slot is completed with
    /// `-ECANCELED`. Started jobs answer in their own time.
    pub fn cancel_all(&mut self, ops: &mut OpTable, ready: &mut Ready, stats: &mut DriverStats) {
        for index in 0..self.tickets.len() {
            if self.cancel(index, ready) {
                stats.ops_completed += 1;
                ready.push(ops.complete(index, -libc::ECANCELED, 0));
            }
        }
    }
}
