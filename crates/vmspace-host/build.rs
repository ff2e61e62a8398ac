//! Builds the puppet (`puppet/puppet.rs`), a `#![no_std]` static x86-64
//! executable, by invoking `$RUSTC` directly, and leaves it in
//! `$OUT_DIR/vmspace-puppet` for `include_bytes!`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = manifest.join("puppet").join("puppet.rs");
    let script = manifest.join("puppet").join("puppet.ld");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("vmspace-puppet");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch != "x86_64" || os != "linux" {
        // The runner reports "unsupported platform" at run time.
        std::fs::write(&out, b"").expect("write empty puppet");
        return;
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").unwrap_or_else(|_| "x86_64-unknown-linux-gnu".into());
    let mut cmd = Command::new(rustc);
    cmd.arg("--edition=2021")
        .arg("--crate-type=bin")
        .arg("--crate-name=vmspace_puppet")
        .arg("--target")
        .arg(&target)
        .args(["-C", "panic=abort"])
        .args(["-C", "opt-level=2"])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "force-unwind-tables=no"])
        .args(["-C", "debuginfo=0"])
        .args(["-C", "link-arg=-nostartfiles"])
        .args(["-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static"])
        .args(["-C", "link-arg=-no-pie"])
        .args(["-C", "link-arg=-Wl,--build-id=none"])
        .args(["-C", "link-arg=-Wl,-z,norelro"])
        .arg("-C")
        .arg(format!("link-arg=-Wl,-T,{}", script.display()))
        .arg("-o")
        .arg(&out)
        .arg(&src);
    // Keep the outer build's flags (target-cpu=native, coverage, ...) away
    // from the puppet.
    cmd.env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    let output = cmd.output().expect("run rustc for the puppet");
    if !output.status.success() {
        panic!(
            "building the vmspace puppet failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let warnings = String::from_utf8_lossy(&output.stderr);
    for line in warnings.lines().filter(|l| l.starts_with("warning")) {
        println!("cargo:warning=puppet: {line}");
    }
}
