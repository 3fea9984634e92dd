//! The backend variants every test runs on, and the macro that gives each its own `#[test]`.
//!
//! A test is a plain `fn name(v: Variant)`; `each_variant!(name);` next to it makes
//! `name::epoll`, `name::uring_5_10` … `name::uring_6_1` and `name::uring`, so
//! `cargo test epoll` or `cargo test uring_5_10` selects a backend and a failure names it.
//! A test body that is not listed in `each_variant!` is dead code, which clippy refuses.
use std::future::Future;
use std::io;
use std::sync::{Mutex, MutexGuard, OnceLock};

use corering::{BackendChoice, BackendKind, Builder, Runtime, UringInfo, UringTier};

use super::{Watchdog, HANG_LIMIT};

/// One way to run a test: a backend, and for io_uring an optional tier cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub kind: BackendKind,
    /// `None`: io_uring as the kernel allows.
    pub tier: Option<UringTier>,
}

impl Variant {
    pub const EPOLL: Variant = Variant {
        kind: BackendKind::Epoll,
        tier: None,
    };
    pub const URING: Variant = Variant {
        kind: BackendKind::Uring,
        tier: None,
    };

    /// io_uring capped at `tier`.
    pub const fn uring_at(tier: UringTier) -> Variant {
        Variant {
            kind: BackendKind::Uring,
            tier: Some(tier),
        }
    }

    /// The `#[test]` name `each_variant!` gives it: `epoll`, `uring_5_10`, `uring`.
    pub fn label(&self) -> String {
        match (self.kind, self.tier) {
            (BackendKind::Epoll, _) => "epoll".into(),
            (BackendKind::Uring, None) => "uring".into(),
            (BackendKind::Uring, Some(t)) => format!("uring_{}_{}", t.major(), t.minor()),
        }
    }

    /// The variant with this [`label`](Variant::label).
    pub fn from_label(label: &str) -> Option<Variant> {
        all_variants().into_iter().find(|v| v.label() == label)
    }

    pub fn is_uring(&self) -> bool {
        self.kind == BackendKind::Uring
    }

    /// A builder forced onto this variant (configure it further, then build or run it).
    pub fn builder(&self) -> Builder {
        let choice = match self.kind {
            BackendKind::Uring => BackendChoice::Uring,
            BackendKind::Epoll => BackendChoice::Epoll,
        };
        // `None` too: `::uring` is what the kernel offers, whatever CORERING_URING_TIER says.
        Builder::new().backend(choice).uring_tier(self.tier)
    }

    /// A fresh runtime of this variant, or the build error.
    pub fn try_runtime(&self) -> io::Result<Runtime> {
        let rt = self.builder().build()?;
        assert_eq!(
            rt.backend().kind(),
            self.kind,
            "forced backend not honoured"
        );
        if let (Some(cap), Some(ring)) = (self.tier, rt.backend().uring()) {
            assert!(
                ring.tier <= cap,
                "tier {} in force above the cap {cap}",
                ring.tier
            );
        }
        Ok(rt)
    }

    /// A fresh runtime of this variant ([`run_variant`] has checked that it builds).
    pub fn runtime(&self) -> Runtime {
        self.try_runtime()
            .unwrap_or_else(|e| panic!("building the {} runtime: {e} ({e:?})", self.label()))
    }

    /// Runs `fut` on a fresh runtime of this variant.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.runtime().block_on(fut)
    }

    /// Hands `f` a fresh runtime of this variant, which it owns and drops.
    pub fn with_runtime<T>(&self, f: impl FnOnce(Runtime) -> T) -> T {
        f(self.runtime())
    }

    /// Hands `f` this variant's backend and a builder forced onto it.
    pub fn with_builder<T>(&self, f: impl FnOnce(BackendKind, Builder) -> T) -> T {
        f(self.kind, self.builder())
    }
}

/// Every variant `each_variant!` expands to, in its order.
pub fn all_variants() -> Vec<Variant> {
    let mut all = vec![Variant::EPOLL];
    all.extend(UringTier::ALL.into_iter().map(Variant::uring_at));
    all.push(Variant::URING);
    all
}

/// Set `CORERING_REQUIRE_URING=1` (e.g. in CI) to turn a missing io_uring into a failure.
fn uring_required() -> bool {
    std::env::var_os("CORERING_REQUIRE_URING").is_some_and(|v| v == "1")
}

/// True when a failed forced-io_uring build means "this kernel/sandbox has no io_uring":
/// ENOSYS (old kernel, podman), EPERM (seccomp, `kernel.io_uring_disabled`), or Unsupported.
pub fn io_uring_missing(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::Unsupported
        || matches!(
            err.raw_os_error(),
            Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::EOPNOTSUPP)
        )
}

