//! What the kernel says about this process and this machine: resident and
//! virtual size, the number of mappings, and the limits a stress run can
//! run into (`vm.max_map_count`, available memory, `ulimit -v`).
//!
//! Everything is read from `/proc` (Linux); on a read error a figure is 0
//! (or `None` for a limit), never a panic: these are measurements, not
//! inputs the run depends on.

use std::io::Read;

/// `VmRSS`, `VmSize` and `VmPTE` of this process, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Resident set size (`VmRSS`).
    pub rss: u64,
    /// Virtual size (`VmSize`).
    pub vsz: u64,
    /// Page tables (`VmPTE`): kernel memory, not counted in `rss`.
    pub page_tables: u64,
}

/// `VmRSS`, `VmSize` and `VmPTE` from `/proc/self/status`.
pub fn memory_use() -> MemoryUse {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    MemoryUse {
        rss: kib_field(&status, "VmRSS:").unwrap_or(0),
        vsz: kib_field(&status, "VmSize:").unwrap_or(0),
        page_tables: kib_field(&status, "VmPTE:").unwrap_or(0),
    }
}

/// A `Name:   123 kB` line of a `/proc` file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib.saturating_mul(1024))
}

/// Number of memory mappings (VMAs) of this process: lines of
/// `/proc/self/maps`. Counted through a stack buffer, since near the limit
/// a heap buffer for the whole file might not be mappable.
pub fn map_count() -> usize {
    let Ok(mut file) = std::fs::File::open("/proc/self/maps") else {
        return 0;
    };
    let mut buf = [0u8; 16384];
    let mut lines = 0;
    while let Ok(k) = file.read(&mut buf) {
        if k == 0 {
            break;
        }
        lines += buf[..k].iter().filter(|&&b| b == b'\n').count();
    }
    lines
}

/// `vm.max_map_count`: the most mappings a process may have.
pub fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemAvailable:")
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn mem_total() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemTotal:")
}

/// The address-space limit of this process (`ulimit -v`), if any.
pub fn address_space_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the valid pointer given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    (ok && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The user address space of a process on this architecture: 47 bits
/// (128 TiB) on x86-64 and aarch64 with 4-level page tables.
pub const USER_ADDRESS_SPACE: u64 = 1 << 47;

/// The kernel release (`uname -r`), e.g. `6.18.44`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether the kernel has `MADV_GUARD_INSTALL` (Linux 6.13+), which the
/// scheduler's stack pool uses so that a stack's guard page does not cost a
/// mapping. Older kernels cost two mappings per green-thread stack.
pub fn has_guard_install() -> bool {
    let release = kernel_release();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => (major, minor) >= (6, 13),
        _ => false,
    }
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Number of CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `bytes` in a short human form (`1.5 GiB`).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let m = memory_use();
        assert!(m.rss > 0 && m.vsz >= m.rss);
        assert!(map_count() > 10);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(8 << 30), "8.0 GiB");
    }
}
