//! The operating-system calls the scheduler makes, in one place (Linux).
//!
//! Memory mapping and guard pages for the stack pool, CPU affinity for the
//! workers, absolute-deadline sleeping and thread priority for the epoch
//! ticker, and a blocking `poll(2)` for I/O done outside green threads. Every
//! other module stays free of raw `libc` calls.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `madvise(MADV_GUARD_INSTALL)`: Linux 6.13+ "lightweight guard regions".
/// Not yet exported by the `libc` crate.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// The system page size (cached after the first call).
pub(crate) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 && (size as usize).is_power_of_two() {
            size as usize
        } else {
            4096
        }
    })
}

/// Rounds `n` up to a multiple of the page size (saturating).
pub(crate) fn round_to_page(n: usize) -> usize {
    let page = page_size();
    n.checked_add(page - 1)
        .map_or(usize::MAX & !(page - 1), |v| v & !(page - 1))
}

/// An anonymous, private, read-write mapping that reserves no swap
/// (`MAP_NORESERVE`): only pages that are touched cost memory. Unmapped on drop.
pub(crate) struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain memory owned by whoever holds the value.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes (a multiple of the page size), with transparent huge
    /// pages disabled so that touching one stack page never faults in 2 MiB.
    pub(crate) fn new_noreserve(len: usize) -> io::Result<Mapping> {
        // SAFETY: an anonymous mapping at a kernel-chosen address has no
        // preconditions; the result is checked against MAP_FAILED.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(addr) = NonNull::new(addr.cast::<u8>()) else {
            return Err(io::Error::other("mmap returned a null mapping"));
        };
        let mapping = Mapping { addr, len };
        // Best effort: without it a THP-enabled kernel may back a stack with
        // a huge page. Failure only costs memory, so it is not an error.
        // SAFETY: the range is exactly the mapping just created.
        unsafe {
            libc::madvise(addr.as_ptr().cast(), len, libc::MADV_NOHUGEPAGE);
        }
        Ok(mapping)
    }

    pub(crate) fn addr(&self) -> usize {
        self.addr.as_ptr() as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is a mapping this value owns; nothing uses it any
        // more (the stack pool only drops regions with no stack in use).
        unsafe {
            libc::munmap(self.addr.as_ptr().cast(), self.len);
        }
    }
}

/// How guard pages are made inaccessible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GuardKind {
    /// `MADV_GUARD_INSTALL`: no VMA split, so no extra `vm.max_map_count` cost.
    Lightweight,
    /// `mprotect(PROT_NONE)`: splits the mapping, two VMAs per stack.
    Mprotect,
}

/// Makes `[addr, addr + len)` fault on any access.
///
/// `prefer` is the kind that worked last time; `Lightweight` is tried first
/// and, if the kernel does not know it, `Mprotect` is used.
///
/// # Safety
///
/// The range must be page aligned, lie inside a live [`Mapping`] and hold no
/// data anybody will access again.
pub(crate) unsafe fn install_guard(
    addr: usize,
    len: usize,
    prefer: Option<GuardKind>,
) -> io::Result<GuardKind> {
    if prefer != Some(GuardKind::Mprotect) {
        // SAFETY: the caller guarantees the range is ours and unused.
        let rc = unsafe { libc::madvise(addr as *mut libc::c_void, len, MADV_GUARD_INSTALL) };
        if rc == 0 {
            return Ok(GuardKind::Lightweight);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINVAL) || prefer == Some(GuardKind::Lightweight) {
            return Err(err);
        }
    }
    // SAFETY: as above.
    let rc = unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) };
    if rc == 0 {
        Ok(GuardKind::Mprotect)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives the pages of `[addr, addr + len)` back to the kernel; the next
/// touch sees zero-filled pages. Guard regions survive this.
///
/// # Safety
///
/// The range must be page aligned, inside a live [`Mapping`], and its
/// contents must be dead (no live stack frame).
pub(crate) unsafe fn discard(addr: usize, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: the caller guarantees the range is ours and its data dead.
    unsafe {
        libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED);
    }
}

/// Number of resident pages in `[addr, addr + len)` (page aligned).
#[cfg(test)]
pub(crate) fn resident_pages(addr: usize, len: usize) -> io::Result<usize> {
    let pages = len / page_size();
    let mut vec = vec![0u8; pages];
    // SAFETY: `vec` has one byte per page of the range, as mincore requires.
    let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec.iter().filter(|b| **b & 1 != 0).count())
}

