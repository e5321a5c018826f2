//! The `wasi_snapshot_preview1` ABI: constants and the byte layouts of the
//! structures guests pass by pointer (all little-endian, as in wasm).
//!
//! Layouts follow `wasi_snapshot_preview1.witx`; offsets are written here
//! once and used by the calls through the `encode_*` helpers.

/// The import module name every preview1 function is registered under.
pub const MODULE: &str = "wasi_snapshot_preview1";

/// Rights (`rights` bit flags): what may be done with a descriptor.
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_LINK_SOURCE: u64 = 1 << 11;
    pub const PATH_LINK_TARGET: u64 = 1 << 12;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_READLINK: u64 = 1 << 15;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const PATH_FILESTAT_SET_TIMES: u64 = 1 << 20;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const FD_FILESTAT_SET_TIMES: u64 = 1 << 23;
    pub const PATH_SYMLINK: u64 = 1 << 24;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;
    pub const SOCK_SHUTDOWN: u64 = 1 << 28;
    pub const SOCK_ACCEPT: u64 = 1 << 29;

    /// Every right a regular file can have.
    pub const FILE_ALL: u64 = FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | FD_FILESTAT_SET_TIMES
        | POLL_FD_READWRITE;
    /// The rights of a regular file that do not modify it.
    pub const FILE_READ_ONLY: u64 = FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_TELL
        | FD_ADVISE
        | FD_FILESTAT_GET
        | POLL_FD_READWRITE;
    /// Every right a directory can have.
    pub const DIR_ALL: u64 = FD_DATASYNC
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_LINK_SOURCE
        | PATH_LINK_TARGET
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_SIZE
        | PATH_FILESTAT_SET_TIMES
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_TIMES
        | PATH_SYMLINK
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE;
    /// The rights of a directory that do not modify anything under it.
    pub const DIR_READ_ONLY: u64 = FD_FDSTAT_SET_FLAGS
        | PATH_OPEN
        | FD_READDIR
        | PATH_READLINK
        | PATH_FILESTAT_GET
        | FD_FILESTAT_GET;
    /// Rights of a connected stream socket.
    pub const SOCKET: u64 = FD_READ
        | FD_WRITE
        | FD_FDSTAT_SET_FLAGS
        | FD_FILESTAT_GET
        | POLL_FD_READWRITE
        | SOCK_SHUTDOWN;
    /// Rights of a listening socket.
    pub const LISTENER: u64 =
        FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET | POLL_FD_READWRITE | SOCK_ACCEPT;
    /// Rights of standard input.
    pub const STDIN: u64 = FD_READ | FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET | POLL_FD_READWRITE;
    /// Rights of standard output and standard error.
    pub const STDOUT: u64 = FD_WRITE | FD_FDSTAT_SET_FLAGS | FD_FILESTAT_GET | POLL_FD_READWRITE;
}

/// `filetype` values.
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const BLOCK_DEVICE: u8 = 1;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SOCKET_DGRAM: u8 = 5;
    pub const SOCKET_STREAM: u8 = 6;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// `fdflags` bits.
pub mod fdflags {
    pub const APPEND: u16 = 1 << 0;
    pub const DSYNC: u16 = 1 << 1;
    pub const NONBLOCK: u16 = 1 << 2;
    pub const RSYNC: u16 = 1 << 3;
    pub const SYNC: u16 = 1 << 4;
    pub const ALL: u16 = APPEND | DSYNC | NONBLOCK | RSYNC | SYNC;
}

/// `oflags` bits (`path_open`).
pub mod oflags {
    pub const CREAT: u16 = 1 << 0;
    pub const DIRECTORY: u16 = 1 << 1;
    pub const EXCL: u16 = 1 << 2;
    pub const TRUNC: u16 = 1 << 3;
    pub const ALL: u16 = CREAT | DIRECTORY | EXCL | TRUNC;
}

/// `lookupflags` bits.
pub mod lookupflags {
    pub const SYMLINK_FOLLOW: u32 = 1 << 0;
}

