//! `hivelog watch KEY [-s] [--from-seq N] [--json]`: the changes under a key, printed as
//! they are committed, by this store's writer whoever it is (another `hivelog` command, a
//! service): the watch follows the store read-only and takes no lock.

use std::io::{self, Write};

use clap::Args;
use hivelog::{WatchEvent, WatchEventKind, WatchFilter};
use serde_json::json;

use crate::store_dir::{Ctx, Failure, check_path, fail, open_follow};

#[derive(Args)]
pub(crate) struct WatchArgs {
    /// The key to watch (needs KEY_NOTIFY)
    pub key: String,
    /// Watch the whole subtree, not only the key and its direct subkeys
    #[arg(short = 's')]
    pub subtree: bool,
    /// Replay the changes after this sequence number first, then go on live
    #[arg(long, value_name = "N")]
    pub from_seq: Option<u64>,
    /// Print one JSON object per line
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn watch(ctx: &Ctx, args: &WatchArgs) -> Result<(), Failure> {
    check_path(ctx, &args.key)?;
    let store = open_follow(ctx)?;
    let key = store.open_key(&args.key)?;
    let after = args.from_seq.unwrap_or_else(|| store.seq());
    let events = key.watch_from(after, args.subtree, WatchFilter::ALL)?;
    let mut out = io::stdout().lock();
    // Until interrupted, or until the store goes (its queue then disconnects).
    while let Ok(event) = events.recv() {
        let line = if args.json {
            json_line(&event)
        } else {
            text_line(&event)
        };
        // Flushed per event: a reader of a pipe sees each as it happens.
        writeln!(out, "{line}").and_then(|()| out.flush())?;
    }
    Err(fail(
        "the store stopped reporting changes (its journal could not be read)",
    ))
}

fn kind_name(kind: &WatchEventKind) -> &'static str {
    match kind {
        WatchEventKind::KeyCreated => "key_created",
        WatchEventKind::KeyDeleted => "key_deleted",
        WatchEventKind::ValueSet { .. } => "value_set",
        WatchEventKind::ValueDeleted { .. } => "value_deleted",
        WatchEventKind::SecurityChanged => "security_changed",
        WatchEventKind::SubtreeRestored => "subtree_restored",
        WatchEventKind::LayerDropped { .. } => "layer_dropped",
        WatchEventKind::Overflow { .. } => "overflow",
    }
}

/// `SEQ  KIND  PATH  [detail]`.
fn text_line(event: &WatchEvent) -> String {
    let detail = match &event.kind {
        WatchEventKind::ValueSet { layer, name } | WatchEventKind::ValueDeleted { layer, name } => {
            format!("  {} ({layer})", crate::format::display_name(name))
        }
        WatchEventKind::LayerDropped { layer } => format!("  {layer}"),
        WatchEventKind::Overflow { rescan_from } => {
            format!("  events lost: rescan, or watch again with --from-seq {rescan_from}")
        }
        _ => String::new(),
    };
    format!(
        "{}  {:16}  {}{detail}",
        event.seq,
        kind_name(&event.kind),
        event.path
    )
}

fn json_line(event: &WatchEvent) -> String {
    let mut object = json!({
        "seq": event.seq,
        "kind": kind_name(&event.kind),
        "path": &*event.path,
    });
    match &event.kind {
        WatchEventKind::ValueSet { layer, name } | WatchEventKind::ValueDeleted { layer, name } => {
            object["layer"] = json!(&**layer);
            object["name"] = json!(&**name);
        }
        WatchEventKind::LayerDropped { layer } => object["layer"] = json!(&**layer),
        WatchEventKind::Overflow { rescan_from } => object["rescan_from"] = json!(rescan_from),
        _ => {}
    }
    object.to_string()
}
