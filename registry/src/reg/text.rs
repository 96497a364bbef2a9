//! The text of a `.reg` file: which encoding it is in, its lines as UTF-8 strings, and the
//! encoding of what an export writes. Windows-1252 is a table of 32 characters written out
//! here (the rest of the code page is Latin-1): a dependency for it would be larger than it.

use super::REG_LINE_MAX_BYTES;

/// A `.reg` file's text encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegEncoding {
    /// UTF-16 little-endian with a byte order mark: regedit's own.
    Utf16Le,
    /// UTF-8: read with or without a byte order mark, written without.
    Utf8,
    /// Windows-1252, the 8-bit code page of `REGEDIT4` files from western Windows.
    Windows1252,
}

impl RegEncoding {
    /// The byte order mark an export starts with.
    pub(crate) fn bom(self) -> &'static [u8] {
        match self {
            RegEncoding::Utf16Le => &UTF16LE_BOM,
            RegEncoding::Utf8 | RegEncoding::Windows1252 => &[],
        }
    }
}

const UTF16LE_BOM: [u8; 2] = [0xff, 0xfe];
const UTF16BE_BOM: [u8; 2] = [0xfe, 0xff];
const UTF8_BOM: [u8; 3] = [0xef, 0xbb, 0xbf];

/// Something wrong with the file at a line (1-based).
#[derive(Debug)]
pub(crate) struct Fault {
    pub line: u64,
    pub kind: FaultKind,
}

#[derive(Debug)]
pub(crate) enum FaultKind {
    Syntax(String),
    /// The line is this many bytes long (REG_LINE_MAX_BYTES).
    LineTooLong(usize),
}

pub(crate) fn fault(line: u64, reason: impl Into<String>) -> Fault {
    Fault {
        line,
        kind: FaultKind::Syntax(reason.into()),
    }
}

/// The encoding of `input` and its text after the byte order mark. Without a mark, a file
/// headed `REGEDIT4` is Windows-1252 (regedit reads it in the 8-bit code page) and anything
/// else UTF-8.
pub(crate) fn detect(input: &[u8]) -> Result<(RegEncoding, &[u8]), Fault> {
    if let Some(text) = input.strip_prefix(&UTF16LE_BOM) {
        return Ok((RegEncoding::Utf16Le, text));
    }
    if let Some(text) = input.strip_prefix(&UTF8_BOM) {
        return Ok((RegEncoding::Utf8, text));
    }
    if input.starts_with(&UTF16BE_BOM) {
        return Err(fault(
            1,
            "the file is UTF-16BE; a .reg file is UTF-16LE or UTF-8",
        ));
    }
    if input.get(1) == Some(&0) {
        return Err(fault(
            1,
            "the file looks like UTF-16 without a byte order mark; regedit reads UTF-16LE only with one",
        ));
    }
    let first = input.split(|&b| b == b'\n').next().unwrap_or_default();
    if first.trim_ascii() == super::RegHeader::Regedit4.text().as_bytes() {
        return Ok((RegEncoding::Windows1252, input));
    }
    Ok((RegEncoding::Utf8, input))
}

/// The file's lines as UTF-8, without their line ends (LF, or CRLF).
pub(crate) struct Lines<'a> {
    source: Source<'a>,
    /// The number of the line returned last.
    number: u64,
    /// The line decoded, for sources that are not UTF-8 already.
    buf: String,
}

