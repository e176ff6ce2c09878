//! The WebAssembly machine: a deterministic interpreter whose threads can be
//! stopped, saved and resumed at any point where `run` returns.
