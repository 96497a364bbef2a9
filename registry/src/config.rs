//! The store's own configuration of who is who: group membership and privileges, kept in the
//! registry itself under `Machine\System\Registry`, for callers whose identity the store
//! derives (the CLI, later the daemon) rather than one an embedder states.
//!
//! - `Machine\System\Registry\Groups`: one REG_MULTI_SZ value per group (named by its SID,
//!   alias or name) listing its members.
//! - `Machine\System\Registry\Privileges`: one REG_MULTI_SZ value per privilege (named as
//!   Windows names it: `SeBackupPrivilege`, ...) listing the principals and groups that hold
//!   it. A privilege with no value there is held by Administrators, as Windows' default
//!   policy has it. The system principal holds every privilege whatever the values say.

use crate::error::{Error, Result};
use crate::security::principals::{
    ADMINISTRATORS, AUTHENTICATED_USERS, EVERYONE, SYSTEM, USERS, check_principal, resolve_alias,
};
use crate::security::{Caller, Privileges};
use crate::store::Store;
use crate::value::{Value, ValueType};

/// The key holding group membership.
pub const GROUPS_KEY: &str = r"Machine\System\Registry\Groups";
/// The key holding privilege grants.
pub const PRIVILEGES_KEY: &str = r"Machine\System\Registry\Privileges";

/// Every privilege, as the configuration names them.
const PRIVILEGES: [Privileges; 5] = [
    Privileges::BACKUP,
    Privileges::RESTORE,
    Privileges::TAKE_OWNERSHIP,
    Privileges::SECURITY,
    Privileges::IMPERSONATE,
];

/// The principals a REG_MULTI_SZ configuration value lists.
fn members(key: &str, name: &str, value: &Value) -> Result<Vec<String>> {
    let bad = |reason: &str| Error::BadConfig {
        key: key.to_string(),
        value: name.to_string(),
        reason: reason.to_string(),
    };
    if value.ty != ValueType::MULTI_SZ {
        return Err(bad(&format!("is {}, not REG_MULTI_SZ", value.ty)));
    }
    let list = value
        .multi_text_lossy()
        .ok_or_else(|| bad("is not valid REG_MULTI_SZ data"))?;
    for member in &list {
        check_principal(member).map_err(|error| bad(&error.to_string()))?;
    }
    Ok(list)
}

fn same(a: &str, b: &str) -> bool {
    resolve_alias(a).eq_ignore_ascii_case(resolve_alias(b))
}

impl Store {
    /// The caller `principal` is by this store's configuration: in Everyone, Authenticated
    /// Users and Users, in `extra_groups` (what the caller's environment vouches for, such as
    /// Administrators for the owner of the store's files), in every group the `Groups` key
    /// lists it under, and holding the privileges the `Privileges` key grants it or its
    /// groups. The system principal is the system caller, with every privilege.
    pub fn caller_for(&self, principal: &str, extra_groups: &[&str]) -> Result<Caller> {
        check_principal(principal)?;
        if same(principal, SYSTEM) {
            return Ok(Caller::system());
        }
        let system = self.system()?;
        let mut groups: Vec<String> = [EVERYONE, AUTHENTICATED_USERS, USERS]
            .iter()
            .chain(extra_groups)
            .map(|group| resolve_alias(group).to_string())
            .collect();
        for (group, value) in configured(&system, GROUPS_KEY)? {
            let listed = members(GROUPS_KEY, &group, &value)?;
            if listed.iter().any(|member| same(member, principal)) {
                check_principal(&group)?;
                groups.push(resolve_alias(&group).to_string());
            }
        }
        groups.sort();
        groups.dedup();
        let grants = configured(&system, PRIVILEGES_KEY)?;
        let mut privileges = Privileges::NONE;
        for privilege in PRIVILEGES {
            let holders = match grants
                .iter()
                .find(|(name, _)| Privileges::parse(name) == Some(privilege))
            {
                Some((name, value)) => members(PRIVILEGES_KEY, name, value)?,
                None => vec![ADMINISTRATORS.to_string()],
            };
            let holds = holders.iter().any(|holder| {
                same(holder, principal) || groups.iter().any(|group| same(holder, group))
            });
            if holds {
                privileges = privileges.union(privilege);
            }
        }
        let caller = Caller {
            principal: principal.to_string(),
            groups,
            privileges,
        };
        caller.validate()?;
        Ok(caller)
    }
}

/// The values of configuration key `key` (none if it does not exist).
fn configured(system: &Store, key: &str) -> Result<Vec<(String, Value)>> {
    match system.open_key(key) {
        Ok(key) => key.enum_values(),
        Err(Error::KeyNotFound { .. }) => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}
