//! The in-memory store: the whole API over a journal kept in memory (`hivelog_log::mem`), so
//! nothing touches the file system, and the embedder's persistence hooks, as Windows CE's
//! OEM registry has them (`WriteRegistryToOEM` / `ReadRegistryFromOEM`): [`Store::flush`]
//! hands the whole registry to a [`Persistence`] as one self-verifying stream (the backup
//! format), and [`Store::in_memory_with`] boots from the image it saved last.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hivelog_log::Seq;
use hivelog_log::mem::MemVfs;

use crate::backup::{Anchor, write_backup};
use crate::error::{Error, Result};
use crate::op::AuditEvent;
use crate::restore::{RestoreTarget, Verified};
use crate::security::SYSTEM;
use crate::store::{Inner, Options, Store};
use crate::txn::Intent;

/// The directory an in-memory store's journal lives in, inside its own memory.
const IN_MEMORY_DIR: &str = "/in-memory";
/// The source a boot's restore records for the image.
const BOOT_SOURCE: &str = "(boot image)";
/// Largest boot image read.
pub const IMAGE_MAX_BYTES: u64 = 16 << 30;

/// Where an in-memory store keeps its image between boots: the embedder's storage (a flash
/// partition, a file, a service).
pub trait Persistence: Send {
    /// The image saved last, or `None` if there is none yet (a first boot).
    fn load(&mut self) -> io::Result<Option<Box<dyn Read + '_>>>;

    /// Saves a new image. `write` writes the whole registry, in chunks, to the writer it is
    /// given; an implementation keeps the previous image until `write` has returned `Ok` and
    /// its own writes succeeded, and only then makes the new one what `load` returns. An
    /// error (from `write` or from the storage) leaves the previous image in place.
    fn save(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()>;
}

/// What a flush wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    /// The sequence number the image holds the registry at.
    pub seq: Seq,
    /// Bytes of the image.
    pub bytes: u64,
}

/// The store's hook, once `in_memory_with` gave it one.
pub(crate) type Hook = Mutex<Box<dyn Persistence>>;

impl Store {
    /// A store kept in memory only: the same keys, values, layers, security, transactions,
    /// snapshots and watches, with no journal on disk (nothing touches the file system,
    /// and everything is gone when the last handle is). `options.vfs`, `sync`, `read_only`
    /// and `follow` are the store's own.
    pub fn in_memory(options: Options) -> Result<Store> {
        let options = Options {
            vfs: Arc::new(MemVfs::new()),
            // A sync of memory is nothing: commits need not wait for one.
            sync: hivelog_log::SyncPolicy::Never,
            read_only: false,
            follow: false,
            salvage: false,
            apply_staged_restore: false,
            ..options
        };
        Store::open_in(Path::new(IN_MEMORY_DIR), options, true)
    }

    /// An in-memory store that boots from `persistence`'s image if it has one (verified
    /// whole first: a damaged or truncated image fails the boot with the error that says
    /// what is wrong, and no store is opened), or starts fresh if it has none, and that
    /// [`flush`](Store::flush) saves to.
    pub fn in_memory_with(
        mut persistence: impl Persistence + 'static,
        options: Options,
    ) -> Result<Store> {
        // Verified whole before there is a store: a bad image opens nothing.
        let image = read_image(&mut persistence)?
            .map(Verified::from_bytes)
            .transpose()?;
        let store = Store::in_memory(options)?;
        if let Some(backup) = image {
            store.system()?.commit(&[Intent::Restore {
                target: RestoreTarget::Registry,
                backup: Arc::new(backup),
                event: AuditEvent::Restore,
                source: BOOT_SOURCE.to_string(),
            }])?;
        }
        let hook: Box<dyn Persistence> = Box::new(persistence);
        if store.inner().persistence.set(Mutex::new(hook)).is_err() {
            unreachable!("a new store has no persistence hook yet");
        }
        // What was booted is what the image holds: nothing to flush yet.
        lock(&store.inner().flush_policy.last).seq = store.seq();
        start_flusher(&store)?;
        Ok(store)
    }

    /// Saves the whole registry (every hive, layer and descriptor, as it is now) through
    /// the store's persistence hook, streamed in bounded memory. A failure returns the error
    /// and changes nothing: the store keeps working, and the next flush starts from scratch.
    /// The parameters FlushEveryCommits and FlushIntervalMs make the store flush by itself.
    pub fn flush(&self) -> Result<FlushReport> {
        flush(self.inner())
    }

