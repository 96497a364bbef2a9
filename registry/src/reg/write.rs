//! The writer: keys and values to `.reg` text, as regedit writes it, streamed. It knows
//! nothing of a store: whatever walks a tree (the store's export, an offline hive) calls
//! `key` for each key, depth-first, then `value` for each of its values, in the order
//! they are to appear.
//!
//! Hex data wraps as regedit wraps it (Wine's `export_hex_data` does the same): after each
//! `xx,` the column is counted up by 3 from the width of `"name"=hex(N):` (in UTF-16
//! units); when it reaches 77 or more the line ends in `\` and the next starts with two
//! spaces (column 2). So a line is at most 79 columns and a continuation line holds 25
//! bytes; the last byte has no comma and never wraps. `hex_wraps_as_regedit_does` holds it.

use std::io::Write;

use super::text::{encode, narrow};
use super::{ExportReport, REG_LINE_MAX_BYTES, RegFormat, RegHeader};
use crate::error::{Error, Result};
use crate::value::{Value, ValueType};

/// The column at which hex data wraps (regedit's and Wine's `MAX_HEX_CHARS`).
const HEX_WRAP_COLUMNS: usize = 77;

/// The output is handed to the `Write` in pieces of about this size.
const FLUSH_BYTES: usize = 1 << 20;

/// The longest string written as `"text"`, in UTF-16 units: one longer is written as
/// `hex(1):`, so no line of an export is longer than an import reads (each unit is at most
/// 4 bytes of UTF-8 text; escapes double a few).
const QUOTED_MAX_UNITS: usize = REG_LINE_MAX_BYTES / 8;

/// Writes a `.reg` file to `out`, one key at a time.
pub(crate) struct RegWriter<W: Write> {
    out: W,
    format: RegFormat,
    /// Encoded output not yet handed to `out`.
    buf: Vec<u8>,
    /// The line being built, as text (ASCII for most of any file), encoded when complete.
    line: String,
    /// The key written last, for errors.
    key: String,
    report: ExportReport,
}

impl<W: Write> RegWriter<W> {
    /// A writer of `format` to `out`; writes the header.
    pub(crate) fn new(out: W, format: RegFormat) -> RegWriter<W> {
        let mut writer = RegWriter {
            out,
            format,
            buf: Vec::with_capacity(FLUSH_BYTES + (FLUSH_BYTES >> 2)),
            line: String::new(),
            key: String::new(),
            report: ExportReport {
                keys: 0,
                values: 0,
                bytes: 0,
                lossy: 0,
            },
        };
        writer.buf.extend_from_slice(format.encoding.bom());
        writer.line.push_str(format.header.text());
        writer.line.push_str("\r\n");
        writer.emit();
        writer
    }

    /// Starts key `windows_path` (`HKEY_LOCAL_MACHINE\...`): the values written next are its.
    pub(crate) fn key(&mut self, windows_path: &str) -> Result<()> {
        self.key.clear();
        self.key.push_str(windows_path);
        if has_line_break(windows_path) {
            return Err(Error::RegUnwritable {
                what: format!("key {windows_path:?}"),
                reason: "its name holds a line break",
            });
        }
        self.line.push_str("\r\n[");
        self.line.push_str(windows_path);
        self.line.push_str("]\r\n");
        self.report.keys += 1;
        self.emit();
        self.flush_some()
    }

    /// Writes value `name` (empty: the default value, `@`) of the current key.
    pub(crate) fn value(&mut self, name: &str, value: &Value) -> Result<()> {
        assert!(self.report.keys > 0, "a value before any key");
        if has_line_break(name) {
            return Err(Error::RegUnwritable {
                what: format!("value {name:?} of {}", self.key),
                reason: "its name holds a line break",
            });
        }
        let columns = self.name(name);
        let mut exact = true;
        match quoted_string(value) {
            Some(text) => {
                self.line.push('"');
                escape_into(&text, &mut self.line);
                self.line.push('"');
            }
            None if value.ty == ValueType::DWORD && value.data.len() == 4 => {
                let mut le = [0; 4];
                le.copy_from_slice(&value.data);
                push_dword(u32::from_le_bytes(le), &mut self.line);
            }
            None => exact = self.hex(value, columns),
        }
        self.line.push_str("\r\n");
        let replaced = self.emit();
        self.report.values += 1;
        self.report.lossy += u64::from(!exact || replaced > 0);
        self.flush_some()
    }

    /// Ends the file (one more line end, as regedit ends it) and hands everything to `out`.
    pub(crate) fn finish(mut self) -> Result<ExportReport> {
        self.line.push_str("\r\n");
        self.emit();
        self.flush_all()?;
        self.out.flush().map_err(io)?;
        Ok(self.report)
    }

    /// `@=` or `"name"=`; returns its width in UTF-16 units, the columns regedit counts.
    fn name(&mut self, name: &str) -> usize {
        if name.is_empty() {
            self.line.push_str("@=");
            return 2;
        }
        let start = self.line.len();
        self.line.push('"');
        escape_into(name, &mut self.line);
        self.line.push_str("\"=");
        let written = &self.line[start..];
        if written.is_ascii() {
            written.len()
        } else {
            written.encode_utf16().count()
        }
    }

