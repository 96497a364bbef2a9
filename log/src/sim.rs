//! A simulated file system for crash and power-loss tests (feature `sim`).
//!
//! Every file has two images: the volatile one the journal maps and writes, and the durable one,
//! which holds only what a sync made durable. Directory entries are durable only after
//! `sync_dir`. [`SimVfs::cut_power`] turns the power off: every later sync fails (so nothing
//! more is acknowledged) and it returns the machine as it boots again, holding only durable
//! bytes and entries. That is the power loss the durability tests need: the OS page cache,
//! which survives SIGKILL, is gone.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::heap::HeapBytes;
use crate::vfs::{LockGuard, MappedFile, Vfs};

/// A simulated file system that forgets unsynced bytes at a power cut.
#[derive(Clone, Default)]
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// What the running system sees.
    volatile: BTreeMap<PathBuf, Arc<SimFile>>,
    /// Directory entries that survive a power cut.
    durable: BTreeMap<PathBuf, Arc<SimFile>>,
    locks: HashMap<PathBuf, LockHolders>,
    power_off: bool,
    /// Syncs (of files and directories) that succeed before the power goes off by itself.
    syncs_left: Option<u64>,
    syncs: u64,
    /// How long a sync takes, as a real device's would.
    sync_latency: std::time::Duration,
}

#[derive(Clone, Copy)]
enum LockHolders {
    Exclusive,
    Shared(u32),
}

struct SimFile {
    /// The volatile image; written through raw pointers by the journal.
    memory: HeapBytes,
    durable: Mutex<Vec<u8>>,
    writable: bool,
}

impl SimFile {
    fn new(content: &[u8], writable: bool) -> Arc<SimFile> {
        let memory = HeapBytes::zeroed(content.len()).expect("memory for a simulated file");
        memory
            .write_at(0, content)
            .expect("a simulated file holds its content");
        Arc::new(SimFile {
            memory,
            durable: Mutex::new(content.to_vec()),
            writable,
        })
    }

    /// The volatile image. Only sound while no one writes the file.
    fn volatile_copy(&self) -> Vec<u8> {
        self.memory.prefix(self.memory.len()).to_vec()
    }

    fn durable_copy(&self) -> Vec<u8> {
        lock(&self.durable).clone()
    }
}

/// A file as mapped by one open: shares the file's images.
struct SimMapped {
    file: Arc<SimFile>,
    vfs: SimVfs,
    writable: bool,
}

impl MappedFile for SimMapped {
    fn as_ptr(&self) -> *const u8 {
        self.file.memory.as_ptr()
    }

    fn len_bytes(&self) -> u64 {
        self.file.memory.len() as u64
    }

