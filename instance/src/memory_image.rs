//! Prepared initial memory images: a module's active data segments, laid
//! out once, so that instantiation writes each memory's initial contents
//! with a few `memcpy`s instead of evaluating and checking segment by
//! segment.
//!
//! An image is built (once per module, on first instantiation) only when
//! every active data segment
//!
//! - targets a memory the module defines (not an imported one, whose
//!   current contents and size are only known at instantiation),
//! - has a constant offset (`i32.const`; not `global.get`), and
//! - fits in its memory's initial size (so no segment traps).
//!
//! Then applying the segments in order on a zeroed memory gives exactly
//! the image, and the image can be applied instead. Otherwise instantiation
//! falls back to applying the segments one by one, with the spec's trap and
//! partial-write behaviour.
//!
//! The image keeps only the non-zero runs of each memory's initial
//! contents (runs separated by [`MIN_ZERO_GAP`] zero bytes or more are kept
//! apart): the memory is zero already, and writing zeros would only make
//! pages resident.

use crate::config::WASM_PAGE_SIZE;
use crate::module_info::{ConstExpr, DataMode, ModuleInfo};
use std::ops::Range;

/// Zero runs at least this long split a chunk in two.
const MIN_ZERO_GAP: usize = 256;

/// Data spans larger than this (per memory) are not flattened into an
/// image; such modules apply their segments one by one.
const MAX_IMAGE_SPAN: usize = 64 << 20;

/// The initial contents of one defined memory: `bytes[range]` goes at
/// `offset`, for each chunk.
#[derive(Debug, Default)]
pub(crate) struct MemoryImage {
    bytes: Vec<u8>,
    chunks: Vec<(usize, Range<usize>)>,
}

impl MemoryImage {
    /// The chunks: `(offset in the memory, bytes)`.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        self.chunks
            .iter()
            .map(|(offset, range)| (*offset, &self.bytes[range.clone()]))
    }

    /// Bytes the image writes.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.chunks.iter().map(|(_, r)| r.len()).sum()
    }
}

/// The images of a module's defined memories (index = defined memory
/// index), for modules whose data segments allow one.
#[derive(Debug, Default)]
pub(crate) struct MemoryImages {
    memories: Box<[MemoryImage]>,
}

impl MemoryImages {
    /// The images of `info`'s defined memories, or `None` if some active
    /// data segment must be applied at instantiation (see the module docs).
    pub(crate) fn new(info: &ModuleInfo) -> Option<MemoryImages> {
        let defined = info.num_defined_memories() as usize;
        // Per defined memory: (segment offset, segment bytes), in order.
        let mut segments: Vec<Vec<(usize, &[u8])>> = vec![Vec::new(); defined];
        for seg in &info.data {
            let DataMode::Active { memory, offset } = &seg.mode else {
                continue;
            };
            let defined_index = memory.checked_sub(info.num_imported_memories)? as usize;
            let ConstExpr::I32(offset) = *offset else {
                return None;
            };
            let offset = offset as u32 as usize;
            let bytes = info.data_bytes.get(seg.range.clone())?;
            let ty = info.memories.get(*memory as usize)?;
            let initial = ty.minimum.checked_mul(WASM_PAGE_SIZE)?;
            if offset as u64 + bytes.len() as u64 > initial {
                return None;
            }
            segments.get_mut(defined_index)?.push((offset, bytes));
        }
        let memories = segments
            .iter()
            .map(|segs| MemoryImage::new(segs))
            .collect::<Option<Box<[_]>>>()?;
        Some(MemoryImages { memories })
    }

    /// The image of defined memory `index`.
    pub(crate) fn memory(&self, index: usize) -> Option<&MemoryImage> {
        self.memories.get(index)
    }
}

