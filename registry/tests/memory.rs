//! The in-memory store and its persistence hooks: the API works with nothing on disk; a
//! flush saves the whole registry and a boot from it has everything back; every damaged or
//! truncated image is refused at boot; a sink that fails midway leaves the previous image
//! and the store's memory as they were, and the next flush starts from scratch.

// Test code: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{self, Read, Write};

use hivelog::{
    Access, Error, FileImage, Options, Persistence, Store, Value, VecImage, WatchFilter, sddl,
};
use tempfile::TempDir;

mod common;
use common::dump_hives;

const APP: &str = r"HKLM\Software\App";

/// Everything the store holds under both hives, as lines: keys with their descriptor and
/// class, every layer's version of every value.
fn dump(store: &Store) -> Vec<String> {
    let mut out = dump_hives(|hive| store.open_key_with(hive, Access::KEY_READ));
    let layers: Vec<String> = store
        .layers()
        .into_iter()
        .map(|l| format!("{}={}", l.name, l.precedence))
        .collect();
    out.push(format!("layers {layers:?}"));
    out
}

fn fill(store: &Store) {
    store.create_layer("corp", 50).unwrap();
    let mut tx = store.transaction();
    tx.create_key(&format!(r"{APP}\Sub")).unwrap();
    tx.set_value(APP, "Version", &Value::string("2.1")).unwrap();
    tx.set_value_in("corp", APP, "Version", &Value::string("3.0"))
        .unwrap();
    tx.set_value(
        &format!(r"{APP}\Sub"),
        "Blob",
        &Value::binary(vec![7; 3000]),
    )
    .unwrap();
    tx.commit().unwrap();
    store
        .set_security(
            APP,
            &sddl::parse("D:P(A;CI;KA;;;SY)(A;CI;KR;;;alice)").unwrap(),
        )
        .unwrap();
}

#[test]
fn an_in_memory_store_works_and_writes_nothing() {
    let cwd = TempDir::new().unwrap();
    std::env::set_current_dir(cwd.path()).unwrap();
    let store = Store::in_memory(Options::default()).unwrap();
    fill(&store);
    let before = store.seq();
    let watch = store
        .open_key(APP)
        .unwrap()
        .watch(true, WatchFilter::VALUES)
        .unwrap();
    let mut tx = store.transaction();
    tx.set_value(APP, "Live", &Value::dword(1)).unwrap();
    let seq = tx.commit().unwrap();
    let event = watch
        .recv_timeout(std::time::Duration::from_secs(20))
        .unwrap();
    assert_eq!(event.seq, seq);
    let past = store.snapshot_at(before).unwrap();
    assert!(
        past.open_key(APP).unwrap().get_raw_value("Live").is_err(),
        "snapshots read the past"
    );
    assert_eq!(
        store
            .open_key(APP)
            .unwrap()
            .get_raw_value("version")
            .unwrap(),
        Value::string("3.0")
    );
    // A restore into it keeps the stream in memory.
    let mut backup = Vec::new();
    store.backup(APP, store.seq(), &mut backup).unwrap();
    store.restore(r"HKLM\Software\Copy", &backup[..]).unwrap();
    assert!(matches!(store.flush(), Err(Error::NoPersistence)));
    assert!(matches!(
        store.stage_restore("x"),
        Err(Error::NotOnDisk { .. })
    ));
    store.close().unwrap();
    assert!(!std::path::Path::new("/in-memory").exists());
    assert_eq!(
        std::fs::read_dir(cwd.path()).unwrap().count(),
        0,
        "nothing written here"
    );
}

#[test]
fn a_flushed_image_boots_the_same_registry() {
    let image = VecImage::new();
    let store = Store::in_memory_with(image.clone(), Options::default()).unwrap();
    assert!(
        store
            .open_key("HKLM")
            .unwrap()
            .enum_keys()
            .unwrap()
            .is_empty(),
        "a first boot is fresh"
    );
    fill(&store);
    let report = store.flush().unwrap();
    let saved = image.image().unwrap();
    assert_eq!(report.bytes, saved.len() as u64);
    assert_eq!(report.seq, store.seq());
    let expected = dump(&store);
    drop(store);

    let rebooted = Store::in_memory_with(image.clone(), Options::default()).unwrap();
    assert_eq!(dump(&rebooted), expected);
    // It goes on: change, flush, boot again.
    rebooted.create_key(r"HKLM\Software\After").unwrap();
    rebooted.flush().unwrap();
    let expected = dump(&rebooted);
    drop(rebooted);
    let again = Store::in_memory_with(image, Options::default()).unwrap();
    assert_eq!(dump(&again), expected);
}

