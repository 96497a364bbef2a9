//! How values are printed (as `reg query` prints them, and as JSON) and parsed from `add -d`.

use hivelog::{Value, ValueType, parse_u64};
use serde_json::json;

use crate::store_dir::{Failure, fail};

/// The type as `reg` names it: `REG_SZ`, ..., or the number in hex.
pub(crate) fn type_name(ty: ValueType) -> String {
    ty.to_string()
}

/// Uppercase hex digits, no separators.
pub(crate) fn hex_upper(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02X}")).collect()
}

/// The data column of `reg query`: text for strings, `\0`-joined items for multi-strings,
/// `0x` hex for numbers, uppercase hex for everything else (and for malformed data).
pub(crate) fn reg_data(value: &Value) -> String {
    match value.ty {
        ValueType::SZ | ValueType::EXPAND_SZ => value.text_lossy(),
        ValueType::MULTI_SZ => value.multi_text_lossy().map(|items| items.join("\\0")),
        ValueType::DWORD | ValueType::DWORD_BIG_ENDIAN | ValueType::QWORD => {
            value.number().map(|n| format!("0x{n:x}"))
        }
        _ => None,
    }
    .unwrap_or_else(|| hex_upper(&value.data))
}

/// The name column: `(Default)` for the empty name.
pub(crate) fn display_name(name: &str) -> &str {
    if name.is_empty() { "(Default)" } else { name }
}

/// A value as JSON: name, type, typed data where the type has one, and the exact bytes.
pub(crate) fn json_value(name: &str, value: &Value) -> serde_json::Value {
    let data = match value.ty {
        ValueType::SZ | ValueType::EXPAND_SZ => value.text_lossy().map(serde_json::Value::from),
        ValueType::MULTI_SZ => value.multi_text_lossy().map(serde_json::Value::from),
        ValueType::DWORD | ValueType::DWORD_BIG_ENDIAN | ValueType::QWORD => {
            value.number().map(serde_json::Value::from)
        }
        _ => None,
    }
    .unwrap_or_else(|| serde_json::Value::from(hex_upper(&value.data)));
    json!({
        "name": name,
        "type": type_name(value.ty),
        "type_code": value.ty.0,
        "data": data,
        "hex": hex_upper(&value.data),
    })
}

/// Builds a value of type `ty` from `add -d` text, as `reg add` reads it.
pub(crate) fn parse_data(
    ty: ValueType,
    data: Option<&str>,
    separator: &str,
) -> Result<Value, Failure> {
    let text = data.unwrap_or("");
    Ok(match ty {
        ValueType::SZ => Value::string(text),
        ValueType::EXPAND_SZ => Value::expand_string(text),
        ValueType::MULTI_SZ => {
            let items: Vec<&str> = if text.is_empty() {
                Vec::new()
            } else {
                text.split(separator).collect()
            };
            Value::multi_string(&items)
        }
        ValueType::DWORD | ValueType::DWORD_BIG_ENDIAN => {
            let n = parse_number(text, u64::from(u32::MAX), ty)?;
            let n = u32::try_from(n).map_err(|_| fail("DWORD out of range"))?;
            if ty == ValueType::DWORD {
                Value::dword(n)
            } else {
                Value::dword_big_endian(n)
            }
        }
        ValueType::QWORD => Value::qword(parse_number(text, u64::MAX, ty)?),
        other => Value::new(other, parse_hex(text)?),
    })
}

fn parse_number(text: &str, max: u64, ty: ValueType) -> Result<u64, Failure> {
    if text.is_empty() {
        return Ok(0);
    }
    parse_u64(text).filter(|&n| n <= max).ok_or_else(|| {
        fail(format!(
            "invalid {} data {text:?}: expected a decimal or 0x-hex number from 0 to {max}",
            type_name(ty)
        ))
    })
}

fn parse_hex(text: &str) -> Result<Vec<u8>, Failure> {
    let digits: Vec<char> = text.chars().collect();
    if !digits.len().is_multiple_of(2) || !digits.iter().all(char::is_ascii_hexdigit) {
        return Err(fail(format!(
            "invalid binary data {text:?}: expected an even number of hex digits"
        )));
    }
    Ok(digits
        .chunks(2)
        .map(|pair| {
            let high = pair[0].to_digit(16).unwrap_or(0);
            let low = pair[1].to_digit(16).unwrap_or(0);
            (high * 16 + low) as u8
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reg_data_columns() {
        assert_eq!(reg_data(&Value::string("hi")), "hi");
        assert_eq!(reg_data(&Value::multi_string(&["a", "b"])), "a\\0b");
        assert_eq!(reg_data(&Value::dword(255)), "0xff");
        assert_eq!(reg_data(&Value::qword(1 << 40)), "0x10000000000");
        assert_eq!(reg_data(&Value::binary(vec![0xab, 1])), "AB01");
        assert_eq!(
            reg_data(&Value::new(ValueType::DWORD, vec![1, 2, 3])),
            "010203"
        );
        assert_eq!(display_name(""), "(Default)");
    }

    #[test]
    fn parse_data_as_reg_add_reads_it() {
        assert_eq!(
            parse_data(ValueType::DWORD, Some("0x10"), "\\0").unwrap(),
            Value::dword(16)
        );
        assert_eq!(
            parse_data(ValueType::DWORD, Some("4294967295"), "\\0").unwrap(),
            Value::dword(u32::MAX)
        );
        assert!(parse_data(ValueType::DWORD, Some("4294967296"), "\\0").is_err());
        assert!(parse_data(ValueType::DWORD, Some("-1"), "\\0").is_err());
        assert!(parse_data(ValueType::DWORD, Some("abc"), "\\0").is_err());
        assert_eq!(
            parse_data(ValueType::MULTI_SZ, Some("a\\0b"), "\\0").unwrap(),
            Value::multi_string(&["a", "b"])
        );
        assert_eq!(
            parse_data(ValueType::MULTI_SZ, Some("a,b"), ",").unwrap(),
            Value::multi_string(&["a", "b"])
        );
        assert_eq!(
            parse_data(ValueType::BINARY, Some("0aFF"), "\\0").unwrap(),
            Value::binary(vec![10, 255])
        );
        assert!(parse_data(ValueType::BINARY, Some("abc"), "\\0").is_err());
        assert!(parse_data(ValueType::BINARY, Some("zz"), "\\0").is_err());
        assert_eq!(
            parse_data(ValueType::SZ, None, "\\0").unwrap(),
            Value::string("")
        );
        assert_eq!(
            parse_data(ValueType(0x8000_0000), Some("01"), "\\0")
                .unwrap()
                .data,
            [1]
        );
    }
}
