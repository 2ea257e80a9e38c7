//! What the `recast` process asks of the kernel for itself.

use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

/// The allocator's arenas are not backed by transparent huge pages, which
/// would round resident memory up 2 MiB at a time (docs/performance.md).
#[test]
fn the_process_declines_transparent_huge_pages() {
    // Any long-running subcommand; this one needs no broker.
    let mut registry = Command::new(env!("CARGO_BIN_EXE_recast"))
        .args(["dev-registry", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let path = format!("/proc/{}/status", registry.id());
    let mut status = String::new();
    let declined = common::wait_until(Duration::from_secs(30), || {
        status = std::fs::read_to_string(&path).unwrap_or_default();
        status
            .lines()
            .any(|line| line.split_whitespace().eq(["THP_enabled:", "0"]))
    });
    common::kill_hard(&mut registry);
    assert!(declined, "{status}");
}
