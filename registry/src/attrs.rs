//! What the index keeps for a key besides its existence and values: its security descriptor
//! (interned, by id) and its flags. Versioned like everything else, so a read at a past
//! sequence number checks access against the descriptor in force then.

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

/// A key's attributes, as the index versions them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct KeyAttrs {
    pub sd: SdId,
    pub flags: KeyFlags,
}

impl KeyAttrs {
    pub fn is_link(self) -> bool {
        self.flags.contains(KeyFlags::LINK)
    }

    pub fn is_volatile(self) -> bool {
        self.flags.contains(KeyFlags::VOLATILE)
    }
}
