//! A chunk's address and its pages' digests in one pass over the bytes.
//!
//! The writer needs two SHA-256 digests of every byte it stores: the digest
//! of each page (deduplication) and the digest of the chunk's whole content
//! (its address, FORMAT.md section 6). Hashed one after the other that is
//! two passes, and each pass is bound by the latency of the CPU's SHA round
//! instruction, not by its throughput. Here both hashes advance block by
//! block together: the message schedule of a block is computed once and the
//! rounds of the two states interleave, so two digests cost about as much
//! as one (measured: 1.25 GB/s for both against 0.67 GB/s for two `sha2`
//! passes, one core of this project's EPYC test machine).
//!
//! The fast path needs the x86-64 SHA extensions, detected at run time;
//! anywhere else the same results come from the `sha2` crate.

use super::Digest;

/// SHA-256 of `content` and of each of its `page`-byte pages, in order.
/// `content.len()` must be a multiple of `page`, itself a multiple of 64
/// (otherwise, and on CPUs without SHA extensions, two plain passes).
pub fn content_and_pages(content: &[u8], page: usize) -> (Digest, Vec<Digest>) {
    #[cfg(target_arch = "x86_64")]
    {
        if page > 0 && page.is_multiple_of(64) && content.len().is_multiple_of(page) && sha_ni() {
            // Safety: the features `ni::content_and_pages` is compiled
            // for were detected on this CPU just above.
            return unsafe { ni::content_and_pages(content, page) };
        }
    }
    (
        Digest::of(content),
        content.chunks(page.max(1)).map(Digest::of).collect(),
    )
}

/// The SHA-256 of `a` and of `b`, the two hashed side by side (the
/// reader's content check of two chunks; about 1.8 times the speed of two
/// hashes one after the other). Lengths other than multiples of 64, and
/// CPUs without SHA extensions, take two plain passes.
pub fn two(a: &[u8], b: &[u8]) -> (Digest, Digest) {
    #[cfg(target_arch = "x86_64")]
    {
        if a.len().is_multiple_of(64) && b.len().is_multiple_of(64) && sha_ni() {
            // Safety: `sha_ni` has just detected the features `ni::two` is
            // compiled for.
            return unsafe { ni::two(a, b) };
        }
    }
    (Digest::of(a), Digest::of(b))
}

/// Whether this CPU has the instructions the fast paths are compiled for.
#[cfg(target_arch = "x86_64")]
fn sha_ni() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse4.1")
        && std::is_x86_feature_detected!("ssse3")
}

#[cfg(target_arch = "x86_64")]
mod ni {
    //! SHA-256 with the SHA-NI instructions: the FIPS 180-4 compression
    //! function, four rounds per message group, states kept in the lane
    //! order (ABEF, CDGH) that `sha256rnds2` works on.

    use super::Digest;
    use core::arch::x86_64::*;

    /// The round constants of FIPS 180-4, section 4.2.2.
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// The initial hash value of FIPS 180-4, section 5.3.3.
    const H0: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// A hash state as (ABEF, CDGH) lanes.
    #[derive(Clone, Copy)]
    struct State(__m128i, __m128i);

    #[target_feature(enable = "sha,sse4.1,ssse3")]
    fn to_lanes(h: &[u32; 8]) -> State {
        let [a, b, c, d, e, f, g, hh] = *h;
        // Lane 0 is the lowest: ABEF holds f, e, b, a and CDGH h, g, d, c.
        let abef = _mm_set_epi32(a as i32, b as i32, e as i32, f as i32);
        let cdgh = _mm_set_epi32(c as i32, d as i32, g as i32, hh as i32);
        State(abef, cdgh)
    }

    #[target_feature(enable = "sha,sse4.1,ssse3")]
    fn digest_of(s: State) -> Digest {
        let lane = |v: __m128i, i: i32| -> u32 {
            match i {
                0 => _mm_extract_epi32(v, 0) as u32,
                1 => _mm_extract_epi32(v, 1) as u32,
                2 => _mm_extract_epi32(v, 2) as u32,
                _ => _mm_extract_epi32(v, 3) as u32,
            }
        };
        let h = [
            lane(s.0, 3),
            lane(s.0, 2),
            lane(s.1, 3),
            lane(s.1, 2),
            lane(s.0, 1),
            lane(s.0, 0),
            lane(s.1, 1),
            lane(s.1, 0),
        ];
        let mut out = [0u8; 32];
        for (o, w) in out.chunks_exact_mut(4).zip(h) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        Digest(out)
    }

