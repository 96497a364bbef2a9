//! The commands other than `bench`.

use std::io::{self, BufWriter, Write};

use hivelog::{CreateOptions, Key, Store, Value, ValueType};
use serde_json::json;

use crate::format::{display_name, json_value, parse_data, reg_data, type_name};
use crate::store_dir::{
    Ctx, Failure, check_path, fail, open_existing_write, open_read, open_write,
};
use crate::{AddArgs, DeleteArgs, LayersCommand, QueryArgs};

type Out = BufWriter<io::StdoutLock<'static>>;

fn stdout() -> Out {
    BufWriter::new(io::stdout().lock())
}

pub(crate) fn init(ctx: &Ctx) -> Result<(), Failure> {
    let store = open_write(ctx)?;
    println!(
        "store at {} (sequence number {})",
        ctx.dir.display(),
        store.seq()
    );
    Ok(store.close()?)
}

pub(crate) fn add(ctx: &Ctx, args: &AddArgs) -> Result<(), Failure> {
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
    // Validate everything before the store is opened (or created).
    let value = parse_data(ty, args.data.as_deref(), &args.separator)?;
    check_path(ctx, &args.key)?;
    hivelog::check_layer_name(&args.layer)?;
    if let Some(class) = &args.class {
        hivelog::check_class(class)?;
    }
    let options = CreateOptions {
        volatile: args.volatile,
        link: args.link.clone(),
        class: args.class.clone(),
        security: None,
    };
    let store = open_write(ctx)?;
    let mut tx = store.transaction();
    tx.create_key_with(&args.key, &options)?;
    if sets_value {
        let name = args.value.as_deref().unwrap_or("");
        tx.set_value_in(&args.layer, &args.key, name, &value)?;
    }
    tx.commit()?;
    Ok(store.close()?)
}