/// `fstflags` bits (`*_filestat_set_times`).
pub mod fstflags {
    pub const ATIM: u16 = 1 << 0;
    pub const ATIM_NOW: u16 = 1 << 1;
    pub const MTIM: u16 = 1 << 2;
    pub const MTIM_NOW: u16 = 1 << 3;
}

/// `whence` values (`fd_seek`).
pub mod whence {
    pub const SET: u8 = 0;
    pub const CUR: u8 = 1;
    pub const END: u8 = 2;
}

/// `clockid` values.
pub mod clockid {
    pub const REALTIME: u32 = 0;
    pub const MONOTONIC: u32 = 1;
    pub const PROCESS_CPUTIME_ID: u32 = 2;
    pub const THREAD_CPUTIME_ID: u32 = 3;
}

/// `eventtype` values and the `poll_oneoff` flags.
pub mod event {
    pub const CLOCK: u8 = 0;
    pub const FD_READ: u8 = 1;
    pub const FD_WRITE: u8 = 2;
    /// `subclockflags`: the timeout is an absolute time.
    pub const SUBSCRIPTION_CLOCK_ABSTIME: u16 = 1 << 0;
    /// `eventrwflags`: the peer hung up.
    pub const FD_READWRITE_HANGUP: u16 = 1 << 0;
}

/// Socket flags.
pub mod sock {
    /// `riflags`: return data without removing it.
    pub const RECV_PEEK: u16 = 1 << 0;
    /// `riflags`: wait until the buffers are full.
    pub const RECV_WAITALL: u16 = 1 << 1;
    /// `sdflags`: shut down the read half.
    pub const SHUT_RD: u8 = 1 << 0;
    /// `sdflags`: shut down the write half.
    pub const SHUT_WR: u8 = 1 << 1;
}

/// `advice` values (`fd_advise`).
pub mod advice {
    pub const NORMAL: u8 = 0;
    pub const SEQUENTIAL: u8 = 1;
    pub const RANDOM: u8 = 2;
    pub const WILLNEED: u8 = 3;
    pub const DONTNEED: u8 = 4;
    pub const NOREUSE: u8 = 5;
}

/// `preopentype`: a directory.
pub const PREOPENTYPE_DIR: u8 = 0;

/// Size of an `iovec`/`ciovec`: `{ buf: u32, buf_len: u32 }`.
pub const IOVEC_SIZE: u32 = 8;
/// Size of a `subscription`.
pub const SUBSCRIPTION_SIZE: u32 = 48;
/// Size of an `event`.
pub const EVENT_SIZE: u32 = 32;
/// Size of a `dirent` header (the name follows it).
pub const DIRENT_SIZE: usize = 24;

/// `fdstat`: 24 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdStat {
    pub filetype: u8,
    pub flags: u16,
    pub rights_base: u64,
    pub rights_inheriting: u64,
}

impl FdStat {
    pub fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[0] = self.filetype;
        out[2..4].copy_from_slice(&self.flags.to_le_bytes());
        out[8..16].copy_from_slice(&self.rights_base.to_le_bytes());
        out[16..24].copy_from_slice(&self.rights_inheriting.to_le_bytes());
        out
    }
}

/// `filestat`: 64 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub filetype: u8,
    pub nlink: u64,
    pub size: u64,
    pub atim: u64,
    pub mtim: u64,
    pub ctim: u64,
}

impl FileStat {
    pub fn encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[0..8].copy_from_slice(&self.dev.to_le_bytes());
        out[8..16].copy_from_slice(&self.ino.to_le_bytes());
        out[16] = self.filetype;
        out[24..32].copy_from_slice(&self.nlink.to_le_bytes());
        out[32..40].copy_from_slice(&self.size.to_le_bytes());
        out[40..48].copy_from_slice(&self.atim.to_le_bytes());
        out[48..56].copy_from_slice(&self.mtim.to_le_bytes());
        out[56..64].copy_from_slice(&self.ctim.to_le_bytes());
        out
    }
}