#[test]
fn every_damaged_or_truncated_image_is_refused_at_boot() {
    let image = VecImage::new();
    let store = Store::in_memory_with(image.clone(), Options::default()).unwrap();
    store.create_key(r"HKLM\Software\Small").unwrap();
    store.flush().unwrap();
    let good = image.image().unwrap();
    assert!(good.len() < 2048, "a small image: {}", good.len());
    let small = || Options {
        segment_size_bytes: hivelog::SEGMENT_SIZE_MIN_BYTES,
        value_size_max_bytes: 16 * 1024,
        ..Options::default()
    };
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x20;
        let error = Store::in_memory_with(VecImage::with(bad), small()).unwrap_err();
        assert!(
            matches!(error, Error::BadBackup { .. } | Error::Log(_)),
            "byte {i}: {error:?}"
        );
    }
    for cut in 0..good.len() {
        let error =
            Store::in_memory_with(VecImage::with(good[..cut].to_vec()), small()).unwrap_err();
        assert!(
            matches!(error, Error::BadBackup { .. } | Error::Log(_)),
            "cut at {cut}: {error:?}"
        );
    }
    Store::in_memory_with(VecImage::with(good), small()).unwrap();
}

/// A hook whose writer fails after `left` bytes, and that keeps what it saved last.
struct Flaky {
    left: usize,
    saved: Option<Vec<u8>>,
}

struct FailAfter<'a> {
    left: &'a mut usize,
    out: Vec<u8>,
}

impl Write for FailAfter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if *self.left == 0 {
            return Err(io::Error::other("the flash is full"));
        }
        let n = buf.len().min(*self.left);
        *self.left -= n;
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Persistence for Flaky {
    fn load(&mut self) -> io::Result<Option<Box<dyn Read + '_>>> {
        Ok(self
            .saved
            .as_deref()
            .map(|s| Box::new(s) as Box<dyn Read + '_>))
    }

    fn save(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let mut out = FailAfter {
            left: &mut self.left,
            out: Vec::new(),
        };
        write(&mut out)?;
        self.saved = Some(out.out);
        Ok(())
    }
}

#[test]
fn a_sink_that_fails_midway_leaves_the_image_and_the_store_as_they_were() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("registry.img");
    let store = Store::in_memory_with(FileImage::new(&file), Options::default()).unwrap();
    fill(&store);
    store.flush().unwrap();
    let good = std::fs::read(&file).unwrap();
    let expected = dump(&store);

    // A failure inside the save: the file is the old image, no temporary file stays.
    let flaky = Store::in_memory_with(
        Flaky {
            left: 100,
            saved: None,
        },
        Options::default(),
    )
    .unwrap();
    fill(&flaky);
    let before = dump(&flaky);
    let error = flaky.flush().unwrap_err();
    assert!(error.to_string().contains("flash is full"), "{error}");
    assert_eq!(dump(&flaky), before, "the store's memory is intact");
    flaky.create_key(r"HKLM\Software\StillWorking").unwrap();

    // FileImage: a save into a directory that is gone fails, and the old file stays.
    std::fs::write(dir.path().join("keep"), b"x").unwrap();
    let missing = Store::in_memory_with(
        FileImage::new(dir.path().join("gone").join("registry.img")),
        Options::default(),
    )
    .unwrap();
    assert!(matches!(missing.flush(), Err(Error::Io { .. })));
    assert_eq!(std::fs::read(&file).unwrap(), good);
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["keep", "registry.img"]);

    // The file image boots what was saved.
    drop(store);
    let rebooted = Store::in_memory_with(FileImage::new(&file), Options::default()).unwrap();
    assert_eq!(dump(&rebooted), expected);
}

/// Waits until `image` holds a registry in which `path` exists, or PATIENCE passes.
fn saved_with(image: &VecImage, path: &str) -> bool {
    let waited = std::time::Instant::now();
    while waited.elapsed() < std::time::Duration::from_secs(20) {
        if let Some(bytes) = image.image() {
            let booted = Store::in_memory_with(VecImage::with(bytes), Options::default()).unwrap();
            if booted.open_key(path).is_ok() {
                return true;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn a_policy_flushes_by_itself_after_commits_or_time() {
    let image = VecImage::new();
    let options = Options {
        flush_every_commits: 3,
        ..Options::default()
    };
    let store = Store::in_memory_with(image.clone(), options).unwrap();
    store.create_key(r"HKLM\Software\One").unwrap();
    store.create_key(r"HKLM\Software\Two").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(image.image(), None, "two commits: not yet");
    store.create_key(r"HKLM\Software\Three").unwrap();
    assert!(
        saved_with(&image, r"HKLM\Software\Three"),
        "the third commit is flushed"
    );

    // The interval, set live through the parameters: a change alone is flushed soon after.
    store.create_key(hivelog::PARAMETERS_KEY).unwrap();
    let mut tx = store.transaction();
    tx.set_value(
        hivelog::PARAMETERS_KEY,
        "FlushIntervalMs",
        &Value::dword(50),
    )
    .unwrap();
    tx.set_value(
        hivelog::PARAMETERS_KEY,
        "FlushEveryCommits",
        &Value::dword(0),
    )
    .unwrap();
    tx.commit().unwrap();
    store.create_key(r"HKLM\Software\Later").unwrap();
    assert!(
        saved_with(&image, r"HKLM\Software\Later"),
        "flushed by the interval"
    );
    assert_eq!(store.last_flush_failure(), None);
}
