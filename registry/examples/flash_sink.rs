//! An embedder's own persistence for the in-memory registry: two image slots on a
//! (simulated) flash device, written alternately, so a power cut during a save leaves the
//! other slot's image whole. Each slot is framed with its generation and length; a boot
//! takes the newest slot whose image is complete (the store verifies the image itself, so
//! a slot damaged inside is refused at boot, never half-loaded).
//!
//! Run with `cargo run -p hivelog --example flash_sink`.

use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex};

use hivelog::{Options, Persistence, Store, Value};

/// Two slots, each `generation (u64 LE) | length (u64 LE) | image`. Clones share the
/// device (it outlives the store, as flash outlives a boot).
#[derive(Default, Clone)]
struct Flash {
    device: Arc<Mutex<[Vec<u8>; 2]>>,
}

impl Flash {
    fn slot_image(slot: &[u8]) -> Option<(u64, &[u8])> {
        let generation = u64::from_le_bytes(slot.get(..8)?.try_into().ok()?);
        let len = u64::from_le_bytes(slot.get(8..16)?.try_into().ok()?);
        let image = slot.get(16..16 + usize::try_from(len).ok()?)?;
        Some((generation, image))
    }

    fn newest(slots: &[Vec<u8>; 2]) -> Option<(usize, u64)> {
        (0..2)
            .filter_map(|i| Flash::slot_image(&slots[i]).map(|(g, _)| (i, g)))
            .max_by_key(|&(_, generation)| generation)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, [Vec<u8>; 2]> {
        self.device
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Persistence for Flash {
    fn load(&mut self) -> io::Result<Option<Box<dyn Read + '_>>> {
        let slots = self.slots();
        let Some((slot, _)) = Flash::newest(&slots) else {
            return Ok(None);
        };
        let (_, image) = Flash::slot_image(&slots[slot]).expect("the newest slot reads");
        Ok(Some(Box::new(Cursor::new(image.to_vec()))))
    }

    fn save(&mut self, write: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
        let newest = Flash::newest(&self.slots());
        let (target, generation) = match newest {
            Some((slot, generation)) => (1 - slot, generation + 1),
            None => (0, 1),
        };
        // The image streams in chunks; a real device would program its pages as they come.
        let mut image = Vec::new();
        write(&mut image)?;
        let mut slot = Vec::with_capacity(16 + image.len());
        slot.extend_from_slice(&generation.to_le_bytes());
        slot.extend_from_slice(&(image.len() as u64).to_le_bytes());
        slot.extend_from_slice(&image);
        // Only now is the other slot overwritten; the newest image stays whole until then.
        self.slots()[target] = slot;
        Ok(())
    }
}

/// One boot of the device: read the registry from flash, count the boot, flush it back.
fn boot(flash: &Flash) -> hivelog::Result<u32> {
    let store = Store::in_memory_with(flash.clone(), Options::default())?;
    let device = store.create_key(r"HKLM\Software\Device")?;
    let boots = device.get_value::<u32>("Boots").unwrap_or(0) + 1;
    device.set_value("Boots", &boots)?;
    let report = store.flush()?;
    println!(
        "boot {boots}: flushed the registry at sequence number {} ({} bytes)",
        report.seq, report.bytes
    );
    Ok(boots)
}

fn main() -> hivelog::Result<()> {
    let flash = Flash::default();
    for expected in 1..=3 {
        assert_eq!(boot(&flash)?, expected);
    }
    // Booted once more, the device reads the last image it saved.
    let store = Store::in_memory_with(flash.clone(), Options::default())?;
    let device = store.open_key(r"HKLM\Software\Device")?;
    assert_eq!(device.get_raw_value("Boots")?, Value::dword(3));
    Ok(())
}
