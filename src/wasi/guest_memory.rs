//! Bounds-checked access to the guest's linear memory.
//!
//! Every pointer and length a guest passes is untrusted. [`GuestMemory`]
//! wraps the memory's bytes and turns each access that does not fit into
//! [`Errno::Fault`] (the guest gets `EFAULT`); nothing here can panic or
//! touch host memory outside the slice. An instance that exports no
//! `"memory"` gets an empty one: every pointer faults.

use super::abi::IOVEC_SIZE;
use super::errno::Errno;
use smallvec::SmallVec;

/// The guest's linear memory during one call.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

/// One `iovec`: a guest buffer, already checked to lie inside memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoVec {
    pub ptr: u32,
    pub len: u32,
}

/// The most iovecs one call may pass (Linux's `IOV_MAX`).
pub const IOV_MAX: u32 = 1024;

/// The longest path a call may pass, in bytes (Linux's `PATH_MAX`).
pub const PATH_MAX: u32 = 4096;

/// A list of checked iovecs: [`IoVecs::INLINE`] inline (the common case of
/// one or two buffers per call allocates nothing), more on the heap. Small,
/// so that the calls that return it move little: with eight inline (96
/// bytes) a WASI `fd_write` spent a third of its time copying the list
/// around, 58 ns a call against 42 now (`cargo bench --bench hot_paths --
/// host_call`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoVecs(SmallVec<[IoVec; IoVecs::INLINE]>);

impl IoVecs {
    /// How many iovecs are kept without allocating.
    pub const INLINE: usize = 2;

    /// Whether the list had to allocate (more than [`IoVecs::INLINE`]).
    pub fn spilled(&self) -> bool {
        self.0.spilled()
    }
}

impl std::ops::Deref for IoVecs {
    type Target = [IoVec];
    fn deref(&self) -> &[IoVec] {
        &self.0
    }
}

impl<'a> GuestMemory<'a> {
    pub fn new(bytes: &'a mut [u8]) -> Self {
        GuestMemory { bytes }
    }

    /// The memory's size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the memory is empty (no memory export).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn range(&self, ptr: u32, len: u32) -> Result<std::ops::Range<usize>, Errno> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.bytes.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    /// `len` bytes at `ptr`.
    pub fn slice(&self, ptr: u32, len: u32) -> Result<&[u8], Errno> {
        let range = self.range(ptr, len)?;
        Ok(&self.bytes[range])
    }

    /// `len` bytes at `ptr`, writable.
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> Result<&mut [u8], Errno> {
        let range = self.range(ptr, len)?;
        Ok(&mut self.bytes[range])
    }

    /// The host address of guest address `ptr`, as a cache hint only
    /// (`shoal_scheduler::set_park_hints`): nothing is read or written
    /// through it, so it need not be in bounds.
    pub fn hint_addr(&self, ptr: u32) -> usize {
        (self.bytes.as_ptr() as usize).wrapping_add(ptr as usize)
    }

