//! Kernel tiers: the kernel versions at which the io_uring backend changes behaviour, and the
//! cap that makes a new kernel answer as an older one would.
//!
//! Every kernel interface the backend uses beyond 5.10 is one [`UringFeature`], with the
//! version that brought it. A cap ([`Builder::uring_tier`](crate::Builder::uring_tier) or
//! `CORERING_URING_TIER=5.10`) does not take a separate path: it changes the kernel's *answers*
//! at the points where an older kernel answers differently, so the code behind them is the
//! code a real older kernel runs:
//!
//! | feature | since | an older kernel (and the cap) answers | we then |
//! |---|---|---|---|
//! | `IORING_FEAT_EXT_ARG` | 5.11 | the bit is clear | bound waits with a TIMEOUT entry |
//! | `IORING_OP_SHUTDOWN` | 5.11 | the probe lacks it | call `shutdown(2)` |
//! | `IORING_OP_RENAMEAT`, `IORING_OP_UNLINKAT` | 5.11 | the probe lacks them | the blocking pool |
//! | `IORING_REGISTER_IOWQ_MAX_WORKERS` | 5.15 | `EINVAL` | leave io-wq unbounded |
//! | `IORING_OP_MKDIRAT` | 5.15 | the probe lacks it | the blocking pool |
//! | `IORING_REGISTER_RING_FDS` | 5.18 | `EINVAL` | enter with the ring's fd |
//! | `IORING_SETUP_COOP_TASKRUN` (+ `TASKRUN_FLAG`) | 5.19 | setup `EINVAL` | drop the flag, retry |
//! | multishot `IORING_OP_ACCEPT` | 5.19 | the probe lacks `IORING_OP_SOCKET` (same release) | one accept entry per connection |
//! | `IORING_REGISTER_PBUF_RING` | 5.19 | `EINVAL` | pooled reads wait for readiness, then take a buffer |
//! | `IORING_SETUP_SINGLE_ISSUER` | 6.0 | setup `EINVAL` | drop the flag, retry |
//! | multishot `IORING_OP_RECV` | 6.0 | the probe lacks `IORING_OP_SEND_ZC` (same release) | one buffer-select recv per read |
//! | `IORING_OP_SEND_ZC` | 6.0 | the probe lacks it | copying sends |
//! | `IORING_SETUP_DEFER_TASKRUN` | 6.1 | setup `EINVAL` | drop the flag, retry |
//! | `IORING_OP_FTRUNCATE` | 6.9 | the probe lacks it | the blocking pool |
//! | recv bundles (`IORING_FEAT_RECVSEND_BUNDLE`) | 6.10 | the bit is clear | one buffer per completion (also the default: off) |
//! | incremental buffer consumption (`IOU_PBUF_RING_INC`) | 6.12 | `EINVAL` | whole buffers (also the default: off) |
//!
//! A feature joins this table, and its version joins [`UringTier::ALL`], when the backend
//! starts to use it (kernel-notes.md has the same table with how each is probed).
use std::fmt;
use std::io;
use std::str::FromStr;

/// A kernel version at which corering's io_uring backend changes behaviour. Ordered by
/// version; parse one from `"5.10"` (any `major.minor[.patch…]` maps to the newest tier not
/// newer than it, so `"5.17"` is tier 5.15).
///
/// ```
/// use corering::UringTier;
/// let tier: UringTier = "5.17.3".parse().unwrap();
/// assert_eq!(tier, UringTier::V5_15);
/// assert_eq!(tier.to_string(), "5.15");
/// assert!("5.4".parse::<UringTier>().is_err()); // below corering's 5.10 floor
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UringTier {
    major: u8,
    minor: u8,
}