    fn is_writable(&self) -> bool {
        self.writable && self.file.writable
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if !self.is_writable() {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        self.file.memory.write_at(offset, data)
    }

    fn sync(&self, written_end: u64) -> io::Result<()> {
        let latency = self.vfs.state().sync_latency;
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let mut state = self.vfs.state();
        state.count_sync()?;
        state.syncs += 1;
        // `[0, written_end)` is published journal data (or zeroed by recovery before the
        // segment was shared): nobody writes it any more.
        let bytes = self.file.memory.prefix(written_end as usize);
        lock(&self.file.durable)[..bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}

struct SimLock {
    vfs: SimVfs,
    path: PathBuf,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.vfs.state();
        match state.locks.get(&self.path).copied() {
            Some(LockHolders::Shared(n)) if n > 1 => {
                state
                    .locks
                    .insert(self.path.clone(), LockHolders::Shared(n - 1));
            }
            _ => {
                state.locks.remove(&self.path);
            }
        }
    }
}

impl State {
    /// A sync is about to happen: fails if the power is off, or goes off now.
    fn count_sync(&mut self) -> io::Result<()> {
        if self.syncs_left == Some(0) {
            self.power_off = true;
        }
        if self.power_off {
            return Err(power_off());
        }
        if let Some(left) = &mut self.syncs_left {
            *left -= 1;
        }
        Ok(())
    }
}

fn power_off() -> io::Error {
    io::Error::other("simulated power loss: the device is gone")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimVfs {
    /// An empty file system.
    pub fn new() -> SimVfs {
        SimVfs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Makes every file sync take `latency`, as a device's flush does, so that concurrent
    /// committers overlap as they would on a disk.
    pub fn set_sync_latency(&self, latency: std::time::Duration) {
        self.state().sync_latency = latency;
    }

    /// Lets `syncs` more syncs (of files or directories) succeed, then turns the power off
    /// at the next: a crash at a chosen point of a sequence of durable steps. Call
    /// [`SimVfs::cut_power`] afterwards for the file system as it boots again.
    pub fn power_off_after_syncs(&self, syncs: u64) {
        self.state().syncs_left = Some(syncs);
    }

    /// Turns the power off. Every later sync on this file system fails. Returns the file system
    /// as it comes back: durable directory entries holding durable bytes only.
    pub fn cut_power(&self) -> SimVfs {
        let mut state = self.state();
        state.power_off = true;
        let reborn: BTreeMap<PathBuf, Arc<SimFile>> = state
            .durable
            .iter()
            .map(|(path, file)| (path.clone(), SimFile::new(&file.durable_copy(), true)))
            .collect();
        SimVfs {
            state: Arc::new(Mutex::new(State {
                durable: reborn.clone(),
                volatile: reborn,
                ..State::default()
            })),
        }
    }

    /// Like [`SimVfs::cut_power`], but also lets a random subset of the unsynced 4 KiB pages
    /// reach the disk, as a real device may in any order. Call only while nothing writes.
    pub fn cut_power_tearing(&self, seed: u64) -> SimVfs {
        let reborn = self.cut_power();
        let state = self.state();
        let mut rng = seed;
        let mut reborn_state = reborn.state();
        for (path, file) in &state.durable {
            let volatile = file.volatile_copy();
            let mut image = file.durable_copy();
            for (new, old) in volatile.chunks(4096).zip(image.chunks_mut(4096)) {
                if new != old && next_random(&mut rng).is_multiple_of(2) {
                    old.copy_from_slice(new);
                }
            }
            let file = SimFile::new(&image, true);
            reborn_state.volatile.insert(path.clone(), file.clone());
            reborn_state.durable.insert(path.clone(), file);
        }
        drop(reborn_state);
        reborn
    }

    /// The volatile bytes of a file (as a process after SIGKILL would find them: the page
    /// cache survives). Call only while nothing writes.
    pub fn read(&self, path: &Path) -> Option<Vec<u8>> {
        self.state()
            .volatile
            .get(path)
            .map(|file| file.volatile_copy())
    }

    /// Replaces a file's content, volatile and durable (tests use it to corrupt or cut a
    /// segment between runs). The length must stay the same.
    pub fn overwrite(&self, path: &Path, content: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        let file = SimFile::new(content, true);
        let volatile = state
            .volatile
            .get_mut(path)
            .ok_or(io::ErrorKind::NotFound)?;
        *volatile = file.clone();
        state.durable.insert(path.to_path_buf(), file);
        Ok(())
    }

    /// Paths of every file, in order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.state().volatile.keys().cloned().collect()
    }

    /// Number of successful syncs so far.
    pub fn sync_count(&self) -> u64 {
        self.state().syncs
    }
}

fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Vfs for SimVfs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .state()
            .volatile
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn create_mapped(&self, path: &Path, len_bytes: u64) -> io::Result<Arc<dyn MappedFile>> {
        let mut state = self.state();
        if state.power_off {
            return Err(power_off());
        }
        if state.volatile.contains_key(path) {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        let len = usize::try_from(len_bytes).map_err(|_| io::Error::other("file too large"))?;
        let file = SimFile::new(&vec![0; len], true);
        state.volatile.insert(path.to_path_buf(), file.clone());
        Ok(Arc::new(SimMapped {
            file,
            vfs: self.clone(),
            writable: true,
        }))
    }

    fn open_mapped(&self, path: &Path, writable: bool) -> io::Result<Arc<dyn MappedFile>> {
        let file = self
            .state()
            .volatile
            .get(path)
            .cloned()
            .ok_or(io::ErrorKind::NotFound)?;
        Ok(Arc::new(SimMapped {
            file,
            vfs: self.clone(),
            writable,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state();
        let file = state.volatile.remove(from).ok_or(io::ErrorKind::NotFound)?;
        state.volatile.insert(to.to_path_buf(), file);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.volatile.remove(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state();
        state.count_sync()?;
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        state.durable.retain(|path, _| !in_dir(path));
        let entries: Vec<_> = state
            .volatile
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, file)| (path.clone(), file.clone()))
            .collect();
        state.durable.extend(entries);
        Ok(())
    }

    fn try_lock(&self, path: &Path, exclusive: bool) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut state = self.state();
        let next = match (state.locks.get(path).copied(), exclusive) {
            (None, true) => LockHolders::Exclusive,
            (None, false) => LockHolders::Shared(1),
            (Some(LockHolders::Shared(n)), false) => LockHolders::Shared(n + 1),
            _ => return Ok(None),
        };
        state.locks.insert(path.to_path_buf(), next);
        Ok(Some(Box::new(SimLock {
            vfs: self.clone(),
            path: path.to_path_buf(),
        })))
    }

    fn disk_usage(&self, path: &Path) -> io::Result<u64> {
        let state = self.state();
        let file = state.volatile.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(file.memory.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(file: &dyn MappedFile, offset: usize, data: &[u8]) {
        file.write_at(offset as u64, data).unwrap();
    }

    #[test]
    fn power_cut_keeps_only_synced_bytes_and_entries() {
        let vfs = SimVfs::new();
        let dir = Path::new("/store");
        let synced = vfs.create_mapped(&dir.join("a"), 16).unwrap();
        vfs.sync_dir(dir).unwrap();
        write(&*synced, 0, b"durable!");
        synced.sync(8).unwrap();
        write(&*synced, 8, b"volatile");
        let unsynced_entry = vfs.create_mapped(&dir.join("b"), 16).unwrap();
        unsynced_entry.sync(16).unwrap();

        let reborn = vfs.cut_power();
        assert!(synced.sync(16).is_err(), "syncs fail after the cut");
        assert_eq!(reborn.files(), vec![dir.join("a")]);
        let a = reborn.read(&dir.join("a")).unwrap();
        assert_eq!(&a[..8], b"durable!");
        assert_eq!(&a[8..], &[0; 8]);
    }

    #[test]
    fn locks_exclude() {
        let vfs = SimVfs::new();
        let path = Path::new("/store/lock");
        let shared = vfs.try_lock(path, false).unwrap();
        assert!(shared.is_some());
        assert!(vfs.try_lock(path, false).unwrap().is_some());
        assert!(vfs.try_lock(path, true).unwrap().is_none());
        drop(shared);
    }
}
