//! Key paths: hives, Windows root aliases, and the limits on names and depth.

use std::fmt;

use hivelog_index::fold;

use crate::error::{Error, Result, clip};

/// Longest key name, in UTF-16 code units (Windows' limit).
pub const KEY_NAME_MAX_CHARS: usize = 255;
/// Longest value name, in UTF-16 code units (Windows' limit).
pub const VALUE_NAME_MAX_CHARS: usize = 16_383;
/// Deepest key: the hive counts as one level.
pub const DEPTH_MAX: usize = 512;

/// The top-level keys every store has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hive {
    /// `Machine` (`HKEY_LOCAL_MACHINE`).
    Machine,
    /// `Users` (`HKEY_USERS`).
    Users,
}

impl Hive {
    /// Every hive, in name order.
    pub const ALL: [Hive; 2] = [Hive::Machine, Hive::Users];

    /// The hive's name in this store.
    pub fn name(self) -> &'static str {
        match self {
            Hive::Machine => "Machine",
            Hive::Users => "Users",
        }
    }

    /// The Windows root key name, as `.reg` files and `reg.exe` write it.
    pub fn windows_name(self) -> &'static str {
        match self {
            Hive::Machine => "HKEY_LOCAL_MACHINE",
            Hive::Users => "HKEY_USERS",
        }
    }
}

/// A validated path to a key: a hive and the names below it, as written (case preserved),
/// with its folded form (what the index keys nodes by) computed once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyPath {
    hive: Hive,
    /// The names below the hive joined by `\\` ("" for a hive root).
    names: String,
    /// `MACHINE\\SOFTWARE\\...`: hive and names, folded.
    folded: String,
    depth: usize,
}

/// `HKEY_CURRENT_CONFIG` is this key.
const CURRENT_CONFIG: [&str; 4] = [
    "System",
    "CurrentControlSet",
    "Hardware Profiles",
    "Current",
];

/// A path's root, resolved: the hive, the names the alias implies, and the rest as written.
struct Root<'a> {
    hive: Hive,
    /// `HKCU`: the caller's own key under `Users`.
    user: Option<&'a str>,
    /// `HKCC`: the names it stands for.
    implied: &'static [&'static str],
    /// What follows the root, without the separator (and one trailing backslash).
    rest: &'a str,
}

impl<'a> Root<'a> {
    fn implied_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.user.into_iter().chain(self.implied.iter().copied())
    }

    fn implied_depth(&self) -> usize {
        1 + usize::from(self.user.is_some()) + self.implied.len()
    }
}

fn resolve_root<'a>(path: &'a str, caller: &'a str) -> Result<Root<'a>> {
    // `reg` accepts one trailing backslash.
    let trimmed = path.strip_suffix('\\').unwrap_or(path);
    if trimmed.is_empty() {
        return Err(Error::EmptyPath);
    }
    let (root, rest) = match trimmed.bytes().position(|b| b == b'\\') {
        Some(at) => (&trimmed[..at], &trimmed[at + 1..]),
        None => (trimmed, ""),
    };
    // Upcase the root once, then match it: the longest alias is 19 bytes.
    let mut upper = [0u8; 19];
    let alias = upper.get_mut(..root.len()).map(|room| {
        for (to, from) in room.iter_mut().zip(root.bytes()) {
            *to = from.to_ascii_uppercase();
        }
        &*room
    });
    // (hive, the user's own key under it for HKCU, the names HKCC implies)
    let (hive, user, implied): (Hive, Option<&str>, &'static [&'static str]) = match alias {
        Some(b"MACHINE" | b"HKEY_LOCAL_MACHINE" | b"HKLM") => (Hive::Machine, None, &[]),
        Some(b"USERS" | b"HKEY_USERS" | b"HKU") => (Hive::Users, None, &[]),
        Some(b"HKEY_CURRENT_USER" | b"HKCU") => {
            check_key_name(caller)?;
            (Hive::Users, Some(caller), &[])
        }
        Some(b"HKEY_CURRENT_CONFIG" | b"HKCC") => (Hive::Machine, None, &CURRENT_CONFIG),
        Some(b"HKEY_CLASSES_ROOT" | b"HKCR") => {
            return Err(Error::ClassesView { path: clip(path) });
        }
        _ if root.is_empty() => return Err(Error::EmptyKeyName { path: clip(path) }),
        _ => return Err(Error::UnknownHive { name: clip(root) }),
    };
    if trimmed.len() > root.len() && rest.is_empty() {
        // "HKLM\\\\": an empty name after the root.
        return Err(Error::EmptyKeyName { path: clip(path) });
    }
    Ok(Root {
        hive,
        user,
        implied,
        rest,
    })
}

