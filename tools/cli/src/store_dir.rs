//! Where the store is, who the caller is, and opening the store for reading or writing.

use std::path::{Path, PathBuf};

use hivelog::{Options, SYSTEM_PRINCIPAL, Store};

/// A command failed; the message is printed as one line.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl From<hivelog::Error> for Failure {
    fn from(error: hivelog::Error) -> Failure {
        Failure(error.to_string())
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure(error.to_string())
    }
}

/// Shorthand for a failure with a message.
pub(crate) fn fail(message: impl Into<String>) -> Failure {
    Failure(message.into())
}

/// `--store DIR`, else `$HIVELOG_STORE`, else `<data dir>/hivelog`.
pub(crate) fn resolve(flag: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    if let Some(dir) = std::env::var_os("HIVELOG_STORE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::data_dir()
        .map(|data| data.join("hivelog"))
        .ok_or_else(|| fail("no store directory: pass --store DIR or set HIVELOG_STORE"))
}

/// The principal commits are attributed to: the OS user; root is the system principal.
pub(crate) fn principal() -> String {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if uid == 0 {
        return SYSTEM_PRINCIPAL.to_string();
    }
    std::env::var("USER")
        .ok()
        .filter(|name| !name.is_empty() && !name.contains('\\'))
        .unwrap_or_else(|| format!("uid-{uid}"))
}

fn options() -> Options {
    Options {
        principal: principal(),
        ..Options::default()
    }
}

/// Opens (creating if need be) the store for writing.
pub(crate) fn open_write(dir: &Path) -> Result<Store, Failure> {
    Ok(Store::open(dir, options())?)
}

/// Fails unless a store exists in `dir`.
fn require_store(dir: &Path) -> Result<(), Failure> {
    if dir.join("journal").is_dir() {
        return Ok(());
    }
    Err(fail(format!(
        "no store at {} (create one with `hivelog init` or any write command)",
        dir.display()
    )))
}

/// Opens an existing store for writing (for changes that make no sense on an empty store,
/// such as deletes); a missing store is an error, never created.
pub(crate) fn open_existing_write(dir: &Path) -> Result<Store, Failure> {
    require_store(dir)?;
    open_write(dir)
}

/// Checks a key path as the store will, before anything is opened or created.
pub(crate) fn check_path(path: &str) -> Result<(), Failure> {
    hivelog::KeyPath::parse(path, &principal())?;
    Ok(())
}

/// Opens an existing store read-only; a missing store is an error, never created.
pub(crate) fn open_read(dir: &Path) -> Result<Store, Failure> {
    require_store(dir)?;
    Ok(Store::open(
        dir,
        Options {
            read_only: true,
            ..options()
        },
    )?)
}
