//! `hivelog`: the command-line tool of the hivelog registry store.
//!
//! Exit status: 0 on success, 1 on an error (one line on stderr), 2 on a usage error.

mod bench;
mod commands;
mod format;
mod store_dir;

pub(crate) use store_dir::Failure;

// The binary's choice, not the library's: the store allocates many small, long-lived objects
// (index nodes, value slots), where mimalloc measured faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// A registry store: a tree of keys holding typed values, kept in an append-only journal.
#[derive(Parser)]
#[command(name = "hivelog", version, propagate_version = true)]
struct Cli {
    /// The store directory [default: $HIVELOG_STORE, else the user's data directory]
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the store (with its hives) if it does not exist.
    Init,
    /// Create a key (and missing parents), and set a value if one is named (as `reg add`).
    Add(AddArgs),
    /// Print a key's values and subkeys (as `reg query`).
    Query(QueryArgs),
    /// Delete a key and its subtree, or values of it (as `reg delete`).
    Delete(DeleteArgs),
    /// Print the last committed sequence number.
    Seq,
    /// Replay committed transactions: sequence number, time, principal and every change.
    Log(LogArgs),
    /// Check every record of the store; exit 0 only if all is sound.
    Verify,
    /// Sequence number, keys, values, segments, bytes on disk, index memory.
    Stats {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the benchmark workloads (W1–W5 of WORKLOADS.md) on a scratch store.
    Bench(bench::BenchArgs),
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
}

#[derive(Args)]
pub(crate) struct LogArgs {
    /// First sequence number to print
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub from: u64,
    /// Last sequence number to print [default: the last committed]
    #[arg(long, value_name = "N")]
    pub to: Option<u64>,
    /// Print one JSON object per transaction
    #[arg(long)]
    pub json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = store_dir::resolve(cli.store).and_then(|dir| match cli.command {
        Command::Init => commands::init(&dir),
        Command::Add(args) => commands::add(&dir, &args),
        Command::Query(args) => commands::query(&dir, &args),
        Command::Delete(args) => commands::delete(&dir, &args),
        Command::Seq => commands::seq(&dir),
        Command::Log(args) => commands::log(&dir, &args),
        Command::Verify => commands::verify(&dir),
        Command::Stats { json } => commands::stats(&dir, json),
        Command::Bench(args) => bench::run(&dir, &args),
    });
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
