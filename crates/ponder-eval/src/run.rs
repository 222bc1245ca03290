//! Files of an evaluation run folder, written atomically (a temporary file, then a rename).
//! Opening the folder, and refusing one made by a different config, is the caller's job
//! (the CLI uses the training crate's run folders for that).

use std::path::Path;

use crate::error::{io, Result};

/// Writes `bytes` to `path` through a temporary file and a rename
/// ([`ponder_base::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ponder_base::write_atomic(path, bytes).map_err(io(path))
}

/// Writes `value` as pretty JSON with a final newline.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("values serialize") + "\n";
    write_atomic(path, text.as_bytes())
}
