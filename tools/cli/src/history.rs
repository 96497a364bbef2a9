//! `hivelog log` and `hivelog audit`: the history of committed transactions, filtered by
//! sequence numbers, subtree, principal and kind, as text or as JSON lines (the fields are
//! documented in README.md).

use std::io::{self, BufWriter, Write};
use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use hivelog::{AuditEvent, HistoryFilter, HistoryOp, HistoryTxn, Seq};
use serde_json::json;

use crate::format::{display_name, json_value, reg_data, type_name};
use crate::store_dir::{Ctx, Failure, check_path, fail, open_read};

/// What `log` and `audit` select and how they print it.
#[derive(Args)]
pub(crate) struct HistoryArgs {
    /// First sequence number to print (default: the oldest in the retained history)
    #[arg(long, value_name = "N")]
    pub from: Option<Seq>,
    /// Last sequence number to print [default: the last committed]
    #[arg(long, value_name = "N")]
    pub to: Option<Seq>,
    /// Only changes of this key and its subtree, by path as it was at each sequence number
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Only transactions committed by this principal (a SID, an alias such as SY, or a name)
    #[arg(long, value_name = "P")]
    pub principal: Option<String>,
    /// Print one JSON object per transaction
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub(crate) struct LogArgs {
    #[command(flatten)]
    pub history: HistoryArgs,
    /// Only changes of these kinds (repeat or separate with commas): create_key, delete_key,
    /// delete_tree, clear_subtree, set_value, delete_value, set_security, mark_link,
    /// set_class, create_layer, drop_layer, audit, or an audit event (backup, restore,
    /// revert, privilege)
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub kind: Vec<String>,
}

pub(crate) fn log(ctx: &Ctx, args: &LogArgs) -> Result<(), Failure> {
    let mut filter = filter(ctx, &args.history)?;
    for kind in &args.kind {
        filter = filter.kind(kind)?;
    }
    print_history(ctx, &args.history, &filter)
}

/// The audit trail alone: backups, restores, reverts, and changes that needed a privilege.
pub(crate) fn audit(ctx: &Ctx, args: &HistoryArgs) -> Result<(), Failure> {
    let filter = filter(ctx, args)?.kind("audit")?;
    print_history(ctx, args, &filter)
}

fn filter(ctx: &Ctx, args: &HistoryArgs) -> Result<HistoryFilter, Failure> {
    if let (Some(to), Some(from)) = (args.to, args.from)
        && to < from
    {
        return Err(fail(format!(
            "--to {to} is before --from {from}: nothing to print"
        )));
    }
    let mut filter = HistoryFilter::new();
    if let Some(key) = &args.key {
        check_path(ctx, key)?;
        filter = filter.subtree(key, &ctx.principal())?;
    }
    if let Some(principal) = &args.principal {
        hivelog::principals::check_principal(principal)?;
        filter = filter.principal(principal);
    }
    Ok(filter)
}

fn print_history(ctx: &Ctx, args: &HistoryArgs, filter: &HistoryFilter) -> Result<(), Failure> {
    let store = open_read(ctx)?;
    let to = args.to.unwrap_or(Seq::MAX);
    let mut out = BufWriter::new(io::stdout().lock());
    let from = args.from.unwrap_or_else(|| store.history_start());
    store.history::<Failure>(from, to, &mut |txn| {
        let Some(txn) = filter.apply(txn) else {
            return Ok(());
        };
        if args.json {
            serde_json::to_writer(&mut out, &txn_json(&txn)).map_err(|e| fail(e.to_string()))?;
            writeln!(out)?;
        } else {
            print_txn(&mut out, &txn)?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(())
}

pub(crate) fn rfc3339(unix_nanos: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_nanos(u64::try_from(unix_nanos).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

fn print_txn(out: &mut impl Write, txn: &HistoryTxn) -> io::Result<()> {
    writeln!(
        out,
        "seq {}  {}  {}",
        txn.seq,
        rfc3339(txn.time_unix_nanos),
        txn.principal
    )?;
    for op in &txn.ops {
        match op {
            HistoryOp::CreateKey { path } => writeln!(out, "  create key    {path}")?,
            HistoryOp::DeleteKey { path } => writeln!(out, "  delete key    {path}")?,
            HistoryOp::DeleteTree { path } => writeln!(out, "  delete tree   {path}")?,
            HistoryOp::ClearSubtree { path } => writeln!(out, "  clear subtree {path}")?,
            HistoryOp::SetValue {
                path,
                layer,
                name,
                value,
            } => writeln!(
                out,
                "  set value     {path}    {}    {}    {}{}",
                display_name(name),
                type_name(value.ty),
                reg_data(value),
                in_layer(layer)
            )?,
            HistoryOp::DeleteValue { path, layer, name } => writeln!(
                out,
                "  delete value  {path}    {}{}",
                display_name(name),
                in_layer(layer)
            )?,
            HistoryOp::SetSecurity { path, sddl } => {
                writeln!(out, "  set security  {path}    {sddl}")?
            }
            HistoryOp::MarkLink { path } => writeln!(out, "  mark link     {path}")?,
            HistoryOp::SetClass { path, class } => {
                writeln!(out, "  set class     {path}    {class}")?
            }
            HistoryOp::CreateLayer { name, precedence } => {
                writeln!(out, "  create layer  {name}    precedence {precedence}")?
            }
            HistoryOp::DropLayer { name } => writeln!(out, "  drop layer    {name}")?,
            HistoryOp::Audit {
                event: AuditEvent::Privilege,
                path,
                source,
                ..
            } => writeln!(out, "  audit         privilege    {path}    {source}")?,
            HistoryOp::Audit {
                event,
                path,
                source,
                seq,
            } => {
                write!(
                    out,
                    "  audit         {}    {path}    seq {seq}",
                    event.name()
                )?;
                if !source.is_empty() {
                    write!(out, "    from {source}")?;
                }
                writeln!(out)?
            }
        }
    }
    Ok(())
}

/// Values of the base layer print as they always have; others name their layer.
fn in_layer(layer: &str) -> String {
    if layer == hivelog::BASE_LAYER {
        String::new()
    } else {
        format!("    (layer {layer})")
    }
}

fn op_json(op: &HistoryOp) -> serde_json::Value {
    let kind = op.kind();
    match op {
        HistoryOp::CreateKey { path }
        | HistoryOp::DeleteKey { path }
        | HistoryOp::DeleteTree { path }
        | HistoryOp::ClearSubtree { path }
        | HistoryOp::MarkLink { path } => json!({ "op": kind, "path": path }),
        HistoryOp::SetValue {
            path,
            layer,
            name,
            value,
        } => json!({ "op": kind, "path": path, "layer": layer, "value": json_value(name, value) }),
        HistoryOp::DeleteValue { path, layer, name } => {
            json!({ "op": kind, "path": path, "layer": layer, "name": name })
        }
        HistoryOp::SetSecurity { path, sddl } => json!({ "op": kind, "path": path, "sddl": sddl }),
        HistoryOp::SetClass { path, class } => json!({ "op": kind, "path": path, "class": class }),
        HistoryOp::CreateLayer { name, precedence } => {
            json!({ "op": kind, "name": name, "precedence": precedence })
        }
        HistoryOp::DropLayer { name } => json!({ "op": kind, "name": name }),
        HistoryOp::Audit {
            event: AuditEvent::Privilege,
            path,
            source,
            ..
        } => json!({ "op": kind, "event": "privilege", "path": path, "privilege": source }),
        HistoryOp::Audit {
            event,
            path,
            source,
            seq,
        } => json!({
            "op": kind,
            "event": event.name(),
            "path": path,
            "source": source,
            "seq": seq,
        }),
    }
}

fn txn_json(txn: &HistoryTxn) -> serde_json::Value {
    let ops: Vec<serde_json::Value> = txn.ops.iter().map(op_json).collect();
    json!({
        "seq": txn.seq,
        "time": rfc3339(txn.time_unix_nanos),
        "time_unix_nanos": txn.time_unix_nanos,
        "principal": txn.principal,
        "ops": ops,
    })
}
