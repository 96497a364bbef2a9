//! The access check: who a caller is, and whether a descriptor grants what they ask for.
//!
//! It runs on every point read, so it works on compiled forms: a [`CompiledSd`] holds
//! interned principal ids instead of strings, an [`Identity`] the ids a caller answers to.
//! The check allocates nothing: one pass over the ACEs, each with a linear membership test
//! over a handful of ids.

use std::fmt;

use super::access::{Access, fmt_named_bits, parse_named_bits};
use super::descriptor::{AceFlags, AceKind, SecurityDescriptor};
use super::principals::{
    AUTHENTICATED_USERS, EVERYONE, PrincipalId, Principals, SYSTEM, USERS, check_principal,
    resolve_alias,
};
use crate::error::{Error, Result, clip};

/// The most groups one caller is in. Windows tokens hold at most 1,015; the membership
/// test is linear in this.
pub const CALLER_GROUPS_MAX: usize = 1024;

/// Privileges: rights a caller holds whatever the descriptors say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Privileges(pub u8);

impl Privileges {
    /// None.
    pub const NONE: Privileges = Privileges(0);
    /// SeBackupPrivilege: read every key for a backup, whatever its descriptor (it opens no
    /// key by itself: an ordinary read is checked against the descriptor as for anyone).
    pub const BACKUP: Privileges = Privileges(1);
    /// SeRestorePrivilege: write every key in a restore, and make anyone a key's owner.
    pub const RESTORE: Privileges = Privileges(2);
    /// SeTakeOwnershipPrivilege: WRITE_OWNER on any key.
    pub const TAKE_OWNERSHIP: Privileges = Privileges(4);
    /// SeSecurityPrivilege: read the audit history.
    pub const SECURITY: Privileges = Privileges(8);
    /// SeImpersonatePrivilege: act as another principal.
    pub const IMPERSONATE: Privileges = Privileges(16);
    /// Every privilege.
    pub const ALL: Privileges = Privileges(31);

    /// Whether every privilege in `other` is held.
    pub const fn contains(self, other: Privileges) -> bool {
        self.0 & other.0 == other.0
    }

    /// The privileges in either.
    pub const fn union(self, other: Privileges) -> Privileges {
        Privileges(self.0 | other.0)
    }

    /// The Windows name of the privilege (`SeBackupPrivilege`); for a set, of its first
    /// one (`no privileges` for none). Errors name the one privilege an operation requires.
    pub fn name(self) -> &'static str {
        PRIVILEGE_NAMES
            .iter()
            .find(|(_, bit)| u32::from(self.0) & bit != 0)
            .map_or(NO_PRIVILEGES, |(name, _)| name)
    }

    /// Parses Windows privilege names (`SeBackupPrivilege`, case ignored) joined by `|`,
    /// or `no privileges`; the inverse of Display.
    pub fn parse(text: &str) -> Option<Privileges> {
        let bits = parse_named_bits(text, &PRIVILEGE_NAMES, NO_PRIVILEGES)?;
        u8::try_from(bits).ok().map(Privileges)
    }
}

const NO_PRIVILEGES: &str = "no privileges";

const PRIVILEGE_NAMES: [(&str, u32); 5] = [
    ("SeBackupPrivilege", Privileges::BACKUP.0 as u32),
    ("SeRestorePrivilege", Privileges::RESTORE.0 as u32),
    (
        "SeTakeOwnershipPrivilege",
        Privileges::TAKE_OWNERSHIP.0 as u32,
    ),
    ("SeSecurityPrivilege", Privileges::SECURITY.0 as u32),
    ("SeImpersonatePrivilege", Privileges::IMPERSONATE.0 as u32),
];

impl fmt::Display for Privileges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_named_bits(f, u32::from(self.0), &PRIVILEGE_NAMES, NO_PRIVILEGES)
    }
}

/// Who a session acts as: a principal, the groups it is in, and its privileges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The principal itself.
    pub principal: String,
    /// The groups it is in (Everyone and Authenticated Users are always added).
    pub groups: Vec<String>,
    /// The privileges it holds.
    pub privileges: Privileges,
}

impl Caller {
    /// LocalSystem with every privilege: what the store acts as unless told otherwise.
    pub fn system() -> Caller {
        Caller {
            principal: SYSTEM.to_string(),
            groups: vec![EVERYONE.to_string(), AUTHENTICATED_USERS.to_string()],
            privileges: Privileges::ALL,
        }
    }

    /// An ordinary user: in Everyone, Authenticated Users and Users; no privileges.
    pub fn user(principal: &str) -> Caller {
        Caller {
            principal: principal.to_string(),
            groups: [EVERYONE, AUTHENTICATED_USERS, USERS]
                .map(String::from)
                .to_vec(),
            privileges: Privileges::NONE,
        }
    }

    /// The caller, also in group `group` (a SID, alias or plain name).
    pub fn with_group(mut self, group: &str) -> Caller {
        self.groups.push(group.to_string());
        self
    }

    /// The caller, holding exactly `privileges` (replacing what it held).
    pub fn with_privileges(mut self, privileges: Privileges) -> Caller {
        self.privileges = privileges;
        self
    }

    /// Checks the principal and every group (`check_principal`), and that there are at
    /// most CALLER_GROUPS_MAX groups.
    pub fn validate(&self) -> Result<()> {
        if self.groups.len() > CALLER_GROUPS_MAX {
            return Err(Error::TooManyGroups {
                principal: clip(&self.principal),
                count: self.groups.len(),
                max: CALLER_GROUPS_MAX,
            });
        }
        check_principal(&self.principal)?;
        self.groups
            .iter()
            .try_for_each(|group| check_principal(group))
    }
}

