//! The commands other than `bench`.

use hivelog::{CreateOptions, Store, Value, ValueType};
use serde_json::json;

use crate::format::parse_data;
use crate::store_dir::{
    Ctx, Failure, check_path, fail, open_existing_write, open_read, open_write,
};
use crate::{AddArgs, DeleteArgs, LayersCommand, QueryArgs};

#[derive(clap::Args)]
pub(crate) struct InitArgs {
    /// A backup to restore into Machine (needs SeRestorePrivilege): the registry's first
    /// content, its parameters in force at once. Only on a store whose Machine is empty.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<std::path::PathBuf>,
}

pub(crate) fn init(ctx: &Ctx, args: &InitArgs) -> Result<(), Failure> {
    // The seed is checked whole before the store is created.
    if let Some(seed) = &args.seed {
        hivelog::verify_backup_file(seed)?;
    }
    let store = open_write(ctx)?;
    if let Some(seed) = &args.seed {
        let machine = store.open_key("HKLM")?;
        if !machine.enum_keys()?.is_empty() || !machine.enum_values()?.is_empty() {
            return Err(fail(format!(
                "the store at {} is not empty (Machine has keys or values): --seed is for a first boot",
                ctx.dir.display()
            )));
        }
        let report = store.restore_file("HKLM", seed)?;
        println!(
            "seeded Machine from {} (cut at sequence number {} of {})",
            seed.display(),
            report.backup.seq,
            report.backup.source_path
        );
    }
    println!(
        "store at {} (sequence number {})",
        ctx.dir.display(),
        store.seq()
    );
    Ok(store.close()?)
}

/// `hivelog config`: every parameter, its default, what the store holds, and what is in
/// force.
pub(crate) fn config(ctx: &Ctx, as_json: bool) -> Result<(), Failure> {
    let store = open_read(ctx)?;
    let parameters = store.parameters();
    if as_json {
        let list: Vec<serde_json::Value> = parameters
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "type": p.ty.to_string(),
                    "default": p.default,
                    "stored": p.stored.as_ref().map(crate::format::reg_data),
                    "stored_type": p.stored.as_ref().map(|v| v.ty.to_string()),
                    "in_force": p.in_force,
                    "rejected": p.rejected,
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "key": hivelog::PARAMETERS_KEY, "parameters": list })
        );
        return Ok(());
    }
    println!("{}", hivelog::PARAMETERS_KEY);
    println!(
        "{:18} {:9} {:>10} {:>22} {:>10}  note",
        "name", "type", "default", "stored", "in force"
    );
    for p in parameters {
        let stored = match &p.stored {
            Some(value) => format!("{} {}", value.ty, crate::format::reg_data(value)),
            None => "-".to_string(),
        };
        let note = match (&p.rejected, &p.stored) {
            (Some(reason), _) => format!("stored value rejected: {reason}"),
            (None, None) => "default (nothing stored)".to_string(),
            (None, Some(_)) => String::new(),
        };
        println!(
            "{:18} {:9} {:>10} {:>22} {:>10}  {note}",
            p.name,
            p.ty.to_string(),
            p.default,
            stored,
            p.in_force
        );
    }
    Ok(())
}

/// What an `add` does, checked before the store or hive is opened (or created).
pub(crate) struct Addition {
    pub options: CreateOptions,
    /// The value to set, with its name, if the command names one.
    pub value: Option<(String, Value)>,
}

pub(crate) fn addition(args: &AddArgs) -> Result<Addition, Failure> {
    let ty = match &args.ty {
        Some(text) => ValueType::parse(text).ok_or_else(|| {
            fail(format!(
                "unknown value type {text:?} (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ, REG_DWORD, \
                 REG_DWORD_BIG_ENDIAN, REG_QWORD, REG_BINARY, REG_NONE, or a number)"
            ))
        })?,
        None => ValueType::SZ,
    };
    let sets_value = args.value.is_some() || args.ve || args.ty.is_some() || args.data.is_some();
    let value = parse_data(ty, args.data.as_deref(), &args.separator)?;
    hivelog::check_layer_name(&args.layer)?;
    if let Some(class) = &args.class {
        hivelog::check_class(class)?;
    }
    let name = args.value.clone().unwrap_or_default();
    Ok(Addition {
        options: CreateOptions {
            volatile: args.volatile,
            link: args.link.clone(),
            class: args.class.clone(),
            security: None,
        },
        value: sets_value.then_some((name, value)),
    })
}

