//! The descriptor table: what each guest fd number refers to, and what the
//! guest may do with it.
//!
//! # Descriptors
//!
//! A guest fd is an index into [`FdTable`]; it never is a host fd. Each
//! slot holds an [`FdEntry`]:
//!
//! - the [`Descriptor`]: standard input or output (the process's own, an
//!   in-memory pipe, or nothing), an open regular file, a directory (a
//!   `cap_std::fs::Dir`), or a TCP stream or listener (the host's, or one
//!   the guest accepted);
//! - its rights (`rights_base`: what may be done with the fd itself;
//!   `rights_inheriting`: the most that fds opened through it may get);
//! - its `fdflags` as the guest last set them.
//!
//! New descriptors take the lowest free number, as POSIX `open` does: 0, 1
//! and 2 are the standard streams, preopened directories follow from 3 in
//! the order they were added, then sockets pushed by the host, then
//! whatever the guest opens. The table holds at most a configured number of
//! descriptors (`EMFILE` past it), so a guest cannot exhaust the host's
//! file descriptors.
//!
//! # Rights
//!
//! Every call names the rights it needs and looks its fd up with
//! [`FdTable::get_with`], which fails with `ENOTCAPABLE` when the fd lacks
//! one. Rights only ever shrink: an fd opened through a directory gets at
//! most the directory's inheriting rights, and `fd_fdstat_set_rights` may
//! only drop rights. A read-only preopen thus yields read-only files all
//! the way down.

use super::abi::filetype;
use super::errno::Errno;
use super::pipe::{ReadPipe, WritePipe};
use super::sock::{ListenerSocket, StreamSocket};
use std::fs::File;

/// Where a standard input stream reads from.
#[derive(Debug)]
pub enum Input {
    /// The process's standard input.
    Inherit,
    /// An in-memory pipe.
    Pipe(ReadPipe),
    /// Always at end of file.
    Null,
}

/// Where a standard output stream writes to.
#[derive(Debug)]
pub enum Output {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// An in-memory pipe.
    Pipe(WritePipe),
    /// Discards everything.
    Null,
}

/// One directory entry, as `fd_readdir` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirRecord {
    pub ino: u64,
    pub filetype: u8,
    pub name: Vec<u8>,
}

/// An open directory.
#[derive(Debug)]
pub struct DirHandle {
    /// All path resolution under this directory goes through cap-std,
    /// which confines it to the directory.
    pub dir: cap_std::fs::Dir,
    /// The guest path, for a preopened directory.
    pub preopen: Option<String>,
    /// The entries `fd_readdir` last listed (reloaded at cookie 0), so
    /// that a listing read in several calls is consistent.
    pub listing: Option<Vec<DirRecord>>,
}

/// What a guest fd refers to.
#[derive(Debug)]
pub enum Descriptor {
    Input(Input),
    Output(Output),
    File(File),
    Dir(DirHandle),
    TcpStream(StreamSocket),
    TcpListener(ListenerSocket),
}

impl Descriptor {
    /// The WASI `filetype` of this descriptor.
    pub fn filetype(&self) -> u8 {
        match self {
            Descriptor::Input(Input::Inherit) => host_stdio_filetype(0),
            Descriptor::Output(Output::Stdout) => host_stdio_filetype(1),
            Descriptor::Output(Output::Stderr) => host_stdio_filetype(2),
            // In-memory pipes look like host pipes: not a terminal, so
            // wasi-libc buffers stdout fully, exactly as a native program
            // writing into a pipe does.
            Descriptor::Input(_) | Descriptor::Output(_) => filetype::UNKNOWN,
            Descriptor::File(f) => f
                .metadata()
                .map(|m| filetype_of(&m.file_type()))
                .unwrap_or(filetype::REGULAR_FILE),
            Descriptor::Dir(_) => filetype::DIRECTORY,
            Descriptor::TcpStream(_) | Descriptor::TcpListener(_) => filetype::SOCKET_STREAM,
        }
    }
}

