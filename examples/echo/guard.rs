//! What keeps the echo server standing when the process runs short: a cap on open
//! connections per core, and a backoff on accept errors such as EMFILE.
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use corering::sync::{channel, Receiver, Sender};

/// Whether an accept error says the process or system is out of something (fds, memory): the
/// connection stays in the listen backlog, and an accept at once would fail the same way.
pub fn is_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// One core's cap on its open connections (its share of `--max-conns`), and the signal that
/// one of them closed, which frees both a place under the cap and a file descriptor.
pub struct ConnLimit {
    open: Rc<Cell<usize>>,
    max: usize,
    closed_tx: Sender<()>,
    closed_rx: Receiver<()>,
}

/// A place under the cap, held by a connection's task; dropping it frees the place.
pub struct ConnPermit {
    open: Rc<Cell<usize>>,
    closed_tx: Sender<()>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.open.set(self.open.get() - 1);
        let _ = self.closed_tx.try_send(()); // full: a wake is already pending
    }
}

impl ConnLimit {
    pub fn new(max: usize) -> ConnLimit {
        let (closed_tx, closed_rx) = channel(1);
        ConnLimit {
            open: Rc::default(),
            max,
            closed_tx,
            closed_rx,
        }
    }

    /// Waits for a place under the cap (the next connections wait in the backlog meanwhile).
    pub async fn place(&mut self) {
        while self.open.get() >= self.max {
            self.closed().await;
        }
    }

    /// A permit for a connection just accepted (after [`place`](Self::place)).
    pub fn permit(&self) -> ConnPermit {
        self.open.set(self.open.get() + 1);
        ConnPermit {
            open: self.open.clone(),
            closed_tx: self.closed_tx.clone(),
        }
    }

    /// Resolves when a connection of this core closes.
    async fn closed(&mut self) {
        let _ = self.closed_rx.recv().await;
    }

    /// Waits for `delay`, or less if a connection of this core closes first.
    pub async fn closed_or(&mut self, delay: Duration) {
        let _ = corering::time::timeout(delay, self.closed()).await;
    }
}

/// The accept backoff to copy: after an error that says the process is out of something,
/// wait before the next accept (1 ms, doubling to 1 s), or until one of this core's
/// connections closes and frees a descriptor; an accept that succeeds starts over at 1 ms.
/// Other errors (a connection aborted in the backlog) are retried at once.
pub struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(1);
    const MAX: Duration = Duration::from_secs(1);

    pub fn new() -> AcceptBackoff {
        AcceptBackoff { next: Self::FIRST }
    }

    /// After a failed accept: how long to wait before the next, if at all.
    pub fn after(&mut self, e: &io::Error) -> Option<Duration> {
        if !is_exhaustion(e) {
            return None;
        }
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        Some(delay)
    }

    /// After an accept that succeeded.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}
