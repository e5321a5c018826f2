//! `random_get`: bytes from the host's `getrandom(2)`.

use super::errno::{CallResult, Errno};
use super::guest_memory::GuestMemory;
use super::WasiCtx;

/// Fills `buf` from the kernel's random pool.
pub fn fill(buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is valid for `rest.len()` writable bytes.
        let ret = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Errno::from_io(&err));
        }
        done += ret as usize;
    }
    Ok(())
}

/// `random_get(buf, buf_len)`.
pub fn random_get(_ctx: &mut WasiCtx, mem: &mut GuestMemory<'_>, buf: u32, len: u32) -> CallResult {
    fill(mem.slice_mut(buf, len)?)?;
    Ok(())
}
