// cargo run --example probe
//! Prints which backend corering picks on this machine and why, the io_uring details
//! (entries, setup flags, features, missing opcodes, setup attempts), and what happens
//! when each backend is forced. Never panics: a backend that cannot start prints its error.
//!
//! `CORERING_BACKEND=uring|epoll|auto` overrides the `auto` row, as it does for any runtime;
//! `CORERING_URING_TIER=5.10` (or any tier) caps io_uring in every row. The `auto` row ends
//! with a `summary:` line for scripts.

use corering::{BackendChoice, Builder};

fn main() {
    let choices = [
        ("auto", BackendChoice::Auto),
        ("forced uring", BackendChoice::Uring),
        ("forced epoll", BackendChoice::Epoll),
    ];
    for (name, choice) in choices {
        println!("== {name} ==");
        let rt = match Builder::new().backend(choice).build() {
            Ok(rt) => rt,
            Err(e) => {
                println!(
                    "error: {e} (kind: {:?}, errno: {:?})\n",
                    e.kind(),
                    e.raw_os_error()
                );
                continue;
            }
        };
        let info = rt.backend();
        println!("{info}");
        println!("kind(): {} (reason() is printed above)", info.kind());
        match info.uring() {
            Some(u) => {
                println!("io_uring entries:         {}", u.entries);
                println!("io_uring setup flags:     {}", list(&u.setup_flags));
                println!("io_uring features:        {}", list(&u.features));
                println!("io_uring opcodes missing: {}", list(&u.opcodes_missing));
                println!("io_uring ext_arg:         {}", u.ext_arg);
                println!("io_uring tier:            {}", u.tier);
                println!("io_uring fast path:       {}", list(&u.fast_path));
                println!("io_uring offered, off:    {}", list(&u.kept_off));
                for (i, attempt) in u.attempts.iter().enumerate() {
                    println!("setup attempt {}: {attempt}", i + 1);
                }
            }
            None => println!("io_uring: not in use"),
        }
        // One no-op through the chosen backend shows that it actually runs.
        match rt.block_on(corering::op::nop()) {
            Ok(()) => println!("nop: ok"),
            Err(e) => println!("nop: error: {e}"),
        }
        if name == "auto" {
            // One line for scripts (ci/kernel-matrix reads it).
            let (tier, flags, fast) = match info.uring() {
                Some(u) => (
                    u.tier.to_string(),
                    u.setup_flags.join(" "),
                    u.fast_path.join(" "),
                ),
                None => ("-".to_string(), String::new(), String::new()),
            };
            println!(
                "summary: backend={} tier={tier} flags=[{flags}] fast=[{fast}]",
                info.kind()
            );
        }
        println!();
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}
