//! Case folding and name order, as the Windows registry compares names.
//!
//! Names compare case-insensitively by upcasing each character one to one (as
//! RtlUpcaseUnicodeChar does: a character whose uppercase is several characters, like `ß`,
//! stays as it is) and order by UTF-16 code units, so enumeration order matches what Windows
//! tools print. The table is Rust's Unicode data (`char::to_uppercase`).

use std::cmp::Ordering;

/// Upcases one character one to one.
pub fn fold_char(c: char) -> char {
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
        fold_ascii_into(name, out);
    } else {
        out.extend(name.chars().map(fold_char));
    }
}

/// [`fold_into`] for a name the caller knows is ASCII (checked in debug builds).
pub fn fold_ascii_into(name: &str, out: &mut String) {
    debug_assert!(name.is_ascii());
    let start = out.len();
    out.push_str(name);
    out[start..].make_ascii_uppercase();
}

/// The folded form of `name`.
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    fold_into(name, &mut out);
    out
}

/// Whether `a` and `b` are the same name.
pub fn eq_folded(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars().map(fold_char).eq(b.chars().map(fold_char))
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
        assert!(eq_folded("Ünïcode", "üNÏCODE"));
        assert!(!eq_folded("a", "b"));
        assert!(eq_folded("MiXeD", "mixed"));
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