    /// `hex:` or `hex(N):` and the bytes, wrapped; returns whether the data is exact (false:
    /// REGEDIT4's 8-bit text lost characters).
    fn hex(&mut self, value: &Value, name_columns: usize) -> bool {
        let start = self.line.len();
        if value.ty == ValueType::BINARY {
            self.line.push_str("hex:");
        } else {
            push_hex_type(value.ty.0, &mut self.line);
        }
        let mut column = name_columns + (self.line.len() - start);
        let eight_bit = self.format.header == RegHeader::Regedit4
            && (value.ty == ValueType::EXPAND_SZ || value.ty == ValueType::MULTI_SZ);
        let (narrowed, exact);
        let data = if eight_bit {
            (narrowed, exact) = narrow(&value.data, self.format.encoding.eight_bit());
            &narrowed
        } else {
            exact = true;
            &value.data
        };
        self.line.reserve(data.len() * 3 + data.len() / 8);
        let Some((last, most)) = data.split_last() else {
            return exact;
        };
        for &byte in most {
            push_byte(byte, &mut self.line);
            self.line.push(',');
            column += 3;
            if column >= HEX_WRAP_COLUMNS {
                self.line.push_str("\\\r\n  ");
                column = 2;
            }
        }
        push_byte(*last, &mut self.line);
        exact
    }

    /// Encodes the line into the output; returns how many characters the encoding lacked.
    fn emit(&mut self) -> u64 {
        let replaced = encode(&self.line, self.format.encoding, &mut self.buf);
        self.line.clear();
        replaced
    }

