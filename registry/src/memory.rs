//! The in-memory store: the whole API over a journal kept in memory (`hivelog_log::mem`), so
//! nothing touches the file system, and the embedder's persistence hooks, as Windows CE's
//! OEM registry has them (`WriteRegistryToOEM` / `ReadRegistryFromOEM`): [`Store::flush`]
//! hands the whole registry to a [`Persistence`] as one self-verifying stream (the backup
//! format), and [`Store::in_memory_with`] boots from the image it saved last.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hivelog_log::Seq;
use hivelog_log::mem::MemVfs;

use crate::backup::{Anchor, write_backup};
use crate::error::{Error, Result};
use crate::op::AuditEvent;
use crate::restore::{RestoreTarget, Verified};
use crate::security::SYSTEM;
use crate::store::{Options, Store};
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
        Ok(store)
    }

    /// Saves the whole registry (every hive, layer and descriptor, as it is now) through
    /// the store's persistence hook, streamed in bounded memory. A failure returns the error
    /// and changes nothing: the store keeps working, and the next flush starts from scratch.
    pub fn flush(&self) -> Result<FlushReport> {
        let Some(hook) = self.inner().persistence.get() else {
            return Err(Error::NoPersistence);
        };
        let mut persistence = hook.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let seq = self.seq();
        let mut written = None;
        let mut failed = None;
        let saved = persistence.save(&mut |out| match write_backup(
            self.inner(),
            Anchor::Registry,
            seq,
            out,
            SYSTEM,
        ) {
            Ok(report) => {
                written = Some(report.bytes);
                Ok(())
            }
            Err(error) => {
                let message = error.to_string();
                failed = Some(error);
                Err(io::Error::other(message))
            }
        });
        match (saved, failed, written) {
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
        }
    }
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