pub(crate) fn add(ctx: &Ctx, args: &AddArgs) -> Result<(), Failure> {
    // Validate everything before the store is opened (or created).
    let addition = addition(args)?;
    check_path(ctx, &args.key)?;
    let store = open_write(ctx)?;
    let mut tx = store.transaction();
    tx.create_key_with(&args.key, &addition.options)?;
    if let Some((name, value)) = &addition.value {
        tx.set_value_in(&args.layer, &args.key, name, value)?;
    }
    tx.commit()?;
    Ok(store.close()?)
}

/// What a `delete` removes.
pub(crate) enum Deletion<'a> {
    Value(&'a str),
    /// Every value of the key in the layer; the key and its subkeys stay.
    Values,
    Tree,
}

pub(crate) fn deletion(args: &DeleteArgs) -> Result<Deletion<'_>, Failure> {
    hivelog::check_layer_name(&args.layer)?;
    Ok(match (&args.value, args.ve, args.va) {
        (Some(name), _, _) => Deletion::Value(name),
        (None, true, _) => Deletion::Value(""),
        (None, false, true) => Deletion::Values,
        (None, false, false) => Deletion::Tree,
    })
}

pub(crate) fn delete(ctx: &Ctx, args: &DeleteArgs) -> Result<(), Failure> {
    let deletion = deletion(args)?;
    check_path(ctx, &args.key)?;
    let store = open_existing_write(ctx)?;
    let mut tx = store.transaction();
    let layer = &args.layer;
    match deletion {
        Deletion::Value(name) => {
            tx.delete_value_in(layer, &args.key, name)?;
        }
        Deletion::Values => {
            // Opening the key first makes a missing key an error even when it would have
            // no values to delete.
            for (name, _) in store.open_key(&args.key)?.enum_values_in(layer)? {
                tx.delete_value_in(layer, &args.key, &name)?;
            }
        }
        Deletion::Tree => {
            tx.delete_tree(&args.key)?;
        }
    }
    tx.commit()?;
    Ok(store.close()?)
}

pub(crate) fn seq(ctx: &Ctx) -> Result<(), Failure> {
    println!("{}", open_read(ctx)?.seq());
    Ok(())
}

pub(crate) fn layers(ctx: &Ctx, command: Option<&LayersCommand>) -> Result<(), Failure> {
    let Some(command) = command else {
        let store = open_read(ctx)?;
        println!("{:>10}  name", "precedence");
        for layer in store.layers() {
            println!("{:>10}  {}", layer.precedence, layer.name);
        }
        return Ok(());
    };
    let store = open_existing_write(ctx)?;
    match command {
        LayersCommand::Create { name, precedence } => store.create_layer(name, *precedence)?,
        LayersCommand::Drop { name } => store.drop_layer(name)?,
    };
    Ok(store.close()?)
}

pub(crate) fn query(ctx: &Ctx, args: &QueryArgs) -> Result<(), Failure> {
    let store = open_read(ctx)?;
    let view = match args.at_seq {
        Some(seq) => store.snapshot_at(seq)?,
        None => store.snapshot(),
    };
    crate::query::print(&view.open_key(&args.key)?, args, Some(view.seq()))
}

/// `hivelog flush [KEY]`: every commit so far made durable (as RegFlushKey; all keys share
/// one journal). A key, if named, must exist.
pub(crate) fn flush(ctx: &Ctx, key: Option<&str>) -> Result<(), Failure> {
    if let Some(key) = key {
        check_path(ctx, key)?;
    }
    let store = open_existing_write(ctx)?;
    if let Some(key) = key {
        store.open_key(key)?;
    }
    let seq = store.sync()?;
    println!("durable through sequence number {seq}");
    Ok(store.close()?)
}

