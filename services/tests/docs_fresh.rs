//! The committed man pages and shell completions of `spartan` must match
//! what its clap definition generates now; regenerate with
//! `cargo run -p spartan-services --example gen-docs-spartan`.

use std::path::Path;

use spartan_services::cli;

#[test]
fn man_pages_and_completions_are_fresh() {
    let pages = cli::man_pages().expect("rendering man pages");
    assert!(pages.iter().any(|g| g.file_name == "spartan.1"));
    let scripts = cli::completions();
    assert_eq!(scripts.len(), 3);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if let Err(e) = spartan_cli::docs::check_fresh(&root, "spartan", &pages, &scripts) {
        panic!(
            "{e}; regenerate with `cargo run -p spartan-services --example gen-docs-spartan` and commit"
        );
    }
}
