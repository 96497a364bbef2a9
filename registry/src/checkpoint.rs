//! Checkpoints: the index and the tables its entries name, as of a sequence number C,
//! serialized with rkyv, so an open loads them and replays only the journal after C
//! (DESIGN.md, "Index").
//!
//! A file is `magic | format u32 | crc32c u32 | seq u64 | body length u64 | body`; the CRC
//! covers the sequence number, the length and the body, and the body is validated by rkyv
//! and then by every structural check the index and the tables make as they are rebuilt. It
//! is written atomically (temporary file, sync, rename, directory sync) after the journal is
//! synced through C, so a checkpoint never claims a commit the journal could lose.
//!
//! A checkpoint is only ever a shortcut: a damaged one, or one the journal no longer matches
//! (the open checks that C's Commit record and the sealed segments before it are where the
//! checkpoint saw them), is passed over with a warning in the open's report, and the journal
//! is replayed instead. Writers go on while one is written: the index is exported in steps,
//! each under the read lock for a bounded number of keys.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hivelog_index::{Export, ExportRules, ImageError, Index, IndexImage};
use hivelog_log::vfs::{MappedFile, Vfs};
use hivelog_log::{BACKGROUND_WRITE_BYTES_PER_S, CommitPoint, Pace, Resume, SealedSegment, Seq};
use rkyv::rancor::{self, Source as _};
use rkyv::ser::{Positional, Writer as RkyvWriter};

use crate::attrs::{ClassId, ClassNames, KeyAttrs, KeyFlags, SdId};
use crate::descriptors::Descriptors;
use crate::error::{Error, Result};
use crate::layers::Layers;
use crate::links::LinkTargets;
use crate::op::{decode_descriptor, encode_descriptor};
use crate::path::KeyPath;
use crate::store::{Inner, State, VOLATILE_ID_BASE, lock, read_state};
use crate::stored::{Stored, StoredImage};

/// The directory of a store that holds its checkpoints.
pub const CHECKPOINT_DIR: &str = "checkpoints";
const MAGIC: [u8; 8] = *b"HIVECKPT";
const FORMAT_VERSION: u32 = 1;
const HEADER_BYTES: usize = 32;
/// Largest checkpoint an open reads.
pub const CHECKPOINT_MAX_BYTES: u64 = 1 << 38;
/// Keys exported per hold of the state's read lock: a commit waits at most this long for
/// an export (about a tenth of a millisecond). With 2,048, a bulk load of 10 M values that
/// checkpointed as it went lost a third of its rate to the waits.
const EXPORT_STEP_KEYS: usize = 256;
/// The pause between two steps of a background checkpoint's export: a few steps' length,
/// so the export takes a small share of the lock's time and of a core.
const EXPORT_PAUSE: Duration = Duration::from_millis(1);
/// How often the checkpointer looks at the policy.
const POLL: Duration = Duration::from_millis(50);
/// A close writes a checkpoint if the journal grew by at least this much since the last one.
const CLOSE_MIN_BYTES: u64 = 1 << 20;
/// Longest wait for the checkpoint's transaction to become visible (it is durable already).
const VISIBLE_WAIT: Duration = Duration::from_secs(10);

