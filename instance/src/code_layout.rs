//! Placing small loops inside one 64-byte line of code.
//!
//! A loop whose machine code straddles a 64-byte boundary costs the front
//! end two fetch lines per iteration. On the development machine (AMD EPYC)
//! the spinning loop of `preempt.wat` (load the epoch, compare, branch, add
//! to memory, jump back: 18 bytes) ran at 1.5 G iterations/s when it
//! crossed a line and at 2.9 G/s when it did not; Wasmtime's identical code
//! happened to fit. Cranelift does not align loop headers, so where a loop
//! lands depends on the code before it.
//!
//! # Protocol
//!
//! 1. Cranelift reports the compiled function's basic-block starts (the
//!    `machine_code_cfg_info` flag). A block whose last instruction jumps
//!    back to a block start at or before it closes a loop, which runs from
//!    that start to the end of the block. Loops of at most 64 bytes are the
//!    ones a line can hold.
//! 2. [`loop_padding`] picks the padding `p` (a multiple of the buffer's
//!    own alignment, so that constants in the buffer stay aligned, and less
//!    than 64) that fits the most small loops in one line, given a function
//!    start aligned to 64 bytes; smaller loops break ties first, then the
//!    smaller padding.
//! 3. The compiler places the function at a 64-byte boundary with `p` bytes
//!    of `nop` before its code ([`nop_padding`]), and shifts its
//!    relocations and trap offsets by `p`. Calls enter through the `nop`s
//!    (a few cycles), so functions without small loops get no padding and
//!    keep the default alignment.
//!
//! Only x86-64 gets padding: its `nop` encodings are below.

/// A cache line of code: the unit the loops are fitted into.
pub(crate) const LINE: u32 = 64;

/// The loops of a function: `(start, length)` for every block that ends
/// with a jump back to a block start at or before it (the loop runs from
/// that start to the end of the jumping block).
///
/// The loops are read from the code rather than from Cranelift's block
/// edges: those are recorded between blocks as lowered, and around blocks
/// that branch folding emptied they name the wrong blocks (a block seems to
/// branch to itself where the code has no loop, and a real back edge is
/// missing).
fn loops(code: &[u8], bb_starts: &[u32]) -> Vec<(u32, u32)> {
    let mut starts = bb_starts.to_vec();
    starts.sort_unstable();
    starts.dedup();
    let ends = starts.iter().skip(1).copied().chain([code.len() as u32]);
    let mut found = Vec::new();
    for end in ends {
        let Some(target) = jump_target_ending_at(code, end as usize) else {
            continue;
        };
        if target < end as usize && starts.binary_search(&(target as u32)).is_ok() {
            found.push((target as u32, end - target as u32));
        }
    }
    found
}

/// The target of the x86-64 `jmp` or `jcc` (short or near) that ends at
/// `end` in `code`, if the bytes before `end` encode one.
fn jump_target_ending_at(code: &[u8], end: usize) -> Option<usize> {
    if end > code.len() {
        return None;
    }
    let land = |disp: i64| usize::try_from(end as i64 + disp).ok();
    let rel32 = |at: usize| {
        let b = [code[at], code[at + 1], code[at + 2], code[at + 3]];
        i64::from(i32::from_le_bytes(b))
    };
    if end >= 6 && code[end - 6] == 0x0f && matches!(code[end - 5], 0x80..=0x8f) {
        return land(rel32(end - 4));
    }
    if end >= 5 && code[end - 5] == 0xe9 {
        return land(rel32(end - 4));
    }
    if end >= 2 && matches!(code[end - 2], 0xeb | 0x70..=0x7f) {
        return land(i64::from(code[end - 1] as i8));
    }
    None
}

