//! `hivelog import FILE` and `hivelog export KEY FILE`: `.reg` files, as regedit reads and
//! writes them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use hivelog::{ExportReport, ImportReport, REG_FILE_MAX_BYTES, RegEncoding, RegFormat, RegHeader};

use crate::store_dir::{Ctx, Failure, check_path, fail, open_read, open_write};

/// `-` in place of a file: stdin for an import, stdout for an export.
const STDIO: &str = "-";

#[derive(Args)]
pub(crate) struct ImportArgs {
    /// The `.reg` file (regedit's UTF-16LE, or UTF-8; version 5.00 or REGEDIT4); `-` for stdin
    pub file: String,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The key whose subtree is exported, e.g. HKLM\Software\Contoso
    pub key: String,
    /// Where the `.reg` file goes; `-` for stdout
    pub file: String,
    /// The text encoding [default: utf16le, as regedit writes; utf8 is without a byte order
    /// mark; with --regedit4, windows-1252]
    #[arg(long, value_enum)]
    pub encoding: Option<Encoding>,
    /// Write regedit's "Win9x/NT4" format, headed REGEDIT4 (8-bit strings)
    #[arg(long)]
    pub regedit4: bool,
    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Encoding {
    Utf16le,
    Utf8,
    #[value(name = "windows-1252")]
    Windows1252,
}

/// `hivelog import FILE`: the whole file as one transaction, or nothing.
pub(crate) fn import(ctx: &Ctx, args: &ImportArgs) -> Result<(), Failure> {
    let input = read_input(&args.file)?;
    let store = open_write(ctx)?;
    let report = store.import_reg(&input, &args.file)?;
    print_import(&args.file, &report, Some(report.seq));
    Ok(store.close()?)
}

/// What an import did, on one line (`seq`: the transaction, for a store).
pub(crate) fn print_import(file: &str, report: &ImportReport, seq: Option<u64>) {
    let mut line = format!(
        "imported {file}: {} keys, {} values set, {} values deleted, {} trees deleted",
        report.keys, report.values_set, report.values_deleted, report.trees_deleted,
    );
    if let Some(seq) = seq {
        line.push_str(&format!(" (sequence number {seq})"));
    }
    println!("{line}");
}

/// The file, or stdin, whole; more than REG_FILE_MAX_BYTES is refused by the import, so no
/// more than one byte past it is read.
pub(crate) fn read_input(file: &str) -> Result<Vec<u8>, Failure> {
    let limit = REG_FILE_MAX_BYTES + 1;
    let mut input = Vec::new();
    let read = if file == STDIO {
        io::stdin().lock().take(limit).read_to_end(&mut input)
    } else {
        File::open(file).and_then(|f| {
            // Sized up front: growing by doublings copies a large file several times.
            let len = f.metadata()?.len().min(limit);
            input.reserve_exact(usize::try_from(len).unwrap_or(0));
            f.take(limit).read_to_end(&mut input)
        })
    };
    read.map_err(|e| fail(format!("reading {file}: {e}")))?;
    Ok(input)
}

/// `hivelog export KEY FILE`: the subtree at one snapshot, as regedit exports it.
pub(crate) fn export(ctx: &Ctx, args: &ExportArgs) -> Result<(), Failure> {
    check_path(ctx, &args.key)?;
    check_target(args)?;
    let store = open_read(ctx)?;
    write_export(args, &mut |format, out| {
        store.export_reg(&args.key, format, out)
    })?;
    Ok(store.close()?)
}

/// Refuses to replace an existing file without `--force`, before anything is opened.
pub(crate) fn check_target(args: &ExportArgs) -> Result<(), Failure> {
    let target = Path::new(&args.file);
    if args.file != STDIO && !args.force && target.exists() {
        return Err(fail(format!(
            "{} exists; pass --force to replace it",
            target.display()
        )));
    }
    Ok(())
}

/// Writes what `export` writes (in the format `args` asks for) to the file or stdout
/// `args` names, and says what it wrote.
pub(crate) fn write_export(
    args: &ExportArgs,
    export: &mut dyn FnMut(RegFormat, &mut dyn Write) -> hivelog::Result<ExportReport>,
) -> Result<(), Failure> {
    let format = format(args);
    let to_stdout = args.file == STDIO;
    let target = PathBuf::from(&args.file);
    let report = if to_stdout {
        export(format, &mut io::stdout().lock())?
    } else {
        to_file(&target, &mut |out| export(format, out))?
    };
    let mut line = format!(
        "exported {}: {} keys, {} values, {} bytes",
        if args.key.is_empty() { "\\" } else { &args.key },
        report.keys,
        report.values,
        report.bytes
    );
    if report.lossy > 0 {
        line.push_str(&format!(
            " ({} names or values not exact in {}: characters it lacks written as '?')",
            report.lossy,
            encoding_name(format.encoding)
        ));
    }
    // With the file on stdout, the summary goes to stderr.
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line} to {}", target.display());
    }
    Ok(())
}

fn format(args: &ExportArgs) -> RegFormat {
    let (header, default) = if args.regedit4 {
        (RegHeader::Regedit4, RegFormat::REGEDIT4.encoding)
    } else {
        (RegHeader::Version5, RegFormat::UNICODE.encoding)
    };
    let encoding = match args.encoding {
        None => default,
        Some(Encoding::Utf16le) => RegEncoding::Utf16Le,
        Some(Encoding::Utf8) => RegEncoding::Utf8,
        Some(Encoding::Windows1252) => RegEncoding::Windows1252,
    };
    RegFormat { header, encoding }
}

fn encoding_name(encoding: RegEncoding) -> &'static str {
    match encoding {
        RegEncoding::Utf16Le => "UTF-16LE",
        RegEncoding::Utf8 => "UTF-8",
        RegEncoding::Windows1252 => "Windows-1252",
    }
}

/// Writes the export beside `target` and renames it into place once complete: a failed
/// export leaves no partial file, and a file it replaces stays whole until then.
fn to_file(
    target: &Path,
    export: &mut dyn FnMut(&mut dyn Write) -> hivelog::Result<ExportReport>,
) -> Result<ExportReport, Failure> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let in_dir = |e: io::Error| fail(format!("writing the export in {}: {e}", dir.display()));
    // The file gets what creating it would give (0666 less the umask), not a temporary
    // file's 0600; one it replaces keeps its own.
    let permissions = std::fs::metadata(target)
        .map(|meta| meta.permissions())
        .unwrap_or_else(|_| std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut spool = tempfile::Builder::new()
        .permissions(permissions)
        .tempfile_in(dir)
        .map_err(in_dir)?;
    let report = export(spool.as_file_mut())?;
    spool.as_file().sync_all().map_err(in_dir)?;
    spool
        .persist(target)
        .map_err(|e| fail(format!("writing {}: {}", target.display(), e.error)))?;
    Ok(report)
}
