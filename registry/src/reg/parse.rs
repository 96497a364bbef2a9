//! The parser: a `.reg` file's bytes to the list of changes it makes, each with its line.
//! It knows nothing of a store (names, depth and sizes are the tree's to check when it
//! applies them), so the store's import and an offline hive apply the same `RegFile`.

use super::text::{Fault, FaultKind, Lines, RegEncoding, detect, fault, widen};
use super::{REG_FILE_MAX_BYTES, REG_LINE_MAX_BYTES, RegFormat, RegHeader};
use crate::error::{Error, Result};
use crate::value::{Value, ValueType};

/// A parsed `.reg` file: its format and its changes in file order.
#[derive(Debug)]
pub(crate) struct RegFile {
    pub format: RegFormat,
    pub ops: Vec<RegOp>,
}

/// One change of a `.reg` file, with its 1-based line (the first line of a value continued
/// over several). Values belong to the latest `Key` before them; the parser guarantees there
/// is one, and that no `DeleteTree` came in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegOp {
    /// `[ROOT\path]`: create the key and its missing parents. `root` is the Windows root name
    /// (`HKEY_LOCAL_MACHINE`); `path` the names below it as written, empty for the root.
    Key {
        line: u64,
        root: &'static str,
        path: String,
    },
    /// `[-ROOT\path]`: delete the key and its subtree, if it is there.
    DeleteTree {
        line: u64,
        root: &'static str,
        path: String,
    },
    /// `"name"=DATA` (`@`: the empty name).
    SetValue {
        line: u64,
        name: String,
        value: Value,
    },
    /// `"name"=-`: delete the value, if it is there.
    DeleteValue { line: u64, name: String },
}

/// The store path of key `path` below Windows root `root` (`""`: the root itself).
pub(crate) fn key_path(root: &str, path: &str) -> String {
    if path.is_empty() {
        root.to_string()
    } else {
        format!("{root}\\{path}")
    }
}

impl RegOp {
    pub(crate) fn line(&self) -> u64 {
        match self {
            RegOp::Key { line, .. }
            | RegOp::DeleteTree { line, .. }
            | RegOp::SetValue { line, .. }
            | RegOp::DeleteValue { line, .. } => *line,
        }
    }
}

/// The Windows root names a `.reg` file's keys start with, in any case. regedit reads no
/// other (not `HKLM`).
const ROOTS: [&str; 5] = [
    "HKEY_LOCAL_MACHINE",
    "HKEY_USERS",
    "HKEY_CURRENT_USER",
    "HKEY_CLASSES_ROOT",
    "HKEY_CURRENT_CONFIG",
];

/// Parses `input`, a whole `.reg` file; `source_name` names it in errors.
pub(crate) fn parse(input: &[u8], source_name: &str) -> Result<RegFile> {
    let len = input.len() as u64;
    if len > REG_FILE_MAX_BYTES {
        return Err(Error::RegFileTooLarge {
            file: source_name.to_string(),
            len,
            max: REG_FILE_MAX_BYTES,
        });
    }
    parse_text(input).map_err(|fault| match fault.kind {
        FaultKind::Syntax(reason) => Error::RegSyntax {
            file: source_name.to_string(),
            line: fault.line,
            reason,
        },
        FaultKind::LineTooLong(len) => Error::RegLineTooLong {
            file: source_name.to_string(),
            line: fault.line,
            len,
            max: REG_LINE_MAX_BYTES,
        },
    })
}

fn parse_text(input: &[u8]) -> Result<RegFile, Fault> {
    let (encoding, text) = detect(input)?;
    let mut lines = Lines::new(text, encoding)?;
    let first = lines.next_line()?.unwrap_or_default();
    let header = header(first).ok_or_else(|| {
        fault(
            1,
            format!(
                "the first line must be {:?} or {:?}",
                RegHeader::Version5.text(),
                RegHeader::Regedit4.text()
            ),
        )
    })?;
    let format = RegFormat { header, encoding };
    let body = lines.rest();
    let Some((first, second, lines_in_first)) = split(body, encoding) else {
        return Ok(RegFile {
            format,
            ops: parse_lines(lines, format, body)?,
        });
    };
    // A large file's two halves are parsed at once (parsing is a third of an import); the
    // halves meet at a key line, which owes nothing to what came before it.
    let before_second = lines.number() + lines_in_first;
    let (ops, rest) = std::thread::scope(|scope| {
        let later = scope.spawn(move || {
            parse_lines(
                Lines::after(second, encoding, before_second)?,
                format,
                second,
            )
        });
        let ops = Lines::after(first, encoding, lines.number())
            .and_then(|lines| parse_lines(lines, format, first));
        (ops, later.join())
    });
    let mut ops = ops?;
    let rest = rest.unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    ops.extend(rest);
    Ok(RegFile { format, ops })
}

