//! Access rights on keys: the Windows bit values, their names, and generic mapping.
//!
//! The values are Windows' own (winnt.h), so a mask read from a `.reg` tool or a Windows
//! program means the same thing here.

use std::fmt;
use std::ops::{BitAnd, BitOr};

/// A set of access rights on a key, as the Windows 32-bit mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(pub u32);

impl Access {
    /// No rights at all.
    pub const NONE: Access = Access(0);
    /// Read a value.
    pub const KEY_QUERY_VALUE: Access = Access(0x0001);
    /// Create, change or delete a value.
    pub const KEY_SET_VALUE: Access = Access(0x0002);
    /// Create a subkey.
    pub const KEY_CREATE_SUB_KEY: Access = Access(0x0004);
    /// List the subkeys.
    pub const KEY_ENUMERATE_SUB_KEYS: Access = Access(0x0008);
    /// Watch the key for changes.
    pub const KEY_NOTIFY: Access = Access(0x0010);
    /// Create a symbolic link.
    pub const KEY_CREATE_LINK: Access = Access(0x0020);
    /// Delete the key.
    pub const DELETE: Access = Access(0x0001_0000);
    /// Read the security descriptor (owner and DACL).
    pub const READ_CONTROL: Access = Access(0x0002_0000);
    /// Change the DACL.
    pub const WRITE_DAC: Access = Access(0x0004_0000);
    /// Change the owner.
    pub const WRITE_OWNER: Access = Access(0x0008_0000);
    /// Read: READ_CONTROL | KEY_QUERY_VALUE | KEY_ENUMERATE_SUB_KEYS | KEY_NOTIFY.
    pub const KEY_READ: Access = Access(0x0002_0019);
    /// Write: READ_CONTROL | KEY_SET_VALUE | KEY_CREATE_SUB_KEY.
    pub const KEY_WRITE: Access = Access(0x0002_0006);
    /// Execute: the same bits as KEY_READ, as in Windows.
    pub const KEY_EXECUTE: Access = Access::KEY_READ;
    /// Every right a key has.
    pub const KEY_ALL_ACCESS: Access = Access(0x000F_003F);
    /// Generic read, mapped to KEY_READ.
    pub const GENERIC_READ: Access = Access(0x8000_0000);
    /// Generic write, mapped to KEY_WRITE.
    pub const GENERIC_WRITE: Access = Access(0x4000_0000);
    /// Generic execute, mapped to KEY_EXECUTE.
    pub const GENERIC_EXECUTE: Access = Access(0x2000_0000);
    /// Generic all, mapped to KEY_ALL_ACCESS.
    pub const GENERIC_ALL: Access = Access(0x1000_0000);
    /// Asks the access check for every right the caller holds.
    pub const MAXIMUM_ALLOWED: Access = Access(0x0200_0000);
    /// Every bit that means something for a key: a request may carry generic bits and
    /// MAXIMUM_ALLOWED, a stored ACE only KEY_ALL_ACCESS bits.
    pub const VALID_MASK: Access = Access(
        Access::KEY_ALL_ACCESS.0
            | Access::GENERIC_READ.0
            | Access::GENERIC_WRITE.0
            | Access::GENERIC_EXECUTE.0
            | Access::GENERIC_ALL.0
            | Access::MAXIMUM_ALLOWED.0,
    );

    const GENERIC_MAPPING: [(Access, Access); 4] = [
        (Access::GENERIC_READ, Access::KEY_READ),
        (Access::GENERIC_WRITE, Access::KEY_WRITE),
        (Access::GENERIC_EXECUTE, Access::KEY_EXECUTE),
        (Access::GENERIC_ALL, Access::KEY_ALL_ACCESS),
    ];

    /// Whether every right in `other` is in `self`.
    pub const fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    /// The rights in either.
    pub const fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    /// The rights in `self` that are not in `other`.
    pub const fn minus(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }

    /// Whether no right is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The generic bits replaced by the key rights they stand for; other bits kept.
    pub const fn map_generic(self) -> Access {
        let mut out = self;
        let mut i = 0;
        while i < Access::GENERIC_MAPPING.len() {
            let (generic, specific) = Access::GENERIC_MAPPING[i];
            if self.contains(generic) {
                out = out.minus(generic).union(specific);
            }
            i += 1;
        }
        out
    }