    fn flush_some(&mut self) -> Result<()> {
        if self.buf.len() >= FLUSH_BYTES {
            self.flush_all()?;
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<()> {
        self.out.write_all(&self.buf).map_err(io)?;
        self.report.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

fn io(source: std::io::Error) -> Error {
    Error::Io {
        what: "writing the .reg file".into(),
        source,
    }
}

fn has_line_break(text: &str) -> bool {
    text.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// The text of a REG_SZ that `"text"` carries exactly: UTF-16 ending in its one
/// terminator, with no other NUL, no unpaired surrogate and no line break, and not too long
/// for a line.
fn quoted_string(value: &Value) -> Option<String> {
    if value.ty != ValueType::SZ {
        return None;
    }
    let data = value.data.strip_suffix(&[0, 0])?;
    if !data.len().is_multiple_of(2) || data.len() / 2 > QUOTED_MAX_UNITS {
        return None;
    }
    let units = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let mut text = String::with_capacity(data.len() / 2);
    for decoded in char::decode_utf16(units) {
        match decoded {
            Ok('\0' | '\r' | '\n') | Err(_) => return None,
            Ok(c) => text.push(c),
        }
    }
    Some(text)
}

/// Appends `text` with `\` and `"` escaped, as a quoted name or string.
fn escape_into(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find(['\\', '"']) {
        out.push_str(&rest[..at]);
        out.push('\\');
        out.push_str(&rest[at..=at]);
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

fn push_byte(byte: u8, out: &mut String) {
    out.push(char::from(HEX_LOWER[usize::from(byte >> 4)]));
    out.push(char::from(HEX_LOWER[usize::from(byte & 0xf)]));
}

/// `dword:` and 8 lowercase digits.
fn push_dword(n: u32, out: &mut String) {
    out.push_str("dword:");
    for shift in (0..8).rev() {
        out.push(char::from(HEX_LOWER[(n >> (shift * 4)) as usize & 0xf]));
    }
}

/// `hex(N):` with N in lowercase hex without leading zeros, as regedit's `hex(%x):`.
fn push_hex_type(ty: u32, out: &mut String) {
    out.push_str("hex(");
    let digits = (32 - ty.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        out.push(char::from(HEX_LOWER[(ty >> (shift * 4)) as usize & 0xf]));
    }
    out.push_str("):");
}

#[cfg(test)]
mod tests {
    use super::super::RegEncoding;
    use super::*;

    fn export(format: RegFormat, values: &[(&str, Value)]) -> (String, ExportReport) {
        let mut out = Vec::new();
        let mut writer = RegWriter::new(&mut out, format);
        writer.key(r"HKEY_LOCAL_MACHINE\Software\Test").unwrap();
        for (name, value) in values {
            writer.value(name, value).unwrap();
        }
        let report = writer.finish().unwrap();
        assert_eq!(report.bytes, out.len() as u64);
        let text = match format.encoding {
            RegEncoding::Utf16Le => {
                assert_eq!(out[..2], [0xff, 0xfe]);
                let units: Vec<u16> = out[2..]
                    .chunks_exact(2)
                    .map(|p| u16::from_le_bytes([p[0], p[1]]))
                    .collect();
                String::from_utf16(&units).unwrap()
            }
            _ => String::from_utf8(out).unwrap(),
        };
        (text, report)
    }

    fn body(text: &str) -> &str {
        text.strip_prefix(
            "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\Test]\r\n",
        )
        .and_then(|rest| rest.strip_suffix("\r\n"))
        .unwrap()
    }

    #[test]
    fn values_are_written_as_regedit_writes_them() {
        let values = [
            ("", Value::string("x")),
            ("q\"b\\s", Value::string("a\"b\\c")),
            ("d", Value::dword(0xabc)),
            ("b", Value::binary(vec![])),
            ("e", Value::expand_string("%A%")),
            ("n", Value::new(ValueType::SZ, b"a\0".to_vec())),
            ("u", Value::new(ValueType(0x100), vec![1])),
            ("z", Value::new(ValueType::NONE, vec![])),
            ("w", Value::new(ValueType::DWORD, vec![1, 2])),
        ];
        let (text, report) = export(RegFormat::UNICODE, &values);
        assert_eq!(
            body(&text),
            concat!(
                "@=\"x\"\r\n",
                "\"q\\\"b\\\\s\"=\"a\\\"b\\\\c\"\r\n",
                "\"d\"=dword:00000abc\r\n",
                "\"b\"=hex:\r\n",
                "\"e\"=hex(2):25,00,41,00,25,00,00,00\r\n",
                "\"n\"=hex(1):61,00\r\n",
                "\"u\"=hex(100):01\r\n",
                "\"z\"=hex(0):\r\n",
                "\"w\"=hex(4):01,02\r\n",
            )
        );
        assert_eq!((report.keys, report.values, report.lossy), (1, 9, 0));
    }

    #[test]
    fn hex_wraps_as_regedit_does() {
        let data: Vec<u8> = (0..=255).collect();
        let (text, _) = export(RegFormat::UTF8, &[("Test", Value::binary(data.clone()))]);
        let lines: Vec<&str> = body(&text).split("\r\n").collect();
        // `"Test"=hex:` is 11 columns: 22 bytes fit before the column reaches 77.
        assert_eq!(lines[0].len(), 11 + 22 * 3 + 1);
        assert!(lines[0].ends_with(",15,\\"), "{}", lines[0]);
        assert_eq!(lines[1], format!("  {}\\", hex_list(&data[22..47])));
        for line in &lines[1..lines.len() - 2] {
            assert_eq!(line.len(), 2 + 25 * 3 + 1, "{line}");
        }
        let last = lines[lines.len() - 2];
        assert_eq!(
            last,
            format!("  {}", hex_list(&data[22 + 25 * 9..]).trim_end_matches(','))
        );
        assert_eq!(lines[lines.len() - 1], "");
        // A name past the wrap column still gets one byte on its line.
        let long = "n".repeat(80);
        let (text, _) = export(
            RegFormat::UTF8,
            &[(long.as_str(), Value::binary(vec![1, 2]))],
        );
        assert_eq!(body(&text), format!("\"{long}\"=hex:01,\\\r\n  02\r\n"));
        // 23 bytes: the last byte of a full first line does not wrap.
        let (text, _) = export(RegFormat::UTF8, &[("Test", Value::binary(vec![0; 23]))]);
        assert_eq!(body(&text).lines().count(), 2);
        let (text, _) = export(RegFormat::UTF8, &[("Test", Value::binary(vec![0; 22]))]);
        assert_eq!(body(&text).lines().count(), 1);
        // Columns are UTF-16 units of the name: a character outside the BMP counts two.
        let (text, _) = export(
            RegFormat::UTF8,
            &[("\u{1f600}", Value::binary(vec![0; 30]))],
        );
        let first = body(&text).lines().next().unwrap().to_string();
        // `"😀"=hex:` is 9 units: (77 - 9) / 3 rounded up = 23 bytes.
        assert_eq!(first.matches(',').count(), 23);
    }

    fn hex_list(data: &[u8]) -> String {
        data.iter().map(|b| format!("{b:02x},")).collect()
    }

    #[test]
    fn regedit4_narrows_and_counts_what_it_loses() {
        let values = [
            ("e", Value::expand_string("%\u{e9}%")),
            ("m", Value::multi_string(&["a", "\u{3b1}"])),
            ("s", Value::string("\u{3b1}")),
        ];
        let (text, report) = export(RegFormat::REGEDIT4, &values);
        let body = text
            .strip_prefix("REGEDIT4\r\n\r\n[HKEY_LOCAL_MACHINE\\Software\\Test]\r\n")
            .unwrap();
        assert_eq!(
            body,
            "\"e\"=hex(2):25,e9,25,00\r\n\"m\"=hex(7):61,00,3f,00,00\r\n\"s\"=\"?\"\r\n\r\n"
        );
        assert_eq!(report.lossy, 2);
    }

    #[test]
    fn names_with_line_breaks_are_refused() {
        let mut writer = RegWriter::new(Vec::new(), RegFormat::UNICODE);
        assert!(matches!(
            writer.key("HKEY_USERS\\a\nb"),
            Err(Error::RegUnwritable { .. })
        ));
        writer.key("HKEY_USERS\\a").unwrap();
        assert!(matches!(
            writer.value("x\r", &Value::dword(1)),
            Err(Error::RegUnwritable { .. })
        ));
    }
}