/// Files whose body is smaller than this are parsed on one thread.
const PARALLEL_PARSE_MIN_BYTES: usize = 4 << 20;

/// `body` cut in two near its middle, where a line starts with `[` after a line that does
/// not continue (does not end in `\`), with the number of line ends in the first part; `None`
/// if it is small or has no such place.
fn split(body: &[u8], encoding: RegEncoding) -> Option<(&[u8], &[u8], u64)> {
    if body.len() < PARALLEL_PARSE_MIN_BYTES {
        return None;
    }
    // The line end, the `[` after it, in the file's bytes; the width of a character.
    let (pattern, unit): (&[u8], usize) = match encoding {
        RegEncoding::Utf16Le => (b"\n\0[\0", 2),
        RegEncoding::Utf8 | RegEncoding::Windows1252 => (b"\n[", 1),
    };
    let mut at = body.len() / 2 / unit * unit;
    while at + pattern.len() <= body.len() {
        let found = body[at..]
            .windows(pattern.len())
            .step_by(unit)
            .position(|window| window == pattern)?;
        let end = at + found * unit;
        let line = &body[..end];
        let continues = {
            let mut last = line.len();
            // Step back over a CR and blanks to the line's last character.
            while last >= unit
                && matches!(body[last - unit], b'\r' | b' ' | b'\t')
                && (unit == 1 || body[last - 1] == 0)
            {
                last -= unit;
            }
            last >= unit && body[last - unit] == b'\\' && (unit == 1 || body[last - 1] == 0)
        };
        if !continues {
            let cut = end + unit;
            let (first, second) = body.split_at(cut);
            let line_ends = first
                .chunks_exact(unit)
                .filter(|c| c[0] == b'\n' && c.iter().skip(1).all(|&b| b == 0))
                .count();
            return Some((first, second, line_ends as u64));
        }
        at = end + unit;
    }
    None
}

/// Parses the lines `lines` yields (of `text`, for the estimate of their changes).
fn parse_lines(mut lines: Lines<'_>, format: RegFormat, text: &[u8]) -> Result<Vec<RegOp>, Fault> {
    let mut parser = Parser {
        format,
        ops: Vec::with_capacity(ops_estimate(text)),
        section: Section::None,
        data: Vec::new(),
        text: String::new(),
    };
    loop {
        // The number the next line gets (read before the line borrows `lines`).
        let number = lines.number() + 1;
        let Some(line) = lines.next_line()? else {
            break;
        };
        match parser.line(line, number)? {
            Step::Done => {}
            Step::Continues(pending) => parser.continuation(&mut lines, pending)?,
        }
    }
    Ok(parser.ops)
}

/// The shortest line that is a change (`@=-` and its line end) in bytes of the file.
const OP_LINE_MIN_BYTES: usize = 4;
/// How many changes the list makes room for before it grows, at most: a large file is
/// mostly lines that are changes, and growing the list by doublings copies it each time
/// (most of an import's time went into faulting in those copies), but room is not made for
/// more than this however many line ends the file holds.
const OPS_RESERVED_MAX: usize = 16 << 20;

/// About how many changes `text` holds: its line ends (a byte count, so a UTF-16 file's
/// too), bounded.
fn ops_estimate(text: &[u8]) -> usize {
    let line_ends = text.iter().filter(|&&b| b == b'\n').count();
    line_ends
        .min(text.len() / OP_LINE_MIN_BYTES)
        .min(OPS_RESERVED_MAX)
}

