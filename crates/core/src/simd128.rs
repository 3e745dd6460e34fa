//! WebAssembly SIMD (`simd128`) for the component's hot scans (`records::find3`,
//! `ndjson::any_needs_escape`): only compiled for wasm32 with `simd128` (.cargo/config.toml),
//! where `memchr`'s general searches cost more set-up than the short fields and strings they
//! scan; native builds use `memchr` and word-at-a-time tests instead. The core's only `unsafe`.

use core::arch::wasm32::{v128, v128_load};

/// Sixteen bytes as a vector.
#[inline(always)]
pub(crate) fn load(block: &[u8; 16]) -> v128 {
    // SAFETY: `block` is 16 readable bytes, and `v128_load` has no alignment requirement.
    unsafe { v128_load(block.as_ptr().cast()) }
}
