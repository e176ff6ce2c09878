//! Library behind the `snapinspect` command: show, validate and diff images.
//!
//! Each subcommand has its own module returning plain data (all
//! `serde::Serialize`, so `--json` is just serialization) and its own error
//! enum; `render` turns the data into the human-readable text the binary
//! prints. Other tools and tests can call the same functions.

pub mod addr;
pub mod cli;
pub mod diff;
pub mod docs;
pub mod hexdump;
pub mod input;
pub mod json;
pub mod kstate;
pub mod pack;
pub mod pages;
pub mod render;
pub mod show;
pub mod validate;
pub mod view;
