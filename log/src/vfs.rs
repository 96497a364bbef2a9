//! The thin file layer under the journal.
//!
//! Production uses [`OsVfs`]: preallocated files mapped with memmap2, `fdatasync` for durability,
//! `flock` for the store lock. Tests substitute a simulated layer (`sim::SimVfs`, feature `sim`)
//! that keeps synced and unsynced bytes apart, so a test can cut power and keep only what was
//! synced.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use memmap2::MmapRaw;

/// A file system as the journal needs it.
pub trait Vfs: Send + Sync + 'static {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the files directly in `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new file of exactly `len_bytes` zero bytes, backed by real blocks (never
    /// sparse), and maps it writable. Fails if the file exists.
    fn create_mapped(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn MappedFile>>;
    /// Maps an existing file, writable or read-only.
    fn open_mapped(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn MappedFile>>;
    /// Renames a file (used to move salvaged segments aside).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed files) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an advisory lock on `path` (created if missing); `None` if another holder has it.
    fn try_lock(&self, path: &Path, exclusive: bool) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Bytes the file occupies on disk (allocated blocks, as `du` counts them).
    fn disk_usage(&self, path: &Path) -> io::Result<u64>;
}

/// Held while the store lock is held; dropping it releases the lock.
pub trait LockGuard: Send + Sync {}

/// A file mapped into memory for reading, written with positioned writes.
///
/// Readers read through [`MappedFile::as_ptr`]; the journal writes with
/// [`MappedFile::write_at`] only into ranges no reader can see yet (see `segment.rs` for that
/// discipline). The map shares the page cache with the writes, so what is written is what the
/// map shows.
pub trait MappedFile: Send + Sync {
    /// The mapping's start. Valid for `len_bytes()` bytes for as long as the file is alive;
    /// never written through.
    fn as_ptr(&self) -> *const u8;
    /// Length of the file and the mapping.
    fn len_bytes(&self) -> u64;
    /// True if the file may be written.
    fn is_writable(&self) -> bool;
    /// Writes `data` at `offset` (into the page cache; durable after `sync`).
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes every byte written so far durable, at least those in `[0, written_end)`.
    /// The simulated layer persists exactly that range; the OS syncs the whole file.
    fn sync(&self, written_end: u64) -> io::Result<()>;

    /// Writes `[from, to)` to the device and waits for it, claiming no durability (only
    /// [`MappedFile::sync`] does): a large file written beside a busy journal (a base, a
    /// checkpoint) goes out in steps, so its final sync does not hold the device, and every
    /// commit's sync behind it, for long. Layers with nothing to write back do nothing.
    fn write_back(&self, _from: u64, _to: u64) -> io::Result<()> {
        Ok(())
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsVfs;

struct OsMapped {
    file: File,
    /// `None` for an empty file (a segment whose creation a crash interrupted): there is
    /// nothing to map, and recovery removes it.
    map: Option<MmapRaw>,
    writable: bool,
}

fn map_read_only(file: &File) -> io::Result<Option<MmapRaw>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    memmap2::MmapOptions::new()
        .map_raw_read_only(file)
        .map(Some)
}

struct OsLock {
    _file: File,
}

impl LockGuard for OsLock {}

impl MappedFile for OsMapped {
    fn as_ptr(&self) -> *const u8 {
        self.map
            .as_ref()
            .map_or(std::ptr::NonNull::dangling().as_ptr(), MmapRaw::as_ptr)
    }

    fn len_bytes(&self) -> u64 {
        self.map.as_ref().map_or(0, |map| map.len() as u64)
    }

    fn is_writable(&self) -> bool {
        self.writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        // pwrite, not a copy into the map: after each fdatasync the kernel write-protects the
        // pages it cleaned, so the next store through a shared map takes a write fault (with
        // ext4's journal work for blocks of a preallocated extent). Measured on the
        // development machine, a 150-byte append + fdatasync ran 2-3x slower through the
        // map than through pwrite, and slower the fuller the file (ARCHITECTURE.md).
        self.file.write_all_at(data, offset)
    }

    fn write_back(&self, from: u64, to: u64) -> io::Result<()> {
        let (Ok(offset), Ok(len)) = (
            libc::off64_t::try_from(from),
            libc::off64_t::try_from(to - from),
        ) else {
            return Ok(());
        };
        let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER;
        // SAFETY: sync_file_range reads no memory of ours; the descriptor is open.
        let rc = unsafe { libc::sync_file_range(self.file.as_raw_fd(), offset, len, flags) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn sync(&self, _written_end: u64) -> io::Result<()> {
        // fdatasync on the descriptor, not msync on the map: on Linux it also writes the pages
        // dirtied through the shared map, and it measured several times faster than msync of
        // the same range on ext4 (DESIGN.md, "Journal").
        self.file.sync_data()
    }
}

impl Vfs for OsVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn create_mapped(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn MappedFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        preallocate(&file, len_bytes)?;
        // The size and the allocation are metadata: sync them before anything relies on them.
        file.sync_all()?;
        let map = map_read_only(&file)?;
        Ok(Arc::new(OsMapped {
            file,
            map,
            writable: true,
        }))
    }

    fn open_mapped(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn MappedFile>> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let map = map_read_only(&file)?;
        Ok(Arc::new(OsMapped {
            file,
            map,
            writable,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock(&self, path: &Path, exclusive: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let locked = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match locked {
            Ok(()) => Ok(Some(Box::new(OsLock { _file: file }))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(error)) => Err(error),
        }
    }

    fn disk_usage(&self, path: &Path) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        Ok(std::fs::metadata(path)?.blocks() * 512)
    }
}

/// Gives `file` real blocks for `len_bytes` zero bytes.
///
/// Never sparse: a store through a map into a hole on a full disk is SIGBUS, not an error.
/// Where the file system has no fallocate (FUSE, some network file systems), write zeros.
fn preallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len_bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large"))?;
    // SAFETY: fallocate reads no memory of ours; the descriptor is open for writing.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let error = io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => write_zeros(file, len_bytes),
        _ => Err(error),
    }
}

fn write_zeros(mut file: &File, len_bytes: u64) -> io::Result<()> {
    const CHUNK_BYTES: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK_BYTES];
    let mut left = len_bytes;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    Ok(())
}
