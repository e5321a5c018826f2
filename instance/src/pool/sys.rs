//! The four virtual-memory system calls linear memories use, counted.
//!
//! Every `mmap`, `munmap`, `mprotect` and `madvise` that Shoal makes for
//! linear memories goes through these wrappers, which count the calls per
//! process and per thread. The counts are how tests (and `shoal stress`)
//! check that steady-state spawning makes none of the first three.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many memory-management system calls Shoal made for linear memories.
///
/// Only calls made by this crate for linear memories are counted (not the
/// code memory of compiled modules, signal stacks, or green-thread stacks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OsCalls {
    pub mmap: u64,
    pub munmap: u64,
    pub mprotect: u64,
    pub madvise: u64,
}

impl OsCalls {
    /// The calls made by the whole process so far.
    pub fn process() -> OsCalls {
        OsCalls {
            mmap: PROCESS[0].load(Ordering::Relaxed),
            munmap: PROCESS[1].load(Ordering::Relaxed),
            mprotect: PROCESS[2].load(Ordering::Relaxed),
            madvise: PROCESS[3].load(Ordering::Relaxed),
        }
    }

    /// The calls made by the current thread so far.
    pub fn thread() -> OsCalls {
        THREAD
            .try_with(|t| OsCalls {
                mmap: t[0].get(),
                munmap: t[1].get(),
                mprotect: t[2].get(),
                madvise: t[3].get(),
            })
            .unwrap_or_default()
    }

    /// `self - earlier`, call by call.
    pub fn since(&self, earlier: &OsCalls) -> OsCalls {
        OsCalls {
            mmap: self.mmap - earlier.mmap,
            munmap: self.munmap - earlier.munmap,
            mprotect: self.mprotect - earlier.mprotect,
            madvise: self.madvise - earlier.madvise,
        }
    }
}

static PROCESS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

thread_local! {
    static THREAD: [Cell<u64>; 4] = const { [const { Cell::new(0) }; 4] };
}

#[derive(Clone, Copy)]
enum Call {
    Mmap = 0,
    Munmap = 1,
    Mprotect = 2,
    Madvise = 3,
}

fn count(call: Call) {
    PROCESS[call as usize].fetch_add(1, Ordering::Relaxed);
    let _ = THREAD.try_with(|t| t[call as usize].set(t[call as usize].get() + 1));
}

/// A fresh anonymous private mapping of `len` bytes with protection `prot`,
/// `MAP_NORESERVE` (address space only: pages are committed when touched).
pub(crate) fn mmap_anonymous(len: usize, prot: libc::c_int) -> io::Result<*mut u8> {
    count(Call::Mmap);
    // SAFETY: a fresh anonymous mapping at an address of the kernel's
    // choosing cannot alias any existing Rust object.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(ptr.cast())
}

/// Unmaps `[ptr, ptr + len)`.
///
/// # Safety
///
/// The range must be a mapping (or part of one) owned by the caller, with
/// nothing referring to it any more.
pub(crate) unsafe fn munmap(ptr: *mut u8, len: usize) -> io::Result<()> {
    count(Call::Munmap);
    // SAFETY: the caller's promise.
    if unsafe { libc::munmap(ptr.cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Changes the protection of `[ptr, ptr + len)` (page-aligned) to `prot`.
///
/// # Safety
///
/// The range must lie in a mapping owned by the caller; no Rust reference
/// may point into a range made inaccessible.
pub(crate) unsafe fn mprotect(ptr: *mut u8, len: usize, prot: libc::c_int) -> io::Result<()> {
    count(Call::Mprotect);
    // SAFETY: the caller's promise.
    if unsafe { libc::mprotect(ptr.cast(), len, prot) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `madvise(MADV_DONTNEED)`: drops the pages of `[ptr, ptr + len)`
/// (page-aligned) of a private anonymous mapping, which then read as zeros
/// and take no memory until touched again.
///
/// # Safety
///
/// The range must lie in a private anonymous mapping owned by the caller,
/// whose contents nobody needs any more.
pub(crate) unsafe fn discard(ptr: *mut u8, len: usize) -> io::Result<()> {
    count(Call::Madvise);
    // SAFETY: the caller's promise.
    if unsafe { libc::madvise(ptr.cast(), len, libc::MADV_DONTNEED) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `madvise(MADV_NOHUGEPAGE)`: small memories packed in a slab must not be
/// backed by 2 MiB pages (one touched byte would make 2 MiB resident).
/// Failure is harmless and ignored.
///
/// # Safety
///
/// The range must be a mapping owned by the caller.
pub(crate) unsafe fn no_huge_pages(ptr: *mut u8, len: usize) {
    count(Call::Madvise);
    // SAFETY: the caller's promise; the advice changes no contents.
    let _ = unsafe { libc::madvise(ptr.cast(), len, libc::MADV_NOHUGEPAGE) };
}

/// The OS page size.
pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|&s| s > 0)
            .unwrap_or(4096)
    })
}