    /// Copies `data` to `ptr`.
    pub fn write(&mut self, ptr: u32, data: &[u8]) -> Result<(), Errno> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        self.slice_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }

    fn read_array<const N: usize>(&self, ptr: u32) -> Result<[u8; N], Errno> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.slice(ptr, N as u32)?);
        Ok(out)
    }

    pub fn read_u32(&self, ptr: u32) -> Result<u32, Errno> {
        self.read_array::<4>(ptr).map(u32::from_le_bytes)
    }

    pub fn read_u64(&self, ptr: u32) -> Result<u64, Errno> {
        self.read_array::<8>(ptr).map(u64::from_le_bytes)
    }

    /// The 48 bytes at `ptr` (a `subscription`).
    pub fn read_48(&self, ptr: u32) -> Result<[u8; 48], Errno> {
        self.read_array::<48>(ptr)
    }

    pub fn write_u8(&mut self, ptr: u32, value: u8) -> Result<(), Errno> {
        self.write(ptr, &[value])
    }

    pub fn write_u16(&mut self, ptr: u32, value: u16) -> Result<(), Errno> {
        self.write(ptr, &value.to_le_bytes())
    }

    pub fn write_u32(&mut self, ptr: u32, value: u32) -> Result<(), Errno> {
        self.write(ptr, &value.to_le_bytes())
    }

    pub fn write_u64(&mut self, ptr: u32, value: u64) -> Result<(), Errno> {
        self.write(ptr, &value.to_le_bytes())
    }

    /// The `count` iovecs at `ptr`, each checked to lie inside memory
    /// before any I/O happens (so a bad one fails the call with nothing
    /// consumed or written). Up to [`IoVecs::INLINE`] of them need no
    /// allocation.
    ///
    /// More than [`IOV_MAX`] iovecs is `EINVAL`, as for `readv`/`writev` on
    /// Linux: the host copies the table, and a guest with a large memory
    /// could otherwise have it allocate gigabytes for one call.
    pub fn iovecs(&self, ptr: u32, count: u32) -> Result<IoVecs, Errno> {
        if count > IOV_MAX {
            return Err(Errno::Inval);
        }
        let table_len = count.checked_mul(IOVEC_SIZE).ok_or(Errno::Fault)?;
        let table = self.slice(ptr, table_len)?;
        let mut out = SmallVec::with_capacity(count as usize);
        for raw in table.chunks_exact(IOVEC_SIZE as usize) {
            let ptr = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            let len = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
            self.range(ptr, len)?;
            out.push(IoVec { ptr, len });
        }
        Ok(IoVecs(out))
    }

    /// A guest path: `len` bytes at `ptr`, as a host path. Paths are byte
    /// strings on the host, so any bytes but NUL are accepted (a NUL is
    /// `EINVAL`, as the host could not represent it). A path longer than
    /// [`PATH_MAX`] is `ENAMETOOLONG` before anything is copied (as the
    /// host's own calls would say, and without a host copy of up to 4 GiB).
    pub fn path(&self, ptr: u32, len: u32) -> Result<std::path::PathBuf, Errno> {
        use std::os::unix::ffi::OsStrExt;
        if len > PATH_MAX {
            return Err(Errno::NameTooLong);
        }
        let bytes = self.slice(ptr, len)?;
        if bytes.contains(&0) {
            return Err(Errno::Inval);
        }
        Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(bytes)).to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_bounds_is_fault() {
        let mut bytes = vec![0u8; 16];
        let mut mem = GuestMemory::new(&mut bytes);
        assert_eq!(mem.read_u32(12), Ok(0));
        assert_eq!(mem.read_u32(13), Err(Errno::Fault));
        assert_eq!(mem.read_u64(u32::MAX), Err(Errno::Fault));
        assert_eq!(mem.write_u32(u32::MAX - 1, 1), Err(Errno::Fault));
        assert_eq!(mem.slice(16, 0).map(|s| s.len()), Ok(0));
        assert_eq!(mem.slice(17, 0).map(|s| s.len()), Err(Errno::Fault));
        assert!(mem.iovecs(0, u32::MAX).is_err());
    }

    #[test]
    fn iovecs_are_checked() {
        let mut bytes = vec![0u8; 64];
        bytes[0..4].copy_from_slice(&32u32.to_le_bytes());
        bytes[4..8].copy_from_slice(&32u32.to_le_bytes());
        bytes[8..12].copy_from_slice(&40u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&32u32.to_le_bytes());
        let mem = GuestMemory::new(&mut bytes);
        assert_eq!(
            mem.iovecs(0, 1).as_deref(),
            Ok(&[IoVec { ptr: 32, len: 32 }][..])
        );
        assert_eq!(mem.iovecs(0, 2), Err(Errno::Fault));
    }

    #[test]
    fn counts_and_lengths_are_capped_before_anything_is_copied() {
        // A table of 1,025 zero iovecs (each valid: empty at 0) lies in
        // memory, but is one more than IOV_MAX.
        let mut bytes = vec![0u8; 9000];
        let mem = GuestMemory::new(&mut bytes);
        assert_eq!(mem.iovecs(0, IOV_MAX).map(|v| v.len()), Ok(1024));
        assert_eq!(mem.iovecs(0, IOV_MAX + 1), Err(Errno::Inval));
        // Paths: up to PATH_MAX bytes, then ENAMETOOLONG, even in bounds.
        bytes[..PATH_MAX as usize + 1].fill(b'a');
        let mem = GuestMemory::new(&mut bytes);
        assert_eq!(
            mem.path(0, PATH_MAX).map(|p| p.as_os_str().len()),
            Ok(PATH_MAX as usize)
        );
        assert_eq!(mem.path(0, PATH_MAX + 1), Err(Errno::NameTooLong));
    }

    #[test]
    fn many_iovecs_spill_to_the_heap() {
        let mut bytes = vec![0u8; 256];
        for i in 0..12u32 {
            let at = (i * 8) as usize;
            bytes[at..at + 4].copy_from_slice(&(200 + i).to_le_bytes());
            bytes[at + 4..at + 8].copy_from_slice(&1u32.to_le_bytes());
        }
        let mem = GuestMemory::new(&mut bytes);
        let inline = IoVecs::INLINE as u32;
        for count in [0, 1, inline, inline + 1, 12] {
            let iovs = mem.iovecs(0, count).unwrap();
            assert_eq!(iovs.len(), count as usize);
            assert_eq!(iovs.spilled(), count > inline, "{count} iovecs");
            for (i, iov) in iovs.iter().enumerate() {
                assert_eq!(iov.ptr, 200 + i as u32);
            }
        }
    }

    #[test]
    fn empty_memory_faults() {
        let mut mem = GuestMemory::new(&mut []);
        assert_eq!(mem.write_u8(0, 1), Err(Errno::Fault));
        assert_eq!(mem.slice(0, 0).map(|s| s.len()), Ok(0));
    }
}