/// Resolves the root of `path` and hands every name below the hive (those a root alias
/// implies, then those written) to `visit`, checking each name and the depth.
fn walk(path: &str, caller: &str, mut visit: impl FnMut(&str)) -> Result<Hive> {
    let root = resolve_root(path, caller)?;
    root.implied_names().for_each(&mut visit);
    walk_names(&root, path, visit)?;
    Ok(root.hive)
}

/// Checks and visits the names written after the root: the one place where the rules for
/// names and depth are enforced.
fn walk_names(root: &Root<'_>, path: &str, mut visit: impl FnMut(&str)) -> Result<()> {
    if root.rest.is_empty() {
        return Ok(());
    }
    let mut depth = root.implied_depth();
    for name in root.rest.split('\\') {
        if name.is_empty() {
            return Err(Error::EmptyKeyName { path: clip(path) });
        }
        check_key_name(name)?;
        depth += 1;
        if depth > DEPTH_MAX {
            return Err(Error::TooDeep {
                path: clip(path),
                depth: root.implied_depth() + root.rest.split('\\').count(),
                max: DEPTH_MAX,
            });
        }
        visit(name);
    }
    Ok(())
}

/// Whether the names in `rest`, if they are ASCII without NUL, pass every check `walk` makes
/// (non-empty, at most KEY_NAME_MAX_CHARS, no deeper than DEPTH_MAX in all) for a reason that
/// needs no walk: no empty name, and short enough that no name can be too long (all of it
/// fits KEY_NAME_MAX_CHARS) and no path too deep (every name takes at least two bytes with
/// its separator). Anything else goes to the general walk.
fn plain_shape(rest: &str, depth_before: usize) -> bool {
    let len = rest.len();
    len <= KEY_NAME_MAX_CHARS
        && len < 2 * DEPTH_MAX.saturating_sub(depth_before)
        && !rest.starts_with('\\')
        && !rest.ends_with('\\')
        && !rest.contains("\\\\")
}

/// Folds `path` into `out` (`MACHINE\\SOFTWARE\\...`) with every check `KeyPath::parse` makes,
/// without allocating: the point-read path.
pub(crate) fn fold_path(path: &str, caller: &str, out: &mut String) -> Result<()> {
    let root = resolve_root(path, caller)?;
    out.push_str(folded_hive(root.hive));
    for name in root.implied_names() {
        out.push('\\');
        fold::fold_into(name, out);
    }
    if root.rest.is_empty() {
        return Ok(());
    }
    if plain_shape(root.rest, root.implied_depth()) {
        // The common case: check and fold the whole rest at once.
        let start = out.len();
        out.push('\\');
        if fold::fold_plain_ascii_into(root.rest, out) {
            return Ok(());
        }
        out.truncate(start);
    }
    // Anything else takes the general walk, which also names what is wrong.
    walk_names(&root, path, |name| {
        out.push('\\');
        fold::fold_into(name, out);
    })
}

/// Checks value name `name` and appends its folded form to `out`: the point-read path.
pub(crate) fn fold_value_name(name: &str, out: &mut String) -> Result<()> {
    if name.len() <= VALUE_NAME_MAX_CHARS && fold::fold_plain_ascii_into(name, out) {
        return Ok(());
    }
    check_value_name(name)?;
    fold::fold_into(name, out);
    Ok(())
}

fn folded_hive(hive: Hive) -> &'static str {
    match hive {
        Hive::Machine => "MACHINE",
        Hive::Users => "USERS",
    }
}

impl KeyPath {
    /// Parses `path`, resolving Windows root names. `caller` is the principal that
    /// `HKEY_CURRENT_USER` stands for (`Users\\<caller>`).
    pub fn parse(path: &str, caller: &str) -> Result<KeyPath> {
        let mut names = String::with_capacity(path.len());
        let mut folded = String::with_capacity(path.len() + 8);
        let mut depth = 1;
        let hive = walk(path, caller, |name| {
            if !names.is_empty() {
                names.push('\\');
            }
            names.push_str(name);
            folded.push('\\');
            fold::fold_into(name, &mut folded);
            depth += 1;
        })?;
        folded.insert_str(0, folded_hive(hive));
        Ok(KeyPath {
            hive,
            names,
            folded,
            depth,
        })
    }

