//! Limits a reader enforces before it allocates or trusts anything.
//! Writers stay within them; `FORMAT.md` ("Limits") lists the same numbers.

/// Bytes in a memory page.
pub const PAGE_SIZE: usize = 4096;
/// Most pages in one chunk (1 MiB of content).
pub const MAX_CHUNK_PAGES: u32 = 256;
/// Chunk size the writer uses unless told otherwise (256 KiB of content).
pub const DEFAULT_CHUNK_PAGES: u32 = 64;
/// Most stored bytes in one chunk body (zstd's bound for 1 MiB, rounded up).
pub const MAX_CHUNK_BODY: u64 = 2 << 20;
/// Most bytes in the manifest body.
pub const MAX_MANIFEST_BODY: u64 = 64 << 20;
/// Decoding a record allocates at most about this many bytes of memory per
/// byte of content (an empty vector costs one byte of input and 24 of
/// memory), so the content limits also bound decoding memory.
pub const DECODE_AMPLIFICATION: u64 = 32;
/// Most bytes in a task record, stored or decompressed.
pub const MAX_TASK_BODY: u64 = 64 << 20;
/// Most bytes in a module, stored or decompressed.
pub const MAX_MODULE_BODY: u64 = 256 << 20;
/// Most bytes in a backed-up file, stored or decompressed.
pub const MAX_FILE_BACKUP_BODY: u64 = 1 << 30;
/// Size of a task's address space: every area ends at or below it.
pub const ADDRESS_SPACE_SIZE: u64 = 1 << 32;
/// Most images in a parent chain (the image itself not counted).
pub const MAX_PARENT_DEPTH: usize = 64;
/// Most entries in a tar image.
pub const MAX_TAR_ENTRIES: usize = 1 << 22;
