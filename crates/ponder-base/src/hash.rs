//! FNV-1a, 64 bits: the one stable hash of the workspace, for digests that must not change
//! between runs, machines or Rust versions (`std`'s hashers make no such promise). It digests the
//! token ids of resumable evaluation records and mixes the names of random streams into seeds.

/// The FNV-1a offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// The FNV-1a prime.
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// An FNV-1a hasher: feed bytes with [`Fnv1a::write`], read the digest with [`Fnv1a::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Fnv1a {
    /// A hasher at the standard offset basis.
    pub fn new() -> Self {
        Self(FNV_OFFSET)
    }

    /// A hasher that starts from `basis` instead of the standard offset basis.
    pub fn with_basis(basis: u64) -> Self {
        Self(basis)
    }

    /// Feeds `bytes`, in order.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self
    }

    /// Feeds each id as its 4 little-endian bytes.
    pub fn write_u32s(&mut self, ids: &[u32]) -> &mut Self {
        for id in ids {
            self.write(&id.to_le_bytes());
        }
        self
    }

    /// The digest of everything fed so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

/// The FNV-1a digest of `bytes`.
///
/// ```
/// // The published test vectors of FNV-1a 64.
/// assert_eq!(ponder_base::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(ponder_base::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
/// assert_eq!(ponder_base::fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
/// ```
pub fn fnv1a(bytes: &[u8]) -> u64 {
    Fnv1a::new().write(bytes).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Fnv1a::new();
        h.write(b"foo").write(b"bar");
        assert_eq!(h.finish(), fnv1a(b"foobar"));
        let ids = [1u32, 0x0102_0304];
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        assert_eq!(Fnv1a::new().write_u32s(&ids).finish(), fnv1a(&bytes));
    }
}
