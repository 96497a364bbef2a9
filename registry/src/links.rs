//! Link keys: a key whose opens redirect to another path (Windows' symbolic link keys). A link
//! holds its target in its `SymbolicLinkValue` value (REG_LINK, as Windows keeps it) and, for
//! resolution without reading the journal, in the store's link table.
//!
//! A link never has subkeys: a create below it goes through it to the target. So when a full
//! path is found in the index and its key is not a link, no link lies on the way, and the point
//! read takes its fast path; only a path that is not found (or ends at a link) is walked here,
//! component by component, and only in a store that has ever had a link.

use std::collections::HashMap;
use std::sync::Arc;

use hivelog_index::{KeyId, NodeId, Seq};

use crate::error::{Error, Result};
use crate::path::KeyPath;
use crate::store::State;
use crate::value::{Value, ValueType};

/// Most links one open follows (Windows stops at a similar bound); a loop ends here too.
pub const LINK_HOPS_MAX: usize = 32;
/// The value holding a link's target, as Windows names it.
pub const LINK_VALUE_NAME: &str = "SymbolicLinkValue";

/// Targets of link keys, by key id. A link's target is fixed for its life (delete and create
/// it again to point it elsewhere), so the table needs no versions: an id is never reused.
#[derive(Debug, Default)]
pub(crate) struct LinkTargets {
    targets: HashMap<KeyId, Arc<KeyPath>>,
}

impl LinkTargets {
    pub(crate) fn insert(&mut self, id: KeyId, target: Arc<KeyPath>) {
        self.targets.insert(id, target);
    }

    /// Every link's target, by key id.
    pub(crate) fn all(&self) -> impl Iterator<Item = (KeyId, &KeyPath)> {
        self.targets.iter().map(|(&id, target)| (id, &**target))
    }

    fn get(&self, id: KeyId) -> Option<&Arc<KeyPath>> {
        self.targets.get(&id)
    }
}

/// Parses a link target: an absolute path (no `HKCU`, which would mean a different key for
/// every caller), as given or in Windows' native `\REGISTRY\MACHINE\...` form.
pub(crate) fn parse_target(link: &str, target: &str) -> Result<KeyPath> {
    let native = target
        .strip_prefix("\\REGISTRY\\")
        .or_else(|| target.strip_prefix("\\Registry\\"));
    let path = match native {
        Some(rest) => match rest.split_once('\\') {
            Some((root, tail)) if root.eq_ignore_ascii_case("USER") => format!("Users\\{tail}"),
            None if rest.eq_ignore_ascii_case("USER") => "Users".to_string(),
            _ => rest.to_string(),
        },
        None => target.to_string(),
    };
    KeyPath::parse(&path, "").map_err(|error| Error::BadLink {
        path: link.to_string(),
        reason: error.to_string(),
    })
}

/// The target a link key's `SymbolicLinkValue` names (`link` is the link's path, for the
/// error): UTF-16LE text that [`parse_target`] accepts.
pub(crate) fn target_in(link: &str, value: &Value) -> Result<KeyPath> {
    let text = value
        .utf16_units()
        .and_then(|units| String::from_utf16(&units).ok())
        .ok_or_else(|| Error::BadLink {
            path: link.to_string(),
            reason: "its target is not UTF-16".to_string(),
        })?;
    parse_target(link, &text)
}

/// The REG_LINK value a link key holds: its target as UTF-16LE, without a terminator.
pub(crate) fn link_value(target: &KeyPath) -> Value {
    let data = target
        .to_string()
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    Value::new(ValueType::LINK, data)
}

/// Counts one more link followed while opening `path`; past LINK_HOPS_MAX (a loop, most
/// likely) it is an error.
pub(crate) fn hop(hops: &mut usize, path: &KeyPath) -> Result<()> {
    *hops += 1;
    if *hops > LINK_HOPS_MAX {
        return Err(Error::TooManyLinks {
            path: path.to_string(),
            max: LINK_HOPS_MAX,
        });
    }
    Ok(())
}

/// The target of link key `id` (`link` names it in the error, which only damage can cause).
pub(crate) fn target_of(
    state: &State,
    id: KeyId,
    link: &dyn std::fmt::Display,
) -> Result<Arc<KeyPath>> {
    state
        .link_targets
        .get(id)
        .cloned()
        .ok_or_else(|| Error::Damaged {
            what: format!("the target of link {link}"),
        })
}

/// Finds the key `path` names as of `at`, following links on the way, and the last one too if
/// `follow_last` (an open does; a delete acts on the link itself). `Ok(None)` if no key is
/// there.
pub(crate) fn locate(
    state: &State,
    path: &KeyPath,
    at: Seq,
    follow_last: bool,
) -> Result<Option<NodeId>> {
    let index = &state.index;
    if let Some(node) = index.find(path.folded())
        && index.key_at(node, at).is_some()
        && !(follow_last && index.attrs_at(node, at).is_link())
    {
        return Ok(Some(node));
    }
    if !state.links {
        return Ok(None);
    }
    walk(state, path, at, follow_last)
}

/// The component-by-component walk, replacing each link by its target.
fn walk(state: &State, path: &KeyPath, at: Seq, follow_last: bool) -> Result<Option<NodeId>> {
    let index = &state.index;
    let mut current = path.clone();
    let mut hops = 0;
    'hop: loop {
        let names: Vec<String> = current.names().map(str::to_string).collect();
        let mut prefix = KeyPath::hive_root(current.hive());
        let Some(mut node) = index.find(prefix.folded()) else {
            return Ok(None);
        };
        for (i, name) in names.iter().enumerate() {
            prefix = prefix.join(name)?;
            let Some(found) = index.find(prefix.folded()) else {
                return Ok(None);
            };
            let Some(key) = index.key_at(found, at) else {
                return Ok(None);
            };
            node = found;
            let last = i + 1 == names.len();
            if !index.attrs_at(found, at).is_link() || (last && !follow_last) {
                continue;
            }
            hop(&mut hops, path)?;
            let rest = names[i + 1..].join("\\");
            current = target_of(state, key.id, &prefix)?.join(&rest)?;
            continue 'hop;
        }
        return Ok(Some(node));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_targets_parse_in_both_forms() {
        let ours = parse_target("L", r"Machine\Software\Target").unwrap();
        let native = parse_target("L", r"\REGISTRY\MACHINE\Software\Target").unwrap();
        assert_eq!(ours.folded(), native.folded());
        let user = parse_target("L", r"\REGISTRY\USER\alice\Env").unwrap();
        assert_eq!(user.to_string(), r"Users\alice\Env");
        assert!(matches!(
            parse_target("L", r"HKCU\Software"),
            Err(Error::BadLink { .. })
        ));
        assert!(matches!(
            parse_target("L", "Nowhere\\x"),
            Err(Error::BadLink { .. })
        ));
    }

    #[test]
    fn the_link_value_is_utf16_without_a_terminator() {
        let value = link_value(&KeyPath::parse(r"HKLM\A", "").unwrap());
        assert_eq!(value.ty, ValueType::LINK);
        assert_eq!(
            value.utf16_units().unwrap(),
            "Machine\\A".encode_utf16().collect::<Vec<_>>()
        );
    }
}
