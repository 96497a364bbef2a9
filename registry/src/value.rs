//! Typed values, kept byte-exact as Windows stores them.
//!
//! Data is stored exactly as given (strings as UTF-16LE with their terminator), so `.reg` and
//! hive round trips are lossless. The typed helpers, in the spirit of the `winreg` crate,
//! convert between Rust types and that encoding.

use std::fmt;

use crate::error::{Error, Result};

/// A value's type: one of the `REG_*` constants, or any other number (types from 0x80000000
/// up belong to applications), kept as is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueType(pub u32);

impl ValueType {
    /// No defined type.
    pub const NONE: ValueType = ValueType(0);
    /// A string, UTF-16LE with a NUL terminator.
    pub const SZ: ValueType = ValueType(1);
    /// A string with `%VARIABLE%` references.
    pub const EXPAND_SZ: ValueType = ValueType(2);
    /// Binary data.
    pub const BINARY: ValueType = ValueType(3);
    /// A 32-bit little-endian number.
    pub const DWORD: ValueType = ValueType(4);
    /// A 32-bit big-endian number.
    pub const DWORD_BIG_ENDIAN: ValueType = ValueType(5);
    /// A symbolic link target (UTF-16LE, no terminator).
    pub const LINK: ValueType = ValueType(6);
    /// A sequence of strings, each NUL-terminated, ending with an extra NUL.
    pub const MULTI_SZ: ValueType = ValueType(7);
    /// A device driver's resource list.
    pub const RESOURCE_LIST: ValueType = ValueType(8);
    /// A hardware resource descriptor.
    pub const FULL_RESOURCE_DESCRIPTOR: ValueType = ValueType(9);
    /// A resource requirements list.
    pub const RESOURCE_REQUIREMENTS_LIST: ValueType = ValueType(10);
    /// A 64-bit little-endian number.
    pub const QWORD: ValueType = ValueType(11);

    const NAMES: [(&'static str, ValueType); 12] = [
        ("REG_NONE", ValueType::NONE),
        ("REG_SZ", ValueType::SZ),
        ("REG_EXPAND_SZ", ValueType::EXPAND_SZ),
        ("REG_BINARY", ValueType::BINARY),
        ("REG_DWORD", ValueType::DWORD),
        ("REG_DWORD_BIG_ENDIAN", ValueType::DWORD_BIG_ENDIAN),
        ("REG_LINK", ValueType::LINK),
        ("REG_MULTI_SZ", ValueType::MULTI_SZ),
        ("REG_RESOURCE_LIST", ValueType::RESOURCE_LIST),
        (
            "REG_FULL_RESOURCE_DESCRIPTOR",
            ValueType::FULL_RESOURCE_DESCRIPTOR,
        ),
        (
            "REG_RESOURCE_REQUIREMENTS_LIST",
            ValueType::RESOURCE_REQUIREMENTS_LIST,
        ),
        ("REG_QWORD", ValueType::QWORD),
    ];

    /// The `REG_*` name of a defined type.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
    }

    /// Parses a `REG_*` name (any case; `REG_DWORD_LITTLE_ENDIAN` and `REG_QWORD_LITTLE_ENDIAN`
    /// as Windows spells them too) or a number (decimal or `0x` hex).
    pub fn parse(text: &str) -> Option<ValueType> {
        let upper = text.trim().to_ascii_uppercase();
        let alias = match upper.as_str() {
            "REG_DWORD_LITTLE_ENDIAN" => "REG_DWORD",
            "REG_QWORD_LITTLE_ENDIAN" => "REG_QWORD",
            other => other,
        };
        if let Some((_, ty)) = Self::NAMES.iter().find(|(n, _)| *n == alias) {
            return Some(*ty);
        }
        parse_u64(&upper)
            .and_then(|n| u32::try_from(n).ok())
            .map(ValueType)
    }

    /// Whether the data is UTF-16 text with a terminator.
    pub fn is_string(self) -> bool {
        self == ValueType::SZ || self == ValueType::EXPAND_SZ
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "0x{:x}", self.0),
        }
    }
}

impl fmt::Debug for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Parses a decimal or `0x`-prefixed hexadecimal number.
pub fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None => text.parse().ok(),
    }
}

