//! `hivelog`: the command-line tool of the hivelog registry store.
//!
//! Exit status: 0 on success, 1 on an error (one line on stderr), 2 on a usage error.

mod access;
mod backup;
mod bench;
mod commands;
mod format;
mod history;
mod hive;
mod progress;
mod query;
mod recovery;
mod reg;
mod store_dir;
mod watch;

use store_dir::Ctx;
pub(crate) use store_dir::Failure;

// The binary's choice, not the library's: the store allocates many small, long-lived objects
// (index nodes, value slots), where mimalloc measured faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// A registry store: a tree of keys holding typed values, kept in an append-only journal.
#[derive(Parser)]
#[command(name = "hivelog", version, propagate_version = true)]
struct Cli {
    /// The store directory [default: $HIVELOG_STORE, else the user's data directory]
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,

    /// Work on an offline hive file instead of a store (add, query, delete, import, export,
    /// acl, owner); a change saves it atomically, add and import create it
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "store")]
    hive: Option<PathBuf>,

    /// With --hive: the key the hive's root stands for in .reg files (e.g.
    /// HKLM\Software\App), recorded when the hive is saved [default: the key it was backed
    /// up from]
    #[arg(long, global = true, value_name = "KEY", requires = "hive")]
    mount: Option<String>,

    /// Run the command on an in-memory store booted from --persist FILE (fresh if FILE does
    /// not exist yet) and saved back to it if the command changed anything
    #[arg(long, global = true, requires = "persist", conflicts_with_all = ["store", "hive"])]
    memory: bool,

    /// With --memory: the image file (the whole registry, in the backup format)
    #[arg(long, global = true, value_name = "FILE", requires = "memory")]
    persist: Option<PathBuf>,

    /// Act as principal P (a SID or a name); needs SeImpersonatePrivilege
    #[arg(long = "as", global = true, value_name = "P")]
    as_principal: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create the store (with its hives) if it does not exist; --seed restores a backup
    /// into Machine on its first boot.
    Init(commands::InitArgs),
    /// Print changes under a key as they are committed (by any process), until interrupted.
    Watch(watch::WatchArgs),
    /// List the operational parameters: default, stored value, value in force, and why
    /// they differ.
    Config {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a key (and missing parents), and set a value if one is named (as `reg add`).
    Add(AddArgs),
    /// Print a key's values and subkeys (as `reg query`).
    Query(QueryArgs),
    /// Delete a key and its subtree, or values of it (as `reg delete`).
    Delete(DeleteArgs),
    /// Print the last committed sequence number.
    Seq,
    /// Replay committed transactions: sequence number, time, principal and every change.
    Log(history::LogArgs),
    /// The audit trail: backups, restores, reverts, staged restores, rejected parameters, and
    /// changes that needed a privilege.
    Audit(history::HistoryArgs),
    /// Check every record of the store, or (given FILE) a backup or archive without a store;
    /// exit 0 only if all is sound.
    Verify {
        /// A backup, an archive segment, or a directory of archive segments
        file: Option<PathBuf>,
    },
    /// Write a point-in-time backup of a key's subtree (needs SeBackupPrivilege).
    Backup(backup::BackupArgs),
    /// Replace a key's subtree with a backup, in one transaction (needs SeRestorePrivilege).
    Restore(backup::RestoreArgs),
    /// Put a key's subtree back as it was at a sequence number, as one new transaction.
    Revert(recovery::RevertArgs),
    /// Build a new store holding exactly the state at a sequence number.
    Recover(recovery::RecoverArgs),
    /// Write the journal's transactions in (A, B] as verifiable segment files.
    Archive(recovery::ArchiveArgs),
    /// Copy the whole registry (every hive, layer and descriptor) to one file.
    CopyFile(backup::CopyFileArgs),
    /// Stage a copy of the whole registry: the store's next open replaces the registry with it.
    RestoreFile(backup::RestoreFileArgs),
    /// Make every commit so far durable now, whatever the sync policy.
    Flush {
        /// A key (all keys share one journal: every commit is flushed)
        key: Option<String>,
    },
    /// Write a checkpoint of the newest state now, so the next open replays only what follows.
    Checkpoint,
    /// Compact the history outside the retention window now: the state at the cut is kept,
    /// the transactions before it go (to the archive first, if one is configured).
    Compact {
        /// Keep this many of the newest commits (default: HistoryKeepCommits in force)
        #[arg(long, value_name = "N")]
        keep_commits: Option<u64>,
        /// Keep every commit of this many seconds back (default: HistoryKeepSeconds in
        /// force)
        #[arg(long, value_name = "S")]
        keep_seconds: Option<u64>,
    },
    /// Sequence number, keys, values, segments, bytes on disk, index memory.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print or set a key's security descriptor, as SDDL.
    Acl {
        #[command(subcommand)]
        command: AclCommand,
    },
    /// Make principal P the owner of a key.
    Owner {
        /// The key
        key: String,
        /// The new owner (a SID such as S-1-5-18, an alias such as BA, or a name)
        principal: String,
    },
    /// List the layers, or create or drop one.
    Layers {
        #[command(subcommand)]
        command: Option<LayersCommand>,
    },
    /// Apply a .reg file (regedit's format) as one transaction: all of it or nothing.
    Import(reg::ImportArgs),
    /// Write a key's subtree as a .reg file, as regedit exports it.
    Export(reg::ExportArgs),
    /// Run the benchmark workloads (W1–W5 of WORKLOADS.md, backup and restore) on a scratch store.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
pub(crate) enum AclCommand {
    /// Print the key's descriptor as SDDL (needs READ_CONTROL).
    Get {
        /// The key
        key: String,
    },
    /// Set the parts of the key's descriptor the SDDL names (O: owner, G: group, D: DACL).
    Set {
        /// The key
        key: String,
        /// e.g. "O:BAD:P(A;CI;KA;;;SY)(A;CI;KR;;;BU)"
        sddl: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum LayersCommand {
    /// Create a layer (needs full control of Machine).
    Create {
        /// The layer's name
        name: String,
        /// Its precedence: 1 to 65534 (base is 0, policy 65535); higher wins
        #[arg(long, value_name = "N")]
        precedence: u16,
    },
    /// Drop a layer and every value it holds, in one transaction.
    Drop {
        /// The layer's name
        name: String,
    },
}

#[derive(Args)]
pub(crate) struct AddArgs {
    /// The key, e.g. HKLM\Software\Contoso (Machine, Users, HKLM, HKU, HKCU, HKCC)
    pub key: String,
    /// The value name to set
    #[arg(short = 'v', value_name = "NAME", conflicts_with = "ve")]
    pub value: Option<String>,
    /// Set the default (empty-named) value
    #[arg(long)]
    pub ve: bool,
    /// REG_SZ (default), REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, REG_DWORD_BIG_ENDIAN,
    /// REG_QWORD, REG_BINARY, REG_NONE, or a number
    #[arg(short = 't', value_name = "TYPE")]
    pub ty: Option<String>,
    /// The data: text; decimal or 0x-hex numbers; hex digits for binary; `\0` between
    /// REG_MULTI_SZ items
    #[arg(short = 'd', value_name = "DATA", allow_hyphen_values = true)]
    pub data: Option<String>,
    /// The separator between REG_MULTI_SZ items in DATA
    #[arg(short = 's', value_name = "SEPARATOR", default_value = "\\0")]
    pub separator: String,
    /// The layer the value is written to
    #[arg(long, value_name = "L", default_value = "base")]
    pub layer: String,
    /// Create the key (and missing parents) in memory only: gone at the next open
    #[arg(long)]
    pub volatile: bool,
    /// Create the key as a link whose opens redirect to TARGET
    #[arg(long, value_name = "TARGET", conflicts_with_all = ["value", "ve", "ty", "data"])]
    pub link: Option<String>,
    /// The class of the key, if this creates it (Windows' lpClass)
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,
}

#[derive(Args)]
pub(crate) struct QueryArgs {
    /// The key to print
    pub key: String,
    /// Print only this value (with -s: search the subtree for it)
    #[arg(short = 'v', value_name = "NAME", conflicts_with = "ve")]
    pub value: Option<String>,
    /// Print only the default (empty-named) value
    #[arg(long)]
    pub ve: bool,
    /// Recurse into every subkey
    #[arg(short = 's')]
    pub recurse: bool,
    /// Read the store as it was right after this sequence number
    #[arg(long, value_name = "N")]
    pub at_seq: Option<u64>,
    /// Show only what this layer holds
    #[arg(long, value_name = "L", conflicts_with = "stack")]
    pub layer: Option<String>,
    /// Show every layer's version of each value, the effective one first
    #[arg(long, conflicts_with = "json")]
    pub stack: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct DeleteArgs {
    /// The key
    pub key: String,
    /// Delete this value only
    #[arg(short = 'v', value_name = "NAME", conflicts_with_all = ["ve", "va"])]
    pub value: Option<String>,
    /// Delete the default (empty-named) value only
    #[arg(long, conflicts_with = "va")]
    pub ve: bool,
    /// Delete every value of the key (the key and subkeys stay)
    #[arg(long)]
    pub va: bool,
    /// Delete values from this layer only (lower layers show through)
    #[arg(long, value_name = "L", default_value = "base")]
    pub layer: String,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let name = matches.subcommand_name().unwrap_or_default();
    let result = match &cli.hive {
        Some(file) => {
            let ctx = hive::HiveCtx {
                file,
                mount: cli.mount.as_deref(),
                as_principal: cli.as_principal.as_deref(),
            };
            hive::run(&ctx, name, cli.command)
        }
        None => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            // One line, whatever the error said.
            let line = message.replace('\n', "; ");
            eprintln!("hivelog: error: {line}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let memory = cli.memory;
    let located = match cli.persist {
        Some(image) => Ok(image),
        None => store_dir::resolve(cli.store),
    };
    located.and_then(|dir| {
        let ctx = Ctx {
            dir,
            as_principal: cli.as_principal,
            memory,
        };
        match cli.command {
            Command::Init(args) => commands::init(&ctx, &args),
            Command::Watch(args) => watch::watch(&ctx, &args),
            Command::Config { json } => commands::config(&ctx, json),
            Command::Add(args) => commands::add(&ctx, &args),
            Command::Query(args) => commands::query(&ctx, &args),
            Command::Delete(args) => commands::delete(&ctx, &args),
            Command::Seq => commands::seq(&ctx),
            Command::Log(args) => history::log(&ctx, &args),
            Command::Audit(args) => history::audit(&ctx, &args),
            Command::Verify { file: None } => commands::verify(&ctx),
            Command::Verify { file: Some(file) } => backup::verify_file(&file),
            Command::Backup(args) => backup::backup(&ctx, &args),
            Command::Restore(args) => backup::restore(&ctx, &args),
            Command::Revert(args) => recovery::revert(&ctx, &args),
            Command::Recover(args) => recovery::recover(&ctx, &args),
            Command::Archive(args) => recovery::archive(&ctx, &args),
            Command::CopyFile(args) => backup::copy_file(&ctx, &args),
            Command::RestoreFile(args) => backup::restore_file(&ctx, &args),
            Command::Flush { key } => commands::flush(&ctx, key.as_deref()),
            Command::Checkpoint => commands::checkpoint(&ctx),
            Command::Compact {
                keep_commits,
                keep_seconds,
            } => commands::compact(&ctx, keep_commits, keep_seconds),
            Command::Stats { json } => commands::stats(&ctx, json),
            Command::Acl { command } => access::acl(&ctx, &command),
            Command::Owner { key, principal } => access::owner(&ctx, &key, &principal),
            Command::Layers { command } => commands::layers(&ctx, command.as_ref()),
            Command::Import(args) => reg::import(&ctx, &args),
            Command::Export(args) => reg::export(&ctx, &args),
            Command::Bench(args) => bench::run(&ctx.dir, &args),
        }?;
        // An in-memory store's changes reach its image only now, after the command succeeded.
        store_dir::flush_memory()
    })
}
