//! The committed man pages and shell completions of `rstr` must match
//! what its clap definition generates now; regenerate with
//! `cargo run -p rstr --example gen-docs-rstr`.

use std::path::Path;

use rstr as cli;

#[test]
fn man_pages_and_completions_are_fresh() {
    let pages = cli::man_pages().expect("rendering man pages");
    assert!(pages.iter().any(|g| g.file_name == "rstr.1"));
    let scripts = cli::completions();
    assert_eq!(scripts.len(), 3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Err(e) = spartan_cli::docs::check_fresh(&root, "rstr", &pages, &scripts) {
        panic!("{e}; regenerate with `cargo run -p rstr --example gen-docs-rstr` and commit");
    }
}
