//! `hivelog --hive FILE COMMAND`: add, query, delete, import, export, acl and owner run
//! against an offline hive file instead of a store. The file is read whole and verified, the
//! command applied in memory, and a command that changes the hive saves it through a
//! temporary file and a rename: FILE is then the old hive or the new one, never a mix, and a
//! command that fails leaves it as it was.

use std::path::Path;

use hivelog::{OfflineHive, sddl};

use crate::access::owner_change;
use crate::commands::{Deletion, addition, deletion};
use crate::query::{self, HiveKey};
use crate::reg;
use crate::store_dir::{Failure, fail, os_principal};
use crate::{AclCommand, Command};

/// The hive file a command works on, and how.
pub(crate) struct HiveCtx<'a> {
    pub file: &'a Path,
    /// `--mount KEY`: the key the hive's root stands for (recorded by a save).
    pub mount: Option<&'a str>,
    /// `--as P`: who edits the hive (the creator and owner of the keys it adds). No access
    /// checks apply: whoever can write the file owns the hive.
    pub as_principal: Option<&'a str>,
}

/// Runs `command` (named `name` on the command line) against the hive.
pub(crate) fn run(ctx: &HiveCtx<'_>, name: &str, command: Command) -> Result<(), Failure> {
    match command {
        Command::Add(args) => {
            let addition = addition(&args)?;
            edit(ctx, true, |hive| {
                hive.create_key_with(&args.key, &addition.options)?;
                if let Some((name, value)) = &addition.value {
                    hive.set_value_in(&args.layer, &args.key, name, value)?;
                }
                Ok(())
            })
        }
        Command::Delete(args) => {
            let deletion = deletion(&args)?;
            edit(ctx, false, |hive| match deletion {
                Deletion::Value(name) => hive.delete_value_in(&args.layer, &args.key, name),
                Deletion::Values => {
                    let names = hive.open_key(&args.key)?.enum_values_in(&args.layer)?;
                    for (name, _) in names {
                        hive.delete_value_in(&args.layer, &args.key, &name)?;
                    }
                    Ok(())
                }
                Deletion::Tree => hive.delete_tree(&args.key),
            })
        }
        Command::Query(args) => {
            if args.at_seq.is_some() {
                return Err(fail(
                    "a hive file has no history: --at-seq reads a store at a past sequence number",
                ));
            }
            let hive = load(ctx, false)?;
            let key = HiveKey {
                hive: &hive,
                key: hive.open_key(&args.key)?,
            };
            query::print(&key, &args, None)
        }
        Command::Acl {
            command: AclCommand::Get { key },
        } => {
            let hive = load(ctx, false)?;
            println!("{}", sddl::format(&hive.security(&key)?));
            Ok(())
        }
        Command::Acl {
            command: AclCommand::Set { key, sddl: text },
        } => {
            let change = sddl::parse(&text)?;
            edit(ctx, false, |hive| hive.set_security(&key, &change))
        }
        Command::Owner { key, principal } => {
            let change = owner_change(&principal)?;
            edit(ctx, false, |hive| hive.set_security(&key, &change))
        }
        Command::Import(args) => {
            let input = reg::read_input(&args.file)?;
            let mut report = None;
            edit(ctx, true, |hive| {
                report = Some(hive.import_reg(&input, &args.file)?);
                Ok(())
            })?;
            let report = report.expect("a saved import has its report");
            reg::print_import(&args.file, &report, None);
            Ok(())
        }
        Command::Export(args) => {
            reg::check_target(&args)?;
            let hive = load(ctx, false)?;
            reg::write_export(&args, &mut |format, out| {
                hive.export_reg(&args.key, format, out)
            })
        }
        _ => Err(fail(format!(
            "{name} works on a store, not on a hive file (--hive): add, query, delete, import, \
             export, acl and owner do"
        ))),
    }
}

/// Reads the hive (a new, empty one if `create` and there is no file yet), with the
/// command's editor and mount applied.
fn load(ctx: &HiveCtx<'_>, create: bool) -> Result<OfflineHive, Failure> {
    let exists = ctx
        .file
        .try_exists()
        .map_err(|error| fail(format!("cannot read {}: {error}", ctx.file.display())))?;
    let mut hive = match (exists, create) {
        (true, _) => OfflineHive::open(ctx.file)?,
        (false, true) => OfflineHive::create(),
        (false, false) => {
            return Err(fail(format!("no hive file at {}", ctx.file.display())));
        }
    };
    let principal = ctx.as_principal.map_or_else(os_principal, str::to_string);
    hive.set_principal(&principal)?;
    if let Some(mount) = ctx.mount {
        hive.set_source_path(mount)?;
    }
    Ok(hive)
}

/// Loads the hive, applies `change`, and saves it atomically if the change succeeded.
fn edit(
    ctx: &HiveCtx<'_>,
    create: bool,
    change: impl FnOnce(&mut OfflineHive) -> hivelog::Result<()>,
) -> Result<(), Failure> {
    let mut hive = load(ctx, create)?;
    change(&mut hive)?;
    hive.save(ctx.file)?;
    Ok(())
}
