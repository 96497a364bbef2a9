//! What the index keeps for a key besides its existence and values: its security descriptor
//! and class (both interned, by id) and its flags. Versioned like everything else, so a read
//! at a past sequence number checks access against the descriptor in force then.

use std::collections::HashMap;

use crate::error::{Error, Result, clip};

/// A security descriptor interned in the store's table ([`crate::descriptors`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct SdId(pub u32);

/// A key's flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyFlags(pub u8);

impl KeyFlags {
    /// Opens of the key redirect to the target in its `SymbolicLinkValue` value.
    pub const LINK: KeyFlags = KeyFlags(1);
    /// The key lives in memory only: never journaled, gone at the next open.
    pub const VOLATILE: KeyFlags = KeyFlags(2);

    pub fn contains(self, flag: KeyFlags) -> bool {
        self.0 & flag.0 == flag.0
    }

    pub fn with(self, flag: KeyFlags) -> KeyFlags {
        KeyFlags(self.0 | flag.0)
    }
}

/// A key's class (Windows' `lpClass`), interned in [`ClassNames`]; 0 is none. 16 bits, so
/// that [`KeyAttrs`] stays 8 bytes: it sits in the key block every point read loads, where 4
/// more bytes cost 5–7% of W3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct ClassId(pub u16);

/// A key's attributes, as the index versions them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyAttrs {
    // 4 + 2 + 1 bytes: 8 with padding (asserted below).
    pub sd: SdId,
    pub class: ClassId,
    pub flags: KeyFlags,
}

const _: () = assert!(std::mem::size_of::<KeyAttrs>() == 8);

/// Longest key class, in UTF-16 code units (Windows sets none; its own classes are short).
pub const KEY_CLASS_MAX_CHARS: usize = 255;

/// Checks a key class: 1 to KEY_CLASS_MAX_CHARS characters, no NUL.
pub fn check_class(class: &str) -> Result<()> {
    let len: usize = class.chars().map(char::len_utf16).sum();
    if class.is_empty() || len > KEY_CLASS_MAX_CHARS || class.contains('\0') {
        return Err(Error::InvalidClass {
            class: clip(class),
            max: KEY_CLASS_MAX_CHARS,
        });
    }
    Ok(())
}

/// Key classes, each once. Only grows while the store is open.
#[derive(Debug, Default)]
pub(crate) struct ClassNames {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, ClassId>,
}

/// Most distinct classes a store holds (ids 1 to 65,535).
const CLASSES_MAX: usize = u16::MAX as usize;

impl ClassNames {
    /// The id of `class` (checked), adding it if new.
    pub(crate) fn intern(&mut self, class: &str) -> Result<ClassId> {
        if let Some(&id) = self.ids.get(class) {
            return Ok(id);
        }
        check_class(class)?;
        if self.names.len() >= CLASSES_MAX {
            return Err(Error::TooMany {
                what: "distinct key classes",
                max: CLASSES_MAX,
            });
        }
        let id = ClassId(u16::try_from(self.names.len() + 1).expect("checked against CLASSES_MAX"));
        self.names.push(class.into());
        self.ids.insert(class.into(), id);
        Ok(id)
    }

    /// As `intern`, with the empty class meaning none (as a SetKeyClass record says).
    pub(crate) fn intern_or_none(&mut self, class: &str) -> Result<ClassId> {
        if class.is_empty() {
            return Ok(ClassId::default());
        }
        self.intern(class)
    }

    /// Every class, by id from 1.
    pub(crate) fn all(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|name| &**name)
    }

    /// The number of classes.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The class with id `id` (`None` for no class).
    pub(crate) fn get(&self, id: ClassId) -> Option<&str> {
        let index = (id.0 as usize).checked_sub(1)?;
        self.names.get(index).map(|name| &**name)
    }
}

impl KeyAttrs {
    pub fn is_link(self) -> bool {
        self.flags.contains(KeyFlags::LINK)
    }

    pub fn is_volatile(self) -> bool {
        self.flags.contains(KeyFlags::VOLATILE)
    }
}
