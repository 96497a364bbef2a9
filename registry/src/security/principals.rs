//! Principals: who an ACE names and who a caller is. A principal is a string, either a SID
//! (`S-1-5-18`) or a plain name (`alice`, our extension for stores without a domain). The
//! two-letter SDDL aliases (`SY`, `BA`, ...) are synonyms of their SIDs everywhere: the
//! stored form is the SID.
//!
//! The access check compares principals on every read, so they are interned into dense
//! integer ids once, when a descriptor is compiled or a caller's identity built.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result, clip};

/// LocalSystem: the store itself, and what a session acts as unless it names a caller.
pub const SYSTEM: &str = "S-1-5-18";
/// BUILTIN\Administrators.
pub const ADMINISTRATORS: &str = "S-1-5-32-544";
/// BUILTIN\Users.
pub const USERS: &str = "S-1-5-32-545";
/// Everyone: every caller is in this group.
pub const EVERYONE: &str = "S-1-1-0";
/// CREATOR OWNER: in an inheritable ACE, stands for whoever creates the subkey.
pub const CREATOR_OWNER: &str = "S-1-3-0";
/// Authenticated Users: every caller is in this group.
pub const AUTHENTICATED_USERS: &str = "S-1-5-11";

/// The longest principal, in UTF-8 bytes. Windows SIDs stay under 200 characters; names
/// longer than this are mistakes, and they would bloat every descriptor that names them.
pub const PRINCIPAL_MAX_BYTES: usize = 256;

/// The most distinct principals one store interns: bounds the interner's memory.
pub const PRINCIPALS_MAX: usize = 1_000_000;

/// Windows' limit (SID_MAX_SUB_AUTHORITIES).
const SID_SUB_AUTHORITIES_MAX: usize = 15;

/// Windows' identifier authority is 48 bits wide.
const SID_AUTHORITY_MAX: u64 = (1 << 48) - 1;

/// The SDDL aliases this store knows, with their SIDs.
const ALIASES: [(&str, &str); 16] = [
    ("SY", SYSTEM),
    ("BA", ADMINISTRATORS),
    ("BU", USERS),
    ("BG", "S-1-5-32-546"),
    ("PU", "S-1-5-32-547"),
    ("WD", EVERYONE),
    ("CO", CREATOR_OWNER),
    ("CG", "S-1-3-1"),
    ("AU", AUTHENTICATED_USERS),
    ("AN", "S-1-5-7"),
    ("LS", "S-1-5-19"),
    ("NS", "S-1-5-20"),
    ("IU", "S-1-5-4"),
    ("SU", "S-1-5-6"),
    ("RC", "S-1-5-12"),
    ("OW", "S-1-3-4"),
];

/// The SID an SDDL alias (`SY`, upper case as Windows writes it) stands for.
pub fn alias_to_sid(alias: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(a, _)| *a == alias)
        .map(|(_, sid)| *sid)
}

/// The SDDL alias of a well-known SID.
pub fn sid_to_alias(sid: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(_, s)| *s == sid)
        .map(|(alias, _)| *alias)
}

/// The stored form of a principal: an alias becomes its SID, anything else stays.
pub(crate) fn resolve_alias(principal: &str) -> &str {
    alias_to_sid(principal).unwrap_or(principal)
}

