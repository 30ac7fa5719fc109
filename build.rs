//! Build script: lay out the `webntpd` binary so that a start touches little of it.
//!
//! A start runs a few hundred functions spread over 5.6 MB of text, and the kernel maps up
//! to 64 KiB around each page it faults in: idle, most of the binary was resident (issue 18).
//! `packaging/startup-order.txt` lists those functions (`packaging/startup-order.sh`
//! regenerates it); the linker puts them first, together. rust-lld, the default linker of
//! x86_64-unknown-linux-gnu since Rust 1.90, takes the list; GNU ld does not know the option,
//! so with an older compiler, another target or a linker of one's own nothing is passed. A
//! name the build no longer has is skipped: a stale list costs memory, never correctness.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=packaging/startup-order.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let own_linker = std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || std::env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("link"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            v.split_whitespace()
                .nth(1)?
                .split('.')
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    let (Ok(dir), Some(minor)) = (std::env::var("CARGO_MANIFEST_DIR"), minor) else {
        return;
    };
    let list = format!("{dir}/packaging/startup-order.txt");
    if target == "x86_64-unknown-linux-gnu" && minor >= 90 && !own_linker {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={list}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