fn header(line: &str) -> Option<RegHeader> {
    let line = trim_blank(line);
    [RegHeader::Version5, RegHeader::Regedit4]
        .into_iter()
        .find(|header| header.text() == line)
}

/// What the latest key line was: values may follow only a `[KEY]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Key,
    Deleted,
}

struct Parser {
    format: RegFormat,
    ops: Vec<RegOp>,
    section: Section,
    /// The data of the value being read (reused: one allocation per value, its own).
    data: Vec<u8>,
    /// A quoted string being unescaped (reused).
    text: String,
}

/// A hex value whose data goes on over the next line.
struct Pending {
    line: u64,
    name: String,
    ty: ValueType,
}

enum Step {
    Done,
    Continues(Pending),
}

impl Parser {
    fn line(&mut self, line: &str, number: u64) -> Result<Step, Fault> {
        let line = trim_start_blank(line);
        match line.as_bytes().first() {
            None | Some(b';' | b'#') => Ok(Step::Done),
            Some(b'[') => self.key_line(line, number).map(|()| Step::Done),
            Some(b'"' | b'@') => self.value_line(line, number),
            Some(_) => Err(fault(
                number,
                "expected [KEY], [-KEY], \"NAME\"=DATA, @=DATA, a comment or a blank line",
            )),
        }
    }

    fn key_line(&mut self, line: &str, number: u64) -> Result<(), Fault> {
        let inner = trim_end_blank(line)
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or_else(|| fault(number, "a key line must end with ']'"))?;
        let (delete, key) = match inner.strip_prefix('-') {
            Some(key) => (true, key),
            None => (false, inner),
        };
        let (root_name, path) = key.split_once('\\').unwrap_or((key, ""));
        let root = ROOTS
            .iter()
            .find(|root| root.eq_ignore_ascii_case(root_name))
            .ok_or_else(|| {
                fault(
                    number,
                    format!(
                        "unknown root key {root_name:?}: a .reg file's keys start with one of {}",
                        ROOTS.join(", ")
                    ),
                )
            })?;
        let (line, path) = (number, path.to_string());
        if delete {
            self.ops.push(RegOp::DeleteTree { line, root, path });
            self.section = Section::Deleted;
        } else {
            self.ops.push(RegOp::Key { line, root, path });
            self.section = Section::Key;
        }
        Ok(())
    }

    fn value_line(&mut self, line: &str, number: u64) -> Result<Step, Fault> {
        match self.section {
            Section::Key => {}
            Section::None => return Err(fault(number, "a value before any [KEY] line")),
            Section::Deleted => {
                return Err(fault(
                    number,
                    "a value after [-KEY]: values belong to a [KEY] line",
                ));
            }
        }
        let (name, rest) = match line.strip_prefix('@') {
            Some(rest) => (String::new(), rest),
            None => {
                let (name, rest) = quoted(&line[1..], &mut self.text)
                    .map_err(|reason| fault(number, format!("in the value name: {reason}")))?;
                (name.to_string(), rest)
            }
        };
        let data = trim_start_blank(rest)
            .strip_prefix('=')
            .map(trim_start_blank)
            .ok_or_else(|| fault(number, "expected '=' after the value name"))?;
        self.data(name, data, number)
    }

    /// The data after `=`.
    fn data(&mut self, name: String, data: &str, line: u64) -> Result<Step, Fault> {
        if let Some(rest) = data.strip_prefix('-') {
            expect_end(rest, line)?;
            self.ops.push(RegOp::DeleteValue { line, name });
            return Ok(Step::Done);
        }
        if let Some(rest) = data.strip_prefix('"') {
            let (text, rest) = quoted(rest, &mut self.text)
                .map_err(|reason| fault(line, format!("in the string: {reason}")))?;
            expect_end(rest, line)?;
            let value = Value::string(text);
            self.ops.push(RegOp::SetValue { line, name, value });
            return Ok(Step::Done);
        }
        if let Some(rest) = strip_prefix_ignore_case(data, "dword:") {
            let digits = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
            let number = (1..=8)
                .contains(&digits)
                .then(|| u32::from_str_radix(&rest[..digits], 16).ok())
                .flatten()
                .ok_or_else(|| fault(line, "dword: takes 1 to 8 hex digits"))?;
            expect_end(&rest[digits..], line)?;
            let value = Value::dword(number);
            self.ops.push(RegOp::SetValue { line, name, value });
            return Ok(Step::Done);
        }
        let (ty, bytes) = hex_type(data).ok_or_else(|| {
            fault(
                line,
                "unknown data: expected \"TEXT\", dword:, hex:, hex(N): or - (delete)",
            )
        })?;
        self.data.clear();
        let pending = Pending { line, name, ty };
        if hex_bytes(bytes.as_bytes(), &mut self.data, HexState::Open)
            .map_err(|reason| fault(line, reason))?
        {
            return Ok(Step::Continues(pending));
        }
        self.finish_hex(pending)
    }

