//! Computes the kernel build hash: sha256 over the path and content of every
//! file under `src/` (sorted by path) plus `Cargo.toml`, so two builds from
//! the same sources agree and any source change yields a new hash; and
//! selects the interpreter's dispatch backend (`interpreter_backend`).

use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = vec![root.join("Cargo.toml")];
    collect(&root.join("src"), &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap_or(file);
        let rel = rel.to_string_lossy().replace('\\', "/");
        let content = fs::read(file).unwrap_or_default();
        hasher.update((rel.len() as u64).to_le_bytes());
        hasher.update(rel.as_bytes());
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(&content);
    }
    println!(
        "cargo:rustc-env=SPARTAN_KERNEL_BUILD_HASH={}",
        hex::encode(hasher.finalize())
    );
    interpreter_backend();
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
}

/// Selects the interpreter's dispatch backend (`src/machine/handlers`):
/// `spartan_tail_calls` (each handler tail-calls the next) where LLVM is
/// known to turn those calls into jumps, that is optimized builds (opt-level
/// 2, 3, s or z) on x86_64 and aarch64; else the loop backend, whose
/// handlers return to a driver loop. At opt-level 0 or 1 LLVM does not
/// perform the sibling-call optimization, and a tail backend would grow the
/// native stack with every instruction.
fn interpreter_backend() {
    println!("cargo::rustc-check-cfg=cfg(spartan_tail_calls)");
    println!("cargo:rerun-if-env-changed=OPT_LEVEL");
    let opt = std::env::var("OPT_LEVEL").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let optimizing = matches!(opt.as_str(), "2" | "3" | "s" | "z");
    if optimizing && matches!(arch.as_str(), "x86_64" | "aarch64") {
        println!("cargo::rustc-cfg=spartan_tail_calls");
    }
}