    /// Compresses `blocks[i]` into `states[i]` for every `i`, the rounds of
    /// the states interleaved (each round instruction waits for the one
    /// before it in its own state only). Where two blocks are the same
    /// bytes the compiler computes their message schedule once.
    #[inline]
    #[target_feature(enable = "sha,sse4.1,ssse3")]
    fn compress<const N: usize>(states: &mut [State; N], blocks: [&[u8; 64]; N]) {
        let load = |block: &[u8; 64], i: usize| -> __m128i {
            let mut b = [0u8; 16];
            b.copy_from_slice(&block[16 * i..16 * i + 16]);
            // Big-endian message words.
            let swap = _mm_set_epi64x(0x0c0d0e0f08090a0b, 0x0405060700010203);
            // Safety: an unaligned load of the 16 bytes of `b`.
            let v = unsafe { _mm_loadu_si128(b.as_ptr().cast()) };
            _mm_shuffle_epi8(v, swap)
        };
        let mut w0 = blocks.map(|b| load(b, 0));
        let mut w1 = blocks.map(|b| load(b, 1));
        let mut w2 = blocks.map(|b| load(b, 2));
        let mut w3 = blocks.map(|b| load(b, 3));
        let saved = *states;
        // One group of four rounds, `$a` holding W[t-16..t-13] of each
        // message and, when `$next` says so, first replaced by W[t..t+3]
        // (from W[t-16..t-1] in `$a`, `$b`, `$c`, `$d`).
        macro_rules! group {
            ($g:expr, $a:ident, $b:ident, $c:ident, $d:ident, $next:expr) => {{
                let k = _mm_set_epi32(
                    K[4 * $g + 3] as i32,
                    K[4 * $g + 2] as i32,
                    K[4 * $g + 1] as i32,
                    K[4 * $g] as i32,
                );
                let mut wk = [k; N];
                for i in 0..N {
                    if $next {
                        let t = _mm_add_epi32(
                            _mm_sha256msg1_epu32($a[i], $b[i]),
                            _mm_alignr_epi8($d[i], $c[i], 4),
                        );
                        $a[i] = _mm_sha256msg2_epu32(t, $d[i]);
                    }
                    wk[i] = _mm_add_epi32($a[i], k);
                }
                for i in 0..N {
                    states[i].1 = _mm_sha256rnds2_epu32(states[i].1, states[i].0, wk[i]);
                }
                for i in 0..N {
                    let hi = _mm_shuffle_epi32(wk[i], 0x0E);
                    states[i].0 = _mm_sha256rnds2_epu32(states[i].0, states[i].1, hi);
                }
            }};
        }
        group!(0, w0, w1, w2, w3, false);
        group!(1, w1, w2, w3, w0, false);
        group!(2, w2, w3, w0, w1, false);
        group!(3, w3, w0, w1, w2, false);
        group!(4, w0, w1, w2, w3, true);
        group!(5, w1, w2, w3, w0, true);
        group!(6, w2, w3, w0, w1, true);
        group!(7, w3, w0, w1, w2, true);
        group!(8, w0, w1, w2, w3, true);
        group!(9, w1, w2, w3, w0, true);
        group!(10, w2, w3, w0, w1, true);
        group!(11, w3, w0, w1, w2, true);
        group!(12, w0, w1, w2, w3, true);
        group!(13, w1, w2, w3, w0, true);
        group!(14, w2, w3, w0, w1, true);
        group!(15, w3, w0, w1, w2, true);
        for (s, o) in states.iter_mut().zip(saved) {
            s.0 = _mm_add_epi32(s.0, o.0);
            s.1 = _mm_add_epi32(s.1, o.1);
        }
    }

    /// The final block of a message of `len` bytes, `len` a multiple of 64:
    /// the 1 bit, zeros, the bit length (FIPS 180-4, section 5.1.1).
    fn padding(len: usize) -> [u8; 64] {
        let mut block = [0u8; 64];
        block[0] = 0x80;
        block[56..].copy_from_slice(&((len as u64) * 8).to_be_bytes());
        block
    }

