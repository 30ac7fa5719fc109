//! The fuzz targets (fuzz/, a workspace of its own that `cargo test` does not build) still
//! compile against the library: a move or a rename in src/ must not leave them broken until
//! the next fuzzing run finds out.

use std::path::Path;
use std::process::Command;

#[test]
fn the_fuzz_targets_compile() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["check", "--locked", "--quiet", "--bins", "--manifest-path"])
        .arg(root.join("fuzz/Cargo.toml"))
        // A directory of its own: the outer `cargo test` holds target/'s lock.
        .env("CARGO_TARGET_DIR", root.join("target/fuzz-check"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the fuzz targets do not compile; fix them with the change that broke them:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