/// Checks that `principal` can be stored and printed as SDDL: non-empty, at most
/// PRINCIPAL_MAX_BYTES, no control characters, whitespace or `;():\`, and a well-formed SID
/// if it starts with `S-`.
///
/// `:` is refused (beyond what Windows SDDL needs) because a plain name holding `G:` or `D:`
/// would make the SDDL parts ambiguous; Windows account names cannot hold it either.
pub fn check_principal(principal: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidPrincipal {
        principal: clip(principal),
        reason,
    };
    if principal.is_empty() {
        return Err(invalid("a principal cannot be empty"));
    }
    if principal.len() > PRINCIPAL_MAX_BYTES {
        return Err(Error::PrincipalTooLong {
            principal: clip(principal),
            len: principal.len(),
            max: PRINCIPAL_MAX_BYTES,
        });
    }
    if principal
        .chars()
        .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(invalid(
            "a principal cannot hold whitespace or control characters",
        ));
    }
    if principal.contains([';', '(', ')', ':', '\\']) {
        return Err(invalid(r"a principal cannot hold ; ( ) : or \"));
    }
    match principal.strip_prefix("S-") {
        Some(rest) => check_sid(rest).map_err(invalid),
        None => Ok(()),
    }
}

/// Checks the part of a SID after `S-`: `1-<authority>-<sub>...`, decimal, 1 to 15
/// sub-authorities. Leading zeros are refused so that equal strings mean equal SIDs: the
/// access check compares principals as strings.
fn check_sid(rest: &str) -> Result<(), &'static str> {
    let mut parts = rest.split('-');
    let revision = parts.next().map(decimal).ok_or(SID_SHAPE)??;
    if revision != 1 {
        return Err("a SID's revision must be 1 (S-1-...)");
    }
    let authority = parts.next().map(decimal).ok_or(SID_SHAPE)??;
    if authority > SID_AUTHORITY_MAX {
        return Err("a SID's identifier authority must fit in 48 bits");
    }
    let mut subs = 0usize;
    for part in parts {
        if decimal(part)? > u64::from(u32::MAX) {
            return Err("a SID's sub-authorities must fit in 32 bits");
        }
        subs += 1;
    }
    match subs {
        0 => Err(SID_SHAPE),
        1..=SID_SUB_AUTHORITIES_MAX => Ok(()),
        _ => Err("a SID has at most 15 sub-authorities"),
    }
}

const SID_SHAPE: &str = "a SID must read S-1-<authority>-<sub-authority>... in decimal";

fn decimal(part: &str) -> Result<u64, &'static str> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SID_SHAPE);
    }
    if part.len() > 1 && part.starts_with('0') {
        return Err("a SID's parts cannot have leading zeros");
    }
    part.parse().map_err(|_| SID_SHAPE)
}

/// A principal interned in [`Principals`]: dense from 0, so the access check compares
/// integers instead of strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PrincipalId(u32);

/// The interner: every principal a compiled descriptor or an identity names, once.
#[derive(Debug, Default)]
pub(crate) struct Principals {
    ids: HashMap<Arc<str>, PrincipalId>,
    names: Vec<Arc<str>>,
}

impl Principals {
    /// An empty interner.
    pub(crate) fn new() -> Principals {
        Principals::default()
    }

    /// The id of `principal`, interning it if new. Callers check the principal first
    /// (`check_principal`); an alias is not resolved here.
    pub(crate) fn intern(&mut self, principal: &str) -> Result<PrincipalId> {
        debug_assert!(check_principal(principal).is_ok(), "{principal:?}");
        if let Some(&id) = self.ids.get(principal) {
            return Ok(id);
        }
        if self.names.len() >= PRINCIPALS_MAX {
            return Err(Error::TooManyPrincipals {
                max: PRINCIPALS_MAX,
            });
        }
        // Fits: PRINCIPALS_MAX is below u32::MAX (asserted at compile time below).
        let id = PrincipalId(self.names.len() as u32);
        let name: Arc<str> = Arc::from(principal);
        self.names.push(Arc::clone(&name));
        self.ids.insert(name, id);
        assert_eq!(self.ids.len(), self.names.len(), "ids are dense");
        Ok(id)
    }

    /// The id of `principal` if it was interned (the tests' view of the interner).
    #[cfg(test)]
    pub(crate) fn get(&self, principal: &str) -> Option<PrincipalId> {
        self.ids.get(principal).copied()
    }

    /// The principal an id stands for (the tests' view of the interner).
    #[cfg(test)]
    pub(crate) fn name(&self, id: PrincipalId) -> &str {
        // Ids are only made by `intern` of this interner, which never forgets a name, so
        // the index is in range.
        &self.names[id.0 as usize]
    }
}

const _: () = assert!(PRINCIPALS_MAX < u32::MAX as usize);
