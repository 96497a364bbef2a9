//! Where the store is, who the caller is, and opening the store for reading or writing.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hivelog::principals::ADMINISTRATORS;
use hivelog::{Options, Privileges, SYSTEM_PRINCIPAL, Store};

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

/// Where the store is and who runs the command: `--store` and `--as`.
pub(crate) struct Ctx {
    /// The store's directory, or with `--memory` the image file it boots from.
    pub dir: PathBuf,
    /// `--as P`: act as principal P (needs SeImpersonatePrivilege).
    pub as_principal: Option<String>,
    /// `--memory --persist FILE`: the store is in memory, booted from FILE.
    pub memory: bool,
}

/// The in-memory store of a `--memory` run (booted once, whatever the command opens), and
/// the sequence number it booted at.
static IN_MEMORY: OnceLock<(Store, u64)> = OnceLock::new();

/// With `--memory`: the in-memory store booted from the image (a first boot if there is
/// none yet), as the command's caller.
fn in_memory(ctx: &Ctx) -> Result<Store, Failure> {
    if let Some((store, _)) = IN_MEMORY.get() {
        return as_caller(store.clone(), ctx);
    }
    let store = Store::in_memory_with(hivelog::FileImage::new(&ctx.dir), Options::default())?;
    let booted = store.seq();
    let store = IN_MEMORY.get_or_init(|| (store, booted)).0.clone();
    as_caller(store, ctx)
}

/// With `--memory`, after a command succeeded: the image saved back if the command changed
/// anything (a read leaves the file as it was).
pub(crate) fn flush_memory() -> Result<(), Failure> {
    let Some((store, booted)) = IN_MEMORY.get() else {
        return Ok(());
    };
    if store.seq() != *booted {
        store.flush()?;
    }
    Ok(())
}

impl Ctx {
    /// The principal the command acts as: `--as P`, else the OS user.
    pub(crate) fn principal(&self) -> String {
        self.as_principal.clone().unwrap_or_else(os_principal)
    }
}

/// The OS user running the command; root is the system principal.
pub(crate) fn os_principal() -> String {
    if euid() == 0 {
        return SYSTEM_PRINCIPAL.to_string();
    }
    std::env::var("USER")
        .ok()
        .filter(|name| hivelog::principals::check_principal(name).is_ok())
        .unwrap_or_else(|| format!("uid-{}", euid()))
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether the OS user owns the store's directory: whoever owns the files can do anything to
/// the store anyway, so the CLI counts them among its Administrators.
fn owns_store(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|meta| meta.uid() == euid())
}

/// The store as the command's caller sees it: the OS user with the groups and privileges the
/// store's configuration gives them (and Administrators if they own the store's files), or,
/// with `--as P`, P, if the OS user holds SeImpersonatePrivilege.
fn as_caller(store: Store, ctx: &Ctx) -> Result<Store, Failure> {
    // Nothing is lost (the journal was replayed instead), but someone should know.
    for (file, reason) in &store.checkpoint_report().ignored {
        eprintln!(
            "hivelog: warning: passed over checkpoint {}: {reason}; the journal was replayed instead",
            file.display()
        );
    }
    let os = os_principal();
    let extra: &[&str] = if owns_store(&ctx.dir) {
        &[ADMINISTRATORS]
    } else {
        &[]
    };
    let real = store.caller_for(&os, extra)?;
    let caller = match &ctx.as_principal {
        None => real,
        Some(principal) => {
            if !real.privileges.contains(Privileges::IMPERSONATE) {
                return Err(fail(format!(
                    "--as {principal} needs SeImpersonatePrivilege, which {os} does not hold"
                )));
            }
            store.caller_for(principal, &[])?
        }
    };
    Ok(store.session(caller)?)
}

/// Opens (creating if need be) the store for writing.
pub(crate) fn open_write(ctx: &Ctx) -> Result<Store, Failure> {
    if ctx.memory {
        return in_memory(ctx);
    }
    as_caller(Store::open(&ctx.dir, Options::default())?, ctx)
}

/// Opens an existing store for writing without applying a staged restore: for staging or
/// cancelling one.
pub(crate) fn open_staging(ctx: &Ctx) -> Result<Store, Failure> {
    if ctx.memory {
        return in_memory(ctx);
    }
    require_store(&ctx.dir)?;
    let options = Options {
        apply_staged_restore: false,
        ..Options::default()
    };
    as_caller(Store::open(&ctx.dir, options)?, ctx)
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
pub(crate) fn open_existing_write(ctx: &Ctx) -> Result<Store, Failure> {
    if ctx.memory {
        return in_memory(ctx);
    }
    require_store(&ctx.dir)?;
    open_write(ctx)
}

/// Checks a key path as the store will, before anything is opened or created.
pub(crate) fn check_path(ctx: &Ctx, path: &str) -> Result<(), Failure> {
    match hivelog::KeyPath::parse(path, &ctx.principal()) {
        // HKEY_CLASSES_ROOT: the store checks each copy's path when it picks one.
        Ok(_) | Err(hivelog::Error::ClassesView { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Opens an existing store to follow its writer (another `hivelog` process, or a service):
/// read-only, with no lock, reading new commits as they land.
pub(crate) fn open_follow(ctx: &Ctx) -> Result<Store, Failure> {
    if ctx.memory {
        return Err(fail(
            "an in-memory store (--memory) has no writer to follow: watch a store on disk",
        ));
    }
    require_store(&ctx.dir)?;
    let options = Options {
        read_only: true,
        follow: true,
        ..Options::default()
    };
    as_caller(Store::open(&ctx.dir, options)?, ctx)
}

/// Opens an existing store read-only; a missing store is an error, never created. A restore
/// staged by `restore-file` takes effect at the store's next open, whatever the command: a
/// writable open applies it first.
pub(crate) fn open_read(ctx: &Ctx) -> Result<Store, Failure> {
    if ctx.memory {
        return in_memory(ctx);
    }
    require_store(&ctx.dir)?;
    if ctx.dir.join(hivelog::STAGED_RESTORE_FILE).exists() {
        Store::open(&ctx.dir, Options::default())?.close()?;
    }
    let options = Options {
        read_only: true,
        ..Options::default()
    };
    as_caller(Store::open(&ctx.dir, options)?, ctx)
}
