//! The io_uring tier cap (`Builder::uring_tier`, `CORERING_URING_TIER`): a capped ring uses
//! nothing newer than its tier, checked against a table of kernel history kept here apart from
//! the runtime's own; the cap is reached wherever the kernel has it; the variable caps only
//! builders that set no cap; and the test list covers every tier.
mod support;

use corering::{BackendKind, Builder, UringInfo, UringTier};
use support::*;

/// When each setup flag, feature bit and opcode the backend may report came into Linux
/// (`io_uring_setup(2)`, `io_uring_register(2)`; independent of `src/driver/tier.rs`).
const KERNEL_HISTORY: [(&str, (u32, u32)); 21] = [
    ("REGISTERED_RING", (5, 18)),
    ("MULTISHOT_ACCEPT", (5, 19)),
    ("BUF_RING", (5, 19)),
    ("MULTISHOT_RECV", (6, 0)),
    ("SEND_ZC", (6, 0)),
    ("PBUF_INCREMENTAL", (6, 12)),
    ("COOP_TASKRUN", (5, 19)),
    ("SINGLE_ISSUER", (6, 0)),
    ("DEFER_TASKRUN", (6, 1)),
    ("EXT_ARG", (5, 11)),
    ("SQPOLL_NONFIXED", (5, 11)),
    ("NATIVE_WORKERS", (5, 12)),
    ("RSRC_TAGS", (5, 13)),
    ("CQE_SKIP", (5, 17)),
    ("LINKED_FILE", (5, 17)),
    ("RECVSEND_BUNDLE", (6, 10)),
    ("SHUTDOWN", (5, 11)),
    ("RENAMEAT", (5, 11)),
    ("UNLINKAT", (5, 11)),
    ("MKDIRAT", (5, 15)),
    ("FTRUNCATE", (6, 9)),
];

/// Opcodes newer than 5.10 whose absence the ring reports (each has a fallback).
const LATER_OPCODES: [&str; 5] = ["SHUTDOWN", "RENAMEAT", "UNLINKAT", "MKDIRAT", "FTRUNCATE"];

fn since(name: &str) -> Option<UringTier> {
    let (_, (major, minor)) = KERNEL_HISTORY.iter().find(|(n, _)| *n == name)?;
    Some(UringTier::at_most(*major, *minor).expect("after 5.10"))
}

/// What the uncapped ring has here.
fn uncapped() -> UringInfo {
    let rt = Variant::URING.runtime();
    rt.backend().uring().expect("io_uring info").clone()
}

