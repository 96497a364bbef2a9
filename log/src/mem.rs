//! A file system in memory, for a journal that never touches the disk (an in-memory store).
//! Files are zeroed heap allocations of their full size (the allocator takes them from the
//! OS as untouched pages, so a preallocated segment costs only what is written into it);
//! a sync does nothing, since nothing outlives the process; the lock is always granted,
//! since no other process can see the files.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::heap::HeapBytes;
use crate::vfs::{LockGuard, MappedFile, Vfs};

/// Largest file a MemVfs creates (a segment's largest size, with room to spare).
const MEM_FILE_MAX_BYTES: u64 = 1 << 32;

/// An in-memory file system; clones share it.
#[derive(Clone, Default)]
pub struct MemVfs {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, Arc<HeapBytes>>,
}

impl MemVfs {
    /// An empty file system.
    pub fn new() -> MemVfs {
        MemVfs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct MemMapped {
    file: Arc<HeapBytes>,
    writable: bool,
}

impl MappedFile for MemMapped {
    fn as_ptr(&self) -> *const u8 {
        self.file.as_ptr()
    }

    fn len_bytes(&self) -> u64 {
        self.file.len() as u64
    }

    fn is_writable(&self) -> bool {
        self.writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        self.file.write_at(offset, data)
    }

    fn sync(&self, _written_end: u64) -> io::Result<()> {
        Ok(())
    }
}

struct MemLock;

impl LockGuard for MemLock {}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} does not exist in memory", path.display()),
    )
}

impl Vfs for MemVfs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .files
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| Some(path.file_name()?.to_str()?.to_string()))
            .collect())
    }

    fn create_mapped(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn MappedFile>> {
        let mut state = self.state();
        if state.files.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        if len_bytes > MEM_FILE_MAX_BYTES {
            return Err(io::Error::other("an in-memory file is at most 4 GiB"));
        }
        let file = Arc::new(HeapBytes::zeroed(len_bytes as usize)?);
        state.files.insert(path.to_path_buf(), file.clone());
        Ok(Arc::new(MemMapped {
            file,
            writable: true,
        }))
    }

    fn open_mapped(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn MappedFile>> {
        let file = self.state().files.get(path).cloned();
        let file = file.ok_or_else(|| not_found(path))?;
        Ok(Arc::new(MemMapped { file, writable }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let file = state.files.remove(from).ok_or_else(|| not_found(from))?;
        state.files.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.state()
            .files
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn try_lock(&self, _path: &Path, _exclusive: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        Ok(Some(Box::new(MemLock)))
    }

    fn disk_usage(&self, _path: &Path) -> io::Result<u64> {
        // Nothing is on a disk.
        Ok(0)
    }
}
