//! A read-only view of one key of an offline hive.

use crate::error::{Error, Result};
use crate::key::LayeredValue;
use crate::path::check_value_name;
use crate::security::SecurityDescriptor;
use crate::value::Value;

use super::OfflineHive;
use super::tree::{Folded, Node, NodeIx, effective, parse, shown_path, versions};

/// One key of an [`OfflineHive`], borrowed: what it holds, read without copying the tree.
/// The hive cannot change while a view of it exists.
#[derive(Debug, Clone, Copy)]
pub struct OfflineKey<'h> {
    hive: &'h OfflineHive,
    ix: NodeIx,
}

impl<'h> OfflineKey<'h> {
    pub(super) fn new(hive: &'h OfflineHive, ix: NodeIx) -> OfflineKey<'h> {
        OfflineKey { hive, ix }
    }

    fn node(&self) -> &'h Node {
        self.hive.tree.node(self.ix)
    }

    /// The key's name as written when it was created ("" for the root).
    pub fn name(&self) -> &'h str {
        &self.node().name
    }

    /// The key's path from the root, names as written (`A\B`; "" for the root).
    pub fn path(&self) -> String {
        self.hive.tree.path_of(self.ix)
    }

    /// The key's class, if it has one.
    pub fn class(&self) -> Option<&'h str> {
        self.node().class.as_deref()
    }

    /// The key's descriptor.
    pub fn security(&self) -> &'h SecurityDescriptor {
        &self.node().descriptor
    }

    /// Whether the key is a link (its target is its `SymbolicLinkValue`; an offline hive
    /// does not follow it).
    pub fn is_link(&self) -> bool {
        self.node().link
    }

    /// The subkeys' names, as written, in Windows' order (case-insensitive, by UTF-16 code
    /// units).
    pub fn enum_keys(&self) -> Vec<String> {
        let tree = &self.hive.tree;
        self.node()
            .subkeys
            .values()
            .map(|&child| tree.node(child).name.clone())
            .collect()
    }

    /// The key at `relative` below this one (`""`: this key).
    pub fn open_subkey(&self, relative: &str) -> Result<OfflineKey<'h>> {
        let names = parse(relative)?;
        let mut path = self.path();
        for name in &names {
            if !path.is_empty() {
                path.push('\\');
            }
            path.push_str(name);
        }
        // The depth limit is the hive's, from its root.
        self.hive.open_key(&path)
    }

    /// The effective value `name` (the highest layer's).
    pub fn get_value(&self, name: &str) -> Result<Value> {
        check_value_name(name)?;
        versions(&self.node().values, &Folded::of(name))
            .next_back()
            .map(|(_, entry)| entry.value.clone())
            .ok_or_else(|| self.no_value(name))
    }

    /// Value `name` as layer `layer` holds it.
    pub fn get_value_in(&self, layer: &str, name: &str) -> Result<Value> {
        check_value_name(name)?;
        let layer = self.hive.layers.require(layer, 0)?;
        self.node()
            .values
            .get(&(Folded::of(name), layer))
            .map(|entry| entry.value.clone())
            .ok_or_else(|| self.no_value(name))
    }

    /// Every layer's version of value `name`, the effective one (highest precedence) first.
    pub fn value_stack(&self, name: &str) -> Result<Vec<LayeredValue>> {
        check_value_name(name)?;
        Ok(versions(&self.node().values, &Folded::of(name))
            .rev()
            .map(|(layer, entry)| LayeredValue {
                layer: self.hive.layers.name_at(layer, 0),
                precedence: layer,
                value: entry.value.clone(),
            })
            .collect())
    }

    /// Every effective value, in Windows' order, with its name as written (the effective
    /// layer's spelling).
    pub fn enum_values(&self) -> Vec<(String, Value)> {
        effective(&self.node().values)
            .map(|entry| (entry.name.clone(), entry.value.clone()))
            .collect()
    }

    /// Every value layer `layer` holds, in Windows' order, with its name as written.
    pub fn enum_values_in(&self, layer: &str) -> Result<Vec<(String, Value)>> {
        let layer = self.hive.layers.require(layer, 0)?;
        Ok(self
            .node()
            .values
            .iter()
            .filter(|((_, at), _)| *at == layer)
            .map(|(_, entry)| (entry.name.clone(), entry.value.clone()))
            .collect())
    }

    fn no_value(&self, name: &str) -> Error {
        Error::ValueNotFound {
            path: shown_path(&self.path()),
            name: name.to_string(),
        }
    }
}