    /// Why the last flush the store made by itself (by FlushEveryCommits or
    /// FlushIntervalMs) failed, if it did; `None` once one succeeds again.
    pub fn last_flush_failure(&self) -> Option<String> {
        lock(&self.inner().flush_policy.last).failure.clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When a store with a persistence hook flushes by itself, and how the last flush went.
#[derive(Default)]
pub(crate) struct FlushPolicy {
    /// Flush once this many commits have come since the last flush (0: never).
    pub every_commits: AtomicU64,
    /// Flush this long after a change (0: never).
    pub interval_ms: AtomicU64,
    last: Mutex<LastFlush>,
}

#[derive(Default)]
struct LastFlush {
    /// The sequence number the last good image holds.
    seq: Seq,
    /// Why the last flush failed, until one succeeds.
    failure: Option<String>,
}

/// How often the flusher looks at the policy.
const FLUSH_POLL: Duration = Duration::from_millis(10);

fn flush(inner: &Inner) -> Result<FlushReport> {
    let Some(hook) = inner.persistence.get() else {
        return Err(Error::NoPersistence);
    };
    let mut persistence = lock(hook);
    let seq = inner.visible();
    let mut written = None;
    let mut failed = None;
    let saved =
        persistence.save(
            &mut |out| match write_backup(inner, Anchor::Registry, seq, out, SYSTEM) {
                Ok(report) => {
                    written = Some(report.bytes);
                    Ok(())
                }
                Err(error) => {
                    let message = error.to_string();
                    failed = Some(error);
                    Err(io::Error::other(message))
                }
            },
        );
    let result = match (saved, failed, written) {
        (_, Some(error), _) => Err(error),
        (Err(source), None, _) => Err(Error::Io {
            what: "saving the registry's image".into(),
            source,
        }),
        (Ok(()), None, Some(bytes)) => Ok(FlushReport { seq, bytes }),
        (Ok(()), None, None) => Err(Error::Io {
            what: "saving the registry's image".into(),
            source: io::Error::other("the persistence hook saved without writing the image"),
        }),
    };
    let mut last = lock(&inner.flush_policy.last);
    match &result {
        Ok(report) => {
            last.seq = report.seq;
            last.failure = None;
        }
        Err(error) => last.failure = Some(error.to_string()),
    }
    result
}

/// The flusher: flushes when the policy says so, until the store goes.
fn start_flusher(store: &Store) -> Result<()> {
    let weak = Arc::downgrade(store.inner());
    std::thread::Builder::new()
        .name("hivelog-flush".into())
        .spawn(move || {
            let mut changed_at: Option<(Seq, Instant)> = None;
            loop {
                std::thread::sleep(FLUSH_POLL);
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let policy = &inner.flush_policy;
                let every = policy.every_commits.load(Ordering::Relaxed);
                let interval = policy.interval_ms.load(Ordering::Relaxed);
                let visible = inner.visible();
                let flushed = lock(&policy.last).seq;
                if visible <= flushed {
                    changed_at = None;
                    continue;
                }
                // The first change since the last flush starts the interval.
                let since = *changed_at.get_or_insert((visible, Instant::now()));
                let by_count = every > 0 && visible - flushed >= every;
                let by_time = interval > 0 && since.1.elapsed() >= Duration::from_millis(interval);
                if by_count || by_time {
                    // A failure is kept for `last_flush_failure`; the next turn retries.
                    if flush(&inner).is_ok() {
                        changed_at = None;
                    }
                }
            }
        })
        .map_err(|source| Error::Io {
            what: "starting the flush thread".into(),
            source,
        })?;
    Ok(())
}

/// The hook's image, whole, bounded by IMAGE_MAX_BYTES.
fn read_image(persistence: &mut dyn Persistence) -> Result<Option<Vec<u8>>> {
    let failed = |source| Error::Io {
        what: "reading the registry's image".into(),
        source,
    };
    let Some(reader) = persistence.load().map_err(failed)? else {
        return Ok(None);
    };
    let mut image = Vec::new();
    reader
        .take(IMAGE_MAX_BYTES + 1)
        .read_to_end(&mut image)
        .map_err(failed)?;
    if image.len() as u64 > IMAGE_MAX_BYTES {
        return Err(Error::BadBackup {
            reason: format!("the image is larger than IMAGE_MAX_BYTES ({IMAGE_MAX_BYTES})"),
        });
    }
    Ok(Some(image))
}

/// An image in a file, replaced atomically: a save writes a temporary file beside it, syncs
/// it, renames it over the file and syncs the directory, so a failure or a crash at any
/// point leaves the previous image (or the new one, whole).
#[derive(Debug, Clone)]
pub struct FileImage {
    path: PathBuf,
}

impl FileImage {
    /// The image at `path` (which need not exist yet: a first boot).
    pub fn new(path: impl AsRef<Path>) -> FileImage {
        FileImage {
            path: path.as_ref().to_path_buf(),
        }
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }
}

impl Persistence for FileImage {
    fn load(&mut self) -> io::Result<Option<Box<dyn Read + '_>>> {
        match File::open(&self.path) {
            Ok(file) => Ok(Some(Box::new(io::BufReader::with_capacity(1 << 20, file)))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    fn save(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let temp = tempfile::Builder::new()
            .prefix(".hivelog-image-")
            .tempfile_in(self.dir())?;
        let mut out = BufWriter::with_capacity(1 << 20, temp.as_file());
        write(&mut out)?;
        out.flush()?;
        drop(out);
        temp.as_file().sync_all()?;
        temp.persist(&self.path).map_err(|error| error.error)?;
        File::open(self.dir())?.sync_all()
    }
}

/// An image in memory, for tests and for embedders that move it themselves. Clones share
/// the image: keep one to read what the store saved, or to boot another store from it.
#[derive(Debug, Clone, Default)]
pub struct VecImage {
    image: Arc<Mutex<Option<Vec<u8>>>>,
}

impl VecImage {
    /// No image yet: a store booted from it starts fresh.
    pub fn new() -> VecImage {
        VecImage::default()
    }

    /// An image to boot from.
    pub fn with(image: Vec<u8>) -> VecImage {
        VecImage {
            image: Arc::new(Mutex::new(Some(image))),
        }
    }

    /// The image saved last.
    pub fn image(&self) -> Option<Vec<u8>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.image
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Persistence for VecImage {
    fn load(&mut self) -> io::Result<Option<Box<dyn Read + '_>>> {
        Ok(self
            .image()
            .map(|image| Box::new(io::Cursor::new(image)) as Box<dyn Read + '_>))
    }

    fn save(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let mut image = Vec::new();
        write(&mut image)?;
        *self.lock() = Some(image);
        Ok(())
    }
}
