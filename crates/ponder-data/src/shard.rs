//! Token shards: a prepared token stream cached on disk, so that a second run does not tokenize
//! again. The file has a versioned header carrying a key (what the tokens were made from) and
//! the token count, then the tokens as little-endian `u32`; it is memory-mapped for reading and
//! written through a temporary file and a rename. A header or length that does not check out is
//! detected, and the caller rebuilds the shard.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// First bytes of every shard file.
pub const MAGIC: &[u8; 8] = b"PNDRTOK\0";
/// The current format version.
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 4 + 8 + 32;

/// A memory-mapped shard.
pub struct Shard {
    path: PathBuf,
    map: memmap2::Mmap,
    n_tokens: usize,
    key: [u8; 32],
}

/// Writes `tokens` with `key` to `path` (atomically: temporary file, then rename).
pub fn write_shard(path: &Path, key: &[u8; 32], tokens: &[u32]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    ponder_base::write_atomic_with(path, |f| {
        f.write_all(MAGIC)?;
        f.write_all(&VERSION.to_le_bytes())?;
        f.write_all(&0u32.to_le_bytes())?;
        f.write_all(&(tokens.len() as u64).to_le_bytes())?;
        f.write_all(key)?;
        for t in tokens {
            f.write_all(&t.to_le_bytes())?;
        }
        Ok(())
    })
    .map_err(io)
}

impl Shard {
    /// Opens and checks a shard: magic, version, and a length that matches the token count.
    pub fn open(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::BadShard {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let map = map_file(&file).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if map.len() < HEADER || &map[..8] != MAGIC {
            return Err(bad("not a ponder token shard (bad header)".into()));
        }
        let version = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(format!(
                "shard format version {version}, expected {VERSION}"
            )));
        }
        let n_tokens = u64::from_le_bytes(map[16..24].try_into().expect("8 bytes")) as usize;
        let key: [u8; 32] = map[24..56].try_into().expect("32 bytes");
        let want = HEADER + 4 * n_tokens;
        if map.len() != want {
            return Err(bad(format!(
                "truncated or padded: {} bytes, expected {want} for {n_tokens} tokens",
                map.len()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            n_tokens,
            key,
        })
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.n_tokens
    }

    /// Whether the shard holds no token.
    pub fn is_empty(&self) -> bool {
        self.n_tokens == 0
    }

    /// The key the shard was written with.
    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens `start..start + len`.
    pub fn tokens(&self, start: usize, len: usize) -> Vec<u32> {
        assert!(
            start + len <= self.n_tokens,
            "shard range {start}+{len} beyond {} tokens",
            self.n_tokens
        );
        let bytes = &self.map[HEADER + 4 * start..HEADER + 4 * (start + len)];
        bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect()
    }

    /// Every token.
    pub fn to_vec(&self) -> Vec<u32> {
        self.tokens(0, self.n_tokens)
    }
}

/// The shard at `path` if it exists, checks out and carries `key`; otherwise `build()` is run,
/// its tokens written, and returned. A corrupt or stale shard is logged through the returned
/// flag (`true` when it was rebuilt) and replaced.
pub fn load_or_build(
    path: &Path,
    key: &[u8; 32],
    build: impl FnOnce() -> Result<Vec<u32>>,
) -> Result<(Vec<u32>, Rebuilt)> {
    let why = match Shard::open(path) {
        Ok(shard) if shard.key() == key => return Ok((shard.to_vec(), Rebuilt::No)),
        Ok(_) => Rebuilt::Stale,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Rebuilt::Missing
        }
        Err(e) => Rebuilt::Corrupt(e.to_string()),
    };
    let tokens = build()?;
    write_shard(path, key, &tokens)?;
    Ok((tokens, why))
}

/// Whether [`load_or_build`] had to build the shard, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebuilt {
    /// The cached shard was used.
    No,
    /// There was no shard.
    Missing,
    /// The shard was made from other inputs (its key differs).
    Stale,
    /// The shard was corrupt; the reason.
    Corrupt(String),
}

/// Maps a file read-only.
#[allow(unsafe_code)]
fn map_file(file: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: shards are written once (through a rename) and never modified in place, so the
    // mapped bytes do not change while the map lives; a concurrent writer would replace the
    // file, not alter this inode.
    unsafe { memmap2::Mmap::map(file) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_detected_then_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.tok");
        let key = [7u8; 32];
        let tokens: Vec<u32> = (0..1000).map(|i| i * 31 % 50257).collect();
        write_shard(&path, &key, &tokens).unwrap();
        let shard = Shard::open(&path).unwrap();
        assert_eq!(shard.len(), 1000);
        assert_eq!(shard.tokens(10, 3), &tokens[10..13]);
        let (cached, why) = load_or_build(&path, &key, || panic!("must not rebuild")).unwrap();
        assert_eq!((cached, why), (tokens.clone(), Rebuilt::No));

        // Truncation: detected by the length, then rebuilt.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 6]).unwrap();
        let err = Shard::open(&path).err().unwrap().to_string();
        assert!(err.contains("truncated or padded"), "{err}");
        let (rebuilt, why) = load_or_build(&path, &key, || Ok(tokens.clone())).unwrap();
        assert_eq!(rebuilt, tokens);
        assert!(matches!(why, Rebuilt::Corrupt(_)));
        assert!(Shard::open(&path).is_ok());

        // A damaged header, and a key from other inputs.
        std::fs::write(&path, b"garbage").unwrap();
        assert!(Shard::open(&path)
            .err()
            .unwrap()
            .to_string()
            .contains("bad header"));
        write_shard(&path, &[1u8; 32], &tokens).unwrap();
        let (_, why) = load_or_build(&path, &key, || Ok(vec![1, 2])).unwrap();
        assert_eq!(why, Rebuilt::Stale);
    }
}
