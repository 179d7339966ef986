//! The bytes a JSON string cannot hold as they are: `"`, `\` and the control characters below
//! 0x20. A reader looks for them to find a string's end or its escapes, a writer to find what it
//! must escape; both search with [`special`] or, within one short string, [`special_in`].

/// The first `"`, `\` or control character (below 0x20) at or after `i`, `None` when there is
/// none (or `i` is past the end): sixteen bytes at a time with SSE2 compares while sixteen are
/// left, then byte by byte. For a reader's search through the rest of a body, where a string's
/// end is rarely in its last few bytes.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
pub fn special(b: &[u8], i: usize) -> Option<usize> {
    match blocks(b, i) {
        Ok(at) => Some(at),
        Err(rest) => bytewise(b, rest),
    }
}

/// [`special`] for a slice that is one whole string, often short (a writer's or a field's):
/// the last few bytes of a slice of at least sixteen are looked at in one more compare of its
/// last sixteen, and a slice shorter than that as two overlapping words before any byte-by-byte
/// search.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
pub fn special_in(b: &[u8], i: usize) -> Option<usize> {
    let i = match blocks(b, i) {
        Ok(at) => return Some(at),
        Err(rest) => rest,
    };
    if i >= b.len() {
        return None;
    }
    // Fewer than sixteen left: the slice's last sixteen bytes, those before `i` masked off.
    let Some(last) = b.len().checked_sub(16) else {
        return short(b, i);
    };
    let mask = hits(b.get(last..)?.first_chunk::<16>()?) >> (i - last);
    (mask != 0).then(|| i + mask.trailing_zeros() as usize)
}

/// The first special byte from `i` in the whole sixteen-byte blocks that follow it (`Ok`), or
/// where fewer than sixteen bytes are left to look at (`Err`).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn blocks(b: &[u8], mut i: usize) -> Result<usize, usize> {
    while let Some(chunk) = b.get(i..i + 16).and_then(|c| <&[u8; 16]>::try_from(c).ok()) {
        let mask = hits(chunk);
        if mask != 0 {
            return Ok(i + mask.trailing_zeros() as usize);
        }
        i += 16;
    }
    Err(i)
}

/// One bit per byte of `chunk` (in the low 16 bits) that is `"`, `\` or below 0x20.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn hits(chunk: &[u8; 16]) -> u32 {
    use safe_arch::{
        bitor_m128i, cmp_eq_mask_i8_m128i, load_unaligned_m128i, max_u8_m128i, move_mask_i8_m128i,
        set_splat_i8_m128i,
    };
    let v = load_unaligned_m128i(chunk);
    let control = set_splat_i8_m128i(0x1f);
    let found = bitor_m128i(
        bitor_m128i(
            cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'"' as i8)),
            cmp_eq_mask_i8_m128i(v, set_splat_i8_m128i(b'\\' as i8)),
        ),
        // A byte at most 0x1f (unsigned) is its own maximum with 0x1f.
        cmp_eq_mask_i8_m128i(max_u8_m128i(v, control), control),
    );
    move_mask_i8_m128i(found) as u32
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
pub fn special(b: &[u8], i: usize) -> Option<usize> {
    bytewise(b, i)
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline]
pub fn special_in(b: &[u8], i: usize) -> Option<usize> {
    bytewise(b, i)
}

/// [`special_in`] in a slice shorter than sixteen bytes: eight to fifteen bytes from `i` are first
/// tested as two (overlapping) words, which finds nothing in most short strings; the position
/// of a byte found is then looked for one byte at a time.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn short(b: &[u8], i: usize) -> Option<usize> {
    let rest = b.get(i..)?;
    if let (Some(head), Some(tail)) = (
        rest.first_chunk::<8>(),
        rest.len()
            .checked_sub(8)
            .and_then(|n| rest.get(n..)?.first_chunk::<8>()),
    ) {
        if !any_special(u64::from_le_bytes(*head)) && !any_special(u64::from_le_bytes(*tail)) {
            return None;
        }
    }
    bytewise(b, i)
}

/// Whether any of the eight bytes is a control character, `"` or `\` (exact for "any": the
/// classic has-zero-byte and has-less-than tests, which may mark the wrong byte but never miss
/// one).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn any_special(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let s = w ^ (ONES * u64::from(b'\\'));
    let slash = s.wrapping_sub(ONES) & !s;
    (control | quote | slash) & HIGH != 0
}

fn bytewise(b: &[u8], i: usize) -> Option<usize> {
    b.get(i..)?
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .map(|n| i + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_special_byte_at_every_length_and_start() {
        // Every length to 40 and every start, with one special byte at every position (and
        // none): the SIMD blocks, the overlapping last block, the two words and the byte loop
        // find what a plain search finds.
        for special_byte in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
            for len in 0..40 {
                for at in std::iter::once(None).chain((0..len).map(Some)) {
                    let mut s: Vec<u8> = (0..len).map(|n| b'a' + (n % 26) as u8).collect();
                    // Bytes just outside the special set must not be found.
                    if len > 3 {
                        s[1] = 0x20;
                        s[2] = 0x7f;
                        s[3] = 0xff;
                    }
                    if let Some(at) = at {
                        s[at] = special_byte;
                    }
                    for start in 0..=len + 1 {
                        let want = at.filter(|&a| a >= start);
                        let name = format!("len {len}, special at {at:?}, start {start}");
                        assert_eq!(bytewise(&s, start), want, "{name}");
                        assert_eq!(special(&s, start), want, "{name}");
                        assert_eq!(special_in(&s, start), want, "{name}");
                    }
                }
            }
        }
    }
}