/// The padding to put before a function whose start is aligned to
/// [`LINE`] (see the module docs), or `None` when it has no loop that fits
/// a line, or when no padding fits more of them than none does.
pub(crate) fn loop_padding(code: &[u8], bb_starts: &[u32], buffer_alignment: u32) -> Option<u32> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let mut small: Vec<(u32, u32)> = loops(code, bb_starts)
        .into_iter()
        .filter(|&(_, len)| len > 0 && len <= LINE)
        .collect();
    if small.is_empty() {
        return None;
    }
    small.sort_unstable_by_key(|&(start, len)| (len, start));
    small.dedup();
    // Score: how many loops fit, compared smallest loop first.
    let score = |pad: u32| -> Vec<bool> {
        small
            .iter()
            .map(|&(start, len)| (start + pad) % LINE + len <= LINE)
            .collect()
    };
    let fits = |s: &[bool]| s.iter().filter(|&&f| f).count();
    let step = buffer_alignment.clamp(1, LINE) as usize;
    let mut best = (0u32, score(0));
    for pad in (step as u32..LINE).step_by(step) {
        let s = score(pad);
        if (fits(&s), &s) > (fits(&best.1), &best.1) {
            best = (pad, s);
        }
    }
    Some(best.0)
}

/// `len` bytes of x86-64 `nop`s, in the recommended multi-byte encodings.
pub(crate) fn nop_padding(len: usize) -> Vec<u8> {
    const NOPS: [&[u8]; 9] = [
        &[0x90],
        &[0x66, 0x90],
        &[0x0f, 0x1f, 0x00],
        &[0x0f, 0x1f, 0x40, 0x00],
        &[0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
        &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(NOPS.len());
        out.extend_from_slice(NOPS[n - 1]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Code of `len` bytes of `nop`s with a short `jmp` from `end - 2` back
    /// to `to`.
    fn code_with_loop(len: usize, to: usize, end: usize) -> Vec<u8> {
        let mut code = nop_padding(len);
        code[end - 2] = 0xeb;
        code[end - 1] = (to as i64 - end as i64) as i8 as u8;
        code
    }

    #[test]
    fn back_edges_are_loops_only_where_the_code_jumps_back() {
        // Blocks at 0, 10, 30, 48; 30 -> 10 is a back edge and the block at
        // 30 ends (at 48) with a jump to 10: the loop runs from 10 to 48.
        let code = code_with_loop(60, 10, 48);
        let starts = [0, 10, 30, 48];
        assert_eq!(loops(&code, &starts), vec![(10, 38)]);
        // The same blocks over code without that jump: no loop.
        assert_eq!(loops(&nop_padding(60), &starts), vec![]);
        // A jump back to an address that starts no block: no loop.
        assert_eq!(loops(&code_with_loop(60, 12, 48), &starts), vec![]);
        // A near jcc back (0f 8x rel32, to 32 - 18 = 14) counts too.
        let mut code = nop_padding(40);
        code[26..32].copy_from_slice(&[0x0f, 0x85, 0xee, 0xff, 0xff, 0xff]);
        assert_eq!(loops(&code, &[0, 14, 32]), vec![(14, 18)]);
    }

    #[test]
    fn padding_moves_a_straddling_loop_into_one_line() {
        // The preempt loop as first compiled: 18 bytes at 0x32 (crosses 64).
        let code = code_with_loop(0x60, 0x32, 0x44);
        let starts = [0, 0x32, 0x44];
        let pad = loop_padding(&code, &starts, 1);
        if cfg!(target_arch = "x86_64") {
            let pad = pad.expect("a padding");
            // The smallest padding that works: 0x32 + 14 = 64.
            assert_eq!(pad, 14);
            // With 16-byte constants in the buffer, only multiples of 16.
            let pad16 = loop_padding(&code, &starts, 16).expect("a padding");
            assert_eq!(pad16 % 16, 0);
            assert!((0x32 + pad16) % LINE + 0x12 <= LINE, "pad {pad16}");
        }
    }

    #[test]
    fn no_padding_without_a_small_loop_or_when_it_already_fits() {
        assert_eq!(loop_padding(&nop_padding(40), &[0, 8], 1), None);
        // A 100-byte loop cannot fit a line.
        let long = code_with_loop(120, 4, 104);
        assert_eq!(loop_padding(&long, &[0, 4, 104], 1), None);
        if cfg!(target_arch = "x86_64") {
            // Fits already at 0x10..0x22.
            let code = code_with_loop(0x30, 0x10, 0x22);
            assert_eq!(loop_padding(&code, &[0, 0x10, 0x22], 1), Some(0));
        }
    }

    #[test]
    fn nop_padding_has_the_requested_length() {
        for len in 0..64 {
            assert_eq!(nop_padding(len).len(), len);
        }
    }
}
