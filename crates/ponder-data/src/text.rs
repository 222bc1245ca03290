//! Reading source files as text, with clear refusals for what is not text.

use std::path::Path;

use crate::error::{Error, Result};

/// The UTF-8 text of `path`. An empty file, or one that holds NUL bytes or is not UTF-8
/// (a binary file), is an error naming the file.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: &str| Error::BadText {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if bytes.is_empty() {
        return Err(bad("the file is empty"));
    }
    if bytes.contains(&0) {
        return Err(bad(
            "the file holds NUL bytes: it looks binary, not source text",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        bad(&format!(
            "the file is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// The UTF-8 text of `path`, gunzipped first when the name ends in `.gz` (JSON Lines datasets
/// and HumanEval ship both ways).
pub fn read_maybe_gzipped(path: &Path) -> Result<String> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut s = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .map_err(io)?;
        Ok(s)
    } else {
        String::from_utf8(raw).map_err(|e| io(std::io::Error::other(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_empty_and_binary_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.py");
        std::fs::write(&empty, b"").unwrap();
        assert!(read_text(&empty)
            .unwrap_err()
            .to_string()
            .contains("empty.py: the file is empty"));
        let bin = dir.path().join("blob.bin");
        std::fs::write(&bin, [0x7f, b'E', b'L', b'F', 0, 1, 2]).unwrap();
        assert!(read_text(&bin)
            .unwrap_err()
            .to_string()
            .contains("looks binary"));
        let latin1 = dir.path().join("latin1.txt");
        std::fs::write(&latin1, [b'c', b'a', b'f', 0xe9]).unwrap();
        assert!(read_text(&latin1)
            .unwrap_err()
            .to_string()
            .contains("not UTF-8"));
        let ok = dir.path().join("ok.py");
        std::fs::write(&ok, "x = 1\n").unwrap();
        assert_eq!(read_text(&ok).unwrap(), "x = 1\n");
        assert!(read_text(&dir.path().join("missing.py")).is_err());
    }
}
