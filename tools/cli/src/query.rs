//! `hivelog query`, as `reg query` prints it (or as JSON), for a key of a store or of an
//! offline hive: both are read through [`QueryKey`].

use std::io::{self, BufWriter, Write};

use hivelog::{Key, LayeredValue, OfflineHive, OfflineKey, Value};
use serde_json::json;

use crate::QueryArgs;
use crate::format::{display_name, json_value, reg_data, type_name};
use crate::store_dir::{Failure, fail};

type Out = BufWriter<io::StdoutLock<'static>>;

/// What a query reads of a key.
pub(crate) trait QueryKey: Sized {
    /// The key as `reg` names it (`HKEY_LOCAL_MACHINE\...`).
    fn windows_path(&self) -> String;
    /// The key as errors name it.
    fn shown_path(&self) -> String;
    /// The effective value `name`, or layer `layer`'s.
    fn value(&self, layer: Option<&str>, name: &str) -> hivelog::Result<Value>;
    /// Every effective value, or every value layer `layer` holds.
    fn values(&self, layer: Option<&str>) -> hivelog::Result<Vec<(String, Value)>>;
    /// Every layer's version of value `name`, the effective one first.
    fn stack(&self, name: &str) -> hivelog::Result<Vec<LayeredValue>>;
    fn subkeys(&self) -> hivelog::Result<Vec<String>>;
    /// Subkey `name` for a recursive listing: a link is listed as itself (its own value,
    /// its target) and not followed, so a link to an ancestor cannot recurse forever.
    fn subkey(&self, name: &str) -> hivelog::Result<Self>;
    fn class(&self) -> hivelog::Result<Option<String>>;
}

impl QueryKey for Key {
    fn windows_path(&self) -> String {
        Key::windows_path(self)
    }

    fn shown_path(&self) -> String {
        self.path().to_string()
    }

    fn value(&self, layer: Option<&str>, name: &str) -> hivelog::Result<Value> {
        match layer {
            Some(layer) => self.get_raw_value_in(layer, name),
            None => self.get_raw_value(name),
        }
    }

    fn values(&self, layer: Option<&str>) -> hivelog::Result<Vec<(String, Value)>> {
        match layer {
            Some(layer) => self.enum_values_in(layer),
            None => self.enum_values(),
        }
    }

    fn stack(&self, name: &str) -> hivelog::Result<Vec<LayeredValue>> {
        self.value_stack(name)
    }

    fn subkeys(&self) -> hivelog::Result<Vec<String>> {
        self.enum_keys()
    }

    fn subkey(&self, name: &str) -> hivelog::Result<Key> {
        self.open_subkey_link(name)
    }

    fn class(&self) -> hivelog::Result<Option<String>> {
        Key::class(self)
    }
}

/// A key of an offline hive, with the hive that names it (an offline hive does not follow
/// links, so a subkey is always the key itself).
#[derive(Clone, Copy)]
pub(crate) struct HiveKey<'h> {
    pub hive: &'h OfflineHive,
    pub key: OfflineKey<'h>,
}

impl QueryKey for HiveKey<'_> {
    fn windows_path(&self) -> String {
        let path = self.key.path();
        self.hive
            .windows_path(&path)
            .unwrap_or_else(|_| format!("\\{path}"))
    }

    fn shown_path(&self) -> String {
        format!("\\{}", self.key.path())
    }

    fn value(&self, layer: Option<&str>, name: &str) -> hivelog::Result<Value> {
        match layer {
            Some(layer) => self.key.get_value_in(layer, name),
            None => self.key.get_value(name),
        }
    }

    fn values(&self, layer: Option<&str>) -> hivelog::Result<Vec<(String, Value)>> {
        match layer {
            Some(layer) => self.key.enum_values_in(layer),
            None => Ok(self.key.enum_values()),
        }
    }

    fn stack(&self, name: &str) -> hivelog::Result<Vec<LayeredValue>> {
        self.key.value_stack(name)
    }

    fn subkeys(&self) -> hivelog::Result<Vec<String>> {
        Ok(self.key.enum_keys())
    }

    fn subkey(&self, name: &str) -> hivelog::Result<Self> {
        Ok(HiveKey {
            hive: self.hive,
            key: self.key.open_subkey(name)?,
        })
    }

    fn class(&self) -> hivelog::Result<Option<String>> {
        Ok(self.key.class().map(str::to_string))
    }
}

/// Prints what `args` asks of `key`; `seq` is the snapshot read (a hive has none).
pub(crate) fn print(
    key: &impl QueryKey,
    args: &QueryArgs,
    seq: Option<u64>,
) -> Result<(), Failure> {
    let only = args.value.as_deref().or(args.ve.then_some(""));
    let layer = args.layer.as_deref();
    let mut out = BufWriter::new(io::stdout().lock());
    if args.stack {
        print_stack(key, only, args.recurse, &mut out)?;
    } else if args.json {
        query_json(key, only, layer, args.recurse, seq, &mut out)?;
    } else {
        match (only, args.recurse) {
            (Some(name), false) => {
                let value = key.value(layer, name)?;
                writeln!(out, "\n{}", key.windows_path())?;
                print_value(&mut out, name, &value)?;
                writeln!(out)?;
            }
            (Some(name), true) => {
                let mut found = 0;
                search(key, layer, name, &mut found, &mut out)?;
                writeln!(out, "End of search: {found} match(es) found.")?;
            }
            (None, recurse) => print_key(key, layer, recurse, &mut out)?,
        }
    }
    out.flush()?;
    Ok(())
}