/// One ACE with its principal interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompiledAce {
    /// Allow (or deny).
    pub allow: bool,
    /// Skipped by the check: the entry is only for subkeys to inherit.
    pub inherit_only: bool,
    /// The rights, within KEY_ALL_ACCESS.
    pub mask: u32,
    /// Whom it is for.
    pub principal: PrincipalId,
}

/// A descriptor as the access check reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompiledSd {
    /// The owner.
    pub owner: PrincipalId,
    /// The DACL, in order.
    pub aces: Box<[CompiledAce]>,
}

/// Checks `sd` (as `validate` does) and interns its principals, aliases as their SIDs.
pub(crate) fn compile(sd: &SecurityDescriptor, principals: &mut Principals) -> Result<CompiledSd> {
    sd.validate()?;
    let owner = principals.intern(resolve_alias(&sd.owner))?;
    let aces = sd
        .dacl
        .iter()
        .map(|ace| {
            Ok(CompiledAce {
                allow: ace.kind == AceKind::Allow,
                inherit_only: ace.flags.contains(AceFlags::INHERIT_ONLY),
                mask: ace.mask.0,
                principal: principals.intern(resolve_alias(&ace.principal))?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(CompiledSd { owner, aces })
}

/// A caller as the access check reads it: every id it answers to, and its privileges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    ids: Box<[PrincipalId]>,
    /// The privileges it holds.
    pub privileges: Privileges,
}

impl Identity {
    /// Whether the caller is `id` or in group `id`. Linear: an identity holds a handful
    /// of ids, and a scan of a few integers beats hashing.
    #[inline]
    fn is(&self, id: PrincipalId) -> bool {
        self.ids.contains(&id)
    }
}

/// Checks (`Caller::validate`) and interns `caller`'s principal and groups, adding Everyone
/// and Authenticated Users.
pub(crate) fn identity(caller: &Caller, principals: &mut Principals) -> Result<Identity> {
    caller.validate()?;
    let names = [caller.principal.as_str(), EVERYONE, AUTHENTICATED_USERS];
    let mut ids = Vec::with_capacity(names.len() + caller.groups.len());
    for name in names
        .into_iter()
        .chain(caller.groups.iter().map(String::as_str))
    {
        ids.push(principals.intern(resolve_alias(name))?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(Identity {
        ids: ids.into_boxed_slice(),
        privileges: caller.privileges,
    })
}

/// Windows' access check in one call, `Ok(granted)` or `Err(missing)`: what the store does
/// in two steps (the rights a descriptor grants, kept per session; then the request), for the
/// tests' matrix.
///
/// Generic rights in `desired` are mapped first. The owner holds READ_CONTROL and WRITE_DAC
/// whatever the DACL says (so a DACL cannot lock its owner out of repairing it), and
/// SeTakeOwnershipPrivilege grants WRITE_OWNER. Then the DACL is read in order, skipping
/// inherit-only entries and entries for others: an allow entry grants what no earlier deny
/// entry refused, a deny entry refuses what no earlier allow entry granted. What was asked
/// for must all be granted. Deciding each right by the first entry that names it is what
/// Windows' walk does too, so the answer for any request follows from the set of rights the
/// walk grants ([`maximum_rights`]): a session computes that once per descriptor and keeps
/// it (`grants.rs`). With MAXIMUM_ALLOWED, see [`grant`].
#[cfg(test)]
pub(crate) fn access_check(
    sd: &CompiledSd,
    who: &Identity,
    desired: Access,
) -> Result<Access, Access> {
    grant(maximum_rights(sd, who), desired)
}

/// Every right `sd` grants `who`, possibly none.
pub(crate) fn maximum_rights(sd: &CompiledSd, who: &Identity) -> Access {
    let mut granted = implicit_rights(sd, who);
    let mut denied = 0u32;
    for ace in applicable(sd, who) {
        if ace.allow {
            granted |= ace.mask & !denied;
        } else {
            denied |= ace.mask & !granted;
        }
    }
    Access(granted)
}

/// What the caller holds before the DACL is read.
#[inline]
fn implicit_rights(sd: &CompiledSd, who: &Identity) -> u32 {
    let mut granted = 0;
    if who.is(sd.owner) {
        granted |= Access::READ_CONTROL.0 | Access::WRITE_DAC.0;
    }
    if who.privileges.contains(Privileges::TAKE_OWNERSHIP) {
        granted |= Access::WRITE_OWNER.0;
    }
    granted
}

/// The entries of `sd` that apply to `who`, in order.
#[inline]
fn applicable<'a>(sd: &'a CompiledSd, who: &'a Identity) -> impl Iterator<Item = &'a CompiledAce> {
    sd.aces
        .iter()
        .filter(move |ace| !ace.inherit_only && who.is(ace.principal))
}

/// The answer to a request for `desired` from a caller who holds `maximum`: `Ok(desired)`,
/// or `Err(missing)`. MAXIMUM_ALLOWED asks for everything held (with the other rights
/// asked for required): holding nothing at all fails with KEY_READ missing, the least a
/// caller opening a key would want.
#[inline]
pub(crate) fn grant(maximum: Access, desired: Access) -> Result<Access, Access> {
    let desired = desired.map_generic();
    let required = desired.minus(Access::MAXIMUM_ALLOWED);
    let missing = required.minus(maximum);
    if !missing.is_empty() {
        return Err(missing);
    }
    if !desired.contains(Access::MAXIMUM_ALLOWED) {
        return Ok(desired);
    }
    if maximum.is_empty() {
        return Err(Access::KEY_READ);
    }
    Ok(maximum)
}