fn a_capped_ring_uses_nothing_newer_than_its_tier(v: Variant) {
    let rt = v.runtime();
    let Some(ring) = rt.backend().uring() else {
        assert_eq!(v.kind, BackendKind::Epoll);
        return;
    };
    let kernel = uncapped();
    let newest = *UringTier::ALL.last().expect("tiers");
    let cap = v.tier.unwrap_or(newest);
    let report = rt.backend().to_string();
    let offered = ring.kept_off.iter().chain(&ring.fast_path);
    for name in ring.setup_flags.iter().chain(&ring.features).chain(offered) {
        if let Some(t) = since(name) {
            assert!(
                t <= cap,
                "{name} (Linux {t}) in use at tier {cap}:\n{report}"
            );
        }
    }
    if ring.ext_arg {
        let t = since("EXT_ARG").expect("listed");
        assert!(
            t <= cap,
            "waits use EXT_ARG (Linux {t}) at tier {cap}:\n{report}"
        );
    }
    assert_eq!(ring.ext_arg, ring.features.contains(&"EXT_ARG"), "{report}");
    for opcode in LATER_OPCODES {
        if !kernel.opcodes_missing.contains(&opcode) {
            let missing = ring.opcodes_missing.contains(&opcode);
            let t = since(opcode).expect("listed");
            assert_eq!(missing, cap < t, "{opcode} (Linux {t}) at {cap}:\n{report}");
        }
    }
    // io-wq can be bounded from 5.15; the limits in force are reported.
    if kernel.io_workers.is_some() {
        assert_eq!(
            ring.io_workers.is_some(),
            cap >= UringTier::V5_15,
            "{report}"
        );
    }
    // The same setup path as the kernel's own answers: the flags it took, less newer ones.
    let expected: Vec<&str> = (kernel.setup_flags.iter().copied())
        .filter(|f| since(f).is_some_and(|t| t <= cap))
        .collect();
    assert_eq!(ring.setup_flags, expected, "{report}");
    assert_eq!(ring.tier, cap.min(kernel.tier), "{report}");
    assert_eq!(ring.tier_cap.map(|(t, _)| t), v.tier, "{report}");
    assert!(
        report.contains(&format!("tier:    {}", ring.tier)),
        "{report}"
    );
    // The fast path is what the kernel offers, less what is newer than the cap.
    let expected: Vec<&str> = (kernel.fast_path.iter().copied())
        .filter(|f| since(f).is_some_and(|t| t <= cap))
        .collect();
    assert_eq!(ring.fast_path, expected, "{report}");
    // And the capped ring runs: a timer (the wait path differs below 5.11) and a shutdown.
    rt.block_on(async {
        corering::time::sleep(std::time::Duration::from_millis(2)).await;
        let (client, _server) = tcp_pair().await;
        client
            .shutdown(std::net::Shutdown::Write)
            .await
            .expect("shutdown");
    });
}
each_variant!(a_capped_ring_uses_nothing_newer_than_its_tier);

#[test]
fn the_variant_list_covers_every_tier() {
    let generated: Vec<Variant> = a_capped_ring_uses_nothing_newer_than_its_tier::VARIANTS
        .iter()
        .map(|(name, v)| {
            assert_eq!(*name, v.label(), "test name and variant differ");
            *v
        })
        .collect();
    assert_eq!(generated, all_variants(), "each_variant! is missing a tier");
}

#[test]
fn the_environment_caps_only_builders_without_a_cap() {
    if let Some(why) = skip_reason(Variant::URING) {
        return eprintln!("SKIP the_environment_caps_only_builders_without_a_cap: {why}");
    }
    let env = |v| [("CORERING_URING_TIER", Some(v)), ("CORERING_BACKEND", None)];
    run_child("child_env_tier", "5.10", &env("5.10"));
    run_child("child_env_tier", "5.15", &env("5.17"));
    run_child("child_env_tier", "bad", &env("4.19"));
}

#[test]
#[ignore = "runs as a child process of the_environment_caps_only_builders_without_a_cap"]
fn child_env_tier() {
    let asked = child_message().expect("from the parent");
    let built = Builder::new()
        .backend(corering::BackendChoice::Uring)
        .build();
    if asked == "bad" {
        let err = built.err().expect("a tier below 5.10 is refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("CORERING_URING_TIER"), "{err}");
    } else {
        let tier: UringTier = asked.parse().expect("tier");
        let rt = built.expect("capped runtime");
        let ring = rt.backend().uring().expect("io_uring");
        assert_eq!(ring.tier_cap, Some((tier, "CORERING_URING_TIER")));
        assert!(ring.tier <= tier);
        // A builder's own cap wins over the variable, and so does its "no cap".
        let own = Variant::uring_at(UringTier::V6_1).runtime();
        let own = own.backend().uring().expect("io_uring").tier_cap;
        assert_eq!(own, Some((UringTier::V6_1, "Builder::uring_tier")));
        let none = Variant::URING.runtime();
        assert_eq!(none.backend().uring().expect("io_uring").tier_cap, None);
    }
    // A forced epoll does not read the variable, even a bad one.
    Variant::EPOLL
        .try_runtime()
        .expect("epoll, whatever the tier variable says");
    println!("CHILD-OK");
}
