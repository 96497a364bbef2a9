//! Case folding and name order, as the Windows registry compares names.
//!
//! Names compare case-insensitively by upcasing each character one to one (as
//! RtlUpcaseUnicodeChar does: a character whose uppercase is several characters, like `ß`,
//! stays as it is) and order by UTF-16 code units, so enumeration order matches what Windows
//! tools print. The table is Rust's Unicode data (`char::to_uppercase`).

use std::cmp::Ordering;

/// Upcases one character one to one.
fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

/// Appends the folded form of `name` to `out`.
pub fn fold_into(name: &str, out: &mut String) {
    if name.is_ascii() {
        let start = out.len();
        out.push_str(name);
        out[start..].make_ascii_uppercase();
    } else {
        out.extend(name.chars().map(fold_char));
    }
}

/// Whether `name` is its own folded form.
pub fn is_folded(name: &str) -> bool {
    if name.is_ascii() {
        return !name.bytes().any(|b| b.is_ascii_lowercase());
    }
    name.chars().all(|c| fold_char(c) == c)
}

/// The folded form of `name`.
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    fold_into(name, &mut out);
    out
}

/// Appends `name` upcased to `out` if it is ASCII without NUL and returns true; otherwise
/// appends nothing and returns false. Works eight bytes at a time: the point read folds every
/// path it is given, and byte loops here were a quarter of a get's instructions.
pub fn fold_plain_ascii_into(name: &str, out: &mut String) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let src = name.as_bytes();
    // SAFETY: only ASCII bytes are appended below (each word is checked before it is
    // written), so `out` stays valid UTF-8; on failure it is cut back to its old length.
    let buf = unsafe { out.as_mut_vec() };
    let start = buf.len();
    // Room for whole words: the last one may write up to 7 bytes past the name.
    buf.reserve(src.len() + 8);
    let spare = buf.spare_capacity_mut();
    for (i, chunk) in src.chunks(8).enumerate() {
        let word = match <[u8; 8]>::try_from(chunk) {
            Ok(bytes) => u64::from_le_bytes(bytes),
            Err(_) => {
                // Pad a short last chunk with 'A': ASCII, not NUL, already upper case.
                let mut bytes = [b'A'; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                u64::from_le_bytes(bytes)
            }
        };
        let has_nul = word.wrapping_sub(LOW) & !word & HIGH != 0;
        if word & HIGH != 0 || has_nul {
            return false;
        }
        // Every byte is below 0x80, so these sums carry into no neighbour: the high bit of
        // each byte says `byte >= 'a'` and `byte > 'z'`.
        let from_a = word + LOW * u64::from(0x80 - b'a');
        let past_z = word + LOW * u64::from(0x80 - b'z' - 1);
        let lower = from_a & !past_z & HIGH;
        let upper = (word ^ (lower >> 2)).to_le_bytes();
        for (slot, byte) in spare[i * 8..i * 8 + 8].iter_mut().zip(upper) {
            slot.write(byte);
        }
    }
    // SAFETY: the first `src.len()` spare bytes were written above, all ASCII.
    unsafe { buf.set_len(start + src.len()) };
    true
}

/// Orders two folded names by UTF-16 code units.
///
/// UTF-8 byte order equals code point order, which differs from UTF-16 order only between a
/// character in U+E000..=U+FFFF and one above U+FFFF (a surrogate pair sorts below U+E000).
/// So compare bytes, and fall back to UTF-16 only when such a pair decides.
pub fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let (Some(&x), Some(&y)) = (a.as_bytes().get(common), b.as_bytes().get(common)) else {
        return a.len().cmp(&b.len());
    };
    // Lead bytes 0xEE/0xEF start U+E000..=U+FFFF, 0xF0.. start characters above U+FFFF.
    let high = |byte: u8| byte >= 0xEE;
    if high(x) || high(y) {
        // `common` may sit inside a character: step back to its start.
        let start = (0..=common)
            .rev()
            .find(|&i| a.is_char_boundary(i))
            .unwrap_or(0);
        return a[start..].encode_utf16().cmp(b[start..].encode_utf16());
    }
    x.cmp(&y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_one_to_one() {
        assert_eq!(fold("Software\\Vendor"), "SOFTWARE\\VENDOR");
        assert_eq!(fold("straße"), "STRAßE", "ß has no one-character uppercase");
        assert_eq!(fold("ÉCOLE école"), "ÉCOLE ÉCOLE");
        assert_eq!(fold("Ünïcode"), fold("üNÏCODE"));
        assert_ne!(fold("a"), fold("b"));
    }

    #[test]
    fn word_at_a_time_folding_agrees_with_the_plain_fold() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "a".into(),
            "software\\vendor042\\app0123\\settings".into(),
            "@[`{~ azAZ09_-.".into(),
        ];
        samples.extend((0u8..128).map(|b| format!("x{}yz", char::from(b))));
        samples.extend((1..20).map(|n| "q".repeat(n)));
        for sample in &samples {
            let mut fast = String::from("prefix");
            let plain = fold_plain_ascii_into(sample, &mut fast);
            let expected = sample.is_ascii() && !sample.contains('\0');
            assert_eq!(plain, expected, "{sample:?}");
            if plain {
                assert_eq!(fast, format!("prefix{}", fold(sample)), "{sample:?}");
            } else {
                assert_eq!(fast, "prefix", "nothing appended for {sample:?}");
            }
        }
        let mut out = String::new();
        assert!(!fold_plain_ascii_into("caf\u{e9}", &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn orders_by_utf16_code_units_of_the_uppercase_form() {
        // '_' (0x5F) sorts after the uppercase letters, as in Windows.
        assert_eq!(cmp_utf16(&fold("a_b"), &fold("aab")), Ordering::Greater);
        assert_eq!(cmp_utf16("ABC", "ABCD"), Ordering::Less);
        assert_eq!(cmp_utf16("B", "ABCD"), Ordering::Greater);
        assert_eq!(cmp_utf16("SAME", "SAME"), Ordering::Equal);
        // U+FF21 (fullwidth A) against U+1F600: by code point the emoji is larger; by UTF-16
        // its surrogate 0xD83D sorts first.
        assert_eq!("\u{FF21}".cmp("\u{1F600}"), Ordering::Less);
        assert_eq!(cmp_utf16("\u{FF21}", "\u{1F600}"), Ordering::Greater);
        assert_eq!(cmp_utf16("x\u{E000}", "x\u{10000}"), Ordering::Greater);
        assert_eq!(cmp_utf16("x\u{D7FF}", "x\u{10000}"), Ordering::Less);
    }

    #[test]
    fn utf16_order_agrees_with_encode_utf16_everywhere() {
        let samples = [
            "",
            "A",
            "AB",
            "Z",
            "_",
            "a",
            "\u{7F}",
            "\u{80}",
            "\u{7FF}",
            "\u{800}",
            "\u{D7FF}",
            "\u{E000}",
            "\u{FFFF}",
            "\u{10000}",
            "\u{10FFFF}",
            "A\u{E000}",
            "A\u{10000}",
            "AZ",
        ];
        for a in samples {
            for b in samples {
                assert_eq!(
                    cmp_utf16(a, b),
                    a.encode_utf16().cmp(b.encode_utf16()),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }
}
