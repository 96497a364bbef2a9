//! Progress bars of long operations, on stderr. indicatif draws nothing when stderr is not a
//! terminal, so piped and scripted runs stay quiet.

use std::io::{self, Read, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

const TICK: Duration = Duration::from_millis(120);

fn styled(bar: ProgressBar, template: &str, label: &'static str) -> ProgressBar {
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label);
    bar
}

/// Bytes moved: a bar if the total is known, else a counter with the rate.
pub(crate) fn bytes(total: Option<u64>, label: &'static str) -> ProgressBar {
    match total {
        Some(total) => styled(
            ProgressBar::new(total),
            "{msg:12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            label,
        ),
        None => styled(
            ProgressBar::no_length(),
            "{spinner} {msg:12} {bytes} {bytes_per_sec}",
            label,
        ),
    }
}

/// Work with no measure of its own: a spinner that ticks while it lasts.
fn spinner(label: &'static str) -> ProgressBar {
    let bar = styled(
        ProgressBar::new_spinner(),
        "{spinner} {msg} {elapsed}",
        label,
    );
    bar.enable_steady_tick(TICK);
    bar
}

/// A writer that advances `bar` by what it writes.
pub(crate) struct CountingWriter<W> {
    pub inner: W,
    pub bar: ProgressBar,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.bar.inc(written as u64);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that advances `bar` by what it reads.
pub(crate) struct CountingReader<R> {
    pub inner: R,
    pub bar: ProgressBar,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.bar.inc(read as u64);
        Ok(read)
    }
}

/// Runs `work` with a spinner labelled `label` on stderr.
pub(crate) fn while_spinning<T>(label: &'static str, work: impl FnOnce() -> T) -> T {
    let bar = spinner(label);
    let result = work();
    bar.finish_and_clear();
    result
}
