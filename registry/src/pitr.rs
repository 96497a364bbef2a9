//! Point-in-time recovery: a subtree put back as it was (`revert`), a new store holding the
//! state at a sequence number (`recover_to`), archives of the journal (`archive`), and a new
//! store rebuilt from a whole-registry backup plus archives (`recover_from_backup`).
//!
//! History is never rewritten: a revert is one new transaction (a restore of the subtree's
//! own past, audited as a revert), and a recovery builds another store.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use hivelog_log::archive::{Base, SegmentSummary, archive, assemble, verify_segment_file};
use hivelog_log::stream::STREAM_MAGIC;
use hivelog_log::{Rejected, SEGMENT_MAGIC, SEGMENT_SIZE_DEFAULT_BYTES, Seq};

use crate::backup::BackupInfo;
use crate::op::Op;
use crate::restore::verify_backup_file;

use crate::backup::{Anchor, write_backup};
use crate::error::{Error, Result};
use crate::op::AuditEvent;
use crate::restore::Verified;
use crate::security::Privileges;
use crate::store::{Options, Store};
use crate::txn::Intent;

impl Store {
    /// Puts the key at `path` and its subtree back as they were right after sequence number
    /// `at`, as one new transaction (audited as a revert; history keeps what came between).
    /// If the key did not exist then, its tree is deleted. Needs SeRestorePrivilege.
    pub fn revert(&self, path: &str, at: Seq) -> Result<Seq> {
        self.session_ref()
            .require(Privileges::RESTORE, &format!("a revert of {path}"))?;
        let last = self.seq();
        if at > last {
            return Err(Error::FutureSeq { seq: at, last });
        }
        let key_path = self.parse(path)?;
        let spool = tempfile::tempfile_in(self.dir()).map_err(|source| Error::Io {
            what: "creating the revert's spool file".into(),
            source,
        })?;
        let audit = Intent::Audit {
            event: AuditEvent::Revert,
            path: key_path.to_string(),
            source: key_path.to_string(),
            seq: at,
        };
        match write_backup(
            self.inner(),
            Anchor::Key(&key_path),
            at,
            &spool,
            self.principal(),
        ) {
            Ok(_) => {
                let backup = Verified::from_file(&spool)?;
                Ok(self.apply_backup(path, backup, AuditEvent::Revert)?.seq)
            }
            Err(Error::KeyNotFound { .. }) => {
                let mut tx = self.transaction();
                tx.delete_tree(path)?;
                tx.push_intent(audit);
                tx.commit()
            }
            Err(error) => Err(error),
        }
    }

    /// Writes the journal's transactions in (`from`, `to`] into segment files in `dir`:
    /// archives that, with a whole-registry backup taken at `from`, rebuild any state up to
    /// `to` (`recover_from_backup`). Needs SeBackupPrivilege (they hold every key).
    pub fn archive(&self, from: Seq, to: Seq, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        self.session_ref()
            .require(Privileges::BACKUP, "an archive of the journal")?;
        Ok(archive(&self.inner().journal, from, to, dir.as_ref())?)
    }

    /// Builds a new store in `into` holding exactly the state right after sequence number
    /// `to`, with its history up to there (a copy of the journal through `to`). Needs
    /// SeBackupPrivilege.
    pub fn recover_to(&self, to: Seq, into: impl AsRef<Path>) -> Result<Store> {
        self.session_ref()
            .require(Privileges::BACKUP, "a recovery of the registry")?;
        self.inner().retention.check(to)?;
        let into = into.as_ref();
        let journal = into.join("journal");
        refuse_existing(&journal)?;
        archive(&self.inner().journal, 0, to, &journal)?;
        Store::open(into, Options::default())
    }
}

fn refuse_existing(journal: &Path) -> Result<()> {
    if journal.exists() {
        return Err(Error::Log(hivelog_log::LogError::NotEmpty {
            path: journal.to_path_buf(),
        }));
    }
    Ok(())
}

/// Builds a new store in `into` holding the state right after sequence number `to`, from a
/// backup of the whole registry (`Store::backup_registry`, taken at some A ≤ `to`) and the
/// archives (`Store::archive`) of transactions A+1..`to`: directories of segment files, or
/// files. Everything is verified as it is read; a gap in the archives is an error naming it.
pub fn recover_from_backup(
    backup: impl AsRef<Path>,
    archives: &[PathBuf],
    to: Seq,
    into: impl AsRef<Path>,
) -> Result<Store> {
    let backup = Verified::open(backup.as_ref())?;
    if backup.info.anchor != 0 {
        return Err(Error::BadBackup {
            reason: format!(
                "it is of {}, not of the whole registry (take it with backup_registry)",
                backup.info.source_path
            ),
        });
    }
    let into = into.as_ref();
    let journal = into.join("journal");
    refuse_existing(&journal)?;
    let base = Base {
        stream: backup.bytes(),
        seq: backup.info.seq,
        principal: &backup.info.principal,
        time_unix_nanos: backup.info.time_unix_nanos,
    };
    assemble(base, archives, to, SEGMENT_SIZE_DEFAULT_BYTES, &journal)?;
    Store::open(into, Options::default())
}

/// Checks an archive segment file on its own: every frame, every transaction's structure,
/// every record's payload, the seal.
pub fn verify_archive_file(file: impl AsRef<Path>) -> Result<SegmentSummary> {
    Ok(verify_segment_file(file.as_ref(), &mut |txn| {
        for op in txn.ops {
            Op::decode(op.payload).map_err(|short| Rejected(short.0.to_string()))?;
        }
        Ok(())
    })?)
}

/// What [`verify_file`] found a file to be, once checked whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedFile {
    /// A backup stream (`Store::backup`), as it describes itself.
    Backup(BackupInfo),
    /// An archive segment (`Store::archive`): the transactions it holds.
    Archive(SegmentSummary),
}

/// Checks a backup stream or an archive segment, telling which by its first bytes, without
/// a store: [`verify_backup_file`] or [`verify_archive_file`].
pub fn verify_file(file: impl AsRef<Path>) -> Result<VerifiedFile> {
    let file = file.as_ref();
    let mut magic = Vec::with_capacity(STREAM_MAGIC.len());
    File::open(file)
        .and_then(|f| f.take(STREAM_MAGIC.len() as u64).read_to_end(&mut magic))
        .map_err(|source| Error::Io {
            what: format!("reading {}", file.display()),
            source,
        })?;
    match magic.as_slice() {
        m if m == STREAM_MAGIC => Ok(VerifiedFile::Backup(verify_backup_file(file)?)),
        m if m == SEGMENT_MAGIC => Ok(VerifiedFile::Archive(verify_archive_file(file)?)),
        _ => Err(Error::BadBackup {
            reason: format!(
                "{} is neither a hivelog backup nor an archive segment (it does not start with \
                 either's magic)",
                file.display()
            ),
        }),
    }
}