impl UringTier {
    /// The floor: what every supported kernel offers.
    pub const V5_10: UringTier = UringTier::new(5, 10);
    /// EXT_ARG (waits carry their timeout), IORING_OP_SHUTDOWN, RENAMEAT and UNLINKAT.
    pub const V5_11: UringTier = UringTier::new(5, 11);
    /// IORING_REGISTER_IOWQ_MAX_WORKERS (io-wq bounded per ring), IORING_OP_MKDIRAT.
    pub const V5_15: UringTier = UringTier::new(5, 15);
    /// A registered ring fd (IORING_REGISTER_RING_FDS, IORING_ENTER_REGISTERED_RING).
    pub const V5_18: UringTier = UringTier::new(5, 18);
    /// IORING_SETUP_COOP_TASKRUN and TASKRUN_FLAG, multishot accept, provided buffer rings.
    pub const V5_19: UringTier = UringTier::new(5, 19);
    /// IORING_SETUP_SINGLE_ISSUER, multishot recv, SEND_ZC.
    pub const V6_0: UringTier = UringTier::new(6, 0);
    /// IORING_SETUP_DEFER_TASKRUN.
    pub const V6_1: UringTier = UringTier::new(6, 1);
    /// IORING_OP_FTRUNCATE.
    pub const V6_9: UringTier = UringTier::new(6, 9);
    /// Recv bundles (off unless asked for).
    pub const V6_10: UringTier = UringTier::new(6, 10);
    /// Incremental buffer consumption (off unless asked for).
    pub const V6_12: UringTier = UringTier::new(6, 12);
    /// Every tier, oldest first.
    pub const ALL: [UringTier; 10] = [
        UringTier::V5_10,
        UringTier::V5_11,
        UringTier::V5_15,
        UringTier::V5_18,
        UringTier::V5_19,
        UringTier::V6_0,
        UringTier::V6_1,
        UringTier::V6_9,
        UringTier::V6_10,
        UringTier::V6_12,
    ];

    const fn new(major: u8, minor: u8) -> UringTier {
        UringTier { major, minor }
    }

    /// The newest tier not newer than kernel `major.minor`; `None` below 5.10.
    pub fn at_most(major: u32, minor: u32) -> Option<UringTier> {
        let version = (major, minor);
        UringTier::ALL
            .into_iter()
            .rev()
            .find(|t| (u32::from(t.major), u32::from(t.minor)) <= version)
    }

    /// The kernel's major version (the 6 of 6.1).
    pub fn major(self) -> u32 {
        self.major.into()
    }

    /// The kernel's minor version (the 1 of 6.1).
    pub fn minor(self) -> u32 {
        self.minor.into()
    }
}

/// The floor, 5.10.
impl Default for UringTier {
    fn default() -> UringTier {
        UringTier::V5_10
    }
}

impl fmt::Display for UringTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for UringTier {
    type Err = String;

    fn from_str(s: &str) -> Result<UringTier, String> {
        let bad = || format!("bad io_uring tier {s:?}: expected a kernel version such as 5.10");
        let mut parts = s.trim().split(['.', '-', '+']);
        let mut number =
            || -> Result<u32, String> { parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad) };
        let (major, minor) = (number()?, number()?);
        UringTier::at_most(major, minor)
            .ok_or_else(|| format!("io_uring tier {s:?} is below corering's 5.10 floor"))
    }
}

/// A kernel interface the io_uring backend uses beyond the 5.10 floor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UringFeature {
    ExtArg,
    OpShutdown,
    /// RENAMEAT and UNLINKAT.
    OpPathAt,
    IowqMaxWorkers,
    OpMkdirAt,
    RegisteredRing,
    CoopTaskrun,
    MultishotAccept,
    BufRing,
    SingleIssuer,
    MultishotRecv,
    SendZc,
    DeferTaskrun,
    OpFtruncate,
    RecvBundle,
    IncrementalBuffers,
}

impl UringFeature {
    pub(crate) const ALL: [UringFeature; 16] = [
        UringFeature::ExtArg,
        UringFeature::OpShutdown,
        UringFeature::OpPathAt,
        UringFeature::IowqMaxWorkers,
        UringFeature::OpMkdirAt,
        UringFeature::RegisteredRing,
        UringFeature::CoopTaskrun,
        UringFeature::MultishotAccept,
        UringFeature::BufRing,
        UringFeature::SingleIssuer,
        UringFeature::MultishotRecv,
        UringFeature::SendZc,
        UringFeature::DeferTaskrun,
        UringFeature::OpFtruncate,
        UringFeature::RecvBundle,
        UringFeature::IncrementalBuffers,
    ];

    /// The kernel version that brought it.
    pub(crate) const fn since(self) -> UringTier {
        match self {
            UringFeature::ExtArg | UringFeature::OpShutdown | UringFeature::OpPathAt => {
                UringTier::V5_11
            }
            UringFeature::IowqMaxWorkers | UringFeature::OpMkdirAt => UringTier::V5_15,
            UringFeature::RegisteredRing => UringTier::V5_18,
            UringFeature::CoopTaskrun | UringFeature::MultishotAccept | UringFeature::BufRing => {
                UringTier::V5_19
            }
            UringFeature::SingleIssuer | UringFeature::MultishotRecv | UringFeature::SendZc => {
                UringTier::V6_0
            }
            UringFeature::DeferTaskrun => UringTier::V6_1,
            UringFeature::OpFtruncate => UringTier::V6_9,
            UringFeature::RecvBundle => UringTier::V6_10,
            UringFeature::IncrementalBuffers => UringTier::V6_12,
        }
    }
}

