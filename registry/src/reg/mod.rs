//! `.reg` files, as regedit and `reg.exe` read and write them.
//!
//! # What an import reads
//!
//! - The text: UTF-16LE with a byte order mark (what regedit writes), UTF-8 with or without
//!   one, or, for a file headed `REGEDIT4` without a mark, the 8-bit code page Windows-1252;
//!   lines end in CRLF or LF.
//! - The first line is the header, `Windows Registry Editor Version 5.00` or `REGEDIT4`
//!   (spaces or tabs around it are allowed, nothing else).
//! - Then, one to a line: `[KEY]` (create the key and its missing parents, and make it the
//!   key the values below it belong to), `[-KEY]` (delete the key and its subtree; a missing
//!   key is not an error, as with regedit), `"name"=DATA` or `@=DATA` (`@`, like `""`, is the
//!   default value), `"name"=-` (delete the value; a missing value is not an error), blank
//!   lines, and comments: a line starting with `;` or `#`, or `;` after a value's data.
//! - KEY starts with a Windows root: `HKEY_LOCAL_MACHINE`, `HKEY_USERS`,
//!   `HKEY_CURRENT_USER` (the caller's key under `Users`), `HKEY_CLASSES_ROOT` (the merged
//!   view) or `HKEY_CURRENT_CONFIG`, in any case; it ends at the last `]` of the line.
//! - DATA is `"text"` (REG_SZ; `\\` and `\"` are its only escapes), `dword:` and 1 to 8 hex
//!   digits (REG_DWORD), `hex:` (REG_BINARY) or `hex(N):` (type N, 1 to 8 hex digits) and
//!   comma-separated bytes of two hex digits, continued on the next line after `,\` (blank
//!   lines and `;` comments may come between). In a `REGEDIT4` file, `hex(2):` and
//!   `hex(7):` data (REG_EXPAND_SZ, REG_MULTI_SZ) is Windows-1252 text, whatever the file's
//!   own encoding (regedit converts it with the ANSI code page), and is widened to
//!   UTF-16LE, with a terminator added if it has none, as regedit does; every other kind of
//!   data is taken byte for byte.
//! - A value line belongs to the `[KEY]` above it: one before any key line, or after a
//!   `[-KEY]`, is an error (regedit ignores it).
//!
//! Where regedit skips a malformed line and goes on, an import refuses the whole file with an
//! error naming the file, the line and what is wrong ([`Error::RegSyntax`]); a change the
//! store refuses (a name too long, access denied) names its line too ([`Error::RegImport`]).
//! The whole file is parsed before anything is applied, and it is applied as one
//! transaction: all of it or nothing.
//!
//! # What an export writes
//!
//! What regedit writes: the header, then each key depth-first in Windows' (case-insensitive)
//! order as a blank line, `[KEY]` with its Windows root name, and its values in the same
//! order (the default value, `@`, first); the file ends with one more line end. Values are
//! written as `"text"`, `dword:` with 8 lowercase digits, or `hex:`/`hex(N):` with lowercase
//! bytes wrapped as regedit wraps them (see `write.rs`). Every value keeps its bytes: a
//! REG_SZ that a quoted string cannot carry exactly (no terminator, an embedded NUL, odd
//! length, unpaired surrogates, a line break) is written as `hex(1):`, where regedit would
//! cut it at its first NUL. Only the effective value of each name is written (layers are not
//! part of a `.reg` file), and every key is read through the caller's access checks, at one
//! snapshot. Links are followed, as regedit follows them (a link to a missing key is left
//! out); a link back to a key being written is an error rather than an endless file, and so
//! is a key or value name holding a line break, which no reader could tell from the next
//! line ([`Error::RegUnwritable`](crate::Error::RegUnwritable)).

mod export;
mod import;
mod parse;
mod text;
mod write;

use std::io::Write;

use hivelog_log::Seq;

use crate::error::{Error, Result};
use crate::store::Store;

pub(crate) use parse::{RegFile, RegOp, key_path, parse};
pub use text::RegEncoding;
pub(crate) use write::RegWriter;

/// The largest `.reg` file an import reads.
pub const REG_FILE_MAX_BYTES: u64 = 1 << 30;

/// The longest line of a `.reg` file, in bytes of the file. Long data is continued over
/// lines; an export writes a string longer than a quarter of this as `hex(1):`.
pub const REG_LINE_MAX_BYTES: usize = 32 << 20;

