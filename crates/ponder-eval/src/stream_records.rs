//! Stream mode's resumable record (`records.jsonl` of a stream-mode evaluation): one line per
//! batch of streams, written when every method has run over it, holding each method's decisions
//! on that batch and the digest of the batch's tokens (no timings: the same config gives the
//! same bytes; `cost.json` counts the seconds of the batches run in this process). An interrupted comparison keeps the valid
//! prefix (a line cut short by a kill is dropped, a line of other tokens is an error), replays
//! each method over it ([`crate::carry::MethodPass::replay`], which restores every gate's state),
//! and computes the rest; the model is deterministic on the CPU, so the result is the same as an
//! uninterrupted run's.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::carry::StepRecord;
use crate::error::{io, Error, Result};
use crate::file_stream::StreamBatch;

/// One method's decisions over one batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodBatch {
    /// The method's name.
    pub method: String,
    /// Its decisions on the batch, in stream order.
    pub steps: Vec<StepRecord>,
}

/// Every method over one batch of streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRecord {
    /// The batch, from 0.
    pub batch: usize,
    /// [`StreamBatch::digest`] of its tokens.
    pub digest: u64,
    /// Every method, in the comparison's order.
    pub methods: Vec<MethodBatch>,
}

/// The valid prefix of the records at `path` for `batches` and the methods `names` (empty when
/// there is no file).
pub fn read_batches(
    path: &Path,
    batches: &[StreamBatch],
    names: &[String],
) -> Result<Vec<BatchRecord>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bad = |reason: String| Error::Resume {
        path: path.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break; // a write cut short by a kill
        }
        let record: BatchRecord = serde_json::from_str(line.trim_end()).map_err(|e| {
            bad(format!(
                "line {}: not a stream-mode batch record ({e})",
                out.len() + 1
            ))
        })?;
        let Some(batch) = batches.get(out.len()) else {
            return Err(bad(format!(
                "holds more batches than this evaluation has ({})",
                batches.len()
            )));
        };
        let methods: Vec<&String> = record.methods.iter().map(|m| &m.method).collect();
        if record.batch != out.len()
            || record.digest != batch.digest()
            || methods != names.iter().collect::<Vec<_>>()
        {
            return Err(bad(format!(
                "batch {} was recorded from other tokens or methods than this evaluation's",
                record.batch
            )));
        }
        out.push(record);
    }
    Ok(out)
}

/// The records file, rewritten to hold `prefix` (dropping a partial line), open for appending.
pub fn reopen(path: &Path, prefix: &[BatchRecord]) -> Result<std::fs::File> {
    let text: String = prefix
        .iter()
        .map(|r| serde_json::to_string(r).expect("records serialize") + "\n")
        .collect();
    ponder_experiment::run_dir::write_atomic(path, text.as_bytes())?;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io(path))
}

/// Appends `record` as one line.
pub fn append(file: &mut std::fs::File, path: &Path, record: &BatchRecord) -> Result<()> {
    let line = serde_json::to_string(record).expect("records serialize") + "\n";
    file.write_all(line.as_bytes()).map_err(io(path))
}
