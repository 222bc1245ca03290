//! The one model pass of a comparison: for every chunk-batch, one backbone pass and one
//! fast-layer pass give the SKIP and UPDATE_1 losses and the reconstruction statistics (and one
//! more fast-layer pass for each UPDATE_k with k > 1 that a method uses); every method's
//! decisions are later applied to these shared records, never to a new model pass.
//! The SKIP head runs beside the fast layer, except on the probes ([`PassMode`]) that time each
//! part alone.
//!
//! Records are appended to `records.jsonl` as they are made, so an interrupted evaluation
//! resumes where it stopped: the valid prefix is kept (each record is checked against the
//! digest of its chunk-batch's ids) and the rest is recomputed. The model is deterministic on
//! the CPU, so a resumed run writes the same bytes as an uninterrupted one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use candle::{Device, Tensor};
use ponder_gate::Decision;
use ponder_model::PonderLm;
use serde::{Deserialize, Serialize};

use crate::error::{io, Error, Result};
use crate::stream::ChunkBatch;

/// What the model says about one chunk-batch (means over its sequences).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRecord {
    /// Position in the decision stream.
    pub index: usize,
    /// The batch of windows.
    pub batch: usize,
    /// The chunk position within the windows.
    pub position: usize,
    /// FNV-1a digest of the chunk-batch's ids ([`ChunkBatch::digest`]).
    pub digest: u64,
    /// Next-token loss of the SKIP path (per-sequence means, then the mean over sequences).
    pub skip_loss: f64,
    /// Next-token loss of the UPDATE_1 path.
    pub update_loss: f64,
    /// Next-token loss of the UPDATE_2 path, when a method uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_2_loss: Option<f64>,
    /// Next-token loss of the UPDATE_4 path, when a method uses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_4_loss: Option<f64>,
    /// Mean reconstruction loss under the chunk's initial fast weights (`ttt_loss_init`).
    pub recon_init: f64,
    /// Mean reconstruction loss before each mini-batch's update (`ttt_loss_step_0`): the
    /// gating signal.
    pub recon: f64,
    /// Mean reconstruction loss after each mini-batch's update (`ttt_loss_step_1`).
    pub recon_after: f64,
}

impl ChunkRecord {
    /// `skip_loss − update_loss`.
    pub fn advantage(&self) -> f64 {
        self.skip_loss - self.update_loss
    }

    /// The loss of the path `decision` takes; an error when that path was not computed.
    pub fn loss_of(&self, decision: Decision) -> Result<f64> {
        let loss = match decision.steps() {
            0 => Some(self.skip_loss),
            1 => Some(self.update_loss),
            2 => self.update_2_loss,
            4 => self.update_4_loss,
            _ => None,
        };
        loss.ok_or_else(|| {
            Error::Config(format!(
                "chunk-batch {}: the UPDATE_{} loss was not computed (list update_{} in eval.methods)",
                self.index,
                decision.steps(),
                decision.steps()
            ))
        })
    }

    /// The record as a gating policy sees it.
    pub fn gate_record(&self) -> ponder_gate::StreamRecord {
        ponder_gate::StreamRecord {
            recon: self.recon,
            recon_init: self.recon_init,
            recon_after: self.recon_after,
            skip_loss: self.skip_loss,
            update_loss: self.update_loss,
        }
    }
}

/// One chunk-batch in [`PROBE_EVERY`] (indices 0, 4, 8, …) runs its parts one after another
/// ([`PassMode::Probe`]), so that each part is timed alone; the others run as the comparison
/// is meant to, the SKIP head beside the fast layer ([`PassMode::Overlapped`]). Both give the
/// same records.
pub const PROBE_EVERY: usize = 4;

/// How [`record_chunk`] runs the parts after the backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMode {
    /// Fast layer, UPDATE head, SKIP head, one after another, each timed: what a deployment
    /// running one path costs.
    Probe,
    /// The SKIP head beside the fast layer ([`PonderLm::update_beside_skip_loss`]), then the
    /// UPDATE head; only the whole pass is timed.
    Overlapped,
}

impl PassMode {
    /// The mode of chunk-batch `index` ([`PROBE_EVERY`]).
    pub fn of(index: usize) -> Self {
        if index % PROBE_EVERY == 0 {
            Self::Probe
        } else {
            Self::Overlapped
        }
    }
}