    /// Parses a right's name (`KEY_READ`, `DELETE`, `GENERIC_ALL`, case ignored), a `0x` hex
    /// mask, several of those joined by `|`, or `no access`; the inverse of Display.
    pub fn parse(text: &str) -> Option<Access> {
        parse_named_bits(text, NAMES, NO_ACCESS).map(Access)
    }
}

impl BitOr for Access {
    type Output = Access;
    fn bitor(self, other: Access) -> Access {
        self.union(other)
    }
}

impl BitAnd for Access {
    type Output = Access;
    fn bitand(self, other: Access) -> Access {
        Access(self.0 & other.0)
    }
}

const NO_ACCESS: &str = "no access";

/// Display order: composites first, so a mask holding all of KEY_READ prints as KEY_READ and
/// not as its four parts. KEY_EXECUTE is KEY_READ's twin, so it is parsed but never printed.
const NAMES: &[(&str, u32)] = &[
    ("KEY_ALL_ACCESS", Access::KEY_ALL_ACCESS.0),
    ("KEY_READ", Access::KEY_READ.0),
    ("KEY_WRITE", Access::KEY_WRITE.0),
    ("KEY_QUERY_VALUE", Access::KEY_QUERY_VALUE.0),
    ("KEY_SET_VALUE", Access::KEY_SET_VALUE.0),
    ("KEY_CREATE_SUB_KEY", Access::KEY_CREATE_SUB_KEY.0),
    ("KEY_ENUMERATE_SUB_KEYS", Access::KEY_ENUMERATE_SUB_KEYS.0),
    ("KEY_NOTIFY", Access::KEY_NOTIFY.0),
    ("KEY_CREATE_LINK", Access::KEY_CREATE_LINK.0),
    ("DELETE", Access::DELETE.0),
    ("READ_CONTROL", Access::READ_CONTROL.0),
    ("WRITE_DAC", Access::WRITE_DAC.0),
    ("WRITE_OWNER", Access::WRITE_OWNER.0),
    ("GENERIC_READ", Access::GENERIC_READ.0),
    ("GENERIC_WRITE", Access::GENERIC_WRITE.0),
    ("GENERIC_EXECUTE", Access::GENERIC_EXECUTE.0),
    ("GENERIC_ALL", Access::GENERIC_ALL.0),
    ("MAXIMUM_ALLOWED", Access::MAXIMUM_ALLOWED.0),
    ("KEY_EXECUTE", Access::KEY_EXECUTE.0),
];

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_named_bits(f, self.0, NAMES, NO_ACCESS)
    }
}

/// Writes `bits` as names from `names` joined by " | ", each name used when all its bits are
/// present and at least one of them is not yet named; bits without a name as one hex number.
/// Shared by [`Access`] and [`Privileges`](super::Privileges), so both read and parse alike.
pub(super) fn fmt_named_bits(
    f: &mut fmt::Formatter<'_>,
    bits: u32,
    names: &[(&str, u32)],
    none: &str,
) -> fmt::Result {
    if bits == 0 {
        return f.write_str(none);
    }
    let mut named = 0u32;
    let mut sep = "";
    for &(name, value) in names {
        if bits & value == value && value & !named != 0 {
            write!(f, "{sep}{name}")?;
            named |= value;
            sep = " | ";
        }
    }
    if bits & !named != 0 {
        write!(f, "{sep}{:#x}", bits & !named)?;
    }
    Ok(())
}

/// The inverse of [`fmt_named_bits`]: names (case ignored) or `0x` hex joined by `|`.
pub(super) fn parse_named_bits(text: &str, names: &[(&str, u32)], none: &str) -> Option<u32> {
    if text.trim().eq_ignore_ascii_case(none) {
        return Some(0);
    }
    let mut bits = 0u32;
    for word in text.split('|').map(str::trim) {
        bits |= match parse_hex(word) {
            Some(value) => value,
            None => {
                names
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(word))?
                    .1
            }
        };
    }
    Some(bits)
}

/// `0x1f` or `0X1F`; nothing else.
pub(super) fn parse_hex(word: &str) -> Option<u32> {
    let digits = word
        .strip_prefix("0x")
        .or_else(|| word.strip_prefix("0X"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}
