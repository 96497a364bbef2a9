//! The registry's journal records: one Op record per change, encoded and decoded side by side.
//!
//! Payload: `tag u8 | version u8 | fields`, little-endian, strings UTF-8 with a u16 byte length,
//! data with a u32 length. Keys are named by their stable id, so a record never repeats a
//! path. FORMAT.md lists every field.

use hivelog_index::{KeyId, LayerId};
use hivelog_log::codec::{Put, Reader, Short};

use crate::attrs::check_class;
use crate::layers::check_layer_name;
use crate::path::{check_key_name, check_value_name};
use crate::security::SecurityDescriptor;
use crate::value::ValueType;

/// The payload version this code writes; decoding refuses others.
pub(crate) const OP_VERSION: u8 = 1;

const CREATE_KEY: u8 = 1;
const DELETE_KEY: u8 = 2;
const DELETE_TREE: u8 = 3;
const CLEAR_SUBTREE: u8 = 4;
const SET_VALUE: u8 = 5;
const DELETE_VALUE: u8 = 6;
const SET_SECURITY: u8 = 7;
const SET_KEY_FLAGS: u8 = 8;
const CREATE_LAYER: u8 = 9;
const DROP_LAYER: u8 = 10;
const SET_KEY_CLASS: u8 = 11;
const AUDIT: u8 = 12;

/// Key flags the journal records (volatile keys are never journaled, so neither is their flag).
pub(crate) const JOURNALED_KEY_FLAGS: u8 = crate::attrs::KeyFlags::LINK.0;

/// One change, as journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    /// Key `id` named `name` created under key `parent`.
    CreateKey {
        /// The new key's id.
        id: KeyId,
        /// Its parent's id (0: the root above the hives).
        parent: KeyId,
        /// Its name as written.
        name: &'a str,
    },
    /// Key `id` deleted (it had no subkeys).
    DeleteKey {
        /// The key.
        id: KeyId,
    },
    /// Key `id` and everything below it deleted.
    DeleteTree {
        /// The key.
        id: KeyId,
    },
    /// Subtree tombstone: everything below key `id`, and its values, gone; the key stays.
    ClearSubtree {
        /// The key.
        id: KeyId,
    },
    /// Value `name` of key `key` set in `layer`.
    SetValue {
        /// The key.
        key: KeyId,
        /// The layer.
        layer: LayerId,
        /// The value type.
        ty: ValueType,
        /// The value name as written.
        name: &'a str,
        /// The data, byte-exact.
        data: &'a [u8],
    },
    /// Value `name` of key `key` deleted in `layer`.
    DeleteValue {
        /// The key.
        key: KeyId,
        /// The layer.
        layer: LayerId,
        /// The value name.
        name: &'a str,
    },
    /// The security descriptor of key `id` replaced (its encoding, checked when decoded).
    SetSecurity {
        /// The key.
        id: KeyId,
        /// The descriptor, encoded as `SecurityDescriptor::encode` writes it.
        descriptor: &'a [u8],
    },
    /// The journaled flags of key `id` set, replacing what it had (a link key is marked right
    /// after its creation; a restore sets its anchor's).
    SetKeyFlags {
        /// The key.
        id: KeyId,
        /// The flags (only `JOURNALED_KEY_FLAGS`).
        flags: u8,
    },
    /// Layer `id` (its precedence) created under `name`.
    CreateLayer {
        /// The layer's id, which is its precedence.
        id: LayerId,
        /// Its name.
        name: &'a str,
    },
    /// Layer `id` dropped, with every value it held.
    DropLayer {
        /// The layer.
        id: LayerId,
    },
    /// The class of key `id` set (right after its creation, or by a restore).
    SetKeyClass {
        /// The key.
        id: KeyId,
        /// The class; empty: none.
        class: &'a str,
    },
    /// An audit event: what a privileged operation did, for the history (the transaction's
    /// Commit record names who and when).
    Audit {
        /// What happened.
        event: AuditEvent,
        /// The key it concerned (its path as given).
        path: &'a str,
        /// Where a restored stream came from (its source path); for a privilege use, the
        /// privilege's Windows name; else "".
        source: &'a str,
        /// The sequence number it concerned (a backup's cut, a revert's target; for a
        /// privilege use, the transaction's own).
        seq: u64,
    },
}