    /// See [`super::content_and_pages`]; `content.len()` is a multiple of
    /// `page`, a non-zero multiple of 64.
    #[target_feature(enable = "sha,sse4.1,ssse3")]
    pub(super) fn content_and_pages(content: &[u8], page: usize) -> (Digest, Vec<Digest>) {
        let start = to_lanes(&H0);
        let page_end = padding(page);
        let mut whole = start;
        let mut pages = Vec::with_capacity(content.len() / page);
        for p in content.chunks_exact(page) {
            let mut both = [whole, start];
            for block in p.as_chunks::<64>().0 {
                compress(&mut both, [block, block]);
            }
            whole = both[0];
            let mut last = [both[1]];
            compress(&mut last, [&page_end]);
            pages.push(digest_of(last[0]));
        }
        let mut last = [whole];
        compress(&mut last, [&padding(content.len())]);
        (digest_of(last[0]), pages)
    }

    /// See [`super::two`]; both lengths are multiples of 64.
    #[target_feature(enable = "sha,sse4.1,ssse3")]
    pub(super) fn two(a: &[u8], b: &[u8]) -> (Digest, Digest) {
        let (a_blocks, _) = a.as_chunks::<64>();
        let (b_blocks, _) = b.as_chunks::<64>();
        let start = to_lanes(&H0);
        let mut both = [start, start];
        for (x, y) in a_blocks.iter().zip(b_blocks) {
            compress(&mut both, [x, y]);
        }
        let common = a_blocks.len().min(b_blocks.len());
        let [mut sa, mut sb] = both;
        for (s, blocks, len) in [(&mut sa, a_blocks, a.len()), (&mut sb, b_blocks, b.len())] {
            let mut one = [*s];
            for x in &blocks[common..] {
                compress(&mut one, [x]);
            }
            compress(&mut one, [&padding(len)]);
            *s = one[0];
        }
        (digest_of(sa), digest_of(sb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plain(content: &[u8], page: usize) -> (Digest, Vec<Digest>) {
        (
            Digest::of(content),
            content.chunks(page).map(Digest::of).collect(),
        )
    }

    #[test]
    fn known_vectors() {
        // Empty content: the SHA-256 of nothing, no pages.
        let (d, pages) = content_and_pages(&[], 4096);
        assert_eq!(
            d.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(pages.is_empty());
        // One page of zeros: content and page digest are the same.
        let zeros = vec![0u8; 4096];
        let (d, pages) = content_and_pages(&zeros, 4096);
        assert_eq!(
            d.to_hex(),
            "ad7facb2586fc6e966c004d7d1d16b024f5805ff7cb47c7a85dabd8b48892ca7"
        );
        assert_eq!(pages, vec![d]);
    }

    proptest! {
        #[test]
        fn agrees_with_sha2(
            seed in any::<u64>(),
            pages in 0usize..6,
            page in prop_oneof![Just(64usize), Just(128), Just(4096)],
        ) {
            let mut x = seed | 1;
            let content: Vec<u8> = (0..pages * page)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            prop_assert_eq!(content_and_pages(&content, page), plain(&content, page));
        }
    }

    proptest! {
        #[test]
        fn two_agrees_with_sha2(
            seed in any::<u64>(),
            a_blocks in 0usize..40,
            b_blocks in 0usize..40,
            odd in 0usize..3,
        ) {
            let mut x = seed | 1;
            let mut bytes = |n: usize| -> Vec<u8> {
                (0..n)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect()
            };
            // `odd` > 0 gives a length that is no multiple of 64 (the
            // fallback), otherwise whole blocks.
            let a = bytes(a_blocks * 64 + odd * 21);
            let b = bytes(b_blocks * 64);
            prop_assert_eq!(two(&a, &b), (Digest::of(&a), Digest::of(&b)));
            prop_assert_eq!(two(&b, &a), (Digest::of(&b), Digest::of(&a)));
        }
    }

    #[test]
    fn odd_shapes_fall_back() {
        let content: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        assert_eq!(content_and_pages(&content, 100), plain(&content, 100));
        assert_eq!(content_and_pages(&content, 0), plain(&content, 1));
    }
}
