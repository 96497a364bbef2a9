//! Little-endian encoding helpers shared by every record codec.
//!
//! Decoding never indexes a slice with a length read from disk: every read goes through
//! [`Reader`], which returns [`Short`] instead of panicking.

/// A decode ran past the end of its buffer, or found a value out of its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Short(pub &'static str);

/// Reads little-endian fields from a byte slice, checking every length.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    #[inline]
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short(what))?;
        let slice = self.buf.get(self.pos..end).ok_or(Short(what))?;
        self.pos = end;
        Ok(slice)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], Short> {
        let slice = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    /// One byte.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, Short> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian u16.
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, Short> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u32.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, Short> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u64.
    #[inline]
    pub fn u64(&mut self, what: &'static str) -> Result<u64, Short> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A little-endian i64.
    #[inline]
    pub fn i64(&mut self, what: &'static str) -> Result<i64, Short> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }

    /// A UTF-8 string of `len` bytes.
    #[inline]
    pub fn str(&mut self, len: usize, what: &'static str) -> Result<&'a str, Short> {
        std::str::from_utf8(self.bytes(len, what)?).map_err(|_| Short(what))
    }

    /// Fails unless every byte was read: trailing bytes mean a record of another shape.
    pub fn finish(&self, what: &'static str) -> Result<(), Short> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(Short(what))
        }
    }
}

/// Appends little-endian fields to a buffer.
pub trait Put {
    /// Appends one byte.
    fn put_u8(&mut self, v: u8);
    /// Appends a little-endian u16.
    fn put_u16(&mut self, v: u16);
    /// Appends a little-endian u32.
    fn put_u32(&mut self, v: u32);
    /// Appends a little-endian u64.
    fn put_u64(&mut self, v: u64);
    /// Appends a little-endian i64.
    fn put_i64(&mut self, v: i64);
    /// Appends raw bytes.
    fn put_bytes(&mut self, v: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_bytes(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let mut buf = Vec::new();
        buf.put_u8(7);
        buf.put_u16(0x1234);
        buf.put_u32(0xdead_beef);
        buf.put_u64(u64::MAX - 1);
        buf.put_i64(-5);
        buf.put_bytes(b"hi");
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8("a"), Ok(7));
        assert_eq!(r.u16("b"), Ok(0x1234));
        assert_eq!(r.u32("c"), Ok(0xdead_beef));
        assert_eq!(r.u64("d"), Ok(u64::MAX - 1));
        assert_eq!(r.i64("e"), Ok(-5));
        assert_eq!(r.remaining(), 2);
        assert_eq!(r.finish("trailing"), Err(Short("trailing")));
        assert_eq!(r.str(2, "f"), Ok("hi"));
        assert_eq!(r.finish("trailing"), Ok(()));
        assert_eq!(r.u8("past end"), Err(Short("past end")));
        assert_eq!(
            Reader::new(&[0xff, 0xfe]).str(2, "utf8"),
            Err(Short("utf8"))
        );
        assert_eq!(
            Reader::new(&[1]).bytes(usize::MAX, "overflow"),
            Err(Short("overflow"))
        );
    }
}
