//! The open loop's I/O on one connection: writing the requests the schedule queued (several
//! may wait behind an unanswered one), and reading the echoes back in order, checking every
//! byte.
use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::super::{retry, sys_read, sys_send, Epoll, Exchange};
use super::OpenLoop;

impl OpenLoop {
    /// Reads echoes until the socket is empty, completing requests in order: one read may
    /// hold the end of one echo and several after it.
    pub(super) fn receive(&mut self, ep: &Epoll, i: usize) {
        let size = self.echo.request(0).len();
        loop {
            if self.cs[i].dead {
                return;
            }
            let k = match sys_read(self.cs[i].stream.as_raw_fd(), &mut self.rx) {
                Ok(0) => return self.fail(ep, i, "server closed it".into()),
                Ok(k) => k,
                Err(e) if retry(&e) => return,
                Err(e) => return self.fail(ep, i, format!("read: {e}")),
            };
            let mut off = 0;
            while off < k {
                let c = &mut self.cs[i];
                if c.queue.is_empty() {
                    return self.fail(ep, i, "echo of a request never sent".into());
                }
                // The head request is written whole unless it is the one being written.
                let sent = if c.written > 0 { size } else { c.partial };
                let n = (size - c.recvd).min(k - off);
                let data = &self.rx[off..off + n];
                match self.echo.take(&mut c.recvd, c.head_seq, sent, data) {
                    Ok(true) => self.complete(i),
                    Ok(false) => {}
                    Err(why) => return self.fail(ep, i, why),
                }
                off += n;
            }
            // A short read emptied the socket: no need for the read that says so.
            if k < self.rx.len() {
                return;
            }
        }
    }

    /// The head request of connection `i` is answered whole.
    pub(super) fn complete(&mut self, i: usize) {
        let now = Instant::now();
        let c = &mut self.cs[i];
        let p = c.queue.pop_front().expect("a request was pending");
        c.head_seq += 1;
        c.written -= 1;
        self.echo.reset(&mut c.recvd);
        self.last_progress = now;
        self.answered += 1;
        self.in_flight -= 1;
        if p.measured {
            self.record(p.due, now);
        }
    }

    /// Records a measured request due at `due` as answered (or given up on) at `at`.
    pub(super) fn record(&mut self, due: Instant, at: Instant) {
        let latency = at.saturating_duration_since(due);
        self.hist.saturating_record(latency.as_nanos() as u64);
        if let Some(t) = self.trace.as_mut() {
            t.push((due, latency));
        }
    }

    /// Writes what connection `i` has scheduled and not yet written; asks for EPOLLOUT if
    /// the socket is full.
    pub(super) fn send(&mut self, ep: &Epoll, i: usize) {
        let c = &mut self.cs[i];
        if c.dead {
            return;
        }
        while c.written < c.queue.len() {
            let req = self.echo.request(c.head_seq + c.written);
            match sys_send(c.stream.as_raw_fd(), &req[c.partial..]) {
                Ok(k) if c.partial + k == req.len() => (c.written, c.partial) = (c.written + 1, 0),
                Ok(k) => c.partial += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return self.fail(ep, i, format!("send: {e}")),
            }
        }
        let want_out = c.written < c.queue.len();
        if want_out != c.want_out {
            c.want_out = want_out;
            let events = match want_out {
                true => libc::EPOLLIN | libc::EPOLLOUT,
                false => libc::EPOLLIN,
            };
            if let Err(e) = ep.ctl(libc::EPOLL_CTL_MOD, c.stream.as_raw_fd(), events, i as u64) {
                self.fail(ep, i, format!("epoll_ctl: {e}"));
            }
        }
    }

    /// Connection `i` is broken: it leaves the epoll set, and its measured requests stay
    /// unanswered.
    pub(super) fn fail(&mut self, ep: &Epoll, i: usize, why: String) {
        let c = &mut self.cs[i];
        if !c.dead {
            c.dead = true;
            self.alive -= 1;
            let _ = ep.ctl(libc::EPOLL_CTL_DEL, c.stream.as_raw_fd(), 0, 0);
        }
        self.errors.add(|| format!("connection {i}: {why}"));
    }
}
