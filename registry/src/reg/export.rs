//! The store's export: a walk of one snapshot, depth-first in Windows' order, through the
//! caller's access checks, handing each key and its values to a `RegWriter`. Memory holds
//! one key's values and, for each key on the way down, the names of its subkeys still to go.

use std::io::Write;

use super::write::RegWriter;
use super::{ExportReport, RegFormat};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::store::Store;

/// A key on the way down, with the subkeys still to write (in reverse order: the next is
/// last).
struct Frame {
    key: Key,
    windows_path: String,
    pending: Vec<String>,
}

pub(super) fn export(
    store: &Store,
    path: &str,
    format: RegFormat,
    out: impl Write,
) -> Result<ExportReport> {
    let top = store.snapshot().open_key(path)?;
    let mut writer = RegWriter::new(out, format);
    let mut stack = Vec::new();
    let windows_path = top.windows_path();
    visit(&mut writer, &mut stack, top, windows_path)?;
    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.pending.pop() else {
            stack.pop();
            continue;
        };
        let child = match frame.key.open_subkey(&name) {
            Ok(child) => child,
            // Listed at this snapshot but not there to open: a link to a missing key,
            // which regedit leaves out too.
            Err(Error::KeyNotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        let windows_path = format!("{}\\{name}", frame.windows_path);
        if stack.iter().any(|frame| frame.key.id() == child.id()) {
            return Err(Error::RegUnwritable {
                what: format!("key {windows_path}"),
                reason: "it is a link to a key being exported, which would repeat forever",
            });
        }
        visit(&mut writer, &mut stack, child, windows_path)?;
    }
    writer.finish()
}

/// Writes `key` and its values, and puts it on the stack to write its subkeys.
fn visit<W: Write>(
    writer: &mut RegWriter<W>,
    stack: &mut Vec<Frame>,
    key: Key,
    windows_path: String,
) -> Result<()> {
    writer.key(&windows_path)?;
    for (name, value) in key.enum_values()? {
        writer.value(&name, &value)?;
    }
    let mut pending = key.enum_keys()?;
    pending.reverse();
    stack.push(Frame {
        key,
        windows_path,
        pending,
    });
    Ok(())
}