impl MemoryImage {
    /// Lays out `segments` (applied in order: later ones overwrite earlier
    /// ones) and keeps the non-zero runs; `None` if the span is too large.
    fn new(segments: &[(usize, &[u8])]) -> Option<MemoryImage> {
        let nonempty = || segments.iter().filter(|(_, b)| !b.is_empty());
        let Some(lo) = nonempty().map(|(o, _)| *o).min() else {
            return Some(MemoryImage::default());
        };
        let hi = nonempty().map(|(o, b)| o + b.len()).max()?;
        if hi - lo > MAX_IMAGE_SPAN {
            return None;
        }
        let mut flat = vec![0u8; hi - lo];
        for (offset, bytes) in nonempty() {
            flat[offset - lo..offset - lo + bytes.len()].copy_from_slice(bytes);
        }
        // Non-zero runs, merged across zero gaps shorter than MIN_ZERO_GAP.
        let mut runs: Vec<Range<usize>> = Vec::new();
        let mut i = 0;
        while i < flat.len() {
            if flat[i] == 0 {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i + 1;
            let mut zeros = 0;
            let mut j = i + 1;
            while j < flat.len() && zeros < MIN_ZERO_GAP {
                if flat[j] == 0 {
                    zeros += 1;
                } else {
                    zeros = 0;
                    end = j + 1;
                }
                j += 1;
            }
            runs.push(start..end);
            i = j;
        }
        let mut bytes = Vec::with_capacity(runs.iter().map(|r| r.len()).sum());
        let mut chunks = Vec::with_capacity(runs.len());
        for run in runs {
            let at = bytes.len();
            bytes.extend_from_slice(&flat[run.clone()]);
            chunks.push((lo + run.start, at..bytes.len()));
        }
        Some(MemoryImage { bytes, chunks })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(segments: &[(usize, &[u8])]) -> Vec<(usize, Vec<u8>)> {
        MemoryImage::new(segments)
            .expect("image")
            .chunks()
            .map(|(o, b)| (o, b.to_vec()))
            .collect()
    }

    #[test]
    fn later_segments_win_and_zero_gaps_split() {
        assert_eq!(
            image(&[(10, &[1, 2, 3]), (11, &[9])]),
            [(10, vec![1, 9, 3])]
        );
        let far = [5u8; 4];
        assert_eq!(
            image(&[(0, &[7]), (1000, &far)]),
            [(0, vec![7]), (1000, vec![5, 5, 5, 5])]
        );
        // Short zero gaps are kept inside one chunk; zeros at the ends trimmed.
        assert_eq!(image(&[(0, &[0, 1, 0, 0, 2, 0])]), [(1, vec![1, 0, 0, 2])]);
        assert!(MemoryImage::new(&[(0, &[0, 0])]).expect("image").len() == 0);
        assert!(MemoryImage::new(&[]).expect("image").len() == 0);
    }

    #[test]
    fn modules_that_need_runtime_segments_get_none() {
        let info = |wat: &str| {
            let engine = crate::Engine::new(crate::Config::default()).expect("engine");
            let bytes = wat::parse_str(wat).expect("wat");
            crate::parse::parse(&engine, &bytes).expect("parse")
        };
        let ok =
            info(r#"(module (memory 1) (data (i32.const 65535) "x") (data (i32.const 0) ""))"#);
        let images = MemoryImages::new(&ok).expect("image");
        assert_eq!(
            images
                .memory(0)
                .expect("memory 0")
                .chunks()
                .collect::<Vec<_>>(),
            [(65535, &b"x"[..])]
        );
        for wat in [
            r#"(module (memory 1) (data (i32.const 65535) "xy"))"#,
            r#"(module (memory 1) (data (i32.const 65537) ""))"#,
            r#"(module (import "m" "g" (global i32)) (memory 1) (data (global.get 0) "x"))"#,
            r#"(module (import "m" "mem" (memory 1)) (data (i32.const 0) "x"))"#,
        ] {
            assert!(MemoryImages::new(&info(wat)).is_none(), "{wat}");
        }
        let passive = info(r#"(module (memory 0) (data "passive"))"#);
        assert!(MemoryImages::new(&passive).is_some());
    }
}
