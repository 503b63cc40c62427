//! Release builds on x86_64 Linux hand the linker `scripts/symbol-order.txt`: the functions the
//! gateway runs, to be placed together at the front of the code. The kernel maps code in 64 KiB
//! windows around each page that runs, so the same functions spread over the whole binary keep
//! most of it resident; together they keep a fraction (see `scripts/symbol-order.py`, which
//! regenerates the list).
//!
//! Only where the linker is rustc's own lld (the default on this target since Rust 1.90), which
//! understands the option; `HOOKGATE_SYMBOL_ORDER=off` leaves it out. A name the linker does not
//! find is skipped, so a stale list costs memory, never a build.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=scripts/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=HOOKGATE_SYMBOL_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || var("HOOKGATE_SYMBOL_ORDER") == "off"
        || !rustc_links_with_lld(&var("RUSTC"))
    {
        return;
    }
    let order = Path::new(&var("CARGO_MANIFEST_DIR")).join("scripts/symbol-order.txt");
    if order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether `rustc --version` is 1.90 or later.
fn rustc_links_with_lld(rustc: &str) -> bool {
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    matches!((parts.next(), parts.next()), (Some(major), Some(minor)) if major > 1 || minor >= 90)
}
