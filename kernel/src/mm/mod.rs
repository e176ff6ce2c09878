//! Memory management: sparse 32-bit address spaces made of areas backed by
//! copy-on-write 4 KiB pages.
