//! `hivelog acl get|set` and `hivelog owner`: a key's security descriptor as SDDL.

use hivelog::{Sddl, principals, sddl};

use crate::AclCommand;
use crate::store_dir::{Ctx, Failure, check_path, open_existing_write, open_read};

pub(crate) fn acl(ctx: &Ctx, command: &AclCommand) -> Result<(), Failure> {
    match command {
        AclCommand::Get { key } => {
            let store = open_read(ctx)?;
            println!("{}", sddl::format(&store.security(key)?));
            Ok(())
        }
        AclCommand::Set { key, sddl: text } => {
            // Parse before the store is opened: bad SDDL changes nothing.
            let change = sddl::parse(text)?;
            set(ctx, key, &change)
        }
    }
}

pub(crate) fn owner(ctx: &Ctx, key: &str, principal: &str) -> Result<(), Failure> {
    set(ctx, key, &owner_change(principal)?)
}

/// The change that makes `principal` a key's owner.
pub(crate) fn owner_change(principal: &str) -> Result<Sddl, Failure> {
    // Checked as a principal, not spliced into SDDL: `BAD:P` is no owner.
    principals::check_principal(principal)?;
    let owner = principals::alias_to_sid(principal).unwrap_or(principal);
    Ok(Sddl {
        owner: Some(owner.to_string()),
        ..Sddl::default()
    })
}

fn set(ctx: &Ctx, key: &str, change: &Sddl) -> Result<(), Failure> {
    check_path(ctx, key)?;
    let store = open_existing_write(ctx)?;
    store.set_security(key, change)?;
    Ok(store.close()?)
}