/// A value: its type and its data, byte-exact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value {
    /// The type.
    pub ty: ValueType,
    /// The data as Windows stores it.
    pub data: Vec<u8>,
}

fn utf16le(text: &str, terminators: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity((text.len() + terminators) * 2);
    for unit in text.encode_utf16() {
        data.extend_from_slice(&unit.to_le_bytes());
    }
    data.resize(data.len() + terminators * 2, 0);
    data
}

impl Value {
    /// A value of any type with the given bytes.
    pub fn new(ty: ValueType, data: Vec<u8>) -> Value {
        Value { ty, data }
    }

    /// `REG_SZ`: UTF-16LE with a NUL terminator.
    pub fn string(text: &str) -> Value {
        Value::new(ValueType::SZ, utf16le(text, 1))
    }

    /// `REG_EXPAND_SZ`.
    pub fn expand_string(text: &str) -> Value {
        Value::new(ValueType::EXPAND_SZ, utf16le(text, 1))
    }

    /// `REG_MULTI_SZ`: each string NUL-terminated, then one more NUL.
    pub fn multi_string<S: AsRef<str>>(items: &[S]) -> Value {
        let mut data = Vec::new();
        for item in items {
            data.extend(utf16le(item.as_ref(), 1));
        }
        data.extend_from_slice(&[0, 0]);
        Value::new(ValueType::MULTI_SZ, data)
    }

    /// `REG_DWORD`.
    pub fn dword(n: u32) -> Value {
        Value::new(ValueType::DWORD, n.to_le_bytes().to_vec())
    }

    /// `REG_DWORD_BIG_ENDIAN`.
    pub fn dword_big_endian(n: u32) -> Value {
        Value::new(ValueType::DWORD_BIG_ENDIAN, n.to_be_bytes().to_vec())
    }

    /// `REG_QWORD`.
    pub fn qword(n: u64) -> Value {
        Value::new(ValueType::QWORD, n.to_le_bytes().to_vec())
    }

    /// `REG_BINARY`.
    pub fn binary(data: Vec<u8>) -> Value {
        Value::new(ValueType::BINARY, data)
    }

    /// The data as UTF-16LE units; `None` if its length is odd.
    pub fn utf16_units(&self) -> Option<Vec<u16>> {
        if !self.data.len().is_multiple_of(2) {
            return None;
        }
        Some(
            self.data
                .chunks_exact(2)
                .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
                .collect(),
        )
    }

    /// The data as text: UTF-16LE up to the first NUL (lossy for unpaired surrogates).
    pub fn text_lossy(&self) -> Option<String> {
        let units = self.utf16_units()?;
        let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
        Some(String::from_utf16_lossy(&units[..end]))
    }

    /// The strings of a `REG_MULTI_SZ` (lossy for unpaired surrogates); `None` if the data is
    /// not UTF-16.
    pub fn multi_text_lossy(&self) -> Option<Vec<String>> {
        let units = self.utf16_units()?;
        let mut items: Vec<String> = units
            .split(|&u| u == 0)
            .map(String::from_utf16_lossy)
            .collect();
        // The list ends with an empty string (the final NUL) and, with a terminator, another.
        while items.last().is_some_and(String::is_empty) {
            items.pop();
        }
        Some(items)
    }

    /// The data as a number, for the DWORD and QWORD types.
    pub fn number(&self) -> Option<u64> {
        match (self.ty, self.data.len()) {
            (ValueType::DWORD, 4) => Some(u64::from(u32::from_le_bytes(
                self.data[..4].try_into().ok()?,
            ))),
            (ValueType::DWORD_BIG_ENDIAN, 4) => Some(u64::from(u32::from_be_bytes(
                self.data[..4].try_into().ok()?,
            ))),
            (ValueType::QWORD, 8) => Some(u64::from_le_bytes(self.data[..8].try_into().ok()?)),
            _ => None,
        }
    }
}

/// Converts a Rust value to a registry value.
pub trait ToRegValue {
    /// The registry value.
    fn to_reg_value(&self) -> Value;
}

