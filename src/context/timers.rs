//! The per-core timer map: an ordered map from (deadline, sequence) to the waiting waker.
use std::collections::BTreeMap;
use std::task::Waker;
use std::time::Instant;

/// A timer's place in the map; the sequence number keeps equal deadlines apart, in order.
pub(crate) type TimerKey = (Instant, u64);

#[derive(Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, Waker>,
    next_seq: u64,
}

impl Timers {
    pub fn insert(&mut self, deadline: Instant, waker: Waker) -> TimerKey {
        let key = (deadline, self.next_seq);
        self.next_seq += 1;
        self.map.insert(key, waker);
        key
    }

    pub fn set_waker(&mut self, key: TimerKey, waker: &Waker) {
        if let Some(w) = self.map.get_mut(&key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    pub fn remove(&mut self, key: TimerKey) {
        self.map.remove(&key);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|((d, _), _)| *d)
    }

    /// Moves the wakers of every timer due at `now` into `due`, earliest first. The caller
    /// wakes them after releasing its borrow of the map.
    pub fn fire(&mut self, now: Instant, due: &mut Vec<Waker>) {
        while let Some(entry) = self.map.first_entry() {
            if entry.key().0 > now {
                break;
            }
            due.push(entry.remove());
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_only_when_due() {
        let mut t = Timers::default();
        let now = Instant::now();
        let w = Waker::noop().clone();
        t.insert(now + Duration::from_millis(30), w.clone());
        let k = t.insert(now + Duration::from_millis(10), w.clone());
        t.insert(now + Duration::from_millis(20), w.clone());
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(10)));
        let mut due = Vec::new();
        t.fire(now + Duration::from_millis(5), &mut due);
        assert!(due.is_empty());
        t.remove(k);
        t.fire(now + Duration::from_millis(25), &mut due);
        assert_eq!(due.len(), 1);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(30)));
    }
}
