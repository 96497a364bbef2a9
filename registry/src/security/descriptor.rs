//! The security descriptor of a key, at the string level: owner, group, DACL. Its journal
//! codec (encode and decode side by side), the Windows inheritance rules for containers, and
//! the descriptors a new store starts with.
//!
//! Payload, little-endian, strings UTF-8 with a u16 byte length:
//! `version u8 (=1) | flags u8 (bit0 protected, bit1 has group) | owner | [group] |
//! ace count u16 | per ACE: kind u8 (0 allow, 1 deny) | flags u8 | mask u32 | principal`.

use hivelog_log::codec::{Put, Reader, Short};

use super::access::Access;
use super::principals::{
    ADMINISTRATORS, CREATOR_OWNER, SYSTEM, USERS, check_principal, resolve_alias,
};
use crate::error::{Error, Result, clip};

/// The most entries one DACL holds. Windows caps an ACL at 64 KiB, which fits about this
/// many entries naming SIDs; the access check walks them on every read.
pub const ACES_MAX: usize = 1024;

/// The largest encoded descriptor: one journal record must not carry more.
pub const SECURITY_DESCRIPTOR_MAX_BYTES: usize = 64 * 1024;

/// The payload version this code writes; decoding refuses others.
const DESCRIPTOR_VERSION: u8 = 1;
const PROTECTED: u8 = 0x01;
const HAS_GROUP: u8 = 0x02;
const KIND_ALLOW: u8 = 0;
const KIND_DENY: u8 = 1;

/// Whether an ACE grants or refuses its rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AceKind {
    /// Grants the rights (ACCESS_ALLOWED_ACE).
    Allow,
    /// Refuses the rights (ACCESS_DENIED_ACE).
    Deny,
}

/// The inheritance flags of an ACE, with Windows' values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AceFlags(pub u8);

impl AceFlags {
    /// No flag: the entry applies to this key only.
    pub const NONE: AceFlags = AceFlags(0);
    /// Inherited by leaf objects; keys have none, so alone it does not propagate.
    pub const OBJECT_INHERIT: AceFlags = AceFlags(0x01);
    /// Inherited by subkeys.
    pub const CONTAINER_INHERIT: AceFlags = AceFlags(0x02);
    /// Inherited by direct subkeys only, without the inherit flags.
    pub const NO_PROPAGATE_INHERIT: AceFlags = AceFlags(0x04);
    /// Does not apply to this key, only to the subkeys that inherit it.
    pub const INHERIT_ONLY: AceFlags = AceFlags(0x08);
    /// Came from the parent rather than being set on this key.
    pub const INHERITED: AceFlags = AceFlags(0x10);
    /// Every flag a stored ACE may carry.
    pub const VALID: AceFlags = AceFlags(0x1f);

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: AceFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags in either.
    pub const fn union(self, other: AceFlags) -> AceFlags {
        AceFlags(self.0 | other.0)
    }

    /// The flags in `self` that are not in `other`.
    pub const fn minus(self, other: AceFlags) -> AceFlags {
        AceFlags(self.0 & !other.0)
    }
}

/// One entry of a DACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ace {
    /// Allow or deny.
    pub kind: AceKind,
    /// Inheritance flags.
    pub flags: AceFlags,
    /// The rights, within KEY_ALL_ACCESS (generic rights mapped).
    pub mask: Access,
    /// Who the entry is for: a SID or a plain name.
    pub principal: String,
}

impl Ace {
    /// An allow entry.
    pub fn allow(principal: &str, mask: Access, flags: AceFlags) -> Ace {
        Ace {
            kind: AceKind::Allow,
            flags,
            mask,
            principal: principal.to_string(),
        }
    }

    /// A deny entry.
    pub fn deny(principal: &str, mask: Access, flags: AceFlags) -> Ace {
        Ace {
            kind: AceKind::Deny,
            ..Ace::allow(principal, mask, flags)
        }
    }

