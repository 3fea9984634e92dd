//! One core's lane to the blocking pool: which of its op slots are pool jobs, and their
//! answers coming back. Both backends keep one and hand it every pool job's drop, cancel and
//! answer, so the two treat pool jobs alike; a job's answer completes its slot as a CQE would.
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::blocking::{BlockingCall, BlockingPool, DoneList, Ticket};
use super::slots::{OnComplete, OnDrop, OpTable};
use super::{DriverStats, Leftover, OpCode, Ready};

/// What the lane knows of one op slot.
#[derive(Clone, Default)]
enum PoolSlot {
    /// Not a pool job (or its future has let go of the slot).
    #[default]
    None,
    /// Handed to the pool; no answer taken yet.
    Job(Arc<Ticket>),
    /// A pool job with its answer in the slot, not yet taken by its future. (Its answer is
    /// the op's: a cancel scope must not replace it.)
    Answered,
}

pub(crate) struct BlockingLane {
    pool: Arc<BlockingPool>,
    done: Arc<DoneList>,
    /// By op-slot index.
    slots: Vec<PoolSlot>,
    /// Jobs handed to the pool whose answer has not been taken (and that were not let go):
    /// while above zero a pool thread may use memory of this core's op table.
    in_flight: usize,
    answers: Vec<(u64, i32)>,
}

impl BlockingLane {
    pub fn new(pool: Arc<BlockingPool>, notify: Arc<dyn Fn() + Send + Sync>) -> BlockingLane {
        BlockingLane {
            pool,
            done: Arc::new(DoneList::new(notify)),
            slots: Vec::new(),
            in_flight: 0,
            answers: Vec::new(),
        }
    }

    /// Hands `call` to the pool for the op filed in `index` (named `user_data`). On failure
    /// the call goes to `ready`, dropped with no driver borrow held.
    pub fn submit(
        &mut self,
        (index, user_data): (usize, u64),
        call: BlockingCall,
        ready: &mut Ready,
    ) -> io::Result<()> {
        let ticket = self
            .pool
            .submit(call, user_data, &self.done)
            .map_err(|(e, call)| {
                ready.discarded.push(call);
                e
            })?;
        if index >= self.slots.len() {
            self.slots.resize(index + 1, PoolSlot::None);
        }
        self.slots[index] = PoolSlot::Job(ticket);
        self.in_flight += 1;
        Ok(())
    }

    fn slot(&self, index: usize) -> &PoolSlot {
        self.slots.get(index).unwrap_or(&PoolSlot::None)
    }

    /// Whether `index` is a pool job whose answer has not come.
    pub fn is_running(&self, index: usize) -> bool {
        matches!(self.slot(index), PoolSlot::Job(_))
    }

    /// The future of the pool job in `index` took its answer and freed the slot.
    pub fn freed(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            *slot = PoolSlot::None;
        }
    }

    /// Cancels the job in `index` if no thread has started it: it never runs, and its call
    /// (with what it owns) goes to `ready`. The slot stays the caller's, as `Answered`.
    fn cancel(&mut self, index: usize, ready: &mut Ready) -> bool {
        let PoolSlot::Job(ticket) = self.slot(index) else {
            return false;
        };
        if !ticket.cancel() {
            return false;
        }
        let ticket = ticket.clone();
        self.slots[index] = PoolSlot::Answered;
        self.in_flight -= 1;
        if let Some(call) = self.pool.take_cancelled(&ticket) {
            ready.discarded.push(call);
        }
        true
    }

    /// A future dropped while it held pool job `index`; `Err(data)` if `index` is not one.
    /// A job not started is cancelled (never run) and everything is freed now; a running job
    /// whose call owns all it touches (`OpCode::DETACHED_ON_DROP`) is let go; any other
    /// keeps the op's resources in the slot until its answer comes.
    pub fn drop_op<T: OpCode>(
        &mut self,
        index: usize,
        mut data: T,
        (ops, ready, stats): (&mut OpTable, &mut Ready, &mut DriverStats),
    ) -> Result<Leftover<T>, T> {
        let let_go = match self.slot(index) {
            PoolSlot::None => return Err(data),
            PoolSlot::Answered => false,
            PoolSlot::Job(_) => self.cancel(index, ready) || T::DETACHED_ON_DROP,
        };
        if let_go {
            if self.is_running(index) {
                // Let go while a thread runs it: its late answer names a freed slot.
                self.in_flight -= 1;
            }
            self.slots[index] = PoolSlot::None;
            ops.remove(index);
            stats.ops_completed += 1;
            return Ok(Leftover::Data(data));
        }
        data.on_orphaned();
        Ok(match ops.orphan(index, Box::new(data)) {
            OnDrop::AlreadyDone(resources, res, flags) => {
                self.freed(index);
                Leftover::Finish(resources, res, flags)
            }
            // The answer frees the resources (`take_answers`).
            OnDrop::Orphaned => Leftover::None,
        })
    }

    /// A cancel scope asks pool job `index` to end: a job not started ends now with
    /// `-ECANCELED` (never run); a running one answers in its own time; an answer that came
    /// stands. False if `index` is not a pool job.
    pub fn cancel_scope(
        &mut self,
        index: usize,
        (ops, ready, stats): (&mut OpTable, &mut Ready, &mut DriverStats),
    ) -> bool {
        match self.slot(index) {
            PoolSlot::None => false,
            PoolSlot::Answered => true,
            PoolSlot::Job(_) => {
                if self.cancel(index, ready) {
                    stats.ops_completed += 1;
                    ready.push(ops.complete(index, -libc::ECANCELED, 0));
                }
                true
            }
        }
    }

    /// Pool jobs in flight (answers not taken, not let go).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether answers wait (the next wait must not block).
    pub fn has_answers(&self) -> bool {
        self.done.has_answers()
    }

    /// Completes the slots whose answers came, as CQEs would.
    pub fn take_answers(&mut self, ops: &mut OpTable, ready: &mut Ready, stats: &mut DriverStats) {
        let mut answers = std::mem::take(&mut self.answers);
        self.done.take(&mut answers);
        for (user_data, res) in answers.drain(..) {
            // A job let go of (its slot freed, maybe reused by another op) is not named.
            let Some(index) = ops.index_of(user_data) else {
                continue;
            };
            if !self.is_running(index) {
                continue;
            }
            self.in_flight -= 1;
            stats.ops_completed += 1;
            let action = ops.complete(index, res, 0);
            self.slots[index] = match action {
                // An orphan: its slot is free now.
                OnComplete::Finish(..) => PoolSlot::None,
                _ => PoolSlot::Answered,
            };
            ready.push(action);
        }
        self.answers = answers;
    }

    /// Blocks until an answer comes or `timeout` passes (for a core that waits for nothing
    /// else: shutdown, settling).
    pub fn wait(&self, timeout: Duration) {
        self.done.wait(timeout);
    }

    /// Cancels every job not yet started (shutdown): each slot is completed with
    /// `-ECANCELED`. Started jobs answer in their own time.
    pub fn cancel_all(&mut self, ops: &mut OpTable, ready: &mut Ready, stats: &mut DriverStats) {
        for index in 0..self.slots.len() {
            if self.cancel(index, ready) {
                stats.ops_completed += 1;
                ready.push(ops.complete(index, -libc::ECANCELED, 0));
            }
        }
    }
}