/// A `dirent` header: `{ d_next: u64, d_ino: u64, d_namlen: u32, d_type: u8 }`.
pub fn encode_dirent(next: u64, ino: u64, namlen: u32, filetype: u8) -> [u8; DIRENT_SIZE] {
    let mut out = [0u8; DIRENT_SIZE];
    out[0..8].copy_from_slice(&next.to_le_bytes());
    out[8..16].copy_from_slice(&ino.to_le_bytes());
    out[16..20].copy_from_slice(&namlen.to_le_bytes());
    out[20] = filetype;
    out
}

/// An `event`: `{ userdata: u64, error: u16, type: u8, fd_readwrite: { nbytes: u64, flags: u16 } }`.
pub fn encode_event(userdata: u64, error: u16, kind: u8, nbytes: u64, flags: u16) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[0..8].copy_from_slice(&userdata.to_le_bytes());
    out[8..10].copy_from_slice(&error.to_le_bytes());
    out[10] = kind;
    out[16..24].copy_from_slice(&nbytes.to_le_bytes());
    out[24..26].copy_from_slice(&flags.to_le_bytes());
    out
}

/// A decoded `subscription`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    Clock {
        userdata: u64,
        id: u32,
        timeout: u64,
        flags: u16,
    },
    FdRead {
        userdata: u64,
        fd: u32,
    },
    FdWrite {
        userdata: u64,
        fd: u32,
    },
    /// An unknown tag: answered with an `EINVAL` event.
    Invalid {
        userdata: u64,
        tag: u8,
    },
}

impl Subscription {
    /// Decodes a 48-byte subscription: `userdata: u64` at 0, the tag
    /// (`u8`) at 8, then at 16 either a clock (`id: u32` at 16, `timeout:
    /// u64` at 24, `precision: u64` at 32, `flags: u16` at 40) or an fd
    /// (`fd: u32` at 16).
    pub fn decode(bytes: &[u8; 48]) -> Subscription {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&bytes[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let userdata = u64_at(0);
        match bytes[8] {
            event::CLOCK => Subscription::Clock {
                userdata,
                id: u32_at(16),
                timeout: u64_at(24),
                flags: u16::from_le_bytes([bytes[40], bytes[41]]),
            },
            event::FD_READ => Subscription::FdRead {
                userdata,
                fd: u32_at(16),
            },
            event::FD_WRITE => Subscription::FdWrite {
                userdata,
                fd: u32_at(16),
            },
            tag => Subscription::Invalid { userdata, tag },
        }
    }

    pub fn userdata(&self) -> u64 {
        match *self {
            Subscription::Clock { userdata, .. }
            | Subscription::FdRead { userdata, .. }
            | Subscription::FdWrite { userdata, .. }
            | Subscription::Invalid { userdata, .. } => userdata,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_layout() {
        let mut raw = [0u8; 48];
        raw[0..8].copy_from_slice(&7u64.to_le_bytes());
        raw[8] = event::CLOCK;
        raw[16..20].copy_from_slice(&clockid::MONOTONIC.to_le_bytes());
        raw[24..32].copy_from_slice(&1_000u64.to_le_bytes());
        raw[40..42].copy_from_slice(&event::SUBSCRIPTION_CLOCK_ABSTIME.to_le_bytes());
        assert_eq!(
            Subscription::decode(&raw),
            Subscription::Clock {
                userdata: 7,
                id: clockid::MONOTONIC,
                timeout: 1_000,
                flags: event::SUBSCRIPTION_CLOCK_ABSTIME
            }
        );
        raw[8] = event::FD_WRITE;
        raw[16..20].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            Subscription::decode(&raw),
            Subscription::FdWrite { userdata: 7, fd: 3 }
        );
    }

    #[test]
    fn fdstat_layout() {
        let s = FdStat {
            filetype: filetype::REGULAR_FILE,
            flags: fdflags::APPEND,
            rights_base: 0x0102,
            rights_inheriting: 0x0304,
        };
        let b = s.encode();
        assert_eq!(b[0], 4);
        assert_eq!(&b[2..4], &[1, 0]);
        assert_eq!(&b[8..10], &[2, 1]);
        assert_eq!(&b[16..18], &[4, 3]);
    }
}
