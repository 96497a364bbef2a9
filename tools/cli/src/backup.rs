//! `hivelog backup`, `hivelog restore` and `hivelog verify FILE`: backup streams written to
//! and read from files or pipes, and backups and archives checked without a store.

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use hivelog::{BackupInfo, BackupReport, Seq, Store, VerifiedFile};
use indicatif::ProgressBar;
use tempfile::NamedTempFile;

use crate::history::rfc3339;
use crate::progress::{self, CountingReader, CountingWriter};
use crate::store_dir::{
    Ctx, Failure, check_path, fail, open_existing_write, open_staging, open_write,
};

/// `-` in place of a file: stdout for a backup, stdin for a restore.
const STDIO: &str = "-";
/// The key that stands for the whole registry (both hives) in a backup: the base that
/// `recover --from-backup` starts from.
const WHOLE_REGISTRY: &str = "\\";

#[derive(Args)]
pub(crate) struct BackupArgs {
    /// The key whose subtree is backed up; `\` for the whole registry
    pub key: String,
    /// Where the backup goes; `-` for stdout
    pub file: String,
    /// Back up the subtree as it was right after sequence number N [default: the last]
    #[arg(long, value_name = "N")]
    pub at_seq: Option<Seq>,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub(crate) struct CopyFileArgs {
    /// Where the copy of the whole registry goes
    pub file: PathBuf,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub(crate) struct RestoreFileArgs {
    /// A copy of the whole registry (`hivelog copy-file`), verified now and applied at the
    /// store's next open
    #[arg(required_unless_present = "cancel", conflicts_with = "cancel")]
    pub file: Option<PathBuf>,
    /// Unstage the restore staged earlier
    #[arg(long)]
    pub cancel: bool,
}

#[derive(Args)]
pub(crate) struct RestoreArgs {
    /// The key whose subtree the backup replaces (created if missing)
    pub key: String,
    /// The backup; `-` for stdin
    pub file: String,
}

/// `hivelog copy-file FILE`: the whole registry, every hive, layer and descriptor, to one
/// file (a backup of `\`).
pub(crate) fn copy_file(ctx: &Ctx, args: &CopyFileArgs) -> Result<(), Failure> {
    let file = args
        .file
        .to_str()
        .ok_or_else(|| fail(format!("{} is not a UTF-8 path", args.file.display())))?;
    backup(
        ctx,
        &BackupArgs {
            key: WHOLE_REGISTRY.to_string(),
            file: file.to_string(),
            at_seq: None,
            force: args.force,
        },
    )
}

/// `hivelog restore-file FILE` stages a copy of the whole registry for the next open;
/// `--cancel` unstages it.
pub(crate) fn restore_file(ctx: &Ctx, args: &RestoreFileArgs) -> Result<(), Failure> {
    let store = open_staging(ctx)?;
    match &args.file {
        None => {
            if store.cancel_staged_restore()? {
                println!("cancelled the staged restore");
            } else {
                println!("no restore was staged");
            }
        }
        Some(file) => {
            let info = store.stage_restore(file)?;
            println!(
                "staged {} (the whole registry at sequence number {}, {} records): it replaces \
                 the registry at the store's next open",
                file.display(),
                info.seq,
                info.records
            );
        }
    }
    Ok(store.close()?)
}

pub(crate) fn backup(ctx: &Ctx, args: &BackupArgs) -> Result<(), Failure> {
    let whole = args.key == WHOLE_REGISTRY;
    if !whole {
        check_path(ctx, &args.key)?;
    }
    let to_stdout = args.file == STDIO;
    if to_stdout && io::stdout().is_terminal() {
        return Err(fail(
            "refusing to write a backup to a terminal: name a file or redirect stdout",
        ));
    }
    let target = PathBuf::from(&args.file);
    if !to_stdout && !args.force && target.exists() {
        return Err(fail(format!(
            "{} exists; pass --force to replace it",
            target.display()
        )));
    }
    // The backup's audit record is a write: the store opens for writing.
    let store = open_existing_write(ctx)?;
    let at = args.at_seq.unwrap_or_else(|| store.seq());
    let bar = progress::bytes(None, "backup");
    let written = if to_stdout {
        let out = CountingWriter {
            inner: BufWriter::new(io::stdout().lock()),
            bar: bar.clone(),
        };
        take(&store, whole, &args.key, at, out)
    } else {
        to_file(&store, whole, args, at, &target, &bar)
    };
    bar.finish_and_clear();
    let report = written?;
    let line = format!(
        "backup of {} at sequence number {}: {} keys, {} values, {} bytes",
        if whole {
            "the whole registry"
        } else {
            &args.key
        },
        report.seq,
        report.keys,
        report.values,
        report.bytes
    );
    // With the stream on stdout, the summary goes to stderr.
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line} written to {}", target.display());
    }
    store.close()?;
    Ok(())
}

/// Writes the backup to `out` and flushes it.
fn take(
    store: &Store,
    whole: bool,
    key: &str,
    at: Seq,
    mut out: impl Write,
) -> Result<BackupReport, Failure> {
    let report = if whole {
        store.backup_registry(at, &mut out)?
    } else {
        store.backup(key, at, &mut out)?
    };
    out.flush()
        .map_err(|e| fail(format!("writing the backup: {e}")))?;
    Ok(report)
}

