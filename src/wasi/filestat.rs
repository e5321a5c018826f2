//! `filestat` values from host metadata, and the times guests set.

use super::abi::{fstflags, FileStat};
use super::errno::Errno;
use super::fd_table::{cap_filetype_of, filetype_of};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the epoch, clamped to the representable range
/// (times before 1970 become 0).
fn nanos(secs: i64, nsec: i64) -> u64 {
    if secs < 0 {
        return 0;
    }
    (secs as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec.max(0) as u64)
}

/// The `filestat` of a file opened on the host.
pub fn from_std(meta: &std::fs::Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt;
    FileStat {
        dev: meta.dev(),
        ino: meta.ino(),
        filetype: filetype_of(&meta.file_type()),
        nlink: meta.nlink(),
        size: meta.size(),
        atim: nanos(meta.atime(), meta.atime_nsec()),
        mtim: nanos(meta.mtime(), meta.mtime_nsec()),
        ctim: nanos(meta.ctime(), meta.ctime_nsec()),
    }
}

/// The `filestat` of a cap-std path or directory.
pub fn from_cap(meta: &cap_std::fs::Metadata) -> FileStat {
    use cap_fs_ext::OsMetadataExt;
    FileStat {
        dev: meta.dev(),
        ino: meta.ino(),
        filetype: cap_filetype_of(&meta.file_type()),
        nlink: meta.nlink(),
        size: meta.len(),
        atim: nanos(meta.atime(), meta.atime_nsec()),
        mtim: nanos(meta.mtime(), meta.mtime_nsec()),
        ctim: nanos(meta.ctime(), meta.ctime_nsec()),
    }
}

/// What to set one timestamp to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeChange {
    Keep,
    Now,
    At(SystemTime),
}

/// Decodes the `(atim, mtim, fst_flags)` of a `*_filestat_set_times`:
/// asking for both a time and "now" for the same stamp is `EINVAL`.
pub fn decode_times(atim: u64, mtim: u64, flags: u32) -> Result<(TimeChange, TimeChange), Errno> {
    let known =
        u32::from(fstflags::ATIM | fstflags::ATIM_NOW | fstflags::MTIM | fstflags::MTIM_NOW);
    if flags & !known != 0 {
        return Err(Errno::Inval);
    }
    let flags = flags as u16;
    let one = |time: u64, set: u16, now: u16| -> Result<TimeChange, Errno> {
        match (flags & set != 0, flags & now != 0) {
            (true, true) => Err(Errno::Inval),
            (false, true) => Ok(TimeChange::Now),
            (true, false) => UNIX_EPOCH
                .checked_add(Duration::from_nanos(time))
                .map(TimeChange::At)
                .ok_or(Errno::Inval),
            (false, false) => Ok(TimeChange::Keep),
        }
    };
    Ok((
        one(atim, fstflags::ATIM, fstflags::ATIM_NOW)?,
        one(mtim, fstflags::MTIM, fstflags::MTIM_NOW)?,
    ))
}

/// The change as std `FileTimes` (for an open file).
pub fn std_times(atime: TimeChange, mtime: TimeChange) -> std::fs::FileTimes {
    let mut times = std::fs::FileTimes::new();
    let now = SystemTime::now();
    match atime {
        TimeChange::Keep => {}
        TimeChange::Now => times = times.set_accessed(now),
        TimeChange::At(t) => times = times.set_accessed(t),
    }
    match mtime {
        TimeChange::Keep => {}
        TimeChange::Now => times = times.set_modified(now),
        TimeChange::At(t) => times = times.set_modified(t),
    }
    times
}

/// The change as cap-std time specs (for a path).
pub fn cap_times(change: TimeChange) -> Option<cap_fs_ext::SystemTimeSpec> {
    match change {
        TimeChange::Keep => None,
        TimeChange::Now => Some(cap_fs_ext::SystemTimeSpec::SymbolicNow),
        TimeChange::At(t) => Some(cap_fs_ext::SystemTimeSpec::Absolute(
            cap_std::time::SystemTime::from_std(t),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_flags() {
        let both = u32::from(fstflags::ATIM | fstflags::ATIM_NOW);
        assert_eq!(decode_times(0, 0, both), Err(Errno::Inval));
        assert_eq!(decode_times(0, 0, 1 << 9), Err(Errno::Inval));
        let (a, m) = decode_times(5, 0, u32::from(fstflags::ATIM | fstflags::MTIM_NOW)).unwrap();
        assert_eq!(a, TimeChange::At(UNIX_EPOCH + Duration::from_nanos(5)));
        assert_eq!(m, TimeChange::Now);
        assert_eq!(nanos(-5, 3), 0);
        assert_eq!(nanos(1, 2), 1_000_000_002);
    }
}
