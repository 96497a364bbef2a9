//! `.reg` files and offline hives. A `.reg` file names keys from a Windows root; a hive's
//! keys are paths from its own root. Where that root sits is the hive's [`HiveMount`]: a
//! hive that stands for `HKEY_LOCAL_MACHINE\Software\App` imports `[HKEY_LOCAL_MACHINE\
//! Software\App\Sub]` as `Sub` and exports `Sub` under that name again; a whole-registry
//! copy maps `HKEY_LOCAL_MACHINE` and `HKEY_USERS` to its `Machine` and `Users`. A key
//! outside the hive is an error, as is any key of a hive that stands for none.

use std::io::Write;

use crate::error::{Error, Result};
use crate::layers::BASE_LAYER;
use crate::path::{Hive, KeyPath};
use crate::reg::{
    ExportReport, ImportReport, RegFile, RegFormat, RegOp, RegWriter, key_path, parse, refused,
};

use super::{HiveMount, OfflineHive};

impl OfflineHive {
    /// Imports a `.reg` file held in `input` into the hive, all of it or none: parsed whole
    /// first (a malformed line is [`Error::RegSyntax`]), then applied to a copy of the hive
    /// that replaces it only if every change succeeds (a refused change, or a key outside
    /// the hive, is [`Error::RegImport`] naming its line). Values go to the `base` layer;
    /// `[-KEY]` and `"name"=-` of something absent are not errors, as with regedit. Nothing
    /// reaches the disk: [`save`](OfflineHive::save) writes the result.
    pub fn import_reg(&mut self, input: &[u8], source_name: &str) -> Result<ImportReport> {
        let file = parse(input, source_name)?;
        let mut next = self.clone();
        let report = next.apply(file, source_name)?;
        *self = next;
        Ok(report)
    }

    /// Writes the key at `path` (relative to the root) and its subtree to `out` as a `.reg`
    /// file in `format`, as [`Store::export_reg`](crate::Store::export_reg) writes a store's:
    /// keys depth-first in Windows' order under the names the hive's mount gives them, the
    /// effective value of each name. A hive does not follow links: a link is written as its
    /// key with its `SymbolicLinkValue`.
    pub fn export_reg(
        &self,
        path: &str,
        format: RegFormat,
        out: impl Write,
    ) -> Result<ExportReport> {
        let top = self.open_key(path)?;
        let mut writer = RegWriter::new(out, format);
        // A whole-registry copy's root has no Windows name: its hives are the tops.
        let tops = match (self.mount(), top.path().is_empty()) {
            (HiveMount::Registry, true) => top
                .enum_keys()
                .into_iter()
                .map(|name| top.open_subkey(&name))
                .collect::<Result<Vec<_>>>()?,
            (HiveMount::Unmounted, _) => return Err(self.unmounted()),
            _ => vec![top],
        };
        for top in tops {
            let windows_path = self.export_name(&top.path())?;
            // Depth-first by an explicit stack of (key, its Windows path): the deepest hive
            // is DEPTH_MAX levels, which no recursion should have to hold.
            let mut stack = vec![(top, windows_path)];
            while let Some((key, windows_path)) = stack.pop() {
                writer.key(&windows_path)?;
                for (name, value) in key.enum_values() {
                    writer.value(&name, &value)?;
                }
                for name in key.enum_keys().into_iter().rev() {
                    let child = key.open_subkey(&name)?;
                    stack.push((child, format!("{windows_path}\\{name}")));
                }
            }
        }
        writer.finish()
    }

    /// The Windows name of the key at hive path `path`, which must have one.
    fn export_name(&self, path: &str) -> Result<String> {
        if let HiveMount::Registry = self.mount() {
            let first = path.split('\\').next().unwrap_or_default();
            if !Hive::ALL
                .iter()
                .any(|hive| hive.name().eq_ignore_ascii_case(first))
            {
                return Err(Error::RegUnwritable {
                    what: format!("key \\{path}"),
                    reason: "a whole-registry copy's keys are below Machine or Users, the only \
                             roots a .reg file can name",
                });
            }
        }
        self.windows_path(path)
    }

    fn unmounted(&self) -> Error {
        Error::HiveUnmounted {
            source_path: self.source_path.clone(),
        }
    }

    /// Applies `file` to this hive (a copy the caller discards on an error).
    fn apply(&mut self, file: RegFile, source_name: &str) -> Result<ImportReport> {
        let mut report = ImportReport::new(file.format);
        // The hive path of the latest `[KEY]` (the parser puts one before every value).
        let mut current = String::new();
        for op in file.ops {
            let line = op.line();
            report.count(&op);
            self.apply_op(op, &mut current)
                .map_err(|error| refused(source_name, line, error))?;
        }
        Ok(report)
    }

    fn apply_op(&mut self, op: RegOp, current: &mut String) -> Result<()> {
        match op {
            RegOp::Key { root, path, .. } => {
                *current = self.hive_path(root, &path)?;
                self.create_key(current)?;
            }
            RegOp::DeleteTree { root, path, .. } => {
                let path = self.hive_path(root, &path)?;
                match self.delete_tree(&path) {
                    Ok(()) | Err(Error::KeyNotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
            RegOp::SetValue { name, value, .. } => {
                self.set_value_in(BASE_LAYER, current, &name, &value)?;
            }
            RegOp::DeleteValue { name, .. } => {
                match self.delete_value_in(BASE_LAYER, current, &name) {
                    Ok(()) | Err(Error::ValueNotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// The hive path of `.reg` key `root\path`, which must be in the hive.
    fn hive_path(&self, root: &str, path: &str) -> Result<String> {
        let full = key_path(root, path);
        // The store's reading of the name: HKEY_CURRENT_USER is the hive's editor's key.
        let key = KeyPath::parse(&full, &self.principal)?;
        match self.mount() {
            HiveMount::Registry => Ok(key.to_string()),
            HiveMount::Key(mount) => {
                // Folded paths start with the hive, so a prefix that ends at a name's end is
                // the mount or a key below it.
                let folded = key.folded();
                let inside = folded.starts_with(mount.folded())
                    && matches!(
                        folded.as_bytes().get(mount.folded().len()),
                        None | Some(b'\\')
                    );
                if !inside {
                    return Err(Error::OutsideHive {
                        key: key.windows(),
                        mount: mount.windows(),
                    });
                }
                let below: Vec<&str> = key.names().skip(mount.depth() - 1).collect();
                Ok(below.join("\\"))
            }
            HiveMount::Unmounted => Err(self.unmounted()),
        }
    }
}
