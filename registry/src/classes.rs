//! `HKEY_CLASSES_ROOT`: the merged view of the caller's `Software\Classes` and the machine's.
//! Reads see the user's entry where there is one (a handle opened through the view reads both
//! copies, see `Key`); a write goes to one copy, chosen here when the change is made: the
//! user's where the key exists there, otherwise the machine's. A new key goes to the user's
//! copy if its parent exists there (as Windows does), otherwise to the machine's.

use crate::error::Result;
use crate::links::locate;
use crate::path::{ClassesPath, KeyPath};
use crate::store::{Inner, read_state};

/// The one key path a change through `classes` acts on (`creating`: a key to be created).
pub(crate) fn target(inner: &Inner, classes: &ClassesPath, creating: bool) -> Result<KeyPath> {
    let state = read_state(&inner.state);
    let at = inner.visible();
    let exists = |path: &KeyPath| locate(&state, path, at, true).map(|node| node.is_some());
    if exists(&classes.user)? {
        return Ok(classes.user.clone());
    }
    if creating
        && let Some(parent) = classes.user.parent()
        && exists(&parent)?
    {
        return Ok(classes.user.clone());
    }
    Ok(classes.machine.clone())
}