enum Source<'a> {
    Utf8(&'a str),
    Utf16(&'a [u8]),
    Windows1252(&'a [u8]),
}

impl<'a> Lines<'a> {
    /// The lines of `text` in `encoding`; UTF-8 is checked whole here, UTF-16 line by line.
    pub(crate) fn new(text: &'a [u8], encoding: RegEncoding) -> Result<Lines<'a>, Fault> {
        let source = match encoding {
            RegEncoding::Utf8 => Source::Utf8(std::str::from_utf8(text).map_err(|e| {
                let before = text.get(..e.valid_up_to()).unwrap_or_default();
                let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                fault(line, "invalid UTF-8")
            })?),
            RegEncoding::Utf16Le => {
                if !text.len().is_multiple_of(2) {
                    let lines = text.chunks_exact(2).filter(|u| *u == [b'\n', 0]).count();
                    return Err(fault(
                        lines as u64 + 1,
                        "the file ends in half a UTF-16 character (an odd number of bytes)",
                    ));
                }
                Source::Utf16(text)
            }
            RegEncoding::Windows1252 => Source::Windows1252(text),
        };
        Ok(Lines {
            source,
            number: 0,
            buf: String::new(),
        })
    }

    /// The number of the line returned last (1-based).
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The lines of `text`, a part of a file that starts at a line's start, numbered as if
    /// `before` lines came first.
    pub(crate) fn after(
        text: &'a [u8],
        encoding: RegEncoding,
        before: u64,
    ) -> Result<Lines<'a>, Fault> {
        let mut lines = Lines::new(text, encoding).map_err(|fault| Fault {
            line: fault.line + before,
            ..fault
        })?;
        lines.number = before;
        Ok(lines)
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        match self.source {
            Source::Utf8(rest) => rest.as_bytes(),
            Source::Utf16(rest) | Source::Windows1252(rest) => rest,
        }
    }

    /// The next line, or `None` at the end of the file.
    pub(crate) fn next_line(&mut self) -> Result<Option<&str>, Fault> {
        let number = self.number + 1;
        let too_long = |len: usize| Fault {
            line: number,
            kind: FaultKind::LineTooLong(len),
        };
        let line = match &mut self.source {
            Source::Utf8(rest) if !rest.is_empty() => {
                let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
                *rest = after;
                if line.len() > REG_LINE_MAX_BYTES {
                    return Err(too_long(line.len()));
                }
                line
            }
            Source::Utf16(rest) if !rest.is_empty() => {
                let end = rest
                    .chunks_exact(2)
                    .position(|unit| unit == [b'\n', 0])
                    .map_or(rest.len(), |units| units * 2);
                let (line, after) = rest.split_at(end);
                *rest = after.get(2..).unwrap_or_default();
                if line.len() > REG_LINE_MAX_BYTES {
                    return Err(too_long(line.len()));
                }
                decode_utf16(line, &mut self.buf).map_err(|reason| fault(number, reason))?;
                &self.buf
            }
            Source::Windows1252(rest) if !rest.is_empty() => {
                let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                let (line, after) = rest.split_at(end);
                *rest = after.get(1..).unwrap_or_default();
                if line.len() > REG_LINE_MAX_BYTES {
                    return Err(too_long(line.len()));
                }
                self.buf.clear();
                self.buf.extend(line.iter().map(|&b| windows_1252_char(b)));
                &self.buf
            }
            _ => return Ok(None),
        };
        self.number = number;
        Ok(Some(line.strip_suffix('\r').unwrap_or(line)))
    }
}

/// Decodes UTF-16LE `bytes` (of even length) into `out`, replacing what it held.
fn decode_utf16(bytes: &[u8], out: &mut String) -> Result<(), &'static str> {
    out.clear();
    out.reserve(bytes.len() / 2);
    // Most lines of any file are ASCII: checked and narrowed a unit at a time in loops the
    // compiler vectorizes, rather than decoded character by character (a third of the
    // parse's time went there).
    if bytes
        .chunks_exact(2)
        .all(|unit| unit[1] == 0 && unit[0] < 0x80)
    {
        out.extend(bytes.iter().step_by(2).map(|&b| char::from(b)));
        return Ok(());
    }
    let units = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    for decoded in char::decode_utf16(units) {
        let c = decoded.map_err(|_| "invalid UTF-16: an unpaired surrogate")?;
        out.push(c);
    }
    Ok(())
}

/// Windows-1252's characters for bytes 0x80 to 0x9F. The five bytes the code page leaves
/// undefined map to the C1 controls of the same number, as Windows' conversion maps them.
const WINDOWS_1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{0081}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{008D}', '\u{017D}', '\u{008F}',
    '\u{0090}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{009D}', '\u{017E}', '\u{0178}',
];

