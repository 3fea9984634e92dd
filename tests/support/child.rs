//! Tests that need a process of their own (the environment, rlimits, uids are process-wide):
//! the parent runs one ignored test of the same binary as a child, with the variables given.

/// Set in a child; its value is the parent's message (a variant label, or `1`).
pub const CHILD: &str = "CORERING_TEST_CHILD";

/// The parent's message to this child, if this process is a child.
pub fn child_message() -> Option<String> {
    std::env::var(CHILD).ok()
}

/// Runs the ignored test `test` of this binary in a child with `CHILD=message` and `env`
/// (a `None` value removes the variable). The child must pass and print `CHILD-OK`, or
/// `CHILD-SKIP: why` (printed here as a skip). Returns the child's stdout.
pub fn run_child(test: &str, message: &str, env: &[(&str, Option<&str>)]) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    // `--include-ignored`: children are ignored in a normal run and run here on purpose.
    cmd.args([
        test,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, message);
    for (name, value) in env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().expect("spawn child test");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "child {test} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("CHILD-OK") || stdout.contains("CHILD-SKIP"),
        "child {test} did not run:\n{stdout}\n{stderr}"
    );
    if let Some(line) = stdout.lines().find(|l| l.contains("CHILD-SKIP")) {
        eprintln!("SKIP {test}: {line}");
    }
    stdout
}