/// Wall-clock time of the model pass, summed over the chunk-batches computed in this process:
/// part by part over the probes, and whole over the overlapped chunk-batches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PassTimes {
    /// Chunk-batches timed part by part ([`PassMode::Probe`]).
    pub chunks: usize,
    /// The backbone.
    pub backbone_s: f64,
    /// The fast layer (UPDATE_1 with its statistics).
    pub fast_s: f64,
    /// LM head and loss of the UPDATE path.
    pub update_head_s: f64,
    /// LM head and loss of the SKIP path: the only work a comparison adds to one UPDATE forward.
    pub skip_head_s: f64,
    /// Chunk-batches run with the SKIP head beside the fast layer ([`PassMode::Overlapped`]).
    #[serde(default)]
    pub overlapped: usize,
    /// Their whole passes (backbone, fast layer beside the SKIP head, UPDATE head).
    #[serde(default)]
    pub overlapped_s: f64,
    /// The fast layer and head of each UPDATE_k with k > 1 that a method uses, over the probes,
    /// by k.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub update_k_s: BTreeMap<u32, f64>,
}

impl PassTimes {
    fn per_probe(&self, s: f64) -> Option<f64> {
        (self.chunks > 0).then(|| s / self.chunks as f64)
    }

    /// Mean seconds of one SKIP forward (backbone, head) over the probes.
    pub fn skip_forward(&self) -> Option<f64> {
        self.per_probe(self.backbone_s + self.skip_head_s)
    }

    /// Mean seconds of one UPDATE forward (backbone, fast layer, head) over the probes.
    pub fn update_forward(&self) -> Option<f64> {
        self.per_probe(self.backbone_s + self.fast_s + self.update_head_s)
    }

    /// Mean seconds of a forward on the path of `decision` over the probes: SKIP, UPDATE_1, or
    /// UPDATE_k (k > 1) when its parts were timed.
    pub fn forward(&self, decision: Decision) -> Option<f64> {
        match decision.steps() {
            0 => self.skip_forward(),
            1 => self.update_forward(),
            k => self
                .update_k_s
                .get(&k)
                .and_then(|s| self.per_probe(self.backbone_s + s)),
        }
    }