/// The character Windows-1252 byte `b` stands for.
pub(crate) fn windows_1252_char(b: u8) -> char {
    match b {
        0x80..=0x9f => WINDOWS_1252_HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// The Windows-1252 byte for `c`, if the code page has it.
pub(crate) fn windows_1252_byte(c: char) -> Option<u8> {
    match u32::from(c) {
        0..=0x7f | 0xa0..=0xff => u8::try_from(u32::from(c)).ok(),
        _ => WINDOWS_1252_HIGH
            .iter()
            .position(|&high| high == c)
            .and_then(|i| u8::try_from(0x80 + i).ok()),
    }
}

/// Appends `text` to `out` in `encoding`. A character Windows-1252 does not have is written
/// as `?`, as Windows' conversion writes it; returns how many were.
pub(crate) fn encode(text: &str, encoding: RegEncoding, out: &mut Vec<u8>) -> u64 {
    match encoding {
        RegEncoding::Utf8 => {
            out.extend_from_slice(text.as_bytes());
            0
        }
        RegEncoding::Utf16Le => {
            if text.is_ascii() {
                // Most of any file: one unit a byte, with no decoding, written in place
                // (an `extend` of pairs checks the capacity at every byte).
                let start = out.len();
                out.resize(start + text.len() * 2, 0);
                for (unit, &b) in out[start..].chunks_exact_mut(2).zip(text.as_bytes()) {
                    unit[0] = b;
                }
            } else {
                out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
            }
            0
        }
        RegEncoding::Windows1252 => {
            let mut replaced = 0;
            out.extend(text.chars().map(|c| {
                windows_1252_byte(c).unwrap_or_else(|| {
                    replaced += 1;
                    b'?'
                })
            }));
            replaced
        }
    }
}

/// REGEDIT4's 8-bit REG_EXPAND_SZ or REG_MULTI_SZ data widened to UTF-16LE as regedit
/// widens it: from Windows-1252 whatever the file's own encoding (regedit converts it with
/// the ANSI code page), with a terminator added if the data has none.
pub(crate) fn widen(data: &[u8]) -> Vec<u8> {
    let mut wide = Vec::with_capacity(data.len() * 2 + 2);
    let units = data.iter().map(|&b| windows_1252_char(b) as u16);
    wide.extend(units.flat_map(u16::to_le_bytes));
    if data.last().is_some_and(|&last| last != 0) {
        wide.extend_from_slice(&[0, 0]);
    }
    wide
}

/// UTF-16LE REG_EXPAND_SZ or REG_MULTI_SZ data narrowed to Windows-1252 for a `REGEDIT4`
/// file, as regedit narrows it (a trailing odd byte dropped, what does not convert as `?`),
/// and whether that is exact: whether importing it gives `data` back.
pub(crate) fn narrow(data: &[u8]) -> (Vec<u8>, bool) {
    let units = data
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let mut exact = data.is_empty() || (data.len().is_multiple_of(2) && data.ends_with(&[0, 0]));
    let mut out = Vec::with_capacity(data.len() / 2);
    for decoded in char::decode_utf16(units) {
        let byte = decoded.ok().and_then(windows_1252_byte).unwrap_or_else(|| {
            exact = false;
            b'?'
        });
        out.push(byte);
    }
    (out, exact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Result<Vec<String>, Fault> {
        let (encoding, text) = detect(input)?;
        let mut lines = Lines::new(text, encoding)?;
        let mut out = Vec::new();
        while let Some(line) = lines.next_line()? {
            out.push(line.to_string());
        }
        Ok(out)
    }

    fn utf16(text: &str) -> Vec<u8> {
        let mut out = UTF16LE_BOM.to_vec();
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    #[test]
    fn every_encoding_and_line_end_gives_the_same_lines() {
        let v5 = "Windows Registry Editor Version 5.00";
        let expected = [v5, "", "a\u{e9}\u{20ac}", "x"];
        let text = format!("{v5}\r\n\r\na\u{e9}\u{20ac}\nx\r\n");
        assert_eq!(lines(text.as_bytes()).unwrap(), expected);
        assert_eq!(
            lines(&[&UTF8_BOM, text.as_bytes()].concat()).unwrap(),
            expected
        );
        assert_eq!(lines(&utf16(&text)).unwrap(), expected);
        // Without a byte order mark, a REGEDIT4 file is 8-bit text, as regedit reads it.
        let cp1252 = b"REGEDIT4\r\n\r\na\xe9\x80\nx\r\n";
        assert_eq!(lines(cp1252).unwrap()[1..], expected[1..]);
        let utf8 = "REGEDIT4\n\u{e9}\n";
        assert_eq!(lines(utf8.as_bytes()).unwrap()[1], "\u{c3}\u{a9}");
        let with_bom = [&UTF8_BOM, utf8.as_bytes()].concat();
        assert_eq!(lines(&with_bom).unwrap()[1], "\u{e9}");
        // A last line without a line end is a line; a final line end starts none.
        assert_eq!(lines(b"a\nb").unwrap(), ["a", "b"]);
        assert_eq!(lines(b"a\n").unwrap(), ["a"]);
    }

    #[test]
    fn undecodable_text_names_its_line() {
        let bad = lines(b"Windows Registry Editor Version 5.00\n\n\xff\n").unwrap_err();
        assert_eq!(bad.line, 3);
        let mut lone = utf16("a\nb\n");
        lone.extend_from_slice(&0xd800u16.to_le_bytes());
        assert_eq!(lines(&lone).unwrap_err().line, 3);
        let mut odd = utf16("a\nb\n");
        odd.push(b'c');
        assert_eq!(lines(&odd).unwrap_err().line, 3);
        assert_eq!(lines(&[0xfe, 0xff, 0, b'a']).unwrap_err().line, 1);
        assert_eq!(lines(&[b'a', 0, b'b', 0]).unwrap_err().line, 1);
    }

    #[test]
    fn windows_1252_round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(windows_1252_byte(windows_1252_char(b)), Some(b), "{b:#x}");
        }
        assert_eq!(windows_1252_byte('\u{100}'), None);
        let mut out = Vec::new();
        assert_eq!(
            encode("a\u{e9}\u{3b1}", RegEncoding::Windows1252, &mut out),
            1
        );
        assert_eq!(out, b"a\xe9?");
    }

    #[test]
    fn eight_bit_string_data_widens_and_narrows_as_regedit_converts_it() {
        let wide = |s: &str| {
            s.encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect::<Vec<u8>>()
        };
        assert_eq!(widen(b"%A%\0"), wide("%A%\0"));
        assert_eq!(widen(b"%A%"), wide("%A%\0"));
        assert_eq!(widen(b""), wide(""));
        assert_eq!(widen(b"\xe9\x80\0"), wide("\u{e9}\u{20ac}\0"));
        assert_eq!(narrow(&wide("a\0b\0\0")), (b"a\0b\0\0".to_vec(), true));
        assert_eq!(narrow(&wide("")), (Vec::new(), true));
        assert_eq!(narrow(&wide("ab")), (b"ab".to_vec(), false));
        assert_eq!(
            narrow(&wide("\u{3b1}\u{20ac}\0")),
            (b"?\x80\0".to_vec(), false)
        );
        assert_eq!(narrow(&[b'a', 0, 0, 0, 7]), (b"a\0".to_vec(), false));
    }
}