    /// Reads the lines a hex value continues over (blank lines and comments between them
    /// are skipped, as regedit skips them).
    fn continuation(&mut self, lines: &mut Lines<'_>, pending: Pending) -> Result<(), Fault> {
        loop {
            let Some(line) = lines.next_line()? else {
                return Err(fault(
                    lines.number(),
                    "the file ends in a value continued with '\\'",
                ));
            };
            let line = trim_start_blank(line);
            if matches!(line.as_bytes().first(), None | Some(b';')) {
                continue;
            }
            let continues = hex_bytes(line.as_bytes(), &mut self.data, HexState::AfterComma)
                .map_err(|reason| fault(lines.number(), reason))?;
            if !continues {
                return self.finish_hex(pending).map(|_| ());
            }
        }
    }

    fn finish_hex(&mut self, pending: Pending) -> Result<Step, Fault> {
        let Pending { line, name, ty } = pending;
        let eight_bit = self.format.header == RegHeader::Regedit4
            && (ty == ValueType::EXPAND_SZ || ty == ValueType::MULTI_SZ);
        let data = if eight_bit {
            widen(&self.data)
        } else {
            self.data.as_slice().to_vec()
        };
        let value = Value::new(ty, data);
        self.ops.push(RegOp::SetValue { line, name, value });
        Ok(Step::Done)
    }
}

/// `hex:` or `hex(N):` at the start of `data`: the type and what follows.
fn hex_type(data: &str) -> Option<(ValueType, &str)> {
    if let Some(rest) = strip_prefix_ignore_case(data, "hex:") {
        return Some((ValueType::BINARY, rest));
    }
    let rest = strip_prefix_ignore_case(data, "hex(")?;
    let (number, rest) = rest.split_once("):")?;
    let valid = (1..=8).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_hexdigit());
    let ty = u32::from_str_radix(number, 16).ok().filter(|_| valid)?;
    Some((ValueType(ty), rest))
}

/// Where a run of hex bytes is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HexState {
    /// Right after `hex:`: a byte, `\`, or the end (no data) may come.
    Open,
    /// After `,` (or at the start of a continuation line): a byte or `\`.
    AfterComma,
    /// After a byte: `,`, or the end.
    AfterByte,
}

/// Each byte's value as a hex digit, or `INVALID`: a lookup instead of a branch per range,
/// since hex data is most of a large file.
const HEX_DIGIT: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};
const INVALID: u8 = 0xff;