/// Writes the backup beside `target` and renames it into place once complete and synced: a
/// failed backup leaves no partial file, and a file it replaces stays whole until then.
fn to_file(
    store: &Store,
    whole: bool,
    args: &BackupArgs,
    at: Seq,
    target: &Path,
    bar: &ProgressBar,
) -> Result<BackupReport, Failure> {
    let dir = parent_dir(target);
    let in_dir = |e: io::Error| fail(format!("writing the backup in {}: {e}", dir.display()));
    let spool = NamedTempFile::new_in(dir).map_err(in_dir)?;
    let out = CountingWriter {
        inner: BufWriter::new(spool.as_file()),
        bar: bar.clone(),
    };
    let report = take(store, whole, &args.key, at, out)?;
    spool.as_file().sync_all().map_err(in_dir)?;
    let persisted = if args.force {
        spool.persist(target)
    } else {
        spool.persist_noclobber(target)
    };
    persisted.map_err(|e| {
        fail(format!(
            "writing the backup to {}: {}",
            target.display(),
            e.error
        ))
    })?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(in_dir)?;
    Ok(report)
}

fn parent_dir(file: &Path) -> &Path {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

pub(crate) fn restore(ctx: &Ctx, args: &RestoreArgs) -> Result<(), Failure> {
    check_path(ctx, &args.key)?;
    let from_stdin = args.file == STDIO;
    // Read the source whole before the store opens: a missing file then changes nothing
    // anywhere, and `hivelog backup K - | hivelog restore K2 -` on one store works, the
    // backup's process having closed the store before the stream ends.
    let spool;
    let source = if from_stdin {
        spool = spool_stdin(ctx)?;
        spool.path().to_path_buf()
    } else {
        let source = PathBuf::from(&args.file);
        File::open(&source).map_err(|e| fail(format!("cannot open {}: {e}", args.file)))?;
        source
    };
    // A backup restores into any store, a new one included.
    let store = open_write(ctx)?;
    let report = progress::while_spinning("restoring", || store.restore_file(&args.key, &source))?;
    let info = &report.backup;
    println!(
        "restored {} from {} (a backup of {} at sequence number {}, {} records): sequence number {}",
        args.key,
        if from_stdin { "stdin" } else { &args.file },
        describe_source(info),
        info.seq,
        info.records,
        report.seq
    );
    Ok(store.close()?)
}

/// Copies stdin into a temporary file in the store's directory (created if need be: the
/// store will be), removed when dropped.
fn spool_stdin(ctx: &Ctx) -> Result<NamedTempFile, Failure> {
    std::fs::create_dir_all(&ctx.dir)?;
    let mut spool = NamedTempFile::new_in(&ctx.dir)?;
    let bar = progress::bytes(None, "reading");
    let copied = io::copy(
        &mut CountingReader {
            inner: io::stdin().lock(),
            bar: bar.clone(),
        },
        spool.as_file_mut(),
    );
    bar.finish_and_clear();
    copied.map_err(|e| fail(format!("reading the backup from stdin: {e}")))?;
    Ok(spool)
}

fn describe_source(info: &BackupInfo) -> &str {
    if info.source_path.is_empty() {
        "the whole registry"
    } else {
        &info.source_path
    }
}

/// `hivelog verify FILE`: a backup, an archive segment, or a directory of archives.
pub(crate) fn verify_file(path: &Path) -> Result<(), Failure> {
    if path.is_dir() {
        return verify_archive_dir(path);
    }
    match hivelog::verify_file(path)? {
        VerifiedFile::Backup(info) => print_backup(path, &info),
        VerifiedFile::Archive(summary) => println!(
            "ok: archive {}: transactions {} to {} ({})",
            path.display(),
            summary.first_seq,
            summary.last_seq,
            summary.transactions
        ),
    }
    Ok(())
}

fn print_backup(path: &Path, info: &BackupInfo) {
    let layers: Vec<String> = info
        .layers
        .iter()
        .map(|(precedence, name)| format!("{name} ({precedence})"))
        .collect();
    println!(
        "ok: backup {}: {} at sequence number {}, taken by {} at {}; {} records, {} bytes; layers {}",
        path.display(),
        describe_source(info),
        info.seq,
        info.principal,
        rfc3339(info.time_unix_nanos),
        info.records,
        info.bytes,
        layers.join(", ")
    );
}

/// Every segment file of an archive directory, in order, and that together they hold one
/// unbroken run of transactions.
fn verify_archive_dir(dir: &Path) -> Result<(), Failure> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    files.retain(|file| file.is_file());
    files.sort();
    if files.is_empty() {
        return Err(fail(format!("{} holds no archive files", dir.display())));
    }
    let mut range: Option<(Seq, Seq)> = None;
    let mut transactions = 0;
    for file in &files {
        let summary = match hivelog::verify_file(file)? {
            VerifiedFile::Archive(summary) => summary,
            VerifiedFile::Backup(_) => {
                return Err(fail(format!(
                    "{} is a backup, not an archive segment",
                    file.display()
                )));
            }
        };
        if let Some((_, last)) = range
            && summary.first_seq != last + 1
        {
            return Err(fail(format!(
                "{} starts at transaction {}, but the archive before it ends at {last}",
                file.display(),
                summary.first_seq
            )));
        }
        let first = range.map_or(summary.first_seq, |(first, _)| first);
        range = Some((first, summary.last_seq));
        transactions += summary.transactions;
    }
    if let Some((first, last)) = range {
        println!(
            "ok: archive {}: {} files, transactions {first} to {last} ({transactions})",
            dir.display(),
            files.len()
        );
    }
    Ok(())
}
