//! Layers: named sets of values stacked by precedence. `base` is the lowest, `policy` the
//! highest, role layers sit between; a read returns the value of the highest layer that has
//! one. A layer's id *is* its precedence, so the index resolves a read by taking the highest
//! layer id among a name's versions, with no table lookup on the read path.
//!
//! The table is versioned like keys: a layer is created at one sequence number and dropped at
//! another, so history names layers as they were. Ids are precedences and are not reused
//! while a layer holds them; once dropped, a precedence may be given to a new layer (the old
//! layer's values were deleted when it was dropped, so no version is ambiguous).

use hivelog_index::{LayerId, Seq};

use crate::error::{Error, Result, clip};

/// The layer every write goes to unless another is named.
pub const BASE_LAYER: &str = "base";
/// The highest layer.
pub const POLICY_LAYER: &str = "policy";
/// `base`'s id and precedence.
pub(crate) const BASE: LayerId = 0;
/// `policy`'s id and precedence.
pub(crate) const POLICY: LayerId = LayerId::MAX;
/// Most layers that exist at once, `base` and `policy` included.
pub const LAYERS_MAX: usize = 64;
/// Longest layer name, in bytes.
pub const LAYER_NAME_MAX_BYTES: usize = 64;

/// A layer as a caller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its name.
    pub name: String,
    /// Its precedence: higher wins. `base` is 0, `policy` 65535.
    pub precedence: u16,
    /// The sequence number that created it (0 for `base` and `policy`).
    pub created: Seq,
}

#[derive(Debug, Clone)]
struct Def {
    id: LayerId,
    name: String,
    created: Seq,
    /// The sequence number that dropped it.
    dropped: Option<Seq>,
}

impl Def {
    fn exists_at(&self, at: Seq) -> bool {
        self.created <= at && self.dropped.is_none_or(|dropped| at < dropped)
    }
}

/// Checks a layer name: 1 to LAYER_NAME_MAX_BYTES of ASCII letters, digits, `-`, `_`, `.`.
pub fn check_layer_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= LAYER_NAME_MAX_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        return Ok(());
    }
    Err(Error::InvalidLayerName {
        name: clip(name),
        max: LAYER_NAME_MAX_BYTES,
    })
}

/// Every layer that ever existed, in creation order.
#[derive(Debug, Clone)]
pub(crate) struct Layers {
    defs: Vec<Def>,
}

impl Layers {
    pub(crate) fn new() -> Layers {
        let builtin = |id, name: &str| Def {
            id,
            name: name.to_string(),
            created: 0,
            dropped: None,
        };
        Layers {
            defs: vec![builtin(BASE, BASE_LAYER), builtin(POLICY, POLICY_LAYER)],
        }
    }

    /// The id of the layer named `name` (case-insensitively) at `at`.
    pub(crate) fn id_at(&self, name: &str, at: Seq) -> Option<LayerId> {
        self.defs
            .iter()
            .rev()
            .find(|def| def.exists_at(at) && def.name.eq_ignore_ascii_case(name))
            .map(|def| def.id)
    }

    /// The id of the layer named `name` now, or an error naming the layers there are.
    pub(crate) fn require(&self, name: &str, at: Seq) -> Result<LayerId> {
        self.id_at(name, at).ok_or_else(|| Error::LayerNotFound {
            name: clip(name),
            known: self.names_at(at).join(", "),
        })
    }

    /// Whether layer `id` exists at `at`.
    pub(crate) fn exists(&self, id: LayerId, at: Seq) -> bool {
        self.defs
            .iter()
            .any(|def| def.id == id && def.exists_at(at))
    }

    /// The name layer `id` had at `at` (its id as a number if none had it then).
    pub(crate) fn name_at(&self, id: LayerId, at: Seq) -> String {
        self.defs
            .iter()
            .rev()
            .find(|def| def.id == id && def.created <= at)
            .map_or_else(|| format!("#{id}"), |def| def.name.clone())
    }

    fn names_at(&self, at: Seq) -> Vec<String> {
        self.list_at(at)
            .into_iter()
            .map(|layer| layer.name)
            .collect()
    }

    /// The layers that exist at `at`, highest precedence first.
    pub(crate) fn list_at(&self, at: Seq) -> Vec<Layer> {
        let mut layers: Vec<Layer> = self
            .defs
            .iter()
            .filter(|def| def.exists_at(at))
            .map(|def| Layer {
                name: def.name.clone(),
                precedence: def.id,
                created: def.created,
            })
            .collect();
        layers.sort_by_key(|layer| std::cmp::Reverse(layer.precedence));
        layers
    }

    /// Checks that a layer named `name` with precedence `id` can be created now.
    pub(crate) fn check_new(&self, name: &str, id: LayerId, now: Seq) -> Result<()> {
        check_layer_name(name)?;
        if self.id_at(name, now).is_some() {
            return Err(Error::LayerExists { name: clip(name) });
        }
        if let Some(def) = self
            .defs
            .iter()
            .find(|def| def.id == id && def.exists_at(now))
        {
            return Err(Error::PrecedenceTaken {
                precedence: id,
                layer: def.name.clone(),
            });
        }
        if id == BASE || id == POLICY {
            return Err(Error::PrecedenceTaken {
                precedence: id,
                layer: self.name_at(id, now),
            });
        }
        if self.list_at(now).len() >= LAYERS_MAX {
            return Err(Error::TooMany {
                what: "layers",
                max: LAYERS_MAX,
            });
        }
        Ok(())
    }