pub(crate) fn checkpoint(ctx: &Ctx) -> Result<(), Failure> {
    let store = open_existing_write(ctx)?;
    let start = std::time::Instant::now();
    match store.checkpoint()? {
        Some(info) => println!(
            "checkpoint at sequence number {}: {} keys, {} value versions, {} bytes in {} ({:.0} ms)",
            info.seq,
            info.keys,
            info.versions,
            info.bytes,
            info.file.display(),
            start.elapsed().as_secs_f64() * 1000.0
        ),
        None => println!(
            "the last checkpoint holds sequence number {} already",
            store.seq()
        ),
    }
    Ok(store.close()?)
}

pub(crate) fn compact(
    ctx: &Ctx,
    keep_commits: Option<u64>,
    keep_seconds: Option<u64>,
) -> Result<(), Failure> {
    let store = open_existing_write(ctx)?;
    let (commits, seconds) = store.retention_window();
    let keep_commits = keep_commits.unwrap_or(commits);
    let keep_seconds = keep_seconds.unwrap_or(seconds);
    let compacted = crate::progress::while_spinning("compacting", || {
        store.compact_keeping(keep_commits, keep_seconds)
    })?;
    match compacted {
        Some(report) => {
            println!(
                "compacted through sequence number {}: a base of {} keys, {} values, {} bytes \
                 replaces {} file(s); {} ({:.0} ms)",
                report.seq,
                report.keys,
                report.values,
                report.base_bytes,
                report.replaced_files.len(),
                if report.waiting_for_readers {
                    "they stay until the readers of older snapshots finish".to_string()
                } else {
                    format!("{} bytes freed", report.freed_bytes)
                },
                report.elapsed.as_secs_f64() * 1000.0
            );
        }
        None => println!(
            "nothing to compact: no sealed segment lies wholly outside the last {keep_commits} \
             commits and {keep_seconds} s (oldest readable: {})",
            store.oldest_seq()
        ),
    }
    Ok(store.close()?)
}

pub(crate) fn verify(ctx: &Ctx) -> Result<(), Failure> {
    // Opening verifies every record; verify() reads everything again and replays it into a
    // fresh index to compare with the one the open built.
    let store = open_read(ctx)?;
    let report = store.verify()?;
    if let Some(torn) = &store.recovery_report().torn_tail {
        println!("note: {torn}; it was never acknowledged and is cut at the next write");
    }
    if let Some(segment) = &store.recovery_report().torn_segment {
        println!(
            "note: segment {segment} was never completely created and is removed at the next write"
        );
    }
    println!(
        "ok: {} transactions, {} records, {} segments, last sequence number {}",
        report.transactions, report.ops, report.segments, report.last_seq
    );
    Ok(())
}

pub(crate) fn stats(ctx: &Ctx, json: bool) -> Result<(), Failure> {
    let store = open_read(ctx)?;
    print_stats(&store, json)
}

fn print_stats(store: &Store, as_json: bool) -> Result<(), Failure> {
    let stats = store.stats();
    if as_json {
        let document = json!({
            "seq": stats.seq,
            "oldest_seq": store.oldest_seq(),
            "keys": stats.keys,
            "values": stats.values,
            "versions": stats.versions,
            "segments": stats.segments,
            "journal_bytes": stats.journal_bytes,
            "disk_bytes": stats.disk_bytes,
            "index_memory_bytes": stats.index_memory_bytes,
        });
        println!("{document}");
    } else {
        println!("sequence number     {}", stats.seq);
        println!("oldest readable     {}", store.oldest_seq());
        println!("keys                {}", stats.keys);
        println!("values              {}", stats.values);
        println!("value versions      {}", stats.versions);
        println!("segments            {}", stats.segments);
        println!("journal bytes       {}", stats.journal_bytes);
        println!("bytes on disk       {}", stats.disk_bytes);
        println!("index memory bytes  {}", stats.index_memory_bytes);
    }
    Ok(())
}
