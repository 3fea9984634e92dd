//! Zero-copy send (6.0, `IORING_OP_SEND_ZC`): the kernel sends from the caller's buffer
//! without copying it, and says so twice: first the count sent (flagged `F_MORE`), then, once
//! the network stack no longer needs the memory, a notification (`F_NOTIF`). The buffer is
//! handed back only after the notification. If the first completion has no `F_MORE`, no
//! notification follows (an error before anything was queued).
//!
//! Both completions go to one multishot slot (`driver::slots`); dropped in flight, the op
//! keeps its buffer and fd handle there until the notification, and reports its count to the
//! stream's write rescue like any cancelled write.
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use io_uring::{cqueue, opcode, types};

use super::rescue::{RescueLink, WriteRescue};
use super::SharedFd;
use crate::buf::{BufResult, IoBuf};
use crate::driver::{Driver, MultiOrphan, CQE_F_MORE};
use crate::sys::cqe_result;

/// What the kernel holds while a zero-copy send runs.
struct ZcData<B> {
    fd: SharedFd,
    buf: B,
    rescue: RescueLink<WriteRescue>,
    /// The count (or `-errno`), once the first completion came.
    sent: Option<i32>,
}

impl<B: IoBuf> MultiOrphan for ZcData<B> {
    fn orphaned(&mut self) {
        self.fd.orphaned();
        self.rescue.orphaned();
        if let Some(res) = self.sent {
            // The count had come before the drop: the rescue learns it now.
            if let Some(rescue) = self.rescue.of_orphan() {
                rescue.answered(cqe_result(res));
            }
        }
    }

    fn release(&mut self, res: i32, flags: u32) {
        if !cqueue::notif(flags) && self.sent.is_none() {
            self.sent = Some(res);
            if let Some(rescue) = self.rescue.of_orphan() {
                rescue.answered(cqe_result(res));
            }
        }
        if flags & CQE_F_MORE == 0 {
            self.fd.answered();
        }
    }
}

/// The future of one zero-copy send: the count (or error) and the buffer, after the
/// notification.
pub(crate) struct SendZc<B: IoBuf> {
    driver: Rc<RefCell<Driver>>,
    index: Option<usize>,
    data: Option<ZcData<B>>,
    /// The cancel scopes it is filed with, while in the kernel.
    filed: Option<super::cancel::Filed>,
}

impl<B: IoBuf> SendZc<B> {
    pub fn new(fd: SharedFd, buf: B, rescue: Option<Rc<WriteRescue>>) -> SendZc<B> {
        SendZc {
            driver: crate::context::current_driver(),
            index: None,
            data: Some(ZcData {
                fd,
                buf,
                rescue: RescueLink::new(rescue),
                sent: None,
            }),
            filed: None,
        }
    }

    fn submit(&mut self) -> io::Result<usize> {
        let data = self.data.as_ref().expect("polled after completion");
        let len = data.buf.bytes_init().min(u32::MAX as usize) as u32;
        let entry = opcode::SendZc::new(types::Fd(data.fd.raw()), data.buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build();
        let mut driver = self.driver.borrow_mut();
        let uring = driver.uring().ok_or(io::ErrorKind::Unsupported)?;
        let index = uring.arm_multi(entry, 0)?;
        uring.stats.zero_copy_sends += 1;
        Ok(index)
    }
}

impl<B: IoBuf> Unpin for SendZc<B> {}

impl<B: IoBuf> Future for SendZc<B> {
    type Output = BufResult<usize, B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.index.is_none() {
            let scoped = super::cancel::any_entered();
            let refused = scoped.then(super::cancel::cancelled_now).flatten();
            let submitted = match refused {
                Some(e) => Err(e),
                None => this.submit(),
            };
            match submitted {
                Ok(index) => {
                    this.index = Some(index);
                    if scoped {
                        this.filed = super::cancel::file(&this.driver, index);
                    }
                }
                Err(e) => {
                    let data = this.data.take().expect("polled after completion");
                    return Poll::Ready((Err(e), data.buf));
                }
            }
        }
        loop {
            let index = this.index.expect("submitted above");
            let polled = match this.driver.borrow_mut().uring() {
                Some(uring) => uring.poll_multi(index, cx),
                None => Poll::Ready((-libc::ECANCELED, 0, true)),
            };
            let (res, flags, last) = std::task::ready!(polled);
            let data = this.data.as_mut().expect("in flight");
            if !cqueue::notif(flags) {
                data.sent = Some(res);
            }
            if last {
                this.index = None;
                let filed = this.filed.take();
                let data = this.data.take().expect("in flight");
                let res = cqe_result(data.sent.unwrap_or(res)).map(|n| n as usize);
                let res = match res {
                    Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {
                        Err(filed.and_then(|f| f.error()).unwrap_or(e))
                    }
                    res => res,
                };
                return Poll::Ready((res, data.buf));
            }
        }
    }
}

impl<B: IoBuf> Drop for SendZc<B> {
    fn drop(&mut self) {
        self.filed = None;
        if let (Some(index), Some(data)) = (self.index.take(), self.data.take()) {
            super::multi::give_up(&self.driver, index, data);
        }
    }
}
