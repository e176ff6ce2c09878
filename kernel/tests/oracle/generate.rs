//! Module generation: wasm-smith restricted to what the machine implements
//! (WebAssembly 2.0 without SIMD, one memory of at most 16 pages), with
//! imports limited to the deterministic host functions of `host_call`.

use arbitrary::Unstructured;
use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The imports a generated module may use once `available_imports` is on
/// (see `config`); `host_call` answers them.
#[allow(dead_code)]
pub const IMPORTS_WAT: &str = r#"(module
  (import "spartan" "mix" (func (param i32 i32) (result i32)))
  (import "spartan" "mix64" (func (param i64) (result i64)))
  (import "spartan" "log" (func (param i32))))"#;

/// The generator configuration.
pub fn config() -> wasm_smith::Config {
    // Restricting imports to IMPORTS_WAT (`available_imports`) needs
    // wasm-smith's `wasmparser` feature, which the workspace does not enable:
    // until it does, generated modules import nothing and host calls are
    // not exercised here.
    wasm_smith::Config {
        max_imports: 0,
        simd_enabled: false,
        relaxed_simd_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        exceptions_enabled: false,
        tail_call_enabled: false,
        gc_enabled: false,
        memory64_enabled: false,
        custom_page_sizes_enabled: false,
        wide_arithmetic_enabled: false,
        extended_const_enabled: false,
        compact_imports_enabled: false,
        custom_descriptors_enabled: false,
        multi_value_enabled: true,
        bulk_memory_enabled: true,
        reference_types_enabled: true,
        saturating_float_to_int_enabled: true,
        sign_extension_ops_enabled: true,
        max_memories: 1,
        max_memory32_bytes: 16 * 65536,
        memory_max_size_required: true,
        max_tables: 2,
        max_table_elements: 1000,
        table_max_size_required: true,
        max_funcs: 20,
        max_instructions: 200,
        max_data_segments: 8,
        max_element_segments: 8,
        export_everything: true,
        canonicalize_nans: true,
        min_funcs: 3,
        ..Default::default()
    }
}

/// The module of case `seed`: wasm-smith fed with ChaCha8 bytes of `seed`.
pub fn module(seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = rng.random_range(2_000..20_000);
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    let mut u = Unstructured::new(&bytes);
    match wasm_smith::Module::new(config(), &mut u) {
        Ok(m) => m.to_bytes(),
        // Too few bytes for anything: the empty module.
        Err(_) => wat::parse_str("(module)").expect("empty module"),
    }
}