pub(crate) fn delete(ctx: &Ctx, args: &DeleteArgs) -> Result<(), Failure> {
    check_path(ctx, &args.key)?;
    hivelog::check_layer_name(&args.layer)?;
    let store = open_existing_write(ctx)?;
    let mut tx = store.transaction();
    let layer = &args.layer;
    if let Some(name) = &args.value {
        tx.delete_value_in(layer, &args.key, name)?;
    } else if args.ve {
        tx.delete_value_in(layer, &args.key, "")?;
    } else if args.va {
        // Opening the key first makes a missing key an error even when it would have no
        // values to delete.
        for (name, _) in store.open_key(&args.key)?.enum_values_in(layer)? {
            tx.delete_value_in(layer, &args.key, &name)?;
        }
    } else {
        tx.delete_tree(&args.key)?;
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
    let key = view.open_key(&args.key)?;
    let only = args.value.as_deref().or(args.ve.then_some(""));
    let layer = args.layer.as_deref();
    let mut out = stdout();
    if args.stack {
        print_stack(&key, only, args.recurse, &mut out)?;
    } else if args.json {
        query_json(&key, only, layer, args.recurse, view.seq(), &mut out)?;
    } else {
        match (only, args.recurse) {
            (Some(name), false) => {
                let value = read(&key, layer, name)?;
                writeln!(out, "\n{}", key.windows_path())?;
                print_value(&mut out, name, &value)?;
                writeln!(out)?;
            }
            (Some(name), true) => {
                let mut found = 0;
                search(&key, layer, name, &mut found, &mut out)?;
                writeln!(out, "End of search: {found} match(es) found.")?;
            }
            (None, recurse) => print_key(&key, layer, recurse, &mut out)?,
        }
    }
    out.flush()?;
    Ok(())
}

/// The effective value `name`, or layer `layer`'s.
fn read(key: &Key, layer: Option<&str>, name: &str) -> hivelog::Result<Value> {
    match layer {
        Some(layer) => key.get_raw_value_in(layer, name),
        None => key.get_raw_value(name),
    }
}

/// Every effective value, or every value layer `layer` holds.
fn values(key: &Key, layer: Option<&str>) -> hivelog::Result<Vec<(String, Value)>> {
    match layer {
        Some(layer) => key.enum_values_in(layer),
        None => key.enum_values(),
    }
}

/// `query --stack`: for each value (or the one named), every layer's version, the
/// effective one first.
fn print_stack(key: &Key, only: Option<&str>, recurse: bool, out: &mut Out) -> Result<(), Failure> {
    let names: Vec<String> = match only {
        Some(name) => vec![name.to_string()],
        None => key
            .enum_values()?
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
    };
    let mut stacks = Vec::with_capacity(names.len());
    for name in names {
        let stack = key.value_stack(&name)?;
        if stack.is_empty() && only.is_some() && !recurse {
            return Err(hivelog::Error::ValueNotFound {
                path: key.path().to_string(),
                name,
            }
            .into());
        }
        stacks.push((name, stack));
    }
    writeln!(out, "\n{}", key.windows_path())?;
    for (name, stack) in stacks {
        if !stack.is_empty() {
            writeln!(out, "    {}", display_name(&name))?;
        }
        for (i, layered) in stack.iter().enumerate() {
            let role = if i == 0 { "effective" } else { "shadowed" };
            writeln!(
                out,
                "        {}    {}    {}    ({role})",
                layered.layer,
                type_name(layered.value.ty),
                reg_data(&layered.value)
            )?;
        }
    }
    if recurse {
        for sub in key.enum_keys()? {
            print_stack(&subkey(key, &sub)?, only, true, out)?;
        }
    }
    Ok(())
}

fn print_value(out: &mut Out, name: &str, value: &Value) -> io::Result<()> {
    writeln!(
        out,
        "    {}    {}    {}",
        display_name(name),
        type_name(value.ty),
        reg_data(value)
    )
}

/// `reg query KEY` and `reg query KEY /s`.
fn print_key(key: &Key, layer: Option<&str>, recurse: bool, out: &mut Out) -> Result<(), Failure> {
    // Read everything before printing anything: a failed read prints only the error.
    let (values, subkeys) = (values(key, layer)?, key.enum_keys()?);
    writeln!(out, "\n{}", key.windows_path())?;
    for (name, value) in values {
        print_value(out, &name, &value)?;
    }
    if recurse {
        for name in subkeys {
            print_key(&subkey(key, &name)?, layer, true, out)?;
        }
    } else {
        if !subkeys.is_empty() {
            writeln!(out)?;
        }
        for name in subkeys {
            writeln!(out, "{}\\{name}", key.windows_path())?;
        }
    }
    Ok(())
}

/// Subkey `name` of `key` for a recursive listing: a link is listed as itself (its own
/// value, its target) and not followed, so a link to an ancestor cannot recurse forever.
fn subkey(key: &Key, name: &str) -> hivelog::Result<Key> {
    key.open_subkey_link(name)
}

/// `reg query KEY /v NAME /s`: every key of the subtree that has the value.
fn search(
    key: &Key,
    layer: Option<&str>,
    name: &str,
    found: &mut u64,
    out: &mut Out,
) -> Result<(), Failure> {
    match read(key, layer, name) {
        Ok(value) => {
            *found += 1;
            writeln!(out, "\n{}", key.windows_path())?;
            print_value(out, name, &value)?;
        }
        Err(hivelog::Error::ValueNotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    for sub in key.enum_keys()? {
        search(&subkey(key, &sub)?, layer, name, found, out)?;
    }
    Ok(())
}

fn query_json(
    key: &Key,
    only: Option<&str>,
    layer: Option<&str>,
    recurse: bool,
    seq: u64,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut keys = Vec::new();
    collect_json(key, only, layer, recurse, &mut keys)?;
    let document = json!({ "seq": seq, "keys": keys });
    serde_json::to_writer_pretty(&mut *out, &document).map_err(|e| fail(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

fn collect_json(
    key: &Key,
    only: Option<&str>,
    layer: Option<&str>,
    recurse: bool,
    keys: &mut Vec<serde_json::Value>,
) -> Result<(), Failure> {
    let values: Vec<serde_json::Value> = match only {
        Some(name) => match read(key, layer, name) {
            Ok(value) => vec![json_value(name, &value)],
            Err(hivelog::Error::ValueNotFound { .. }) if recurse => Vec::new(),
            Err(error) => return Err(error.into()),
        },
        None => values(key, layer)?
            .iter()
            .map(|(name, value)| json_value(name, value))
            .collect(),
    };
    let subkeys = key.enum_keys()?;
    if only.is_none() || !values.is_empty() {
        let mut entry = json!({
            "path": key.windows_path(),
            "values": values,
            "subkeys": subkeys,
        });
        if let Some(class) = key.class()? {
            entry["class"] = json!(class);
        }
        keys.push(entry);
    }
    if recurse {
        for name in subkeys {
            collect_json(&subkey(key, &name)?, only, layer, true, keys)?;
        }
    }
    Ok(())
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