    fn with(&self, flags: AceFlags, principal: &str) -> Ace {
        Ace {
            kind: self.kind,
            flags,
            mask: self.mask,
            principal: principal.to_string(),
        }
    }
}

/// Who owns a key and who may do what with it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityDescriptor {
    /// The owner: always holds READ_CONTROL and WRITE_DAC.
    pub owner: String,
    /// The primary group (kept for Windows' sake; the access check ignores it).
    pub group: Option<String>,
    /// Whether the DACL refuses the parent's inheritable entries (SDDL `D:P`).
    pub protected: bool,
    /// The entries, in the order the access check reads them.
    pub dacl: Vec<Ace>,
}

impl SecurityDescriptor {
    /// Checks that the descriptor can be stored: principals well formed, at most ACES_MAX
    /// entries, masks within KEY_ALL_ACCESS, flags among the five inheritance flags, and
    /// at most SECURITY_DESCRIPTOR_MAX_BYTES encoded. Inheritance (`inherited`, `with_explicit`)
    /// and [`apply`](SecurityDescriptor::apply) build without checking; check their result.
    pub fn validate(&self) -> Result<()> {
        check_principal(&self.owner)?;
        if let Some(group) = &self.group {
            check_principal(group)?;
        }
        if self.dacl.len() > ACES_MAX {
            return Err(Error::TooManyAces {
                count: self.dacl.len(),
                max: ACES_MAX,
            });
        }
        for ace in &self.dacl {
            check_ace(ace)?;
        }
        let len = self.encoded_len();
        if len > SECURITY_DESCRIPTOR_MAX_BYTES {
            return Err(Error::DescriptorTooLarge {
                len,
                max: SECURITY_DESCRIPTOR_MAX_BYTES,
            });
        }
        Ok(())
    }

    /// The size of the payload `encode` writes.
    pub(crate) fn encoded_len(&self) -> usize {
        let string = |s: &str| 2 + s.len();
        let aces: usize = self
            .dacl
            .iter()
            .map(|a| 1 + 1 + 4 + string(&a.principal))
            .sum();
        1 + 1 + string(&self.owner) + self.group.as_deref().map_or(0, string) + 2 + aces
    }

    /// Appends the payload to `buf`. The descriptor must have passed `validate`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        debug_assert!(self.validate().is_ok(), "{self:?}");
        let start = buf.len();
        buf.put_u8(DESCRIPTOR_VERSION);
        let mut flags = 0;
        if self.protected {
            flags |= PROTECTED;
        }
        if self.group.is_some() {
            flags |= HAS_GROUP;
        }
        buf.put_u8(flags);
        put_str(buf, &self.owner);
        if let Some(group) = &self.group {
            put_str(buf, group);
        }
        let count = u16::try_from(self.dacl.len()).expect("validated at most ACES_MAX entries");
        buf.put_u16(count);
        for ace in &self.dacl {
            buf.put_u8(match ace.kind {
                AceKind::Allow => KIND_ALLOW,
                AceKind::Deny => KIND_DENY,
            });
            buf.put_u8(ace.flags.0);
            buf.put_u32(ace.mask.0);
            put_str(buf, &ace.principal);
        }
        debug_assert_eq!(buf.len() - start, self.encoded_len());
    }

    /// Reads a payload back, checking every length, flag, mask and principal.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<SecurityDescriptor, Short> {
        let start = r.position();
        if r.u8("descriptor version")? != DESCRIPTOR_VERSION {
            return Err(Short("unsupported security descriptor version"));
        }
        let flags = r.u8("descriptor flags")?;
        if flags & !(PROTECTED | HAS_GROUP) != 0 {
            return Err(Short("unknown security descriptor flags"));
        }
        let owner = get_principal(r, "descriptor owner")?;
        let group = match flags & HAS_GROUP {
            0 => None,
            _ => Some(get_principal(r, "descriptor group")?),
        };
        let count = usize::from(r.u16("ACE count")?);
        if count > ACES_MAX {
            return Err(Short("more than ACES_MAX entries in a DACL"));
        }
        let mut dacl = Vec::with_capacity(count);
        for _ in 0..count {
            dacl.push(get_ace(r)?);
        }
        if r.position() - start > SECURITY_DESCRIPTOR_MAX_BYTES {
            return Err(Short("security descriptor larger than its limit"));
        }
        Ok(SecurityDescriptor {
            owner,
            group,
            protected: flags & PROTECTED != 0,
            dacl,
        })
    }
}