/// Converts a registry value to a Rust value.
pub trait FromRegValue: Sized {
    /// The Rust value, or why it does not convert. `name` is for the error message.
    fn from_reg_value(value: &Value, name: &str) -> Result<Self>;
}

impl ToRegValue for Value {
    fn to_reg_value(&self) -> Value {
        self.clone()
    }
}

impl ToRegValue for str {
    fn to_reg_value(&self) -> Value {
        Value::string(self)
    }
}

impl ToRegValue for String {
    fn to_reg_value(&self) -> Value {
        Value::string(self)
    }
}

impl ToRegValue for u32 {
    fn to_reg_value(&self) -> Value {
        Value::dword(*self)
    }
}

impl ToRegValue for u64 {
    fn to_reg_value(&self) -> Value {
        Value::qword(*self)
    }
}

impl ToRegValue for [String] {
    fn to_reg_value(&self) -> Value {
        Value::multi_string(self)
    }
}

impl ToRegValue for Vec<String> {
    fn to_reg_value(&self) -> Value {
        Value::multi_string(self)
    }
}

impl ToRegValue for [u8] {
    fn to_reg_value(&self) -> Value {
        Value::binary(self.to_vec())
    }
}

impl ToRegValue for Vec<u8> {
    fn to_reg_value(&self) -> Value {
        Value::binary(self.clone())
    }
}

fn wrong_type(value: &Value, name: &str, expected: &'static str) -> Error {
    Error::WrongType {
        name: name.to_string(),
        expected,
        found: value.ty.to_string(),
    }
}

fn bad_data(value: &Value, name: &str, reason: &'static str) -> Error {
    Error::BadData {
        name: name.to_string(),
        ty: value.ty.to_string(),
        reason,
    }
}

impl FromRegValue for Value {
    fn from_reg_value(value: &Value, _name: &str) -> Result<Value> {
        Ok(value.clone())
    }
}

impl FromRegValue for String {
    /// `REG_SZ` and `REG_EXPAND_SZ`; the terminator (and anything after it) is dropped.
    fn from_reg_value(value: &Value, name: &str) -> Result<String> {
        if !value.ty.is_string() {
            return Err(wrong_type(value, name, "REG_SZ or REG_EXPAND_SZ"));
        }
        let units = value
            .utf16_units()
            .ok_or_else(|| bad_data(value, name, "odd number of bytes for UTF-16"))?;
        let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
        String::from_utf16(&units[..end]).map_err(|_| bad_data(value, name, "invalid UTF-16"))
    }
}

impl FromRegValue for u32 {
    /// `REG_DWORD` or `REG_DWORD_BIG_ENDIAN`.
    fn from_reg_value(value: &Value, name: &str) -> Result<u32> {
        if value.ty != ValueType::DWORD && value.ty != ValueType::DWORD_BIG_ENDIAN {
            return Err(wrong_type(value, name, "REG_DWORD"));
        }
        let n = value
            .number()
            .ok_or_else(|| bad_data(value, name, "a DWORD is 4 bytes"))?;
        Ok(n as u32)
    }
}

impl FromRegValue for u64 {
    /// `REG_QWORD`, or a DWORD widened.
    fn from_reg_value(value: &Value, name: &str) -> Result<u64> {
        match value.ty {
            ValueType::QWORD => value
                .number()
                .ok_or_else(|| bad_data(value, name, "a QWORD is 8 bytes")),
            ValueType::DWORD | ValueType::DWORD_BIG_ENDIAN => {
                u32::from_reg_value(value, name).map(u64::from)
            }
            _ => Err(wrong_type(value, name, "REG_QWORD")),
        }
    }
}

impl FromRegValue for Vec<String> {
    /// `REG_MULTI_SZ`.
    fn from_reg_value(value: &Value, name: &str) -> Result<Vec<String>> {
        if value.ty != ValueType::MULTI_SZ {
            return Err(wrong_type(value, name, "REG_MULTI_SZ"));
        }
        let units = value
            .utf16_units()
            .ok_or_else(|| bad_data(value, name, "odd number of bytes for UTF-16"))?;
        // The list ends at the first empty string (the extra NUL).
        units
            .split(|&u| u == 0)
            .take_while(|item| !item.is_empty())
            .map(|item| {
                String::from_utf16(item).map_err(|_| bad_data(value, name, "invalid UTF-16"))
            })
            .collect()
    }
}

