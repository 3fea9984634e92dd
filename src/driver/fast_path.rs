//! The io_uring fast path: which of the newer interfaces this ring uses, found by asking the
//! kernel (opcode probe, feature bits, a trial registration), filtered through the tier cap.
//!
//! | interface | since | found by |
//! |---|---|---|
//! | multishot accept | 5.19 | `IORING_OP_SOCKET` in the probe (the same release) |
//! | provided buffer ring | 5.19 | registering a one-slot ring, then unregistering it |
//! | multishot recv | 6.0 | `IORING_OP_SEND_ZC` in the probe (the same release) |
//! | `SEND_ZC` | 6.0 | the probe |
//! | recv bundles | 6.10 | `IORING_FEAT_RECVSEND_BUNDLE`; off (netty ships them off; liburing #1409, #1423, #1320 report reordering on some kernels) |
//! | incremental consumption | 6.12 | registering a one-slot ring with `IOU_PBUF_RING_INC`; off |
//!
//! (The registered ring fd, 5.18, is found by registering it: see `uring::enter`.)
use io_uring::{opcode, IoUring, Probe};

use super::tier::{TierCap, UringFeature};

/// `IOU_PBUF_RING_INC`: the kernel consumes a provided buffer a part at a time (6.12).
const PBUF_RING_INC: u16 = 2;
/// The buffer group id the trial registration uses (the pool uses 0).
const PROBE_BGID: u16 = 0x7fff;

/// What the fast path may use on this ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FastPath {
    pub multishot_accept: bool,
    pub buf_ring: bool,
    pub multishot_recv: bool,
    pub send_zc: bool,
    /// Offered by the kernel (and the cap) but not used: see the module docs.
    pub bundles_available: bool,
    pub incremental_available: bool,
}

impl FastPath {
    pub(crate) fn probe(ring: &IoUring, probe: &Probe, cap: TierCap) -> FastPath {
        let has = |code: u8, f: UringFeature| probe.is_supported(code) && cap.allows(f);
        let buf_ring = cap.allows(UringFeature::BufRing) && trial_buf_ring(ring, 0);
        let multishot_recv = buf_ring && has(opcode::SendZc::CODE, UringFeature::MultishotRecv);
        FastPath {
            multishot_accept: has(opcode::Socket::CODE, UringFeature::MultishotAccept),
            buf_ring,
            multishot_recv,
            send_zc: has(opcode::SendZc::CODE, UringFeature::SendZc),
            bundles_available: multishot_recv
                && ring.params().is_feature_recvsend_bundle()
                && cap.allows(UringFeature::RecvBundle),
            incremental_available: buf_ring
                && cap.allows(UringFeature::IncrementalBuffers)
                && trial_buf_ring(ring, PBUF_RING_INC),
        }
    }

    /// The names of what is in use, for the probe report.
    pub(crate) fn in_use(&self, registered_ring: bool) -> Vec<&'static str> {
        let all = [
            (registered_ring, "REGISTERED_RING"),
            (self.multishot_accept, "MULTISHOT_ACCEPT"),
            (self.buf_ring, "BUF_RING"),
            (self.multishot_recv, "MULTISHOT_RECV"),
            (self.send_zc, "SEND_ZC"),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n)
            .collect()
    }

    /// The names of what the kernel offers that is kept off.
    pub(crate) fn kept_off(&self) -> Vec<&'static str> {
        let all = [
            (self.bundles_available, "RECV_BUNDLE"),
            (self.incremental_available, "PBUF_INCREMENTAL"),
        ];
        all.into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| n)
            .collect()
    }
}

/// Whether the kernel takes a provided buffer ring with `flags`: registers a one-slot ring
/// under a group id of its own and unregisters it at once.
fn trial_buf_ring(ring: &IoUring, flags: u16) -> bool {
    let len = 4096;
    let Ok(mem) = crate::buf::map_ring_memory(len) else {
        return false;
    };
    let mem = mem.as_ptr().cast::<libc::c_void>();
    let submitter = ring.submitter();
    // SAFETY: the mapping stays valid until after the ring is unregistered below.
    let ok =
        unsafe { submitter.register_buf_ring_with_flags(mem as u64, 1, PROBE_BGID, flags) }.is_ok();
    if ok {
        let _ = submitter.unregister_buf_ring(PROBE_BGID);
    }
    // SAFETY: mapped above with this length; the kernel no longer refers to it.
    unsafe { libc::munmap(mem, len) };
    ok
}