/// `query --stack`: for each value (or the one named), every layer's version, the
/// effective one first.
fn print_stack(
    key: &impl QueryKey,
    only: Option<&str>,
    recurse: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    let names: Vec<String> = match only {
        Some(name) => vec![name.to_string()],
        None => key
            .values(None)?
            .into_iter()
            .map(|(name, _)| name)
            .collect(),
    };
    let mut stacks = Vec::with_capacity(names.len());
    for name in names {
        let stack = key.stack(&name)?;
        if stack.is_empty() && only.is_some() && !recurse {
            return Err(hivelog::Error::ValueNotFound {
                path: key.shown_path(),
                name,
            }
            .into());
        }
        stacks.push((name, stack));
    }
    writeln!(out, "\n{}", key.windows_path())?;
    for (name, stack) in stacks {
        if !stack.is_empty() {
            writeln!(out, "    {}", display_name(&name))?;
        }
        for (i, layered) in stack.iter().enumerate() {
            let role = if i == 0 { "effective" } else { "shadowed" };
            writeln!(
                out,
                "        {}    {}    {}    ({role})",
                layered.layer,
                type_name(layered.value.ty),
                reg_data(&layered.value)
            )?;
        }
    }
    if recurse {
        for sub in key.subkeys()? {
            print_stack(&key.subkey(&sub)?, only, true, out)?;
        }
    }
    Ok(())
}

fn print_value(out: &mut Out, name: &str, value: &Value) -> io::Result<()> {
    writeln!(
        out,
        "    {}    {}    {}",
        display_name(name),
        type_name(value.ty),
        reg_data(value)
    )
}

/// `reg query KEY` and `reg query KEY /s`.
fn print_key(
    key: &impl QueryKey,
    layer: Option<&str>,
    recurse: bool,
    out: &mut Out,
) -> Result<(), Failure> {
    // Read everything before printing anything: a failed read prints only the error.
    let (values, subkeys) = (key.values(layer)?, key.subkeys()?);
    let path = key.windows_path();
    writeln!(out, "\n{path}")?;
    for (name, value) in values {
        print_value(out, &name, &value)?;
    }
    if recurse {
        for name in subkeys {
            print_key(&key.subkey(&name)?, layer, true, out)?;
        }
    } else {
        if !subkeys.is_empty() {
            writeln!(out)?;
        }
        for name in subkeys {
            writeln!(out, "{path}\\{name}")?;
        }
    }
    Ok(())
}

/// `reg query KEY /v NAME /s`: every key of the subtree that has the value.
fn search(
    key: &impl QueryKey,
    layer: Option<&str>,
    name: &str,
    found: &mut u64,
    out: &mut Out,
) -> Result<(), Failure> {
    match key.value(layer, name) {
        Ok(value) => {
            *found += 1;
            writeln!(out, "\n{}", key.windows_path())?;
            print_value(out, name, &value)?;
        }
        Err(hivelog::Error::ValueNotFound { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    for sub in key.subkeys()? {
        search(&key.subkey(&sub)?, layer, name, found, out)?;
    }
    Ok(())
}

fn query_json(
    key: &impl QueryKey,
    only: Option<&str>,
    layer: Option<&str>,
    recurse: bool,
    seq: Option<u64>,
    out: &mut Out,
) -> Result<(), Failure> {
    let mut keys = Vec::new();
    collect_json(key, only, layer, recurse, &mut keys)?;
    let document = match seq {
        Some(seq) => json!({ "seq": seq, "keys": keys }),
        None => json!({ "keys": keys }),
    };
    serde_json::to_writer_pretty(&mut *out, &document).map_err(|e| fail(e.to_string()))?;
    writeln!(out)?;
    Ok(())
}

fn collect_json(
    key: &impl QueryKey,
    only: Option<&str>,
    layer: Option<&str>,
    recurse: bool,
    keys: &mut Vec<serde_json::Value>,
) -> Result<(), Failure> {
    let values: Vec<serde_json::Value> = match only {
        Some(name) => match key.value(layer, name) {
            Ok(value) => vec![json_value(name, &value)],
            Err(hivelog::Error::ValueNotFound { .. }) if recurse => Vec::new(),
            Err(error) => return Err(error.into()),
        },
        None => key
            .values(layer)?
            .iter()
            .map(|(name, value)| json_value(name, value))
            .collect(),
    };
    let subkeys = key.subkeys()?;
    if only.is_none() || !values.is_empty() {
        let mut entry = json!({
            "path": key.windows_path(),
            "values": values,
            "subkeys": subkeys,
        });
        if let Some(class) = key.class()? {
            entry["class"] = json!(class);
        }
        keys.push(entry);
    }
    if recurse {
        for name in subkeys {
            collect_json(&key.subkey(&name)?, only, layer, true, keys)?;
        }
    }
    Ok(())
}
