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

/// Declares the cfg `spartan_tail_calls` that selects the interpreter's
/// tail-call dispatch backend (`src/machine/handlers`). Not set yet: every
/// build uses the loop backend.
fn interpreter_backend() {
    println!("cargo::rustc-check-cfg=cfg(spartan_tail_calls)");
}