/// The kinds of audit events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// A backup was taken.
    Backup,
    /// A backup was restored.
    Restore,
    /// A subtree was reverted to an earlier sequence number.
    Revert,
    /// A change went through only because the caller held a privilege (taking ownership
    /// with SeTakeOwnershipPrivilege, giving ownership away with SeRestorePrivilege).
    Privilege,
    /// A backup of the whole registry was staged, to replace it at the next open.
    Stage,
    /// A staged restore was cancelled.
    Unstage,
    /// A parameter's new value was rejected (the value in force was kept).
    Parameter,
}

impl AuditEvent {
    fn code(self) -> u8 {
        match self {
            AuditEvent::Backup => 1,
            AuditEvent::Restore => 2,
            AuditEvent::Revert => 3,
            AuditEvent::Privilege => 4,
            AuditEvent::Stage => 5,
            AuditEvent::Unstage => 6,
            AuditEvent::Parameter => 7,
        }
    }

    fn from_code(code: u8) -> Option<AuditEvent> {
        match code {
            1 => Some(AuditEvent::Backup),
            2 => Some(AuditEvent::Restore),
            3 => Some(AuditEvent::Revert),
            4 => Some(AuditEvent::Privilege),
            5 => Some(AuditEvent::Stage),
            6 => Some(AuditEvent::Unstage),
            7 => Some(AuditEvent::Parameter),
            _ => None,
        }
    }

    /// The event's name in history and audit output.
    pub fn name(self) -> &'static str {
        match self {
            AuditEvent::Backup => "backup",
            AuditEvent::Restore => "restore",
            AuditEvent::Revert => "revert",
            AuditEvent::Privilege => "privilege",
            AuditEvent::Stage => "stage",
            AuditEvent::Unstage => "unstage",
            AuditEvent::Parameter => "parameter",
        }
    }
}

fn put_str(buf: &mut Vec<u8>, text: &str) {
    let len = u16::try_from(text.len()).expect("names are validated shorter than 64 KiB");
    buf.put_u16(len);
    buf.put_bytes(text.as_bytes());
}

fn get_str<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<&'a str, Short> {
    let len = usize::from(r.u16(what)?);
    r.str(len, what)
}

