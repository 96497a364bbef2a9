//! Point-in-time recovery: `hivelog revert`, `hivelog recover` and `hivelog archive`.

use std::path::PathBuf;

use clap::Args;
use hivelog::Seq;

use crate::progress;
use crate::store_dir::{Ctx, Failure, check_path, open_existing_write, open_read};

#[derive(Args)]
pub(crate) struct RevertArgs {
    /// The key whose subtree is put back
    pub key: String,
    /// Put it back as it was right after sequence number N
    #[arg(long, value_name = "N")]
    pub to_seq: Seq,
}

#[derive(Args)]
pub(crate) struct RecoverArgs {
    /// The sequence number whose state the new store holds
    #[arg(long, value_name = "N")]
    pub to_seq: Seq,
    /// The directory of the new store (must not hold a store)
    #[arg(long, value_name = "DIR")]
    pub into: PathBuf,
    /// Rebuild from this whole-registry backup (`hivelog backup '\' FILE`) instead of the
    /// store's own journal
    #[arg(long, value_name = "FILE")]
    pub from_backup: Option<PathBuf>,
    /// Archives (`hivelog archive`) of the transactions after the backup's cut: directories
    /// or segment files
    #[arg(long, value_name = "DIR", num_args = 1.., requires = "from_backup")]
    pub archive: Vec<PathBuf>,
}

#[derive(Args)]
pub(crate) struct ArchiveArgs {
    /// Archive the transactions after this sequence number
    #[arg(long, value_name = "A")]
    pub from: Seq,
    /// Through this one [default: the last committed]
    #[arg(long, value_name = "B")]
    pub to: Option<Seq>,
    /// The directory the segment files go to (created if missing)
    pub dir: PathBuf,
}

pub(crate) fn revert(ctx: &Ctx, args: &RevertArgs) -> Result<(), Failure> {
    check_path(ctx, &args.key)?;
    let store = open_existing_write(ctx)?;
    let seq = progress::while_spinning("reverting", || store.revert(&args.key, args.to_seq))?;
    println!(
        "reverted {} to sequence number {}: sequence number {seq}",
        args.key, args.to_seq
    );
    Ok(store.close()?)
}

pub(crate) fn recover(ctx: &Ctx, args: &RecoverArgs) -> Result<(), Failure> {
    let recovered = match &args.from_backup {
        Some(backup) => progress::while_spinning("recovering", || {
            hivelog::recover_from_backup(backup, &args.archive, args.to_seq, &args.into)
        })?,
        None => {
            let store = open_read(ctx)?;
            progress::while_spinning("recovering", || store.recover_to(args.to_seq, &args.into))?
        }
    };
    let stats = recovered.stats();
    println!(
        "recovered the state at sequence number {} into {}: {} keys, {} values",
        stats.seq,
        args.into.display(),
        stats.keys,
        stats.values
    );
    Ok(recovered.close()?)
}

pub(crate) fn archive(ctx: &Ctx, args: &ArchiveArgs) -> Result<(), Failure> {
    let store = open_read(ctx)?;
    let to = args.to.unwrap_or_else(|| store.seq());
    let written =
        progress::while_spinning("archiving", || store.archive(args.from, to, &args.dir))?;
    println!(
        "archived transactions {} to {to} into {} file{} in {}",
        args.from + 1,
        written.len(),
        if written.len() == 1 { "" } else { "s" },
        args.dir.display()
    );
    Ok(())
}