impl FromRegValue for Vec<u8> {
    /// The raw bytes of any type.
    fn from_reg_value(value: &Value, _name: &str) -> Result<Vec<u8>> {
        Ok(value.data.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_are_what_windows_stores() {
        assert_eq!(Value::string("Hi").data, [b'H', 0, b'i', 0, 0, 0]);
        assert_eq!(Value::string("").data, [0, 0]);
        assert_eq!(
            Value::multi_string(&["a", "b"]).data,
            [b'a', 0, 0, 0, b'b', 0, 0, 0, 0, 0]
        );
        assert_eq!(Value::multi_string::<&str>(&[]).data, [0, 0]);
        assert_eq!(Value::dword(0x01020304).data, [4, 3, 2, 1]);
        assert_eq!(Value::dword_big_endian(0x01020304).data, [1, 2, 3, 4]);
        assert_eq!(Value::qword(1).data, [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn typed_round_trips() {
        let v = "Grüße 😀".to_reg_value();
        assert_eq!(String::from_reg_value(&v, "n").unwrap(), "Grüße 😀");
        let v = 0xdead_beefu32.to_reg_value();
        assert_eq!(u32::from_reg_value(&v, "n").unwrap(), 0xdead_beef);
        assert_eq!(u64::from_reg_value(&v, "n").unwrap(), 0xdead_beef);
        let v = u64::MAX.to_reg_value();
        assert_eq!(u64::from_reg_value(&v, "n").unwrap(), u64::MAX);
        let items = vec!["one".to_string(), "two".to_string()];
        let v = items.to_reg_value();
        assert_eq!(Vec::<String>::from_reg_value(&v, "n").unwrap(), items);
        assert_eq!(v.multi_text_lossy().unwrap(), items);
        let v = vec![0u8, 1, 2].to_reg_value();
        assert_eq!(Vec::<u8>::from_reg_value(&v, "n").unwrap(), [0, 1, 2]);
        assert_eq!(
            u32::from_reg_value(&Value::dword_big_endian(7), "n").unwrap(),
            7
        );
    }

    #[test]
    fn conversions_refuse_the_wrong_type_or_bad_data() {
        let dword = Value::dword(1);
        assert!(matches!(
            String::from_reg_value(&dword, "n"),
            Err(Error::WrongType { .. })
        ));
        assert!(matches!(
            u32::from_reg_value(&Value::string("1"), "n"),
            Err(Error::WrongType { .. })
        ));
        let short = Value::new(ValueType::DWORD, vec![1, 2, 3]);
        assert!(matches!(
            u32::from_reg_value(&short, "n"),
            Err(Error::BadData { .. })
        ));
        let odd = Value::new(ValueType::SZ, vec![b'a', 0, 0]);
        assert!(matches!(
            String::from_reg_value(&odd, "n"),
            Err(Error::BadData { .. })
        ));
        let lone_surrogate = Value::new(ValueType::SZ, vec![0x00, 0xd8, 0, 0]);
        assert!(matches!(
            String::from_reg_value(&lone_surrogate, "n"),
            Err(Error::BadData { .. })
        ));
        assert_eq!(lone_surrogate.text_lossy().unwrap(), "\u{FFFD}");
    }

    #[test]
    fn type_names_and_numbers() {
        assert_eq!(ValueType::parse("reg_sz"), Some(ValueType::SZ));
        assert_eq!(
            ValueType::parse("REG_DWORD_LITTLE_ENDIAN"),
            Some(ValueType::DWORD)
        );
        assert_eq!(ValueType::parse("0x80000001"), Some(ValueType(0x8000_0001)));
        assert_eq!(ValueType::parse("42"), Some(ValueType(42)));
        assert_eq!(ValueType::parse("REG_BOGUS"), None);
        assert_eq!(ValueType::parse("0x1ffffffff"), None);
        assert_eq!(ValueType(0x8000_0001).to_string(), "0x80000001");
        assert_eq!(ValueType::QWORD.to_string(), "REG_QWORD");
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("0XfF"), Some(255));
    }
}