#[derive(rkyv::Archive, rkyv::Serialize)]
struct Image {
    resume: ResumeImage,
    next_key_id: u64,
    links: bool,
    index: IndexImage<StoredImage, AttrsImage>,
    descriptors: Vec<Vec<u8>>,
    classes: Vec<String>,
    layers: Vec<LayerImage>,
    link_targets: Vec<LinkImage>,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct ResumeImage {
    seq: Seq,
    segment: u64,
    commit_at: u64,
    end: u64,
    crc: u32,
    sealed: Vec<SealedImage>,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct SealedImage {
    number: u64,
    first_seq: Seq,
    end: u64,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
pub(crate) struct AttrsImage {
    sd: u32,
    class: u16,
    flags: u8,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct LayerImage {
    id: u16,
    name: String,
    created: Seq,
    dropped: Option<Seq>,
}

#[derive(rkyv::Archive, rkyv::Serialize)]
struct LinkImage {
    id: u64,
    target: String,
}

/// What an open did with the store's checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The checkpoint the open started from, and its sequence number.
    pub loaded: Option<(PathBuf, Seq)>,
    /// Checkpoints passed over (damaged, or not matching the journal), and why: the open
    /// replayed the journal instead. Nothing is lost; a caller may warn.
    pub ignored: Vec<(PathBuf, String)>,
}

/// A checkpoint written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The sequence number it holds the state of.
    pub seq: Seq,
    /// Its file.
    pub file: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Keys (paths) it holds.
    pub keys: u64,
    /// Value versions it holds.
    pub versions: u64,
}

/// When the checkpointer writes one, and what it wrote last. Shared with the checkpointer
/// thread, which decides from it alone (it holds no handle to the store until a checkpoint
/// is due, so dropping the store closes it at once).
pub(crate) struct CheckpointPolicy {
    /// After this many commits since the last (0: not by count).
    pub every_commits: AtomicU64,
    /// After the journal grew this many bytes since the last (0: not by size).
    pub every_bytes: AtomicU64,
    /// The newest visible sequence number (`Inner::publish` keeps it).
    pub visible: AtomicU64,
    /// The journal's count of bytes appended since the open.
    appended: Arc<AtomicU64>,
    /// The store is gone or closing: the thread ends.
    stopped: AtomicBool,
    /// Held by the thread while it holds a handle to the store (writing a checkpoint), so
    /// a close can wait for it to let go.
    busy: Mutex<()>,
    /// The sequence number and `appended` count of the last checkpoint; held while one is
    /// written, so two never run at once.
    last: Mutex<Last>,
}

#[derive(Clone, Copy)]
struct Last {
    seq: Seq,
    /// `appended` when it was written. Counted with wrapping arithmetic: at open it is minus
    /// the bytes the journal holds after the checkpoint the open loaded (all of it after a
    /// full replay), so that growth counts from the checkpoint, not from the open.
    appended: u64,
    /// Its size.
    bytes: u64,
}

impl CheckpointPolicy {
    /// The policy of an open whose last checkpoint holds `seq` in `bytes`, with `tail_bytes`
    /// of journal after it.
    pub(crate) fn new(
        appended: Arc<AtomicU64>,
        seq: Seq,
        bytes: u64,
        tail_bytes: u64,
    ) -> CheckpointPolicy {
        CheckpointPolicy {
            every_commits: AtomicU64::new(0),
            every_bytes: AtomicU64::new(0),
            visible: AtomicU64::new(seq),
            appended,
            stopped: AtomicBool::new(false),
            busy: Mutex::new(()),
            last: Mutex::new(Last {
                seq,
                appended: 0u64.wrapping_sub(tail_bytes),
                bytes,
            }),
        }
    }

    /// Journal bytes since the last checkpoint, given it.
    fn grown(&self, last: &Last) -> u64 {
        self.appended
            .load(Ordering::Relaxed)
            .wrapping_sub(last.appended)
    }

    fn due(&self) -> bool {
        let last = *lock(&self.last);
        let every_commits = self.every_commits.load(Ordering::Relaxed);
        let every_bytes = self.every_bytes.load(Ordering::Relaxed);
        // By size, not before the journal grew twice as much as the last checkpoint takes:
        // then writing checkpoints costs at most half as many bytes as the journal grows,
        // however large the index (a bulk load of 10 M values would otherwise write one
        // every `every_bytes`, each larger than the last, and measured, lose a third of its
        // rate to them).
        (every_commits > 0 && self.visible.load(Ordering::Relaxed) >= last.seq + every_commits)
            || (every_bytes > 0 && self.grown(&last) >= every_bytes.max(2 * last.bytes))
    }

    /// Stops the checkpointer thread, waiting for a checkpoint it is writing: afterwards it
    /// holds no handle to the store and takes none.
    pub(crate) fn stop_and_wait(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        drop(lock(&self.busy));
    }
}

/// Ends the checkpointer thread when the store goes.
pub(crate) struct StopCheckpointer(pub Arc<CheckpointPolicy>);

impl Drop for StopCheckpointer {
    fn drop(&mut self) {
        self.0.stopped.store(true, Ordering::Relaxed);
    }
}

fn file_name(seq: Seq) -> String {
    format!("checkpoint-{seq:020}.hvc")
}

fn parse_file_name(name: &str) -> Option<Seq> {
    name.strip_prefix("checkpoint-")?
        .strip_suffix(".hvc")?
        .parse()
        .ok()
}

/// The checkpoint files in `store_dir`, newest first, and leftover temporary files.
pub(crate) fn list(vfs: &dyn Vfs, store_dir: &Path) -> (Vec<(Seq, PathBuf)>, Vec<PathBuf>) {
    let dir = store_dir.join(CHECKPOINT_DIR);
    let Ok(names) = vfs.list_dir(&dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut files: Vec<(Seq, PathBuf)> = names
        .iter()
        .filter_map(|name| Some((parse_file_name(name)?, dir.join(name))))
        .collect();
    files.sort_by_key(|file| std::cmp::Reverse(file.0));
    let temporary = names
        .iter()
        .filter(|name| name.ends_with(".hvc.tmp"))
        .map(|name| dir.join(name))
        .collect();
    (files, temporary)
}

/// A checkpoint read back: the state as of its sequence number and where the journal
/// resumes.
pub(crate) struct Loaded {
    pub state: State,
    pub resume: Resume,
    pub next_key_id: u64,
    /// The file's size.
    pub bytes: u64,
}

/// Reads, checks and rebuilds the checkpoint in `path`.
pub(crate) fn load(vfs: &dyn Vfs, path: &Path) -> std::result::Result<Loaded, String> {
    let file = vfs.open_mapped(path, false).map_err(|e| e.to_string())?;
    let len = file.len_bytes();
    if len < HEADER_BYTES as u64 || len > CHECKPOINT_MAX_BYTES {
        return Err(format!("{len} bytes is not a checkpoint's size"));
    }
    // SAFETY: the mapping is `len` bytes long and lives as long as `file`; nothing writes a
    // checkpoint after its rename.
    let bytes = unsafe { std::slice::from_raw_parts(file.as_ptr(), len as usize) };
    let (header, body) = bytes.split_at(HEADER_BYTES);
    let word = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if header[..8] != MAGIC {
        return Err("not a checkpoint (bad magic)".into());
    }
    if word(8) != FORMAT_VERSION {
        return Err(format!(
            "format version {} is not {FORMAT_VERSION}",
            word(8)
        ));
    }
    let (seq, body_len) = (long(16), long(24));
    if body_len != body.len() as u64 {
        return Err(format!(
            "truncated: the header says {body_len} bytes follow, {} do",
            body.len()
        ));
    }
    if crc32c::crc32c_append(crc32c::crc32c(&header[16..]), body) != word(12) {
        return Err("checksum mismatch".into());
    }
    // The body starts 32 bytes into a page-aligned mapping; a file layer that gives other
    // addresses gets a copy, for rkyv's alignment.
    let aligned;
    let body = if (body.as_ptr() as usize).is_multiple_of(16) {
        body
    } else {
        let mut copy = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
        copy.extend_from_slice(body);
        aligned = copy;
        &aligned[..]
    };
    let image = rkyv::access::<ArchivedImage, rancor::Error>(body)
        .map_err(|e| format!("invalid contents: {e}"))?;
    if image.resume.seq.to_native() != seq || image.index.at() != seq {
        return Err("the header and the contents disagree on the sequence number".into());
    }
    let mut loaded = rebuild(image)?;
    loaded.bytes = len;
    Ok(loaded)
}

/// The state an image holds, every entry checked against the tables it names.
fn rebuild(image: &ArchivedImage) -> std::result::Result<Loaded, String> {
    let resume = Resume {
        point: CommitPoint {
            seq: image.resume.seq.to_native(),
            segment: image.resume.segment.to_native(),
            commit_at: image.resume.commit_at.to_native(),
            end: image.resume.end.to_native(),
            crc: image.resume.crc.to_native(),
        },
        sealed: image
            .resume
            .sealed
            .iter()
            .map(|sealed| SealedSegment {
                number: sealed.number.to_native(),
                first_seq: sealed.first_seq.to_native(),
                end: sealed.end.to_native(),
            })
            .collect(),
    };
    let mut descriptors = Descriptors::new();
    for (i, encoded) in image.descriptors.iter().enumerate() {
        let descriptor = decode_descriptor(encoded.as_slice())
            .map_err(|short| format!("security descriptor {i}: {}", short.0))?;
        let id = descriptors
            .intern(descriptor)
            .map_err(|e| format!("security descriptor {i}: {e}"))?;
        if id != SdId(i as u32) {
            return Err(format!("security descriptor {i} appears twice"));
        }
    }
    let mut classes = ClassNames::default();
    for (i, class) in image.classes.iter().enumerate() {
        let id = classes
            .intern(class.as_str())
            .map_err(|e| format!("class {i}: {e}"))?;
        if id != ClassId(i as u16 + 1) {
            return Err(format!("class {i} appears twice"));
        }
    }
    let layers = Layers::from_image(image.layers.iter().map(|layer| {
        (
            layer.id.to_native(),
            layer.name.to_string(),
            layer.created.to_native(),
            layer.dropped.as_ref().map(|seq| seq.to_native()),
        )
    }))?;
    let end_of = |segment: u32| {
        let segment = u64::from(segment);
        if segment == resume.point.segment {
            return Some(resume.point.end);
        }
        resume
            .sealed
            .iter()
            .find(|sealed| sealed.number == segment)
            .map(|sealed| sealed.end)
    };
    let (descriptor_count, class_count) = (descriptors.len(), classes.len());
    let index: Index<Stored, KeyAttrs> = Index::from_image(
        &image.index,
        |stored| Stored::from_image(stored, end_of).map_err(ImageError),
        |attrs| {
            let flags = KeyFlags(attrs.flags);
            let known = KeyFlags::LINK.0;
            let (sd, class) = (attrs.sd.to_native(), attrs.class.to_native());
            if sd as usize >= descriptor_count
                || usize::from(class) > class_count
                || flags.0 & !known != 0
            {
                return Err(ImageError(format!(
                    "key attributes name what does not exist (descriptor {sd}, class {class}, \
                     flags {:#x})",
                    flags.0
                )));
            }
            Ok(KeyAttrs {
                sd: SdId(sd),
                class: ClassId(class),
                flags,
            })
        },
    )
    .map_err(|e| e.0)?;
    let mut link_targets = LinkTargets::default();
    for link in image.link_targets.iter() {
        let target = KeyPath::parse(link.target.as_str(), "")
            .map_err(|e| format!("link target of key id {}: {e}", link.id.to_native()))?;
        link_targets.insert(link.id.to_native(), Arc::new(target));
    }
    let next_key_id = image.next_key_id.to_native();
    if next_key_id == 0 || next_key_id >= VOLATILE_ID_BASE {
        return Err(format!("next key id {next_key_id} is out of range"));
    }
    let mut state = State::new();
    state.index = index;
    state.descriptors = descriptors;
    state.classes = classes;
    state.layers = layers;
    state.links = image.links;
    state.link_targets = link_targets;
    Ok(Loaded {
        state,
        resume,
        next_key_id,
        bytes: 0,
    })
}

/// Writes a checkpoint of the newest committed state, unless the last one holds it already.
/// Writes a checkpoint of the newest state, unless the last one holds it; `paced`: at the
/// background pace (`BACKGROUND_WRITE_BYTES_PER_S`), beside writers.
pub(crate) fn write(inner: &Inner, paced: bool) -> Result<Option<CheckpointInfo>> {
    // Not while a compaction moves the records the index names.
    let _turn = lock(&inner.maintenance);
    let mut last = lock(&inner.checkpoints.last);
    let Some(resume) = inner.journal.resume_point() else {
        return Ok(None);
    };
    let at = resume.point.seq;
    if at <= last.seq {
        return Ok(None);
    }
    // At least what the journal held through the point (later commits count for the next).
    let appended_at_point = inner.checkpoints.appended.load(Ordering::Relaxed);
    // The checkpoint must never hold a transaction a power cut could take from the journal.
    inner.journal.sync()?;
    let deadline = Instant::now() + VISIBLE_WAIT;
    while inner.visible() < at {
        if Instant::now() > deadline {
            return Err(Error::Checkpoint {
                reason: format!("transaction {at} did not become visible"),
            });
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let keep_key = |id: u64| id < VOLATILE_ID_BASE;
    // A version whose record is in a segment a compaction's base replaced is one only a
    // snapshot older than the base still reads (it waits for that reader to go): no open
    // after this one has it, nor can read before the base.
    let live = inner.journal.live_segments();
    let value = |stored: &Stored| live.holds(stored.loc).then(|| stored.image()).flatten();
    // Volatile keys are never journaled, so no open after this one knows them.
    let attrs = |attrs: &KeyAttrs| {
        (!attrs.is_volatile()).then_some(AttrsImage {
            sd: attrs.sd.0,
            class: attrs.class.0,
            flags: attrs.flags.0,
        })
    };
    let rules = ExportRules {
        keep_key: &keep_key,
        value: &value,
        attrs: &attrs,
    };
    let mut export = Export::new(at);
    let image = loop {
        inner.yield_to_committers();
        let state = read_state(&inner.state);
        if !state
            .index
            .export_step(&mut export, EXPORT_STEP_KEYS, &rules)
        {
            drop(state);
            // A writer waiting for the lock gets it before the next step; in the background,
            // the writers get as much of the lock's time as the export.
            if paced {
                std::thread::sleep(EXPORT_PAUSE);
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        let keys = export.nodes() as u64;
        let versions = export.versions() as u64;
        // The tables only grow (descriptors, classes) or are versioned (layers): taken now,
        // they name everything the exported index names.
        let image = Image {
            resume: ResumeImage {
                seq: at,
                segment: resume.point.segment,
                commit_at: resume.point.commit_at,
                end: resume.point.end,
                crc: resume.point.crc,
                sealed: resume
                    .sealed
                    .iter()
                    .map(|sealed| SealedImage {
                        number: sealed.number,
                        first_seq: sealed.first_seq,
                        end: sealed.end,
                    })
                    .collect(),
            },
            next_key_id: inner.next_key_id.load(Ordering::Acquire),
            links: state.links,
            index: state.index.finish_export(export),
            descriptors: state.descriptors.all().map(encode_descriptor).collect(),
            classes: state.classes.all().map(str::to_string).collect(),
            layers: state
                .layers
                .image(at)
                .into_iter()
                .map(|(id, name, created, dropped)| LayerImage {
                    id,
                    name,
                    created,
                    dropped,
                })
                .collect(),
            link_targets: state
                .link_targets
                .all()
                .filter(|(id, _)| keep_key(*id))
                .map(|(id, target)| LinkImage {
                    id,
                    target: target.windows(),
                })
                .collect(),
        };
        break (image, keys, versions);
    };
    let (image, keys, versions) = image;
    let vfs = inner.journal.vfs();
    let pace = paced.then(|| Pace::new(BACKGROUND_WRITE_BYTES_PER_S));
    let (file, bytes) = write_file(&**vfs, &inner.dir, at, &image, pace)?;
    drop(image);
    prune(&**vfs, &inner.dir, at);
    *last = Last {
        seq: at,
        appended: appended_at_point,
        bytes,
    };
    Ok(Some(CheckpointInfo {
        seq: at,
        file,
        bytes,
        keys,
        versions,
    }))
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Counts what a serialization writes.
struct Sizer(usize);

impl Positional for Sizer {
    fn pos(&self) -> usize {
        self.0
    }
}

impl<E> RkyvWriter<E> for Sizer {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), E> {
        self.0 += bytes.len();
        Ok(())
    }
}

/// Writes a serialization into the body of a checkpoint file through a small buffer,
/// computing its CRC on the way.
struct BodyWriter<'a> {
    file: &'a dyn MappedFile,
    /// Bytes handed to `write` so far.
    pos: usize,
    /// Bytes written to the file so far.
    flushed: usize,
    buffer: Vec<u8>,
    crc: u32,
    /// The pace of a checkpoint written in the background.
    pace: Option<Pace>,
}

/// The buffer between the serializer and the file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

impl BodyWriter<'_> {
    fn flush(&mut self) -> std::io::Result<()> {
        let at = (HEADER_BYTES + self.flushed) as u64;
        self.file.write_at(at, &self.buffer)?;
        // Out to the device a buffer at a time, so the final sync is short and the
        // journal's commits never queue behind a whole checkpoint.
        self.file.write_back(at, at + self.buffer.len() as u64)?;
        self.crc = crc32c::crc32c_append(self.crc, &self.buffer);
        self.flushed += self.buffer.len();
        if let Some(pace) = &mut self.pace {
            pace.wrote(self.buffer.len() as u64);
        }
        self.buffer.clear();
        Ok(())
    }
}

impl Positional for BodyWriter<'_> {
    fn pos(&self) -> usize {
        self.pos
    }
}

impl RkyvWriter<rancor::Error> for BodyWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), rancor::Error> {
        self.pos += bytes.len();
        if self.buffer.len() + bytes.len() > WRITE_BUFFER_BYTES {
            self.flush().map_err(rancor::Error::new)?;
        }
        if bytes.len() >= WRITE_BUFFER_BYTES {
            let at = (HEADER_BYTES + self.flushed) as u64;
            self.file.write_at(at, bytes).map_err(rancor::Error::new)?;
            self.file
                .write_back(at, at + bytes.len() as u64)
                .map_err(rancor::Error::new)?;
            self.crc = crc32c::crc32c_append(self.crc, bytes);
            self.flushed += bytes.len();
            if let Some(pace) = &mut self.pace {
                pace.wrote(bytes.len() as u64);
            }
        } else {
            self.buffer.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// Writes the checkpoint file atomically: a temporary file, synced, renamed into place, the
/// directory synced. The image is serialized twice, once to learn its size (the file is
/// allocated whole) and once into the file: no copy of it is held in memory, which for 10 M
/// values is 700 MB. Returns the file and its size.
fn write_file(
    vfs: &dyn Vfs,
    store_dir: &Path,
    seq: Seq,
    image: &Image,
    pace: Option<Pace>,
) -> Result<(PathBuf, u64)> {
    let serializing = |e: rancor::Error| Error::Checkpoint {
        reason: format!("serializing: {e}"),
    };
    let body_len = rkyv::api::high::to_bytes_in::<_, rancor::Error>(image, Sizer(0))
        .map_err(serializing)?
        .0;
    let dir = store_dir.join(CHECKPOINT_DIR);
    vfs.create_dir_all(&dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    let path = dir.join(file_name(seq));
    let temporary = dir.join(format!("{}.tmp", file_name(seq)));
    let mut header = [0u8; HEADER_BYTES];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&seq.to_le_bytes());
    header[24..32].copy_from_slice(&(body_len as u64).to_le_bytes());
    let total = (HEADER_BYTES + body_len) as u64;
    let writing = format!("writing {}", temporary.display());
    let file = vfs
        .create_mapped(&temporary, total)
        .map_err(io(writing.clone()))?;
    let body = BodyWriter {
        file: &*file,
        pos: 0,
        flushed: 0,
        buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
        crc: crc32c::crc32c(&header[16..]),
        pace,
    };
    let mut body =
        rkyv::api::high::to_bytes_in::<_, rancor::Error>(image, body).map_err(serializing)?;
    body.flush().map_err(io(writing.clone()))?;
    if body.flushed != body_len {
        return Err(Error::Checkpoint {
            reason: format!(
                "the serialization wrote {} bytes, then {}",
                body_len, body.flushed
            ),
        });
    }
    header[12..16].copy_from_slice(&body.crc.to_le_bytes());
    file.write_at(0, &header).map_err(io(writing.clone()))?;
    file.sync(total).map_err(io(writing))?;
    drop(file);
    vfs.rename(&temporary, &path)
        .map_err(io(format!("renaming {}", temporary.display())))?;
    vfs.sync_dir(&dir)
        .map_err(io(format!("syncing {}", dir.display())))?;
    Ok((path, total))
}

/// Removes every checkpoint but the one just written at `seq` (should it be damaged later,
/// the journal is replayed: an older checkpoint would only shorten that, at the cost of its
/// size on disk), and leftover temporary files. Best effort: a file left behind is passed
/// over or removed next time.
fn prune(vfs: &dyn Vfs, store_dir: &Path, seq: Seq) {
    let (files, temporary) = list(vfs, store_dir);
    for (file_seq, path) in files {
        if file_seq != seq {
            let _ = vfs.remove_file(&path);
        }
    }
    for path in temporary {
        let _ = vfs.remove_file(&path);
    }
    let _ = vfs.sync_dir(&store_dir.join(CHECKPOINT_DIR));
}

/// Removes every checkpoint (a compaction moved the records they name), so none is loaded
/// and passed over at the next open, and lets the next one be written whatever the last
/// held. Best effort: a checkpoint left behind is passed over at the open.
pub(crate) fn remove_all(inner: &Inner) {
    let vfs = inner.journal.vfs();
    prune(&**vfs, &inner.dir, Seq::MAX);
    lock(&inner.checkpoints.last).seq = 0;
}

/// At close: a checkpoint if the journal grew enough since the last, so the next open
/// replays little.
pub(crate) fn at_close(inner: &Inner) -> Result<()> {
    let policy = &inner.checkpoints;
    let last = *lock(&policy.last);
    if inner.visible() > last.seq && policy.grown(&last) >= CLOSE_MIN_BYTES {
        write(inner, false)?;
    }
    Ok(())
}

/// The background thread: writes a checkpoint when the policy says so (with
/// `checkpoints`), and compacts when the retention policy says so (with `compaction`),
/// until the store goes.
pub(crate) fn start(inner: &Arc<Inner>, checkpoints: bool, compaction: bool) -> Result<()> {
    let weak = Arc::downgrade(inner);
    let policy = inner.checkpoints.clone();
    let retention = compaction.then(|| inner.compaction.clone());
    std::thread::Builder::new()
        .name("hivelog-maintenance".into())
        .spawn(move || {
            while !policy.stopped.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                let checkpoint = checkpoints && policy.due();
                let compaction = retention.as_ref().is_some_and(|r| r.worth_a_look());
                if !checkpoint && !compaction {
                    continue;
                }
                let _busy = lock(&policy.busy);
                if policy.stopped.load(Ordering::Relaxed) {
                    return;
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                // A failure (a full disk) is retried at the next turn; the journal holds
                // everything meanwhile.
                if checkpoint {
                    let _ = write(&inner, true);
                }
                if compaction {
                    crate::compact::background_turn(&inner);
                }
            }
        })
        .map_err(io("starting the maintenance thread".into()))?;
    Ok(())
}