/// The WASI filetype of a std file type.
pub fn filetype_of(ft: &std::fs::FileType) -> u8 {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        filetype::DIRECTORY
    } else if ft.is_file() {
        filetype::REGULAR_FILE
    } else if ft.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else if ft.is_char_device() {
        filetype::CHARACTER_DEVICE
    } else if ft.is_block_device() {
        filetype::BLOCK_DEVICE
    } else if ft.is_socket() {
        filetype::SOCKET_STREAM
    } else {
        filetype::UNKNOWN
    }
}

/// The WASI filetype of a cap-std file type.
pub fn cap_filetype_of(ft: &cap_std::fs::FileType) -> u8 {
    use cap_fs_ext::FileTypeExt;
    if ft.is_dir() {
        filetype::DIRECTORY
    } else if ft.is_file() {
        filetype::REGULAR_FILE
    } else if ft.is_symlink() {
        filetype::SYMBOLIC_LINK
    } else if FileTypeExt::is_char_device(ft) {
        filetype::CHARACTER_DEVICE
    } else if FileTypeExt::is_block_device(ft) {
        filetype::BLOCK_DEVICE
    } else if FileTypeExt::is_socket(ft) {
        filetype::SOCKET_STREAM
    } else {
        filetype::UNKNOWN
    }
}

/// The filetype of one of the process's standard streams: a terminal or
/// other character device is `CHARACTER_DEVICE`, anything else (a pipe, a
/// redirected file) `UNKNOWN`, so that the guest neither seeks it nor
/// treats a pipe as a terminal.
fn host_stdio_filetype(fd: i32) -> u8 {
    use std::os::fd::AsFd;
    let borrowed = match fd {
        0 => std::io::stdin().as_fd().try_clone_to_owned(),
        1 => std::io::stdout().as_fd().try_clone_to_owned(),
        _ => std::io::stderr().as_fd().try_clone_to_owned(),
    };
    match borrowed.map(File::from).and_then(|f| f.metadata()) {
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if m.file_type().is_char_device() {
                filetype::CHARACTER_DEVICE
            } else {
                filetype::UNKNOWN
            }
        }
        Err(_) => filetype::UNKNOWN,
    }
}

/// One slot of the table.
#[derive(Debug)]
pub struct FdEntry {
    pub desc: Descriptor,
    pub rights_base: u64,
    pub rights_inheriting: u64,
    /// `fdflags` as last set by the guest (or at open).
    pub flags: u16,
}

impl FdEntry {
    pub fn new(desc: Descriptor, rights_base: u64, rights_inheriting: u64) -> FdEntry {
        FdEntry {
            desc,
            rights_base,
            rights_inheriting,
            flags: 0,
        }
    }

    /// Fails with `ENOTCAPABLE` unless the fd has every right in `needed`.
    pub fn require(&self, needed: u64) -> Result<(), Errno> {
        if self.rights_base & needed == needed {
            Ok(())
        } else {
            Err(Errno::NotCapable)
        }
    }

    /// The directory behind this fd, or `ENOTDIR`.
    pub fn dir(&self) -> Result<&DirHandle, Errno> {
        match &self.desc {
            Descriptor::Dir(d) => Ok(d),
            _ => Err(Errno::NotDir),
        }
    }
}

/// The default limit on open descriptors per instance.
pub const DEFAULT_MAX_FDS: u32 = 1024;

/// The guest's descriptors.
#[derive(Debug)]
pub struct FdTable {
    slots: Vec<Option<FdEntry>>,
    max: u32,
}

impl Default for FdTable {
    fn default() -> Self {
        FdTable::new(DEFAULT_MAX_FDS)
    }
}

impl FdTable {
    pub fn new(max: u32) -> FdTable {
        FdTable {
            slots: Vec::new(),
            max,
        }
    }

    /// Sets the limit on open descriptors.
    pub fn set_max(&mut self, max: u32) {
        self.max = max;
    }