    /// The root key of a hive.
    pub fn hive_root(hive: Hive) -> KeyPath {
        KeyPath {
            hive,
            names: String::new(),
            folded: folded_hive(hive).to_string(),
            depth: 1,
        }
    }

    /// The hive.
    pub fn hive(&self) -> Hive {
        self.hive
    }

    /// Names below the hive, as written.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.split('\\').filter(|name| !name.is_empty())
    }

    /// Levels, the hive counting as one.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Whether this is a hive's root key.
    pub fn is_hive_root(&self) -> bool {
        self.depth == 1
    }

    /// The folded path the index keys nodes by: `MACHINE\\SOFTWARE\\...`.
    pub fn folded(&self) -> &str {
        &self.folded
    }

    /// This path followed by a relative path (`a\\b`; empty means this key).
    pub fn join(&self, relative: &str) -> Result<KeyPath> {
        let relative = relative.strip_suffix('\\').unwrap_or(relative);
        if relative.is_empty() {
            return Ok(self.clone());
        }
        KeyPath::parse(&format!("{self}\\{relative}"), "")
    }

    /// The parent key, `None` for a hive root.
    pub fn parent(&self) -> Option<KeyPath> {
        if self.is_hive_root() {
            return None;
        }
        let names = self
            .names
            .rsplit_once('\\')
            .map_or("", |(parent, _)| parent);
        let folded = self
            .folded
            .rsplit_once('\\')
            .map_or("", |(parent, _)| parent);
        Some(KeyPath {
            hive: self.hive,
            names: names.to_string(),
            folded: folded.to_string(),
            depth: self.depth - 1,
        })
    }

    /// The path with the Windows root name (`HKEY_LOCAL_MACHINE\\...`), as `reg` prints it.
    pub fn windows(&self) -> String {
        self.with_root(self.hive.windows_name())
    }

    fn with_root(&self, root: &str) -> String {
        if self.names.is_empty() {
            root.to_string()
        } else {
            format!("{root}\\{}", self.names)
        }
    }
}

/// `HKEY_CLASSES_ROOT\rest`: not one key but the merged view Windows builds of the caller's
/// `Users\<caller>\Software\Classes\rest` and the machine's `Machine\Software\Classes\rest`.
/// Reads see the user's entry where there is one; writes go to the user's copy where the key
/// exists there, otherwise to the machine's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClassesPath {
    /// The caller's copy.
    pub user: KeyPath,
    /// The machine's copy.
    pub machine: KeyPath,
    /// The names below the root, as written (`""` for the root itself).
    rest: String,
}

/// Where the classes live under a user's key and under `Machine`.
const CLASSES: &str = "Software\\Classes";

impl ClassesPath {
    /// Parses `path` if it starts at `HKEY_CLASSES_ROOT` or `HKCR`; `Ok(None)` if it does not.
    pub(crate) fn parse(path: &str, caller: &str) -> Result<Option<ClassesPath>> {
        let trimmed = path.strip_suffix('\\').unwrap_or(path);
        let (root, rest) = trimmed.split_once('\\').unwrap_or((trimmed, ""));
        let is_classes =
            root.eq_ignore_ascii_case("HKCR") || root.eq_ignore_ascii_case("HKEY_CLASSES_ROOT");
        if !is_classes {
            return Ok(None);
        }
        Self::at(rest, caller).map(Some)
    }

    fn at(rest: &str, caller: &str) -> Result<ClassesPath> {
        let below = |base: String| {
            if rest.is_empty() {
                base
            } else {
                format!("{base}\\{rest}")
            }
        };
        let user = KeyPath::parse(&below(format!("Users\\{caller}\\{CLASSES}")), "")?;
        let machine = KeyPath::parse(&below(format!("Machine\\{CLASSES}")), "")?;
        Ok(ClassesPath {
            user,
            machine,
            rest: rest.to_string(),
        })
    }

