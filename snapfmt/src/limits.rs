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
/// Memory a record may take once decoded, per byte of its content
/// (charged as it is decoded, see [`decode_budget`]). Real records take
/// 2 to 8 bytes per content byte; hostile ones made of empty collections
/// would take 24 to 48 without the budget.
pub const DECODE_BUDGET_PER_BYTE: u64 = 16;
/// Memory every record may take once decoded, whatever its size.
pub const DECODE_BUDGET_BASE: u64 = 1 << 20;
/// Most memory any one record may take once decoded.
pub const MAX_DECODE_BUDGET: u64 = 256 << 20;

/// The memory budget for decoding a record of `content_len` bytes:
/// `min(16 * len + 1 MiB, 256 MiB)`.
pub fn decode_budget(content_len: u64) -> u64 {
    content_len
        .saturating_mul(DECODE_BUDGET_PER_BYTE)
        .saturating_add(DECODE_BUDGET_BASE)
        .min(MAX_DECODE_BUDGET)
}
/// Most bytes in a task record, stored or decompressed.
pub const MAX_TASK_BODY: u64 = 64 << 20;
/// Most bytes in a task's kernel state record, stored or decompressed.
pub const MAX_KERNEL_STATE_BODY: u64 = 64 << 20;
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

// The budget of one image (FORMAT.md section 9): whatever its files
// claim, checking an image costs at most what these allow, on top of the
// per-file limits above.

/// Most members of a checkpoint set.
pub const MAX_SET_MEMBERS: usize = 1 << 16;
/// Most entries in a manifest's object list.
pub const MAX_OBJECTS: usize = 1 << 20;
/// Most entries in a manifest's chunk table.
pub const MAX_CHUNKS: usize = 1 << 20;
/// Most content of an image's local chunks together (64 GiB of pages).
pub const MAX_IMAGE_PAGE_CONTENT: u64 = 64 << 30;
/// Most content of an image's objects together (task and kernel state
/// records, modules, file backups; 4 GiB), as their headers declare it:
/// checked before any of them is decompressed.
pub const MAX_IMAGE_OBJECT_CONTENT: u64 = 4 << 30;
/// Most bytes in a manifest's `parent.path`.
pub const MAX_PARENT_PATH: usize = 4096;