fn check_ace(ace: &Ace) -> Result<()> {
    check_principal(&ace.principal)?;
    if !Access::KEY_ALL_ACCESS.contains(ace.mask) {
        return Err(Error::BadAccessMask {
            principal: clip(&ace.principal),
            mask: ace.mask.0,
        });
    }
    if !AceFlags::VALID.contains(ace.flags) {
        return Err(Error::BadAceFlags {
            principal: clip(&ace.principal),
            flags: ace.flags.0,
        });
    }
    Ok(())
}

fn get_ace(r: &mut Reader<'_>) -> Result<Ace, Short> {
    let kind = match r.u8("ACE kind")? {
        KIND_ALLOW => AceKind::Allow,
        KIND_DENY => AceKind::Deny,
        _ => return Err(Short("unknown ACE kind")),
    };
    let flags = AceFlags(r.u8("ACE flags")?);
    if !AceFlags::VALID.contains(flags) {
        return Err(Short("unknown ACE flags"));
    }
    let mask = Access(r.u32("ACE mask")?);
    if !Access::KEY_ALL_ACCESS.contains(mask) {
        return Err(Short("ACE mask outside KEY_ALL_ACCESS"));
    }
    let principal = get_principal(r, "ACE principal")?;
    Ok(Ace {
        kind,
        flags,
        mask,
        principal,
    })
}

fn put_str(buf: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("principals are validated at most 256 bytes");
    buf.put_u16(len);
    buf.put_bytes(text.as_bytes());
}

fn get_principal(r: &mut Reader<'_>, what: &'static str) -> Result<String, Short> {
    let len = usize::from(r.u16(what)?);
    let text = r.str(len, what)?;
    check_principal(text).map_err(|_| Short("invalid principal"))?;
    Ok(text.to_string())
}

/// The descriptor a new subkey of a key with descriptor `parent` gets when `creator`
/// creates it without naming one: owned by the creator, the parent's group, and the
/// parent's inheritable entries, by Windows' rules for containers: only CONTAINER_INHERIT
/// entries propagate; a CREATOR OWNER entry becomes one for `creator` (and stays inheritable
/// unless NO_PROPAGATE_INHERIT); a NO_PROPAGATE_INHERIT entry applies to the child only.
pub fn inherited(parent: &SecurityDescriptor, creator: &str) -> SecurityDescriptor {
    let mut dacl = Vec::new();
    inherit_into(&mut dacl, parent, creator);
    SecurityDescriptor {
        owner: creator.to_string(),
        group: parent.group.clone(),
        protected: false,
        dacl,
    }
}

/// The descriptor a new subkey gets when created with `explicit`: its own entries first
/// (as explicit entries), then the parent's inheritable entries unless `explicit` is
/// protected. Its group is the explicit one, else the parent's, as in [`inherited`].
pub fn with_explicit(
    explicit: SecurityDescriptor,
    parent: &SecurityDescriptor,
    creator: &str,
) -> SecurityDescriptor {
    let mut dacl: Vec<Ace> = explicit
        .dacl
        .into_iter()
        .map(|ace| Ace {
            flags: ace.flags.minus(AceFlags::INHERITED),
            ..ace
        })
        .collect();
    if !explicit.protected {
        inherit_into(&mut dacl, parent, creator);
    }
    SecurityDescriptor {
        owner: explicit.owner,
        group: explicit.group.or_else(|| parent.group.clone()),
        protected: explicit.protected,
        dacl,
    }
}