/// The tier cap in force for one ring: what the kernel's answers are filtered through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TierCap(pub Option<UringTier>);

impl TierCap {
    /// Whether a kernel at the cap would offer `feature` (always, without a cap).
    pub(crate) fn allows(self, feature: UringFeature) -> bool {
        self.0.is_none_or(|cap| feature.since() <= cap)
    }

    /// Whether a kernel at the cap has a feature bit that came in `major.minor`.
    pub(crate) fn allows_version(self, major: u8, minor: u8) -> bool {
        self.0.is_none_or(|cap| UringTier::new(major, minor) <= cap)
    }

    /// The kernel's answer to a request that needs `feature`: `call()`'s, or the `EINVAL`
    /// an older kernel gives (io_uring_setup and io_uring_register answer unknown flags and
    /// opcodes so).
    pub(crate) fn gate<T>(
        self,
        feature: UringFeature,
        call: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        if self.allows(feature) {
            call()
        } else {
            Err(io::Error::from_raw_os_error(libc::EINVAL))
        }
    }
}

/// The tier in force: the newest tier all of whose features (and every older tier's) the
/// ring has, given which features it was found to have.
pub(crate) fn tier_in_force(has: impl Fn(UringFeature) -> bool) -> UringTier {
    let mut tier = UringTier::V5_10;
    for next in &UringTier::ALL[1..] {
        let complete = UringFeature::ALL
            .into_iter()
            .filter(|f| f.since() <= *next)
            .all(&has);
        if !complete {
            break;
        }
        tier = *next;
    }
    tier
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_the_newest_tier_not_newer() {
        let cases = [
            ("5.10", UringTier::V5_10),
            ("5.10.262", UringTier::V5_10),
            ("5.14", UringTier::V5_11),
            ("5.15.0-91-generic", UringTier::V5_15),
            ("6.0", UringTier::V6_0),
            ("6.8", UringTier::V6_1),
            ("6.9", UringTier::V6_9),
            ("6.12.117+deb12", UringTier::V6_12),
            ("7.3", UringTier::V6_12),
        ];
        for (text, tier) in cases {
            assert_eq!(text.parse::<UringTier>(), Ok(tier), "{text}");
        }
        for bad in ["", "5", "five.ten", "4.19", "5.9"] {
            assert!(bad.parse::<UringTier>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn every_feature_lies_on_a_tier() {
        for f in UringFeature::ALL {
            assert!(UringTier::ALL.contains(&f.since()), "{f:?}");
        }
        for t in &UringTier::ALL[1..] {
            assert!(
                UringFeature::ALL.iter().any(|f| f.since() == *t),
                "tier {t} changes nothing"
            );
        }
        assert!(UringTier::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_cap_gates_newer_features_with_einval() {
        let cap = TierCap(Some(UringTier::V5_15));
        assert!(cap.allows(UringFeature::IowqMaxWorkers));
        assert!(!cap.allows(UringFeature::CoopTaskrun));
        let err = cap.gate(UringFeature::DeferTaskrun, || Ok(())).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert!(TierCap(None).allows(UringFeature::DeferTaskrun));
        assert!(cap.allows_version(5, 13) && !cap.allows_version(5, 17));
    }

    #[test]
    fn the_tier_in_force_stops_at_the_first_gap() {
        assert_eq!(tier_in_force(|_| true), UringTier::V6_12);
        assert_eq!(tier_in_force(|_| false), UringTier::V5_10);
        // A 5.10 kernel with 5.11 and 5.15 backports, no COOP_TASKRUN.
        let backported = |f: UringFeature| f.since() <= UringTier::V5_15;
        assert_eq!(tier_in_force(backported), UringTier::V5_15);
        // SINGLE_ISSUER without COOP_TASKRUN does not make a 6.0 tier.
        let gap = |f: UringFeature| f != UringFeature::CoopTaskrun;
        assert_eq!(tier_in_force(gap), UringTier::V5_18);
    }
}
