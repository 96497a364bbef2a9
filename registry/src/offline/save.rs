//! Saving a hive: the records a backup of its root would hold, in a backup's order, and the
//! file replaced atomically.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use hivelog_index::KeyId;
use hivelog_log::stream::StreamWriter;
use hivelog_log::unix_nanos_now;

use crate::attrs::KeyFlags;
use crate::backup::{BackupInfo, BackupReport};
use crate::error::{Error, Result};
use crate::layers::{BASE, POLICY};
use crate::op::{Op, encode_descriptor};
use crate::restore::Verified;
use crate::security::SecurityDescriptor;

use super::OfflineHive;
use super::tree::{Node, NodeIx};

/// The root's id in a saved hive; the other keys follow from 2 in the order they are
/// written, so two saves of one hive hold the same records.
const ROOT_ID: KeyId = 1;
/// The cut sequence number a hive file carries: it is no store's state at any point.
const HIVE_SEQ: u64 = 0;

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Writes `hive` to `path` through a temporary file beside it. The rename is the commit
/// point: before it `path` is untouched, after it `path` is the whole new file, synced, so a
/// crash or an error at any step leaves the old file or the new one, never a mix.
pub(super) fn save(hive: &OfflineHive, path: &Path) -> Result<BackupReport> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let shown = dir.display();
    // The file a save replaces keeps its permissions; a new one gets what creating a file
    // gives (0666 less the umask), not a temporary file's 0600.
    let permissions = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions(),
        Err(_) => std::os::unix::fs::PermissionsExt::from_mode(0o666),
    };
    let temp = tempfile::Builder::new()
        .prefix(".hivelog-save-")
        .suffix(".tmp")
        .permissions(permissions)
        .tempfile_in(dir)
        .map_err(io(format!("creating a temporary file in {shown}")))?;
    let report = write(hive, temp.as_file())?;
    temp.as_file()
        .sync_all()
        .map_err(io(format!("syncing {}", temp.path().display())))?;
    // Read back before it replaces anything: what is renamed into place is a file that
    // opens (the temporary file is removed when `temp` drops on an error).
    let written = Verified::from_file(temp.as_file())?;
    assert_eq!(
        written.info.bytes, report.bytes,
        "the file is what was written"
    );
    temp.persist(path).map_err(|error| Error::Io {
        what: format!("renaming the saved hive to {}", path.display()),
        source: error.error,
    })?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io(format!("syncing the directory {shown}")))?;
    Ok(report)
}

/// Writes the stream: header, CreateLayer records, then each key parents first (its
/// CreateKey, SetKeyFlags, SetKeyClass, SetSecurity and SetValue records), then the trailer.
pub(super) fn write(hive: &OfflineHive, out: impl Write) -> Result<BackupReport> {
    let time = unix_nanos_now();
    let layers: Vec<(u16, String)> = hive
        .layers()
        .into_iter()
        .map(|layer| (layer.precedence, layer.name))
        .collect();
    let info = BackupInfo::encode(ROOT_ID, &hive.source_path, time, &hive.principal, &layers);
    let out = BufWriter::with_capacity(1 << 20, out);
    let mut writer =
        StreamWriter::new(out, HIVE_SEQ, &info).map_err(io("writing the hive".into()))?;
    for (id, name) in layers.iter().filter(|(p, _)| *p != BASE && *p != POLICY) {
        writer.push(|buf| Op::CreateLayer { id: *id, name }.encode(buf))?;
    }
    let mut keys = Keys {
        writer,
        ids: HashMap::new(),
        descriptors: HashMap::new(),
        values: 0,
    };
    let tree = &hive.tree;
    for ix in tree.preorder() {
        keys.key(ix, tree.node(ix))?;
    }
    let (written, values) = (keys.ids.len() as u64, keys.values);
    debug_assert_eq!(written, tree.keys() as u64);
    let (mut out, bytes) = keys.writer.finish(&hive.principal, time)?;
    out.flush().map_err(io("writing the hive".into()))?;
    Ok(BackupReport {
        seq: HIVE_SEQ,
        keys: written,
        values,
        bytes,
    })
}

struct Keys<W: Write> {
    writer: StreamWriter<W>,
    /// The id each key written so far got.
    ids: HashMap<NodeIx, KeyId>,
    /// Each distinct descriptor encoded once, by its shared copy's address (stable while the
    /// hive is borrowed).
    descriptors: HashMap<*const SecurityDescriptor, Vec<u8>>,
    values: u64,
}

impl<W: Write> Keys<W> {
    /// Writes one key's records; its parent's were written before.
    fn key(&mut self, ix: NodeIx, node: &Node) -> Result<()> {
        let id = ROOT_ID + self.ids.len() as KeyId;
        if let Some(parent) = node.parent {
            let parent = *self.ids.get(&parent).expect("parents are written first");
            let name = node.name.as_str();
            self.writer
                .push(|buf| Op::CreateKey { id, parent, name }.encode(buf))?;
        }
        self.ids.insert(ix, id);
        if node.link {
            let flags = KeyFlags::LINK.0;
            self.writer
                .push(|buf| Op::SetKeyFlags { id, flags }.encode(buf))?;
        }
        if let Some(class) = node.class.as_deref() {
            self.writer
                .push(|buf| Op::SetKeyClass { id, class }.encode(buf))?;
        }
        let descriptor = self
            .descriptors
            .entry(std::sync::Arc::as_ptr(&node.descriptor))
            .or_insert_with(|| encode_descriptor(&node.descriptor));
        self.writer
            .push(|buf| Op::SetSecurity { id, descriptor }.encode(buf))?;
        for ((_, layer), entry) in &node.values {
            let value = &entry.value;
            let op = Op::SetValue {
                key: id,
                layer: *layer,
                ty: value.ty,
                name: &entry.name,
                data: &value.data,
            };
            self.writer.push(|buf| op.encode(buf))?;
            self.values += 1;
        }
        Ok(())
    }
}