    /// This path followed by a relative path.
    pub(crate) fn join(&self, relative: &str, caller: &str) -> Result<ClassesPath> {
        let relative = relative.strip_suffix('\\').unwrap_or(relative);
        match (self.rest.is_empty(), relative.is_empty()) {
            (_, true) => Ok(self.clone()),
            (true, false) => Self::at(relative, caller),
            (false, false) => Self::at(&format!("{}\\{relative}", self.rest), caller),
        }
    }

    /// The path as `reg` prints it: `HKEY_CLASSES_ROOT\rest`.
    pub(crate) fn windows(&self) -> String {
        if self.rest.is_empty() {
            "HKEY_CLASSES_ROOT".to_string()
        } else {
            format!("HKEY_CLASSES_ROOT\\{}", self.rest)
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_root(self.hive.name()))
    }
}

fn utf16_len(name: &str) -> usize {
    name.chars().map(char::len_utf16).sum()
}

/// Checks a key name: 1 to KEY_NAME_MAX_CHARS characters, no backslash, no NUL.
pub fn check_key_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::EmptyKeyName {
            path: String::new(),
        });
    }
    // One pass for the common case: short ASCII (its UTF-16 length is its byte length).
    let bytes = name.as_bytes();
    if bytes.len() <= KEY_NAME_MAX_CHARS
        && bytes.iter().all(|&b| b.is_ascii() && b != b'\\' && b != 0)
    {
        return Ok(());
    }
    let len = utf16_len(name);
    if len > KEY_NAME_MAX_CHARS {
        return Err(Error::KeyNameTooLong {
            name: clip(name),
            len,
            max: KEY_NAME_MAX_CHARS,
        });
    }
    if name.contains('\\') {
        return Err(Error::InvalidName {
            name: clip(name),
            reason: "a key name cannot contain a backslash",
        });
    }
    if name.contains('\0') {
        return Err(Error::InvalidName {
            name: clip(name),
            reason: "a name cannot contain NUL",
        });
    }
    Ok(())
}