/// Appends the comma-separated bytes of `s` to `out`, starting in `state`; returns whether
/// the data goes on over the next line (the line ends in `\`).
fn hex_bytes(s: &[u8], out: &mut Vec<u8>, mut state: HexState) -> Result<bool, &'static str> {
    out.reserve(s.len() / 3 + 1);
    let mut i = 0;
    loop {
        // The shape regedit writes, `xx,` after `xx,`, without the general checks.
        while state != HexState::AfterByte
            && let Some(&[hi, lo, b',']) = s.get(i..i + 3)
            && let (hi, lo) = (HEX_DIGIT[usize::from(hi)], HEX_DIGIT[usize::from(lo)])
            && hi | lo != INVALID
        {
            out.push(hi << 4 | lo);
            i += 3;
            state = HexState::AfterComma;
        }
        while matches!(s.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        match (state, s.get(i)) {
            (HexState::Open | HexState::AfterByte, None | Some(b';')) => return Ok(false),
            (HexState::AfterComma, None) => {
                return Err("the line ends in ','; continue the data with ',\\'");
            }
            (HexState::Open | HexState::AfterComma, Some(b'\\')) => {
                return match trim_blank_bytes(&s[i + 1..]) {
                    [] => Ok(true),
                    _ => Err("'\\' continues data only at the end of the line"),
                };
            }
            (HexState::AfterByte, Some(b',')) => {
                i += 1;
                state = HexState::AfterComma;
            }
            (HexState::AfterByte, Some(_)) => return Err("expected ',' after a byte"),
            (HexState::Open | HexState::AfterComma, Some(_)) => {
                let byte = match s.get(i..i + 2) {
                    Some(&[hi, lo]) => {
                        let (hi, lo) = (HEX_DIGIT[usize::from(hi)], HEX_DIGIT[usize::from(lo)]);
                        (hi | lo != INVALID).then_some(hi << 4 | lo)
                    }
                    _ => None,
                };
                out.push(byte.ok_or("expected a byte of two hex digits")?);
                i += 2;
                state = HexState::AfterByte;
            }
        }
    }
}

/// Unescapes the quoted text that `s` starts with (after its opening quote) into `out`;
/// returns it and what follows the closing quote. `\\` and `\"` are the only escapes.
fn quoted<'a, 'b>(s: &'a str, out: &'b mut String) -> Result<(&'b str, &'a str), String> {
    out.clear();
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        // Both are ASCII, so every index found is a character boundary.
        let found = bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .map(|at| start + at);
        let Some(at) = found else {
            return Err("no closing '\"'".to_string());
        };
        out.push_str(&s[start..at]);
        if bytes[at] == b'"' {
            return Ok((out.as_str(), &s[at + 1..]));
        }
        match bytes.get(at + 1) {
            Some(&c @ (b'\\' | b'"')) => out.push(char::from(c)),
            _ => {
                let escape: String = s[at..].chars().take(2).collect();
                return Err(format!(
                    "unknown escape {escape:?} (only \\\\ and \\\" are escapes)"
                ));
            }
        }
        start = at + 2;
    }
}