/// The CPUs this process may run on (its affinity mask), ascending.
pub(crate) fn allowed_cpu_list() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `allowed` is a valid, writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut allowed) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: CPU_ISSET reads a bit of a valid set; `cpu < max`.
    Ok((0..max)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &allowed) })
        .collect())
}

/// How many CPUs this process may run on (1 if that cannot be read).
pub(crate) fn allowed_cpus() -> usize {
    allowed_cpu_list().map_or(1, |cpus| cpus.len().max(1))
}

/// Pins the calling thread to the `index`-th CPU (modulo their number) of
/// the CPUs this process may run on. Returns the CPU number chosen.
pub(crate) fn pin_current_thread(index: usize) -> io::Result<usize> {
    let cpus = allowed_cpu_list()?;
    let Some(&cpu) = cpus.get(index % cpus.len().max(1)) else {
        return Err(io::Error::other("the process may not run on any CPU"));
    };
    set_thread_affinity(0, &[cpu])?;
    Ok(cpu)
}

/// The calling thread's kernel thread id.
pub(crate) fn current_thread_id() -> libc::pid_t {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::pid_t }
}

/// Restricts thread `tid` (0: the calling thread) to `cpus`. The caller
/// must know that `tid` is a live thread of this process: a thread id is
/// reused once its thread has ended.
pub(crate) fn set_thread_affinity(tid: libc::pid_t, cpus: &[usize]) -> io::Result<()> {
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= max {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: `cpu < max`, inside the set.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The NUMA node of `cpu`, from sysfs (`/sys/devices/system/cpu/cpuN/nodeM`);
/// `None` where the kernel does not say (no NUMA support: one node).
pub(crate) fn cpu_node(cpu: usize) -> Option<usize> {
    std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{cpu}"))
        .ok()?
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_prefix("node")?
                .parse()
                .ok()
        })
        .next()
}

/// Best effort: makes the calling thread `SCHED_FIFO` (priority 1), or failing
/// that raises its nice value, so that it runs promptly when every core is
/// busy. Returns whether real-time scheduling was obtained.
pub(crate) fn raise_thread_priority() -> bool {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: pthread_self is always valid; `param` is a valid sched_param.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        return true;
    }
    let tid = current_thread_id() as libc::id_t;
    // SAFETY: setpriority on our own tid only changes this thread's nice
    // value (failure is ignored).
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, -10) };
    false
}

/// `CLOCK_MONOTONIC` now, as a duration since an arbitrary origin.
pub(crate) fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Sleeps until `CLOCK_MONOTONIC` reaches `deadline` (absolute), so that
/// oversleeping never accumulates into drift.
pub(crate) fn sleep_until_monotonic(deadline: Duration) {
    let ts = libc::timespec {
        tv_sec: deadline.as_secs() as libc::time_t,
        tv_nsec: deadline.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: `ts` is a valid timespec; the remainder pointer may be null
        // with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// Blocks the calling OS thread until `fd` is readable (or writable),
/// including error and hang-up conditions. Used for I/O outside green threads.
pub(crate) fn poll_fd(fd: RawFd, readable: bool) -> io::Result<()> {
    let events = if readable {
        libc::POLLIN
    } else {
        libc::POLLOUT
    };
    let mut pfd = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    poll_fds(&mut pfd, None).map(|_| ())
}

/// `poll(2)` on `fds` until one has events or `deadline` passes (`None`:
/// no deadline; one already past: just check), blocking the calling OS
/// thread, retrying when a signal interrupts it (with the time left).
/// Returns how many have events: 0 only when the deadline passed.
pub fn poll_fds(fds: &mut [libc::pollfd], deadline: Option<Instant>) -> io::Result<usize> {
    let nfds = libc::nfds_t::try_from(fds.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        let timeout_ms = match deadline {
            None => -1,
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                // Round up, so that a short wait does not spin.
                i32::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
            }
        };
        // SAFETY: `fds` is a valid, exclusively borrowed array of `nfds`
        // pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout_ms) };
        if rc > 0 {
            return Ok(rc as usize);
        }
        if rc == 0 {
            if deadline.is_some_and(|at| Instant::now() >= at) {
                return Ok(0);
            }
            continue;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Changes the accept backlog of a listening socket (Linux lets `listen`
/// be called again for that). The kernel caps it at `net.core.somaxconn`.
pub(crate) fn set_listen_backlog(fd: RawFd, backlog: u32) -> io::Result<()> {
    let backlog = backlog.min(libc::c_int::MAX as u32) as libc::c_int;
    // SAFETY: listen on a caller-owned socket fd has no memory-safety
    // preconditions; errors are reported through the return value.
    if unsafe { libc::listen(fd, backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
