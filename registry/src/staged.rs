//! A restore of the whole registry staged for the next open (`hivelog restore-file`): the
//! backup is verified when it is staged and kept in the store's directory; the next writable
//! open applies it, before anyone else sees the store, as one transaction (both hives
//! replaced, as a restore replaces a key). A crash at any point leaves the old registry or
//! the new one: the transaction commits whole or not at all, and the file is removed only
//! after it committed. A crash between the commit and the removal is recognised at the next
//! open by the transaction's audit record, which names the staged file, so it is never
//! applied twice.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

use hivelog_log::Seq;

use crate::backup::BackupInfo;
use crate::error::{Error, Result};
use crate::op::{AuditEvent, Op};
use crate::restore::{RestoreTarget, Verified};
use crate::security::Privileges;
use crate::store::Store;
use crate::txn::Intent;

/// The staged backup, in the store's directory.
pub const STAGED_RESTORE_FILE: &str = "staged-restore.hvb";
/// Where it is written before it is renamed into place.
const STAGING_FILE: &str = "staged-restore.hvb.tmp";

fn io(what: String) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// How the audit records name a staged backup: its file and its checksum and length, which
/// tell one staged backup from another.
fn staged_source(backup: &Verified) -> String {
    let bytes = backup.bytes();
    // The trailer ends `crc u32 | 0 u32`: the CRC is 8 to 4 bytes from the end.
    let crc = bytes
        .len()
        .checked_sub(8)
        .and_then(|start| bytes.get(start..start + 4))
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    format!("{STAGED_RESTORE_FILE} {crc:08x} {} bytes", bytes.len())
}

impl Store {
    /// Verifies the backup of the whole registry in `file` (`Store::backup_registry`,
    /// `hivelog copy-file`) and stages it: the next writable open of the store replaces both
    /// hives with it, atomically. A backup staged earlier is replaced. Needs
    /// SeRestorePrivilege; audited.
    pub fn stage_restore(&self, file: impl AsRef<Path>) -> Result<BackupInfo> {
        let file = file.as_ref();
        self.session_ref()
            .require(Privileges::RESTORE, "staging a restore of the registry")?;
        if self.inner().in_memory {
            return Err(Error::NotOnDisk {
                what: "directory to stage a restore in (restore the file instead)",
            });
        }
        let backup = Verified::open(file)?;
        if backup.info.anchor != 0 {
            return Err(Error::BadBackup {
                reason: format!(
                    "{} is a backup of {}, not of the whole registry",
                    file.display(),
                    backup.info.source_path
                ),
            });
        }
        let dir = self.dir();
        let staging = dir.join(STAGING_FILE);
        File::create(&staging)
            .and_then(|mut out| {
                out.write_all(backup.bytes())?;
                out.sync_all()
            })
            .map_err(io(format!("writing {}", staging.display())))?;
        fs::rename(&staging, dir.join(STAGED_RESTORE_FILE))
            .map_err(io(format!("renaming {}", staging.display())))?;
        sync_dir(dir)?;
        let mut tx = self.transaction();
        tx.push_intent(Intent::Audit {
            event: AuditEvent::Stage,
            path: String::new(),
            source: file.display().to_string(),
            seq: backup.info.seq,
        });
        tx.commit()?;
        Ok(backup.info.clone())
    }

    /// Removes a staged restore; `false` if there was none. Needs SeRestorePrivilege;
    /// audited.
    pub fn cancel_staged_restore(&self) -> Result<bool> {
        self.session_ref()
            .require(Privileges::RESTORE, "cancelling a staged restore")?;
        let staged = self.dir().join(STAGED_RESTORE_FILE);
        match fs::remove_file(&staged) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(io(format!("removing {}", staged.display()))(error)),
        }
        sync_dir(self.dir())?;
        let mut tx = self.transaction();
        tx.push_intent(Intent::Audit {
            event: AuditEvent::Unstage,
            path: String::new(),
            source: STAGED_RESTORE_FILE.to_string(),
            seq: self.seq(),
        });
        tx.commit()?;
        Ok(true)
    }

    /// What a staged restore holds, if one is staged (verified again).
    pub fn staged_restore(&self) -> Result<Option<BackupInfo>> {
        let staged = self.dir().join(STAGED_RESTORE_FILE);
        if !staged.exists() {
            return Ok(None);
        }
        Ok(Some(Verified::open(&staged)?.info))
    }
}

/// Applies the staged restore, if there is one, as the system principal (the store itself:
/// an open, before the store is handed out). Returns the restore's sequence number.
pub(crate) fn apply_staged(store: &Store) -> Result<Option<Seq>> {
    let dir = store.dir();
    let staged = dir.join(STAGED_RESTORE_FILE);
    if !staged.exists() {
        return Ok(None);
    }
    let backup = Verified::open(&staged).map_err(|error| Error::BadBackup {
        reason: format!(
            "the staged restore {} cannot be applied ({error}); move it out of the store's \
             directory to open the store without it",
            staged.display()
        ),
    })?;
    let source = staged_source(&backup);
    let store = store.system()?;
    let seq = if last_txn_applied(&store, &source)? {
        // Applied, and the process stopped before it could remove the file.
        None
    } else {
        Some(store.commit(&[Intent::Restore {
            target: RestoreTarget::Registry,
            backup: Arc::new(backup),
            event: AuditEvent::Restore,
            source,
        }])?)
    };
    fs::remove_file(&staged).map_err(io(format!("removing {}", staged.display())))?;
    sync_dir(dir)?;
    Ok(seq)
}

/// Whether the journal's last transaction is the restore of the staged backup `source`.
fn last_txn_applied(store: &Store, source: &str) -> Result<bool> {
    let journal = &store.inner().journal;
    let last = journal.last_seq();
    let mut applied = false;
    journal.for_each_txn(last, last, &mut |txn| {
        applied = txn.ops.iter().any(|op| {
            matches!(
                Op::decode(op.payload),
                Ok(Op::Audit { event: AuditEvent::Restore, source: s, .. }) if s == source
            )
        });
        Ok(())
    })?;
    Ok(applied)
}