/// Fails unless only blanks or a `;` comment follow the data.
fn expect_end(rest: &str, line: u64) -> Result<(), Fault> {
    match trim_start_blank(rest).as_bytes().first() {
        None | Some(b';') => Ok(()),
        Some(_) => Err(fault(line, "unexpected text after the data")),
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn trim_start_blank(s: &str) -> &str {
    s.trim_start_matches(is_blank)
}

fn trim_end_blank(s: &str) -> &str {
    s.trim_end_matches(is_blank)
}

fn trim_blank(s: &str) -> &str {
    s.trim_matches(is_blank)
}

fn trim_blank_bytes(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    start.map_or(&[], |start| {
        let end = s.iter().rposition(|&b| b != b' ' && b != b'\t');
        &s[start..=end.unwrap_or(start)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `keys` sections with values (hex ones continued over lines, so a
    /// continuation sits wherever the middle falls), in `encoding`.
    fn big_file(keys: usize, encoding: RegEncoding, bad_line_at: Option<usize>) -> Vec<u8> {
        let mut text = String::from("Windows Registry Editor Version 5.00\r\n");
        for k in 0..keys {
            text.push_str(&format!("\r\n[HKEY_LOCAL_MACHINE\\Software\\K{k}]\r\n"));
            text.push_str(&format!(
                "\"S\"=\"value {k} \u{e9}\"\r\n\"D\"=dword:{k:08x}\r\n"
            ));
            text.push_str(
                "\"H\"=hex:00,01,02,03,04,05,06,07,08,09,0a,0b,0c,0d,0e,0f,10,11,12,13,14,\\\r\n",
            );
            text.push_str("  15,16,17,18,19,1a,1b,1c,1d,1e,1f,\\\r\n  20,21\r\n");
            if bad_line_at == Some(k) {
                text.push_str("garbage\r\n");
            }
        }
        match encoding {
            RegEncoding::Utf16Le => {
                let mut out = vec![0xff, 0xfe];
                for unit in text.encode_utf16() {
                    out.extend_from_slice(&unit.to_le_bytes());
                }
                out
            }
            _ => text.into_bytes(),
        }
    }

    /// The file parsed on one thread.
    fn sequential(input: &[u8]) -> std::result::Result<Vec<RegOp>, u64> {
        let (encoding, text) = detect(input).map_err(|f| f.line)?;
        let mut lines = Lines::new(text, encoding).map_err(|f| f.line)?;
        let header = header(lines.next_line().map_err(|f| f.line)?.unwrap_or_default()).unwrap();
        let format = RegFormat { header, encoding };
        let body = lines.rest();
        parse_lines(lines, format, body).map_err(|f| f.line)
    }

    #[test]
    fn a_large_file_parsed_in_two_halves_is_the_file_parsed_whole() {
        for encoding in [RegEncoding::Utf16Le, RegEncoding::Utf8] {
            let input = big_file(60_000, encoding, None);
            assert!(input.len() > 2 * PARALLEL_PARSE_MIN_BYTES);
            let (_, text) = detect(&input).unwrap();
            let mut lines = Lines::new(text, encoding).unwrap();
            lines.next_line().unwrap();
            assert!(split(lines.rest(), encoding).is_some(), "the file is split");
            let parsed = parse(&input, "big.reg").unwrap();
            assert_eq!(parsed.ops.len(), 60_000 * 4);
            assert_eq!(Ok(parsed.ops), sequential(&input), "{encoding:?}");
            // A bad line in either half is named by its line in the whole file.
            for bad in [100, 45_000] {
                let input = big_file(60_000, encoding, Some(bad));
                let expected = sequential(&input).unwrap_err();
                match parse(&input, "big.reg") {
                    Err(Error::RegSyntax { line, .. }) => assert_eq!(line, expected),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    fn bytes(s: &str, state: HexState) -> Result<(Vec<u8>, bool), &'static str> {
        let mut out = Vec::new();
        let continues = hex_bytes(s.as_bytes(), &mut out, state)?;
        Ok((out, continues))
    }

    #[test]
    fn hex_bytes_take_regedit_shape_and_blanks() {
        assert_eq!(bytes("", HexState::Open), Ok((vec![], false)));
        assert_eq!(
            bytes("00,ff,Aa", HexState::Open),
            Ok((vec![0, 255, 170], false))
        );
        assert_eq!(
            bytes(" 01 , 02 ;x", HexState::Open),
            Ok((vec![1, 2], false))
        );
        assert_eq!(bytes("01,02,\\", HexState::Open), Ok((vec![1, 2], true)));
        assert_eq!(bytes("\\  ", HexState::Open), Ok((vec![], true)));
        assert_eq!(bytes("03", HexState::AfterComma), Ok((vec![3], false)));
        assert!(bytes("01,", HexState::Open).is_err());
        assert!(bytes("01,02\\", HexState::Open).is_err());
        assert!(bytes("1,2", HexState::Open).is_err());
        assert!(bytes("0g", HexState::Open).is_err());
        assert!(bytes("01,\\ x", HexState::Open).is_err());
        assert!(bytes("", HexState::AfterComma).is_err());
    }

    #[test]
    fn quoted_text_unescapes_two_escapes_only() {
        let mut out = String::new();
        assert_eq!(
            quoted(r#"a\\b\"c" ;"#, &mut out).unwrap(),
            ("a\\b\"c", " ;")
        );
        assert_eq!(quoted("\u{e9}\"", &mut out).unwrap(), ("\u{e9}", ""));
        assert!(quoted("abc", &mut out).is_err());
        assert!(quoted(r#"a\n""#, &mut out).unwrap_err().contains("\\n"));
    }

    #[test]
    fn hex_types_take_one_to_eight_digits() {
        assert_eq!(hex_type("hex:01").map(|(t, r)| (t.0, r)), Some((3, "01")));
        assert_eq!(hex_type("HEX(b):").map(|(t, r)| (t.0, r)), Some((11, "")));
        assert_eq!(hex_type("hex(ffffffff):").map(|(t, _)| t.0), Some(u32::MAX));
        assert!(hex_type("hex(100000000):").is_none());
        assert!(hex_type("hex():").is_none());
        assert!(hex_type("hex(+1):").is_none());
    }
}
