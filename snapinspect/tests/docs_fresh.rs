//! The committed man pages and shell completions must match what the clap
//! definition generates now; regenerate with
//! `cargo run -p snapinspect --example gen-docs`.

use std::path::{Path, PathBuf};

use snapinspect::docs::{self, Generated};

const HOW: &str = "regenerate with `cargo run -p snapinspect --example gen-docs` and commit";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(dir: &Path, expected: &[Generated], prefix_filter: impl Fn(&str) -> bool) {
    for g in expected {
        let path = dir.join(&g.file_name);
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{} is missing ({e}); {HOW}", path.display()));
        assert!(
            committed == g.bytes,
            "{} is stale: it differs from what the clap definition generates; {HOW}",
            path.display()
        );
    }
    // No leftover page of a subcommand that no longer exists.
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {} ({e}); {HOW}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| prefix_filter(n))
        .collect();
    names.sort();
    let mut wanted: Vec<String> = expected.iter().map(|g| g.file_name.clone()).collect();
    wanted.sort();
    assert_eq!(
        names,
        wanted,
        "stale or extra files in {}; {HOW}",
        dir.display()
    );
}

#[test]
fn man_pages_are_fresh() {
    let pages = docs::man_pages().expect("rendering man pages");
    let names: Vec<&str> = pages.iter().map(|g| g.file_name.as_str()).collect();
    for want in ["snapinspect.1", "snapinspect-show.1", "snapinspect-diff.1"] {
        assert!(names.contains(&want), "{want} not generated: {names:?}");
    }
    check(&root().join("man"), &pages, |n| {
        n == "snapinspect.1" || (n.starts_with("snapinspect-") && n.ends_with(".1"))
    });
}

#[test]
fn completions_are_fresh() {
    let scripts = docs::completions();
    assert_eq!(scripts.len(), 3);
    check(&root().join("completions"), &scripts, |n| {
        n == "snapinspect.bash" || n == "_snapinspect" || n == "snapinspect.fish"
    });
}

#[test]
fn generator_writes_what_the_check_expects() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let written = docs::write_all(&tmp.path().join("man"), &tmp.path().join("completions"))
        .expect("writing docs");
    assert_eq!(
        written.len(),
        docs::man_pages().expect("man").len() + docs::completions().len()
    );
    for path in written {
        let text = std::fs::read_to_string(&path).expect("generated file is UTF-8");
        assert!(
            text.contains("snapinspect"),
            "{} lacks the name",
            path.display()
        );
    }
}