/// Windows' rules for a container child, in the parent's order. Only CONTAINER_INHERIT
/// entries propagate (OBJECT_INHERIT alone is for leaf objects, which keys do not have).
/// A CREATOR OWNER entry becomes an effective entry for `creator`, plus (unless
/// NO_PROPAGATE_INHERIT) an inherit-only CREATOR OWNER entry so grandchildren substitute
/// their own creator. A NO_PROPAGATE_INHERIT entry applies to the child and stops there.
fn inherit_into(dacl: &mut Vec<Ace>, parent: &SecurityDescriptor, creator: &str) {
    for ace in &parent.dacl {
        if !ace.flags.contains(AceFlags::CONTAINER_INHERIT) {
            continue;
        }
        let no_propagate = ace.flags.contains(AceFlags::NO_PROPAGATE_INHERIT);
        if resolve_alias(&ace.principal) == CREATOR_OWNER {
            dacl.push(ace.with(AceFlags::INHERITED, creator));
            if !no_propagate {
                let kept = AceFlags(ace.flags.0 & AceFlags::OBJECT_INHERIT.0);
                let flags = kept
                    .union(AceFlags::CONTAINER_INHERIT)
                    .union(AceFlags::INHERIT_ONLY)
                    .union(AceFlags::INHERITED);
                dacl.push(ace.with(flags, CREATOR_OWNER));
            }
        } else if no_propagate {
            dacl.push(ace.with(AceFlags::INHERITED, &ace.principal));
        } else {
            let flags = ace
                .flags
                .minus(AceFlags::INHERIT_ONLY)
                .union(AceFlags::INHERITED);
            dacl.push(ace.with(flags, &ace.principal));
        }
    }
}

/// The descriptor of the `Machine` hive in a new store: SYSTEM and Administrators hold
/// everything, Users may read, and whoever creates a key holds everything on it.
pub fn machine_default() -> SecurityDescriptor {
    let ci = AceFlags::CONTAINER_INHERIT;
    SecurityDescriptor {
        owner: SYSTEM.to_string(),
        group: None,
        protected: false,
        dacl: vec![
            Ace::allow(SYSTEM, Access::KEY_ALL_ACCESS, ci),
            Ace::allow(ADMINISTRATORS, Access::KEY_ALL_ACCESS, ci),
            Ace::allow(USERS, Access::KEY_READ, ci),
            Ace::allow(
                CREATOR_OWNER,
                Access::KEY_ALL_ACCESS,
                ci.union(AceFlags::INHERIT_ONLY),
            ),
        ],
    }
}

/// The descriptor of the `Users` hive in a new store: Users may list the hive, but the
/// entry does not propagate, so users do not read each other's keys.
pub fn users_default() -> SecurityDescriptor {
    let ci = AceFlags::CONTAINER_INHERIT;
    SecurityDescriptor {
        owner: SYSTEM.to_string(),
        group: None,
        protected: false,
        dacl: vec![
            Ace::allow(SYSTEM, Access::KEY_ALL_ACCESS, ci),
            Ace::allow(ADMINISTRATORS, Access::KEY_ALL_ACCESS, ci),
            Ace::allow(USERS, Access::KEY_READ, AceFlags::NONE),
        ],
    }
}

/// The descriptor of `Users\<principal>`: owned by the principal, who holds everything
/// there with SYSTEM and Administrators; protected, so nothing from `Users` leaks in.
pub fn user_home(principal: &str) -> SecurityDescriptor {
    let ci = AceFlags::CONTAINER_INHERIT;
    SecurityDescriptor {
        owner: principal.to_string(),
        group: None,
        protected: true,
        dacl: vec![
            Ace::allow(principal, Access::KEY_ALL_ACCESS, ci),
            Ace::allow(SYSTEM, Access::KEY_ALL_ACCESS, ci),
            Ace::allow(ADMINISTRATORS, Access::KEY_ALL_ACCESS, ci),
        ],
    }
}