    /// Records layer `id` named `name` as created at `seq` (checked by `check_new`, or read
    /// from the journal).
    pub(crate) fn create(&mut self, id: LayerId, name: &str, seq: Seq) {
        debug_assert!(self.check_new(name, id, seq).is_ok());
        self.defs.push(Def {
            id,
            name: name.to_string(),
            created: seq,
            dropped: None,
        });
    }

    /// Checks that layer `id` may be dropped now (`base` and `policy` may not).
    pub(crate) fn check_drop(&self, id: LayerId, now: Seq) -> Result<()> {
        if id == BASE || id == POLICY {
            return Err(Error::BuiltinLayer {
                name: self.name_at(id, now),
            });
        }
        Ok(())
    }

    /// Records layer `id` as dropped at `seq`.
    pub(crate) fn drop_layer(&mut self, id: LayerId, seq: Seq) {
        let def = self
            .defs
            .iter_mut()
            .rev()
            .find(|def| def.id == id && def.dropped.is_none())
            .expect("dropping a layer that exists");
        def.dropped = Some(seq);
    }

    /// The table as of `at`, for a checkpoint: (id, name, created, dropped).
    pub(crate) fn image(&self, at: Seq) -> Vec<(LayerId, String, Seq, Option<Seq>)> {
        self.defs
            .iter()
            .filter(|def| def.created <= at)
            .map(|def| {
                let dropped = def.dropped.filter(|&dropped| dropped <= at);
                (def.id, def.name.clone(), def.created, dropped)
            })
            .collect()
    }

    /// The table an image holds, if it is one: the built-in layers first, then each created
    /// after the previous and valid.
    pub(crate) fn from_image(
        defs: impl Iterator<Item = (LayerId, String, Seq, Option<Seq>)>,
    ) -> std::result::Result<Layers, String> {
        let mut layers = Layers { defs: Vec::new() };
        for (id, name, created, dropped) in defs {
            let builtin = layers.defs.len() < 2;
            let in_order = layers
                .defs
                .last()
                .is_none_or(|last| last.created <= created);
            if check_layer_name(&name).is_err()
                || !in_order
                || dropped.is_some_and(|dropped| dropped < created)
                || builtin != (created == 0)
            {
                return Err(format!("layer {name:?} (id {id}) is out of place"));
            }
            layers.defs.push(Def {
                id,
                name,
                created,
                dropped,
            });
        }
        let builtins = Layers::new();
        let same = |a: &Def, b: &Def| a.id == b.id && a.name == b.name && a.dropped.is_none();
        if layers.defs.len() < 2
            || !same(&layers.defs[0], &builtins.defs[0])
            || !same(&layers.defs[1], &builtins.defs[1])
        {
            return Err("the built-in layers are missing".into());
        }
        Ok(layers)
    }

    /// Forgets everything transaction `seq` did (it rolled back).
    pub(crate) fn rollback(&mut self, seq: Seq) {
        self.defs
            .retain(|def| def.created != seq || def.created == 0);
        for def in &mut self.defs {
            if def.dropped == Some(seq) {
                def.dropped = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_created_dropped_and_seen_as_of_a_sequence_number() {
        let mut layers = Layers::new();
        assert_eq!(layers.id_at("BASE", 0), Some(BASE));
        assert_eq!(layers.id_at("policy", 5), Some(POLICY));
        layers.check_new("web", 10, 3).unwrap();
        layers.create(10, "web", 3);
        assert_eq!(layers.id_at("Web", 3), Some(10));
        assert_eq!(layers.id_at("web", 2), None, "not before it was created");
        let order: Vec<u16> = layers.list_at(3).iter().map(|l| l.precedence).collect();
        assert_eq!(order, [POLICY, 10, BASE], "highest precedence first");
        assert!(matches!(
            layers.check_new("web", 11, 4),
            Err(Error::LayerExists { .. })
        ));
        assert!(matches!(
            layers.check_new("db", 10, 4),
            Err(Error::PrecedenceTaken { precedence: 10, .. })
        ));
        assert!(matches!(
            layers.check_new("db", 0, 4),
            Err(Error::PrecedenceTaken { .. })
        ));
        assert!(matches!(
            layers.check_drop(BASE, 4),
            Err(Error::BuiltinLayer { .. })
        ));
        layers.drop_layer(10, 5);
        assert_eq!(layers.id_at("web", 5), None);
        assert_eq!(layers.id_at("web", 4), Some(10));
        assert_eq!(layers.name_at(10, 6), "web", "history keeps the name");
        layers.check_new("db", 10, 6).unwrap();
        layers.create(10, "db", 6);
        layers.rollback(6);
        assert_eq!(
            layers.id_at("db", 6),
            None,
            "a rolled-back creation is gone"
        );
        layers.rollback(5);
        assert_eq!(
            layers.id_at("web", 7),
            Some(10),
            "a rolled-back drop is undone"
        );
    }

    #[test]
    fn layer_names_are_checked() {
        for bad in ["", "has space", "ü", &"x".repeat(LAYER_NAME_MAX_BYTES + 1)] {
            assert!(check_layer_name(bad).is_err(), "{bad:?}");
        }
        check_layer_name("role-web_1.2").unwrap();
    }

    #[test]
    fn too_many_layers_are_refused() {
        let mut layers = Layers::new();
        for id in 1..(LAYERS_MAX as u16 - 1) {
            layers.create(id, &format!("l{id}"), 1);
        }
        assert!(matches!(
            layers.check_new("one-more", 500, 2),
            Err(Error::TooMany { .. })
        ));
    }
}
