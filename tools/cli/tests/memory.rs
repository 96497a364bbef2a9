//! End-to-end tests of `hivelog --memory --persist FILE COMMAND`: each run boots an in-memory
//! store from FILE (fresh if it does not exist), runs the command, and saves the registry
//! back to FILE if the command changed it.
//!
//! Run with `cargo test -p hivelog-cli --test memory`.

use std::path::Path;

mod support;
use support::*;

fn in_memory(image: &Path, args: &[&str]) -> Run {
    let mut command = command();
    command
        .arg("--memory")
        .arg("--persist")
        .arg(image)
        .args(args);
    Run::of(command)
}

#[test]
fn each_run_boots_from_the_image_and_saves_what_it_changed() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let image = tmp.path().join("registry.img");
    in_memory(&image, &["add", APP, "-v", "Color", "-d", "blue"]).ok();
    assert!(image.exists(), "the first change saved an image");
    in_memory(
        &image,
        &["add", APP, "-v", "Size", "-t", "REG_DWORD", "-d", "7"],
    )
    .ok();
    let shown = in_memory(&image, &["query", APP]).ok().to_string();
    assert_eq!(
        shown,
        format!("\n{APP_PATH}\n    Color    REG_SZ    blue\n    Size    REG_DWORD    0x7\n")
    );
    // A read leaves the image as it was; the image is a backup of the whole registry.
    let before = std::fs::read(&image).expect("read the image");
    in_memory(&image, &["query", APP, "-s"]).ok();
    assert_eq!(std::fs::read(&image).expect("read the image"), before);
    let verified = in_memory(&image, &["verify", image.to_str().unwrap_or_default()]);
    assert!(verified.ok().contains("the whole registry"));
    // A refused command saves nothing.
    let message = in_memory(&image, &["delete", r"HKLM\Software\Nope"])
        .error()
        .to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert_eq!(std::fs::read(&image).expect("read the image"), before);
}

#[test]
fn a_damaged_image_is_refused_and_kept() {
    let tmp = tempfile::TempDir::new().expect("temp dir");
    let image = tmp.path().join("registry.img");
    in_memory(&image, &["add", APP, "-v", "Color", "-d", "blue"]).ok();
    let mut bytes = std::fs::read(&image).expect("read the image");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&image, &bytes).expect("damage the image");
    in_memory(&image, &["query", APP]).error();
    in_memory(&image, &["add", APP, "-v", "X", "-d", "1"]).error();
    assert_eq!(
        std::fs::read(&image).expect("read the image"),
        bytes,
        "never repaired"
    );
    let message = in_memory(&image, &["watch", APP]).error().to_string();
    assert!(message.contains("no writer to follow"), "{message}");
}