    /// Mean seconds of one comparison pass as the comparison runs it: over the overlapped
    /// chunk-batches, or over the probes where there were none.
    pub fn comparison(&self) -> Option<f64> {
        if self.overlapped > 0 {
            return Some(self.overlapped_s / self.overlapped as f64);
        }
        self.per_probe(self.backbone_s + self.fast_s + self.update_head_s + self.skip_head_s)
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs the model on one chunk-batch in `mode` (the record does not depend on it), with one more
/// fast-layer pass and head for each k of `extra_steps` (UPDATE_k, k > 1).
pub fn record_chunk(
    lm: &PonderLm,
    chunk: &ChunkBatch,
    device: &Device,
    mode: PassMode,
    extra_steps: &[u32],
    times: &mut PassTimes,
) -> Result<ChunkRecord> {
    let ids = Tensor::from_slice(&chunk.ids, (chunk.rows, chunk.len), device)?;
    let mean =
        |t: &Tensor| -> Result<f64> { Ok(ponder_nn::to_f64(t)?.mean_all()?.to_scalar::<f64>()?) };
    let t0 = Instant::now();
    let hidden = lm.backbone(&ids)?; // (b, t, d)
    let hidden = hidden.contiguous()?;
    let t1 = Instant::now();
    let state = lm.initial_state(chunk.rows)?;
    let (skip_loss, update_loss, (recon_init, recon, recon_after)) = match mode {
        PassMode::Probe => {
            let up = lm.update(&hidden, &ids, &state, 1)?;
            let stats = up.stats.chunk_means()?;
            let t2 = Instant::now();
            let update_loss = mean(&lm.next_token_loss(&up.features, &ids)?)?;
            let t3 = Instant::now();
            let skip_loss = mean(&lm.next_token_loss(&hidden, &ids)?)?;
            let t4 = Instant::now();
            times.chunks += 1;
            times.backbone_s += secs(t1 - t0);
            times.fast_s += secs(t2 - t1);
            times.update_head_s += secs(t3 - t2);
            times.skip_head_s += secs(t4 - t3);
            (skip_loss, update_loss, stats)
        }
        PassMode::Overlapped => {
            let (up, skip_loss) = lm.update_beside_skip_loss(&hidden, &ids, &state, 1)?;
            let stats = up.stats.chunk_means()?;
            let skip_loss = mean(&skip_loss)?;
            let update_loss = mean(&lm.next_token_loss(&up.features, &ids)?)?;
            times.overlapped += 1;
            times.overlapped_s += secs(t0.elapsed());
            (skip_loss, update_loss, stats)
        }
    };
    let (mut update_2_loss, mut update_4_loss) = (None, None);
    for &k in extra_steps {
        let t = Instant::now();
        let up = lm.update(&hidden, &ids, &state, k as usize)?;
        let loss = mean(&lm.next_token_loss(&up.features, &ids)?)?;
        if mode == PassMode::Probe {
            *times.update_k_s.entry(k).or_default() += secs(t.elapsed());
        }
        match k {
            2 => update_2_loss = Some(loss),
            4 => update_4_loss = Some(loss),
            _ => {
                return Err(Error::Config(format!(
                    "UPDATE_{k}: expected k = 2 or 4 beside UPDATE_1"
                )))
            }
        }
    }
    let record = ChunkRecord {
        index: chunk.index,
        batch: chunk.batch,
        position: chunk.position,
        digest: chunk.digest(),
        skip_loss,
        update_loss,
        update_2_loss,
        update_4_loss,
        recon_init,
        recon,
        recon_after,
    };
    for (name, v) in [
        ("SKIP loss", skip_loss),
        ("UPDATE loss", update_loss),
        ("UPDATE_2 loss", update_2_loss.unwrap_or(0.0)),
        ("UPDATE_4 loss", update_4_loss.unwrap_or(0.0)),
        ("reconstruction loss (init)", recon_init),
        ("reconstruction loss (step_0)", recon),
        ("reconstruction loss (step_1)", recon_after),
    ] {
        if !v.is_finite() {
            return Err(Error::NonFinite(format!(
                "chunk-batch {} (batch {}, chunk position {}): the {name} is {v}",
                chunk.index, chunk.batch, chunk.position
            )));
        }
    }
    Ok(record)
}

/// Reads the valid prefix of `path` for `chunks`: records in order whose digests match; a
/// partial last line (a killed write) is dropped. A record that does not fit its chunk-batch
/// is an error: the file belongs to other data.
pub fn read_records(path: &Path, chunks: &[ChunkBatch]) -> Result<Vec<ChunkRecord>> {
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        if !line.ends_with('\n') {
            break; // a write cut short by a kill
        }
        let record: ChunkRecord =
            serde_json::from_str(line.trim_end()).map_err(|e| Error::Resume {
                path: path.to_path_buf(),
                reason: format!("line {}: not a chunk record ({e})", out.len() + 1),
            })?;
        let Some(chunk) = chunks.get(out.len()) else {
            return Err(Error::Resume {
                path: path.to_path_buf(),
                reason: format!(
                    "holds more records than this evaluation has chunk-batches ({})",
                    chunks.len()
                ),
            });
        };
        if record.index != chunk.index || record.digest != chunk.digest() {
            return Err(Error::Resume {
                path: path.to_path_buf(),
                reason: format!(
                    "record {} was made from different tokens than this evaluation's chunk-batch {} (different data or config)",
                    record.index, chunk.index
                ),
            });
        }
        out.push(record);
    }
    Ok(out)
}

/// Records of every chunk-batch, with the UPDATE_k losses of `extra_steps` (k > 1), resuming
/// from `path` and appending new records to it. `on_chunk` is called after each chunk-batch (for
/// progress bars).
pub fn evaluate(
    lm: &PonderLm,
    chunks: &[ChunkBatch],
    device: &Device,
    path: &Path,
    extra_steps: &[u32],
    mut on_chunk: impl FnMut(usize),
) -> Result<(Vec<ChunkRecord>, PassTimes)> {
    let mut records = read_records(path, chunks)?;
    // Rewrite the valid prefix (drops a partial line), then append.
    let prefix: String = records
        .iter()
        .map(|r| serde_json::to_string(r).expect("records serialize") + "\n")
        .collect();
    ponder_experiment::run_dir::write_atomic(path, prefix.as_bytes())?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(io(path))?;
    let mut times = PassTimes::default();
    on_chunk(records.len());
    for chunk in &chunks[records.len()..] {
        let mode = PassMode::of(chunk.index);
        let record = record_chunk(lm, chunk, device, mode, extra_steps, &mut times)?;
        let line = serde_json::to_string(&record).expect("records serialize") + "\n";
        file.write_all(line.as_bytes()).map_err(io(path))?;
        records.push(record);
        on_chunk(records.len());
    }
    file.sync_all().map_err(io(path))?;
    Ok((records, times))
}
