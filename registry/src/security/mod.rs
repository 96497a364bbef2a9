//! The security model of keys: who owns a key and who may do what with it. Pure logic,
//! no storage: the store journals descriptors with [`descriptor`]'s codec and calls the
//! access check; this module never sees a key path, a journal location or a lock.
//!
//! - `access` — the rights (Windows' bit values), their names, generic mapping.
//! - `principals` — SIDs, plain names, SDDL aliases; the interner the check runs on.
//! - `descriptor` — the string-level descriptor, its codec, inheritance, the defaults.
//! - `sddl` — the text form.
//! - `check` — callers, privileges, and the access check on compiled descriptors.
//!
//! Architecture invariant: only `registry` checks access, and only through `check`.

pub(crate) mod access;
pub(crate) mod check;
pub(crate) mod descriptor;
pub mod principals;
pub mod sddl;

pub use access::Access;
#[cfg(test)]
pub(crate) use check::access_check;
pub use check::{CALLER_GROUPS_MAX, Caller, Privileges};
pub(crate) use check::{CompiledSd, Identity, compile, grant, identity, maximum_rights};
pub use descriptor::{
    ACES_MAX, Ace, AceFlags, AceKind, SECURITY_DESCRIPTOR_MAX_BYTES, SecurityDescriptor, inherited,
    machine_default, user_home, users_default, with_explicit,
};
pub use principals::{PRINCIPAL_MAX_BYTES, PRINCIPALS_MAX, SYSTEM};
pub(crate) use principals::{PrincipalId, Principals};
pub use sddl::{SDDL_MAX_BYTES, Sddl};

#[cfg(test)]
mod tests;