/// The header line of a `.reg` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegHeader {
    /// `Windows Registry Editor Version 5.00`: strings are Unicode.
    Version5,
    /// `REGEDIT4`: strings, and REG_EXPAND_SZ and REG_MULTI_SZ data, are 8-bit text.
    Regedit4,
}

impl RegHeader {
    /// The line itself.
    pub fn text(self) -> &'static str {
        match self {
            RegHeader::Version5 => "Windows Registry Editor Version 5.00",
            RegHeader::Regedit4 => "REGEDIT4",
        }
    }
}

/// How a `.reg` file is written: its header and its text encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegFormat {
    /// The header.
    pub header: RegHeader,
    /// The text encoding.
    pub encoding: RegEncoding,
}

impl RegFormat {
    /// What regedit writes by default: version 5.00 in UTF-16LE with a byte order mark.
    pub const UNICODE: RegFormat = RegFormat {
        header: RegHeader::Version5,
        encoding: RegEncoding::Utf16Le,
    };
    /// Version 5.00 in UTF-8 without a byte order mark, for other readers.
    pub const UTF8: RegFormat = RegFormat {
        header: RegHeader::Version5,
        encoding: RegEncoding::Utf8,
    };
    /// regedit's "Win9x/NT4" format: `REGEDIT4` in Windows-1252.
    pub const REGEDIT4: RegFormat = RegFormat {
        header: RegHeader::Regedit4,
        encoding: RegEncoding::Windows1252,
    };
}

impl Default for RegFormat {
    fn default() -> RegFormat {
        RegFormat::UNICODE
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The file's header and encoding, as read.
    pub format: RegFormat,
    /// `[KEY]` sections: each key created with its missing parents, or kept if it existed.
    pub keys: u64,
    /// Values set.
    pub values_set: u64,
    /// `"name"=-` lines (a value that was not there counts too).
    pub values_deleted: u64,
    /// `[-KEY]` sections (a key that was not there counts too).
    pub trees_deleted: u64,
    /// The transaction's sequence number (the last committed one if the file changed
    /// nothing).
    pub seq: Seq,
}

impl ImportReport {
    /// Nothing done yet, to a file in `format`.
    pub(crate) fn new(format: RegFormat) -> ImportReport {
        ImportReport {
            format,
            keys: 0,
            values_set: 0,
            values_deleted: 0,
            trees_deleted: 0,
            seq: 0,
        }
    }

    /// Counts `op` among what the import did (an import that fails reports nothing).
    pub(crate) fn count(&mut self, op: &RegOp) {
        let counter = match op {
            RegOp::Key { .. } => &mut self.keys,
            RegOp::DeleteTree { .. } => &mut self.trees_deleted,
            RegOp::SetValue { .. } => &mut self.values_set,
            RegOp::DeleteValue { .. } => &mut self.values_deleted,
        };
        *counter += 1;
    }
}

/// The error for a change at `line` of `file` that was refused for `source`.
pub(crate) fn refused(file: &str, line: u64, source: Error) -> Error {
    Error::RegImport {
        file: file.to_string(),
        line,
        source: Box::new(source),
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportReport {
    /// Keys written.
    pub keys: u64,
    /// Values written.
    pub values: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Names and values the format could not carry exactly, written as regedit writes them
    /// (characters outside Windows-1252 as `?`, REGEDIT4's 8-bit REG_EXPAND_SZ and
    /// REG_MULTI_SZ data cut to what converts). Always 0 in UTF-16LE and UTF-8.
    pub lossy: u64,
}

impl Store {
    /// Imports a `.reg` file held in `input`, as one transaction: every change in it, or none
    /// (see the [module documentation](self) for what it reads). `source_name` names the
    /// file in errors. Fails with [`Error::RegSyntax`] (naming the line) if any line is
    /// malformed, before anything is applied, and with [`Error::RegImport`] (naming the line)
    /// if the store refuses a change; either way the store is unchanged.
    ///
    /// [`Error::RegSyntax`]: crate::Error::RegSyntax
    /// [`Error::RegImport`]: crate::Error::RegImport
    pub fn import_reg(&self, input: &[u8], source_name: &str) -> Result<ImportReport> {
        import::import(self, input, source_name)
    }

    /// Writes the key at `path` and its subtree to `out` as a `.reg` file in `format`, as
    /// regedit exports it (see the [module documentation](self)): the effective values, read
    /// at one snapshot with the caller's access checks. Streams key by key; buffers its
    /// output itself, so `out` needs no buffer.
    pub fn export_reg(
        &self,
        path: &str,
        format: RegFormat,
        out: impl Write,
    ) -> Result<ExportReport> {
        export::export(self, path, format, out)
    }
}
