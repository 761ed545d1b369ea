//! The protobuf wire format, just enough to walk a Kubernetes message: keys, varints,
//! 64-bit fixed values and length-delimited runs. Every read is bounds-checked against
//! the remaining input, so a hostile length prefix can neither overrun nor make us
//! allocate: length-delimited values are borrowed sub-slices of the body.

use std::fmt;

/// The largest field number protobuf allows (2^29 - 1).
const MAX_TAG: u64 = (1 << 29) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the data ends in the middle of a field")]
    Truncated,
    #[error("a varint runs past 10 bytes or 64 bits")]
    VarintOverflow,
    #[error("field number {0} is out of range (1..=536870911)")]
    BadTag(u64),
    #[error("wire type {0} is not a protobuf wire type")]
    BadWireType(u8),
    #[error("wire type {0} (group) is obsolete and never written by Kubernetes")]
    Group(u8),
    #[error("a length prefix of {len} bytes exceeds the {left} bytes left")]
    TooLong { len: u64, left: usize },
}

/// How a field's value is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

impl fmt::Display for WireType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "64-bit",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "32-bit",
        })
    }
}

/// A cursor over one message's bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Reads a field key: (field number, wire type).
    pub fn key(&mut self) -> Result<(u32, WireType), WireError> {
        let key = self.varint()?;
        let wt = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            n @ (3 | 4) => return Err(WireError::Group(n as u8)),
            n => return Err(WireError::BadWireType(n as u8)),
        };
        let tag = key >> 3;
        if tag == 0 || tag > MAX_TAG {
            return Err(WireError::BadTag(tag));
        }
        // MAX_TAG fits in u32, checked just above.
        Ok((tag as u32, wt))
    }

    pub fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or(WireError::Truncated)?;
            self.buf = rest;
            // The tenth byte may only carry the 64th bit.
            if i == 9 && b > 1 {
                return Err(WireError::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintOverflow)
    }

    pub fn fixed64(&mut self) -> Result<u64, WireError> {
        let (head, rest) = self
            .buf
            .split_first_chunk::<8>()
            .ok_or(WireError::Truncated)?;
        self.buf = rest;
        Ok(u64::from_le_bytes(*head))
    }

    /// Reads a length prefix and returns that many bytes, borrowed from the input.
    pub fn len_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let left = self.buf.len();
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| n <= left)
            .ok_or(WireError::TooLong { len, left })?;
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0x00]).varint(), Ok(0));
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        // -1 as a sign-extended int32/int64: ten bytes.
        let minus_one = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&minus_one).varint(), Ok(u64::MAX));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader::new(&too_big).varint(),
            Err(WireError::VarintOverflow)
        );
        let eleven = [0x80; 11];
        assert_eq!(
            Reader::new(&eleven).varint(),
            Err(WireError::VarintOverflow)
        );
        assert_eq!(Reader::new(&[0x80]).varint(), Err(WireError::Truncated));
        assert_eq!(Reader::new(&[]).varint(), Err(WireError::Truncated));
    }

    #[test]
    fn keys() {
        assert_eq!(Reader::new(&[0x0a]).key(), Ok((1, WireType::Len)));
        assert_eq!(Reader::new(&[0x10]).key(), Ok((2, WireType::Varint)));
        assert_eq!(Reader::new(&[0x19]).key(), Ok((3, WireType::Fixed64)));
        assert_eq!(Reader::new(&[0x25]).key(), Ok((4, WireType::Fixed32)));
        assert_eq!(Reader::new(&[0x0b]).key(), Err(WireError::Group(3)));
        assert_eq!(Reader::new(&[0x0e]).key(), Err(WireError::BadWireType(6)));
        assert_eq!(Reader::new(&[0x02]).key(), Err(WireError::BadTag(0)));
    }

    #[test]
    fn lengths_are_bounded() {
        let mut r = Reader::new(&[0x03, b'a', b'b', b'c', 0x01]);
        assert_eq!(r.len_delimited(), Ok(&b"abc"[..]));
        assert_eq!(
            r.len_delimited(),
            Err(WireError::TooLong { len: 1, left: 0 })
        );
        // A length near u64::MAX must be refused, not allocated or wrapped.
        let huge = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00,
        ];
        assert!(matches!(
            Reader::new(&huge).len_delimited(),
            Err(WireError::TooLong { .. })
        ));
        assert_eq!(Reader::new(&[1, 2, 3]).fixed64(), Err(WireError::Truncated));
        assert_eq!(
            Reader::new(&1.5f64.to_le_bytes()).fixed64(),
            Ok(1.5f64.to_bits())
        );
    }
}