impl<'a> Op<'a> {
    /// Appends the payload to `buf`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        match *self {
            Op::CreateKey { id, parent, name } => {
                header(buf, CREATE_KEY);
                buf.put_u64(id);
                buf.put_u64(parent);
                put_str(buf, name);
            }
            Op::DeleteKey { id } => {
                header(buf, DELETE_KEY);
                buf.put_u64(id);
            }
            Op::DeleteTree { id } => {
                header(buf, DELETE_TREE);
                buf.put_u64(id);
            }
            Op::ClearSubtree { id } => {
                header(buf, CLEAR_SUBTREE);
                buf.put_u64(id);
            }
            Op::SetValue {
                key,
                layer,
                ty,
                name,
                data,
            } => {
                header(buf, SET_VALUE);
                buf.put_u64(key);
                buf.put_u16(layer);
                buf.put_u32(ty.0);
                put_str(buf, name);
                let len = u32::try_from(data.len()).expect("value size is validated");
                buf.put_u32(len);
                buf.put_bytes(data);
            }
            Op::DeleteValue { key, layer, name } => {
                header(buf, DELETE_VALUE);
                buf.put_u64(key);
                buf.put_u16(layer);
                put_str(buf, name);
            }
            Op::SetSecurity { id, descriptor } => {
                header(buf, SET_SECURITY);
                buf.put_u64(id);
                let len = u32::try_from(descriptor.len()).expect("descriptors are size-limited");
                buf.put_u32(len);
                buf.put_bytes(descriptor);
            }
            Op::SetKeyFlags { id, flags } => {
                header(buf, SET_KEY_FLAGS);
                buf.put_u64(id);
                buf.put_u8(flags);
            }
            Op::CreateLayer { id, name } => {
                header(buf, CREATE_LAYER);
                buf.put_u16(id);
                put_str(buf, name);
            }
            Op::DropLayer { id } => {
                header(buf, DROP_LAYER);
                buf.put_u16(id);
            }
            Op::SetKeyClass { id, class } => {
                header(buf, SET_KEY_CLASS);
                buf.put_u64(id);
                put_str(buf, class);
            }
            Op::Audit {
                event,
                path,
                source,
                seq,
            } => {
                header(buf, AUDIT);
                buf.put_u8(event.code());
                put_str(buf, path);
                put_str(buf, source);
                buf.put_u64(seq);
            }
        }
    }

    /// Reads a payload back, checking every length and every name.
    pub fn decode(payload: &'a [u8]) -> Result<Op<'a>, Short> {
        let op = Op::decode_shallow(payload)?;
        if let Op::SetSecurity { descriptor, .. } = op {
            decode_descriptor(descriptor)?;
        }
        Ok(op)
    }

    /// As [`Op::decode`], except that a SetSecurity's descriptor is only sliced out, not
    /// decoded: for a caller that decodes each distinct descriptor once (a restore, whose
    /// subtree's keys share a few descriptors among hundreds of thousands of records).
    pub(crate) fn decode_shallow(payload: &'a [u8]) -> Result<Op<'a>, Short> {
        let mut r = Reader::new(payload);
        let tag = r.u8("op tag")?;
        if r.u8("op version")? != OP_VERSION {
            return Err(Short("unsupported op version"));
        }
        let op = match tag {
            CREATE_KEY => {
                let id = r.u64("key id")?;
                let parent = r.u64("parent id")?;
                let name = get_str(&mut r, "key name")?;
                check_key_name(name).map_err(|_| Short("invalid key name"))?;
                Op::CreateKey { id, parent, name }
            }
            DELETE_KEY => Op::DeleteKey {
                id: r.u64("key id")?,
            },
            DELETE_TREE => Op::DeleteTree {
                id: r.u64("key id")?,
            },
            CLEAR_SUBTREE => Op::ClearSubtree {
                id: r.u64("key id")?,
            },
            SET_VALUE => {
                let key = r.u64("key id")?;
                let layer = r.u16("layer")?;
                let ty = ValueType(r.u32("value type")?);
                let name = get_str(&mut r, "value name")?;
                check_value_name(name).map_err(|_| Short("invalid value name"))?;
                let len = r.u32("value length")? as usize;
                let data = r.bytes(len, "value data")?;
                Op::SetValue {
                    key,
                    layer,
                    ty,
                    name,
                    data,
                }
            }
            DELETE_VALUE => {
                let key = r.u64("key id")?;
                let layer = r.u16("layer")?;
                let name = get_str(&mut r, "value name")?;
                check_value_name(name).map_err(|_| Short("invalid value name"))?;
                Op::DeleteValue { key, layer, name }
            }
            SET_SECURITY => {
                let id = r.u64("key id")?;
                let len = r.u32("descriptor length")? as usize;
                let descriptor = r.bytes(len, "security descriptor")?;
                Op::SetSecurity { id, descriptor }
            }
            SET_KEY_FLAGS => {
                let id = r.u64("key id")?;
                let flags = r.u8("key flags")?;
                if flags & !JOURNALED_KEY_FLAGS != 0 {
                    return Err(Short("unknown key flags"));
                }
                Op::SetKeyFlags { id, flags }
            }
            CREATE_LAYER => {
                let id = r.u16("layer id")?;
                let name = get_str(&mut r, "layer name")?;
                check_layer_name(name).map_err(|_| Short("invalid layer name"))?;
                Op::CreateLayer { id, name }
            }
            DROP_LAYER => Op::DropLayer {
                id: r.u16("layer id")?,
            },
            SET_KEY_CLASS => {
                let id = r.u64("key id")?;
                let class = get_str(&mut r, "key class")?;
                if !class.is_empty() {
                    check_class(class).map_err(|_| Short("invalid key class"))?;
                }
                Op::SetKeyClass { id, class }
            }
            AUDIT => {
                let event = AuditEvent::from_code(r.u8("audit event")?)
                    .ok_or(Short("unknown audit event"))?;
                let path = get_str(&mut r, "audit key path")?;
                let source = get_str(&mut r, "audit source path")?;
                let seq = r.u64("audit sequence number")?;
                Op::Audit {
                    event,
                    path,
                    source,
                    seq,
                }
            }
            _ => return Err(Short("unknown op tag")),
        };
        r.finish("trailing bytes after op")?;
        Ok(op)
    }
}

/// Where the data of a SetValue payload starts, given its name's length in bytes: after tag,
/// version, key id, layer, type, name length, name and data length.
pub(crate) fn set_value_data_at(name_len: usize) -> usize {
    1 + 1 + 8 + 2 + 4 + 2 + name_len + 4
}

/// Decodes a SetSecurity payload's descriptor, which must fill it exactly.
pub(crate) fn decode_descriptor(bytes: &[u8]) -> Result<SecurityDescriptor, Short> {
    let mut r = Reader::new(bytes);
    let descriptor = SecurityDescriptor::decode(&mut r)?;
    r.finish("trailing bytes after the security descriptor")?;
    Ok(descriptor)
}

/// Encodes a descriptor for a SetSecurity payload.
pub(crate) fn encode_descriptor(descriptor: &SecurityDescriptor) -> Vec<u8> {
    let mut buf = Vec::with_capacity(descriptor.encoded_len());
    descriptor.encode(&mut buf);
    buf
}

fn header(buf: &mut Vec<u8>, tag: u8) {
    buf.put_u8(tag);
    buf.put_u8(OP_VERSION);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_ops() -> Vec<Op<'static>> {
        vec![
            Op::CreateKey {
                id: 7,
                parent: 1,
                name: "Software",
            },
            Op::DeleteKey { id: 7 },
            Op::DeleteTree { id: 8 },
            Op::ClearSubtree { id: 9 },
            Op::SetValue {
                key: 7,
                layer: 0,
                ty: ValueType::SZ,
                name: "Version",
                data: &[b'1', 0, 0, 0],
            },
            Op::SetValue {
                key: 7,
                layer: 3,
                ty: ValueType(0x8000_0001),
                name: "",
                data: &[],
            },
            Op::DeleteValue {
                key: 7,
                layer: 0,
                name: "Größe",
            },
            Op::SetSecurity {
                id: 7,
                descriptor: descriptor(),
            },
            Op::SetKeyFlags {
                id: 7,
                flags: JOURNALED_KEY_FLAGS,
            },
            Op::CreateLayer {
                id: 100,
                name: "role-web",
            },
            Op::DropLayer { id: 100 },
            Op::SetKeyClass {
                id: 7,
                class: "Shell",
            },
            Op::Audit {
                event: AuditEvent::Restore,
                path: r"Machine\Software",
                source: r"Machine\Software\Old",
                seq: 41,
            },
        ]
    }

    /// An encoded descriptor, made once for the tests' lifetime.
    fn descriptor() -> &'static [u8] {
        static ENCODED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        ENCODED.get_or_init(|| encode_descriptor(&crate::security::machine_default()))
    }

    #[test]
    fn every_op_round_trips() {
        for op in all_ops() {
            let mut buf = Vec::new();
            op.encode(&mut buf);
            assert_eq!(Op::decode(&buf), Ok(op));
        }
    }

    #[test]
    fn set_value_data_at_points_at_the_data() {
        for op in all_ops() {
            if let Op::SetValue { data, name, .. } = op {
                let mut buf = Vec::new();
                op.encode(&mut buf);
                assert_eq!(&buf[set_value_data_at(name.len())..], data);
            }
        }
    }

    #[test]
    fn every_truncation_and_trailing_byte_is_refused() {
        for op in all_ops() {
            let mut buf = Vec::new();
            op.encode(&mut buf);
            for cut in 0..buf.len() {
                assert!(Op::decode(&buf[..cut]).is_err(), "{op:?} cut at {cut}");
            }
            buf.push(0);
            assert!(Op::decode(&buf).is_err(), "{op:?} with a trailing byte");
        }
    }

    #[test]
    fn bad_tags_versions_and_names_are_refused() {
        assert_eq!(Op::decode(&[99, OP_VERSION]), Err(Short("unknown op tag")));
        assert_eq!(
            Op::decode(&[DELETE_KEY, 2, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(Short("unsupported op version"))
        );
        let mut bad_utf8 = Vec::new();
        Op::CreateKey {
            id: 1,
            parent: 0,
            name: "ab",
        }
        .encode(&mut bad_utf8);
        let last = bad_utf8.len() - 1;
        bad_utf8[last] = 0xff;
        assert!(Op::decode(&bad_utf8).is_err(), "key name not UTF-8");
        let mut backslash = Vec::new();
        Op::CreateKey {
            id: 1,
            parent: 0,
            name: "a\\b",
        }
        .encode(&mut backslash);
        assert_eq!(Op::decode(&backslash), Err(Short("invalid key name")));
        let mut empty = Vec::new();
        Op::CreateKey {
            id: 1,
            parent: 0,
            name: "",
        }
        .encode(&mut empty);
        assert_eq!(Op::decode(&empty), Err(Short("invalid key name")));
    }
}