    /// Adds `entry` at the lowest free number.
    pub fn insert(&mut self, entry: FdEntry) -> Result<u32, Errno> {
        if let Some(fd) = self.slots.iter().position(Option::is_none) {
            self.slots[fd] = Some(entry);
            return Ok(fd as u32);
        }
        let fd = u32::try_from(self.slots.len()).map_err(|_| Errno::Mfile)?;
        if fd >= self.max {
            return Err(Errno::Mfile);
        }
        self.slots.push(Some(entry));
        Ok(fd)
    }

    /// Puts `entry` at `fd`, replacing what was there.
    pub fn insert_at(&mut self, fd: u32, entry: FdEntry) -> Result<(), Errno> {
        if fd >= self.max {
            return Err(Errno::Mfile);
        }
        let index = fd as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(entry);
        Ok(())
    }

    pub fn get(&self, fd: u32) -> Result<&FdEntry, Errno> {
        self.slots
            .get(fd as usize)
            .and_then(Option::as_ref)
            .ok_or(Errno::Badf)
    }

    pub fn get_mut(&mut self, fd: u32) -> Result<&mut FdEntry, Errno> {
        self.slots
            .get_mut(fd as usize)
            .and_then(Option::as_mut)
            .ok_or(Errno::Badf)
    }

    /// The entry at `fd` (`EBADF` if none) if it has the rights `needed`
    /// (`ENOTCAPABLE` if not).
    pub fn get_with(&mut self, fd: u32, needed: u64) -> Result<&mut FdEntry, Errno> {
        let entry = self.get_mut(fd)?;
        entry.require(needed)?;
        Ok(entry)
    }

    /// Closes `fd`.
    pub fn remove(&mut self, fd: u32) -> Result<FdEntry, Errno> {
        let entry = self
            .slots
            .get_mut(fd as usize)
            .and_then(Option::take)
            .ok_or(Errno::Badf)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(entry)
    }

    /// Moves `from` to `to`, closing what `to` held. Both must be open
    /// (as in Wasmtime).
    pub fn renumber(&mut self, from: u32, to: u32) -> Result<(), Errno> {
        self.get(from)?;
        self.get(to)?;
        if from == to {
            return Ok(());
        }
        let entry = self.remove(from)?;
        // `to` is below the table's length or was just trimmed with it:
        // re-insert at the exact number either way.
        self.insert_at(to, entry)
    }

    /// Numbers of the open descriptors.
    pub fn fds(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::super::abi::rights;
    use super::*;

    fn null() -> FdEntry {
        FdEntry::new(Descriptor::Input(Input::Null), rights::STDIN, 0)
    }

    #[test]
    fn lowest_free_number() {
        let mut table = FdTable::new(4);
        assert_eq!(table.insert(null()), Ok(0));
        assert_eq!(table.insert(null()), Ok(1));
        assert_eq!(table.insert(null()), Ok(2));
        assert!(table.remove(1).is_ok());
        assert_eq!(table.insert(null()), Ok(1));
        assert_eq!(table.insert(null()), Ok(3));
        assert_eq!(table.insert(null()).err(), Some(Errno::Mfile));
        assert_eq!(table.remove(9).err(), Some(Errno::Badf));
    }

    #[test]
    fn rights_are_checked() {
        let mut table = FdTable::default();
        let fd = table.insert(null()).unwrap();
        assert!(table.get_with(fd, rights::FD_READ).is_ok());
        assert_eq!(
            table.get_with(fd, rights::FD_WRITE).err(),
            Some(Errno::NotCapable)
        );
    }

    #[test]
    fn renumber_replaces() {
        let mut table = FdTable::default();
        for _ in 0..5 {
            table.insert(null()).unwrap();
        }
        assert_eq!(table.renumber(4, 1), Ok(()));
        assert_eq!(table.get(4).err(), Some(Errno::Badf));
        assert!(table.get(1).is_ok());
        assert_eq!(table.renumber(4, 1), Err(Errno::Badf));
        assert_eq!(table.renumber(1, 7), Err(Errno::Badf));
    }
}