/// Checks a value name: 0 to VALUE_NAME_MAX_CHARS characters (empty is the default value),
/// no NUL.
pub fn check_value_name(name: &str) -> Result<()> {
    let bytes = name.as_bytes();
    if bytes.len() <= VALUE_NAME_MAX_CHARS && bytes.iter().all(|&b| b.is_ascii() && b != 0) {
        return Ok(());
    }
    let len = utf16_len(name);
    if len > VALUE_NAME_MAX_CHARS {
        return Err(Error::ValueNameTooLong {
            name: clip(name),
            len,
            max: VALUE_NAME_MAX_CHARS,
        });
    }
    if name.contains('\0') {
        return Err(Error::InvalidName {
            name: clip(name),
            reason: "a name cannot contain NUL",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The allocation-free fold of the read path agrees with `KeyPath::parse` on every
        /// input: the same folded path, or an error for both.
        #[test]
        fn fold_path_agrees_with_parse(
            root in prop_oneof![Just("HKLM"), Just("users"), Just("HKCU"), Just("hkcc"), Just("HKXX"), Just("")],
            names in prop::collection::vec(prop_oneof![
                Just(String::new()), Just("a".to_string()), Just("Été".to_string()),
                Just("x\0y".to_string()), Just("k".repeat(255)), Just("k".repeat(256)),
                Just("ß😀".to_string()), "[a-zA-Z0-9 _.-]{1,12}",
            ], 0..6),
            trailing in any::<bool>(),
        ) {
            let mut path = root.to_string();
            for name in &names {
                path.push('\\');
                path.push_str(name);
            }
            if trailing {
                path.push('\\');
            }
            let mut folded = String::new();
            let fast = fold_path(&path, "me", &mut folded).map(|()| folded);
            let parsed = KeyPath::parse(&path, "me").map(|key| key.folded().to_string());
            prop_assert_eq!(fast.ok(), parsed.ok());
        }
    }

    fn parse(path: &str) -> Result<KeyPath> {
        KeyPath::parse(path, "S-1-5-21-7")
    }

    #[test]
    fn roots_and_aliases() {
        for (given, shown) in [
            ("HKLM\\Software", "Machine\\Software"),
            ("hkey_local_machine\\Software\\", "Machine\\Software"),
            ("Machine", "Machine"),
            ("HKU\\.DEFAULT", "Users\\.DEFAULT"),
            ("HKEY_USERS", "Users"),
            ("HKCU\\Software", "Users\\S-1-5-21-7\\Software"),
            (
                "HKCC\\System",
                "Machine\\System\\CurrentControlSet\\Hardware Profiles\\Current\\System",
            ),
        ] {
            assert_eq!(parse(given).unwrap().to_string(), shown, "{given}");
        }
        assert_eq!(
            parse("HKLM\\Software\\Vendor").unwrap().windows(),
            "HKEY_LOCAL_MACHINE\\Software\\Vendor"
        );
        assert_eq!(
            parse("HKLM\\SoftWare").unwrap().folded(),
            "MACHINE\\SOFTWARE"
        );
    }

    #[test]
    fn fold_path_agrees_with_parse_at_the_limits() {
        let mut folded = String::new();
        fold_path("hkcu\\Software\\", "S-1-5-21-7", &mut folded).unwrap();
        assert_eq!(folded, "USERS\\S-1-5-21-7\\SOFTWARE");
        // At the depth limit and past it, with short names (the word-at-a-time check's
        // boundary), and through HKCC, which implies four names; and at the name length limit.
        let long = "k".repeat(KEY_NAME_MAX_CHARS);
        let mut paths = vec![
            format!("HKLM\\{long}"),
            format!("HKLM\\{long}k"),
            format!("HKLM\\a\\{long}"),
        ];
        for root in ["HKLM", "HKCC"] {
            for depth in [
                DEPTH_MAX - 5,
                DEPTH_MAX - 4,
                DEPTH_MAX - 1,
                DEPTH_MAX,
                DEPTH_MAX + 1,
            ] {
                paths.push(format!("{root}{}", "\\k".repeat(depth - 1)));
            }
        }
        for path in paths {
            let mut folded = String::new();
            let fast = fold_path(&path, "me", &mut folded).map(|()| folded);
            let parsed = KeyPath::parse(&path, "me").map(|key| key.folded().to_string());
            assert_eq!(fast.ok(), parsed.ok(), "{} bytes", path.len());
        }
    }

    #[test]
    fn rejections_name_the_problem() {
        assert!(matches!(parse(""), Err(Error::EmptyPath)));
        assert!(matches!(parse("HKXX\\a"), Err(Error::UnknownHive { .. })));
        assert!(matches!(
            parse("HKCR\\.txt"),
            Err(Error::ClassesView { .. })
        ));
        assert!(matches!(
            parse("HKLM\\\\a"),
            Err(Error::EmptyKeyName { .. })
        ));
        assert!(matches!(parse("\\HKLM"), Err(Error::EmptyKeyName { .. })));
        assert!(matches!(
            parse("HKLM\\a\0b"),
            Err(Error::InvalidName { .. })
        ));
        let long = "k".repeat(KEY_NAME_MAX_CHARS + 1);
        match parse(&format!("HKLM\\{long}")) {
            Err(Error::KeyNameTooLong { len, max, .. }) => {
                assert_eq!((len, max), (256, 255));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&format!("HKLM\\{}", "k".repeat(KEY_NAME_MAX_CHARS))).is_ok());
        // Characters outside the BMP count as two UTF-16 units, as Windows counts them.
        assert!(parse(&format!("HKLM\\{}", "😀".repeat(128))).is_err());
        let deep_ok = format!("HKLM{}", "\\k".repeat(DEPTH_MAX - 1));
        assert!(parse(&deep_ok).is_ok());
        let too_deep = format!("HKLM{}", "\\k".repeat(DEPTH_MAX));
        let error = parse(&too_deep).unwrap_err();
        assert!(error.to_string().contains("DEPTH_MAX is 512"), "{error}");
        assert!(check_value_name("").is_ok());
        assert!(check_value_name(&"v".repeat(VALUE_NAME_MAX_CHARS)).is_ok());
        assert!(matches!(
            check_value_name(&"v".repeat(VALUE_NAME_MAX_CHARS + 1)),
            Err(Error::ValueNameTooLong { .. })
        ));
    }

    #[test]
    fn join_and_parent() {
        let base = parse("HKLM\\Software").unwrap();
        assert_eq!(
            base.join("A\\B").unwrap().to_string(),
            "Machine\\Software\\A\\B"
        );
        assert_eq!(base.join("").unwrap(), base);
        assert!(base.join("A\\\\B").is_err());
        assert_eq!(base.parent().unwrap().to_string(), "Machine");
        assert!(base.parent().unwrap().parent().is_none());
    }
}