/// What the backend uses of a ring: two rings that agree on these run the same code.
fn in_use(ring: &UringInfo) -> impl PartialEq + '_ {
    (
        ring.tier,
        &ring.setup_flags,
        ring.ext_arg,
        &ring.opcodes_missing,
        &ring.fast_path,
    )
}

/// For each tier cap, whether it changes what the backend uses here (probed once, for every
/// cap at once, before any test body runs); or why there is no io_uring.
fn caps_that_matter() -> &'static Result<Vec<(UringTier, bool)>, String> {
    static ONCE: OnceLock<Result<Vec<(UringTier, bool)>, String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let info = |v: Variant| match v.try_runtime() {
            Ok(rt) => Ok(rt.backend().uring().expect("io_uring info").clone()),
            Err(e) if io_uring_missing(&e) && !uring_required() => Err(e.to_string()),
            Err(e) => panic!("building the {} runtime failed: {e} ({e:?})", v.label()),
        };
        let uncapped = info(Variant::URING)?;
        UringTier::ALL
            .into_iter()
            .map(|t| Ok((t, in_use(&info(Variant::uring_at(t))?) != in_use(&uncapped))))
            .collect()
    })
}

/// Why `v` cannot run here, if it cannot: io_uring missing, or a cap that changes nothing
/// the backend uses (that run would repeat `::uring` exactly). `None`: it runs.
pub fn skip_reason(v: Variant) -> Option<String> {
    // Probed first by every variant, epoll too, so that no test body runs while the probe's
    // rings and eventfds are open (tests that count the process's fds would see them).
    let caps = caps_that_matter();
    if !v.is_uring() {
        return None;
    }
    match (caps, v.tier) {
        (Err(why), _) => Some(format!("no io_uring here: {why}")),
        (Ok(caps), Some(cap)) if caps.contains(&(cap, false)) => Some(format!(
            "a cap at {cap} changes nothing this kernel's io_uring is used for (::uring runs it)"
        )),
        _ => None,
    }
}

/// Runs `body` on `v` under the hang watchdog, or prints why it skips.
pub fn run_variant(test: &str, v: Variant, body: fn(Variant)) {
    let label = v.label();
    if let Some(why) = skip_reason(v) {
        eprintln!("SKIP {test}::{label}: {why}");
        return;
    }
    eprintln!("RUN {test}::{label}");
    // A soak (`CORERING_SOAK`) runs for its time on top of the hang limit.
    let limit = HANG_LIMIT + super::soak_duration().unwrap_or_default();
    let _dog = Watchdog::start(format!("{test}::{label}"), limit);
    body(v);
}

/// One test at a time, for tests that count what the whole process holds (open fds,
/// threads) and so cannot run beside another variant of themselves.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `each_variant!(name, other, #[ignore = "why"] third);` turns each `fn name(v: Variant)`
/// into one `#[test]` per variant: `name::epoll`, `name::uring_5_10`, …, `name::uring`.
/// The list of tiers here must match `UringTier::ALL` (the `variant` test checks it).
#[macro_export]
macro_rules! each_variant {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        #[allow(non_snake_case)]
        mod $name {
            use $crate::support::{run_variant, Variant};
            use corering::UringTier as T;
            fn run(v: Variant) {
                run_variant(stringify!($name), v, super::$name)
            }
            $crate::each_variant!(@tests [$(#[$meta])*] []
                epoll = Variant::EPOLL,
                uring_5_10 = Variant::uring_at(T::V5_10),
                uring_5_11 = Variant::uring_at(T::V5_11),
                uring_5_15 = Variant::uring_at(T::V5_15),
                uring_5_18 = Variant::uring_at(T::V5_18),
                uring_5_19 = Variant::uring_at(T::V5_19),
                uring_6_0 = Variant::uring_at(T::V6_0),
                uring_6_1 = Variant::uring_at(T::V6_1),
                uring_6_9 = Variant::uring_at(T::V6_9),
                uring_6_10 = Variant::uring_at(T::V6_10),
                uring_6_12 = Variant::uring_at(T::V6_12),
                uring = Variant::URING,
            );
        }
    )+};
    // One `#[test]` at a time (the attributes repeat on each), collecting (name, variant).
    (@tests [$($attr:tt)*] [$($done:tt)*] $test:ident = $variant:expr, $($rest:tt)*) => {
        #[test]
        $($attr)*
        fn $test() {
            run($variant)
        }
        $crate::each_variant!(@tests [$($attr)*] [$($done)* (stringify!($test), $variant),] $($rest)*);
    };
    // Each generated test's name and variant, for the check that the list is whole.
    (@tests [$($attr:tt)*] [$($done:tt)*]) => {
        #[allow(dead_code)]
        pub(crate) const VARIANTS: &[(&str, Variant)] = &[$($done)*];
    };
}
