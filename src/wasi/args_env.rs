//! `args_*` and `environ_*`: the guest's `argv` and environment.
//!
//! Both are lists of NUL-terminated byte strings: the `*_sizes_get` call
//! tells the guest how many there are and how many bytes they take; the
//! `*_get` call writes an array of pointers and the strings they point to.

use super::errno::{CallResult, Errno};
use super::guest_memory::GuestMemory;
use super::WasiCtx;

fn sizes(list: &[Vec<u8>]) -> Result<(u32, u32), Errno> {
    let count = u32::try_from(list.len()).map_err(|_| Errno::Overflow)?;
    let bytes = list
        .iter()
        .try_fold(0u32, |acc, s| {
            let len = u32::try_from(s.len()).ok()?.checked_add(1)?;
            acc.checked_add(len)
        })
        .ok_or(Errno::Overflow)?;
    Ok((count, bytes))
}

fn write_sizes(
    list: &[Vec<u8>],
    mem: &mut GuestMemory<'_>,
    count_ptr: u32,
    size_ptr: u32,
) -> CallResult {
    let (count, bytes) = sizes(list)?;
    mem.slice_mut(count_ptr, 4)?;
    mem.slice_mut(size_ptr, 4)?;
    mem.write_u32(count_ptr, count)?;
    mem.write_u32(size_ptr, bytes)?;
    Ok(())
}

fn write_list(list: &[Vec<u8>], mem: &mut GuestMemory<'_>, ptrs: u32, buf: u32) -> CallResult {
    let (count, bytes) = sizes(list)?;
    // Check both areas before writing anything.
    mem.slice_mut(ptrs, count.checked_mul(4).ok_or(Errno::Fault)?)?;
    mem.slice_mut(buf, bytes)?;
    let mut at = buf;
    for (i, s) in list.iter().enumerate() {
        mem.write_u32(ptrs + 4 * i as u32, at)?;
        mem.write(at, s)?;
        mem.write_u8(at + s.len() as u32, 0)?;
        // Wraps only past the last string, at the very top of a 4 GiB
        // memory, where `at` is not used again.
        at = at.wrapping_add(s.len() as u32 + 1);
    }
    Ok(())
}

/// `args_sizes_get(argc, argv_buf_size)`.
pub fn args_sizes_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    argc: u32,
    size: u32,
) -> CallResult {
    write_sizes(&ctx.args, mem, argc, size)
}

/// `args_get(argv, argv_buf)`.
pub fn args_get(ctx: &mut WasiCtx, mem: &mut GuestMemory<'_>, argv: u32, buf: u32) -> CallResult {
    write_list(&ctx.args, mem, argv, buf)
}

/// `environ_sizes_get(count, buf_size)`.
pub fn environ_sizes_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    count: u32,
    size: u32,
) -> CallResult {
    write_sizes(&ctx.env, mem, count, size)
}

/// `environ_get(environ, environ_buf)`.
pub fn environ_get(
    ctx: &mut WasiCtx,
    mem: &mut GuestMemory<'_>,
    environ: u32,
    buf: u32,
) -> CallResult {
    write_list(&ctx.env, mem, environ, buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_argv() {
        let ctx = WasiCtx {
            args: vec![b"prog".to_vec(), b"x".to_vec()],
            ..WasiCtx::default()
        };
        let mut bytes = vec![0u8; 64];
        let mut mem = GuestMemory::new(&mut bytes);
        assert_eq!(sizes(&ctx.args), Ok((2, 7)));
        write_list(&ctx.args, &mut mem, 0, 16).unwrap();
        assert_eq!(mem.read_u32(0), Ok(16));
        assert_eq!(mem.read_u32(4), Ok(21));
        assert_eq!(mem.slice(16, 7).unwrap(), b"prog\0x\0");
        assert!(write_list(&ctx.args, &mut mem, 0, 60).is_err());
    }
}
