//! A whole stream-mode comparison (`[eval] mode = "stream"`) as one call:
//! [`run_stream_comparison`] reads the same [`CompareRequest`] as reset mode's
//! [`crate::run_comparison`], cuts the files of the evaluated split or source into streams, runs
//! every method's own pass, and writes `chunks.csv` (every method's decision per stream and
//! chunk), `summary.json` and `cost.json` (seconds) to `<fast run>/stream/<name>`.
//!
//! `records.jsonl` records every method's decisions batch by batch ([`crate::stream_records`]),
//! so an interrupted comparison resumes after its last finished batch (the greedy oracle, which
//! runs last on its subsample, runs again).

use std::fmt;

use ponder_experiment::records::Done;
use ponder_experiment::run_dir::{write_atomic, write_json};
use ponder_experiment::{RunFolder, StateMode};

use crate::error::Result;
use crate::experiment::CompareRequest;
use crate::file_stream::stream_batches;
use crate::flops::chunk_flops;
use crate::learned::LearnedGate;
use crate::open::{open_comparison, Opened};
use crate::stream_compare::run_streams;
use crate::stream_summary::{steps_csv, summarize, StreamCost, StreamSummary};

/// What a stream-mode comparison produced.
pub struct StreamOutcome {
    /// The evaluation's name (`python`, `python-shuffled`, …).
    pub name: String,
    /// Its run folder.
    pub folder: RunFolder,
    /// Every method's figures, and the mode the fast layer was trained in.
    pub summary: StreamSummary,
}

/// Runs the stream-mode comparison of `req`; `Ok(None)` when its run folder already holds a
/// finished comparison of the same config and `req.open.skip_finished` is set.
/// `on_batch(done, total)` reports progress over the batches of streams.
pub fn run_stream_comparison(
    req: &CompareRequest<'_>,
    on_batch: impl FnMut(usize, usize),
) -> Result<Option<StreamOutcome>> {
    // The learned gate first: a missing or foreign one leaves no run folder behind.
    let listed = req.config.eval()?;
    let learned = if listed.methods.contains(&ponder_gate::Method::Learned) {
        let backbone = req.lm.backbone_model();
        let gate = LearnedGate::for_comparison(req.config, listed, backbone.device())?;
        Some((gate, backbone.config().vocab_size))
    } else {
        None
    };
    let Some(Opened {
        eval,
        name,
        folder,
        run,
        selection,
        lm,
        tokens,
        ..
    }) = open_comparison(req, StateMode::Stream)?
    else {
        return Ok(None);
    };
    let eot = req.data.tokenizer.eot_id();
    let batches = stream_batches(
        &tokens,
        eot,
        &eval,
        req.ablation.shuffle.then_some(eval.seed),
    )?;
    let device = lm.backbone_model().device().clone();
    let selected = selection.as_ref().map(|s| &s.config);
    let streams = run_streams(
        &lm,
        &batches,
        &eval,
        selected,
        learned,
        &device,
        Some(&folder.records()),
        on_batch,
    )?;
    let flops = chunk_flops(&lm, 1, eval.chunk_len, &[2, 4]);
    let summary = summarize(&streams, &eval, &flops, req.config.fast()?.mode)?;
    write_atomic(&folder.chunks(), steps_csv(&streams).as_bytes())?;
    write_json(&folder.summary(), &summary)?;
    write_json(&folder.cost(), &StreamCost::of(&streams))?;
    let decisions = streams.methods.first().map(|m| m.steps.len());
    run.finish(Done {
        chunks: decisions,
        ..Done::empty()
    })?;
    Ok(Some(StreamOutcome {
        name,
        folder,
        summary,
    }))
}

impl fmt::Display for StreamOutcome {
    /// The results as `ponder compare` prints them in stream mode.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} (stream mode)", self.name)?;
        write!(f, "{}", self.summary)?;
        write!(f, "results in {}", self.folder.path().display())
    }
}
