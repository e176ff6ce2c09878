//! The committed man pages and shell completions of `chkpnt` must match
//! what its clap definition generates now; regenerate with
//! `cargo run -p chkpnt --example gen-docs-chkpnt`.

use std::path::Path;

use chkpnt as cli;

#[test]
fn man_pages_and_completions_are_fresh() {
    let pages = cli::man_pages().expect("rendering man pages");
    assert!(pages.iter().any(|g| g.file_name == "chkpnt.1"));
    let scripts = cli::completions();
    assert_eq!(scripts.len(), 3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Err(e) = spartan_cli::docs::check_fresh(&root, "chkpnt", &pages, &scripts) {
        panic!("{e}; regenerate with `cargo run -p chkpnt --example gen-docs-chkpnt` and commit");
    }
}
