//! A whole comparison of an experiment, as one call: [`run_comparison`] takes the config, the
//! trained model, the data, which stream to read and which ablations to apply, opens the
//! evaluation's run folder, runs the one model pass (resumable), applies every method, and
//! writes and returns the results. The `ponder compare` command is this call plus argument
//! mapping and printing.
//!
//! On the validation split, `ours_lh` is left out of the methods (it is chosen there), and when
//! the config has `[eval.select]` the choice is made and written to `selection.json`
//! ([`crate::selection`]). Everywhere else `ours_lh` reads that file back: the controller chosen
//! on the validation split of the experiment's own language, whatever stream is evaluated.

use std::fmt;

use ponder_data::{ExperimentData, SourceHints, Split};
use ponder_experiment::records::Done;
use ponder_experiment::{Ablation, ExperimentConfig, OpenOptions, RunFolder, StateMode};
use ponder_model::{FastLayer, PonderLm};

use crate::compare::{check_stream_length, compare, Comparison};
use crate::error::{Error, Result};
use crate::flops::chunk_flops;
use crate::open::{open_comparison, Opened};
use crate::output::{cost_report, write_outputs, CostReport};
use crate::records::evaluate;
use crate::selection::{select, Selection};
use crate::stream::chunk_batches;

/// Which tokens an evaluation reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChoice {
    /// A held-out split of the experiment's `[data]` sources (in distribution): `Test` for the
    /// results, `Validation` for choices; `Train` is refused.
    Split(Split),
    /// Every file of another source, in its language (out of distribution).
    Source {
        /// A named source, folder or dataset file, as `data.sources` accepts.
        source: String,
        /// Its language.
        language: String,
    },
}

/// Everything a comparison needs.
pub struct CompareRequest<'a> {
    /// The resolved experiment config (with an `[eval]` section).
    pub config: &'a ExperimentConfig,
    /// The trained model: backbone, `fast_norm` and fast layer.
    pub lm: &'a PonderLm,
    /// The experiment's data (its tokenizer reads an out-of-distribution source too).
    pub data: &'a ExperimentData,
    /// Where the hints for named sources come from.
    pub hints: &'a SourceHints,
    /// Which stream.
    pub stream: StreamChoice,
    /// Which ablations.
    pub ablation: Ablation,
    /// The run folder; `None` for the layout's (`<fast run>/eval/<name>`).
    pub out: Option<RunFolder>,
    /// What the fast layer is, for the run folder's identity (its checkpoint folder).
    pub fast_origin: String,
    /// Resume an interrupted evaluation; skip a finished one.
    pub open: OpenOptions,
    /// The git revision of the code, recorded in the run folder.
    pub git_rev: &'a str,
}

/// What a comparison produced.
pub struct CompareOutcome {
    /// The evaluation's name (`python`, `go`, `python-shuffled`, …).
    pub name: String,
    /// Its run folder.
    pub folder: RunFolder,
    /// Every method's decisions and statistics.
    pub comparison: Comparison,
    /// The controller chosen as `ours_lh` (made here on the validation split, read back
    /// elsewhere); `None` when none is chosen or used.
    pub selection: Option<Selection>,
    /// Its cost.
    pub cost: CostReport,
}

/// Runs the comparison of `req`; `Ok(None)` when its run folder already holds a finished
/// comparison of the same config and `req.open.skip_finished` is set. `on_chunk(done, total)`
/// reports progress over the chunk-batches.
pub fn run_comparison(
    req: &CompareRequest<'_>,
    mut on_chunk: impl FnMut(usize, usize),
) -> Result<Option<CompareOutcome>> {
    let Some(Opened {
        eval,
        name,
        validation,
        folder,
        run,
        selection,
        lm,
        tokens: stream,
    }) = open_comparison(req, StateMode::Reset)?
    else {
        return Ok(None);
    };
    let chunks = chunk_batches(&stream, &eval, req.ablation.shuffle.then_some(eval.seed))?;
    let selected = selection.as_ref().map(|s| &s.config);
    check_stream_length(&eval, selected, chunks.len())?;
    let extra_steps = eval.extra_update_steps();
    let device = lm.backbone_model().device().clone();
    let total = chunks.len();
    let (records, times) = evaluate(
        &lm,
        &chunks,
        &device,
        &folder.records(),
        &extra_steps,
        |done| on_chunk(done, total),
    )?;
    let comparison = compare(&records, &eval, selected)?;
    let selection = match (
        &eval.select,
        validation && req.ablation == Ablation::default(),
    ) {
        (Some(grid), true) => {
            let chosen = select(&records, eval.budget, grid)?;
            ponder_experiment::run_dir::write_json(&folder.selection(), &chosen)?;
            Some(chosen)
        }
        _ => selection,
    };
    let flops = chunk_flops(&lm, eval.batch_size, eval.chunk_len, &extra_steps);
    let cost = cost_report(&comparison, flops, times);
    write_outputs(&folder, &records, &comparison, &cost)?;
    run.finish(Done {
        chunks: Some(records.len()),
        ..Done::empty()
    })?;
    Ok(Some(CompareOutcome {
        name,
        folder,
        comparison,
        selection,
        cost,
    }))
}

/// An error naming the split and its fraction when the held-out stream a comparison would read
/// is empty.
pub fn check_split_stream(
    stream: &[u32],
    validation: bool,
    data: &ponder_data::DataConfig,
) -> Result<()> {
    if !stream.is_empty() {
        return Ok(());
    }
    let (name, fraction) = if validation {
        ("validation", data.validation)
    } else {
        ("test", data.test)
    };
    Err(Error::Data(format!(
        "the {name} split of {:?} is empty (data.{name} = {fraction}): no file of the sources \
         fell into it; raise data.{name} or add files",
        data.sources
    )))
}

/// `lm` with the TTT layer's `causal_k` replaced (the diagonal ablation).
pub fn with_causal_k(lm: &PonderLm, k: i64) -> Result<PonderLm> {
    let fast = match lm.fast_layer().clone() {
        FastLayer::Ttt { mut config, params } => {
            config.causal_k = k;
            config.validate()?;
            FastLayer::Ttt { config, params }
        }
        FastLayer::Lora { .. } => {
            return Err(Error::Config(
                "the diagonal ablation (causal_k) applies to TTT fast layers, not LoRA".into(),
            ))
        }
    };
    Ok(PonderLm::new(
        lm.backbone_model(),
        lm.fast_norm().clone(),
        fast,
    )?)
}

impl fmt::Display for CompareOutcome {
    /// The results as `ponder compare` prints them: the method table, McNemar's test, the
    /// signal's correlation and the measured cost.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.comparison.summary;
        writeln!(
            f,
            "{}: {} chunk-batches, budget ρ = {}",
            self.name, s.chunks, s.budget
        )?;
        write!(f, "{s}")?;
        write!(f, "{}", self.comparison.correlations)?;
        if let Some(sel) = &self.selection {
            let n_ok = sel.candidates.iter().filter(|c| c.within_tolerance).count();
            writeln!(
                f,
                "ours_lh = {} (chosen on {} validation chunk-batches among {} candidates, {n_ok} within the rate tolerance)",
                sel.chosen,
                sel.chunks,
                sel.candidates.len()
            )?;
        }
        if let Some(r) = self.cost.comparison_over_update {
            writeln!(
                f,
                "the comparison pass cost {r:.3}x one UPDATE forward per chunk-batch (measured)"
            )?;
        }
        write!(f, "results in {}", self.folder.path().display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_split_is_an_error_naming_it() {
        let data: ponder_data::DataConfig = toml::from_str(
            r#"
            sources = ["python-stdlib"]
            language = "python"
            validation = 0.0
            test = 0.1
            seq_len = 64
            tokenizer = { kind = "gpt2" }
            decontaminate = []
            "#,
        )
        .unwrap();
        let e = check_split_stream(&[], true, &data)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("validation split") && e.contains("data.validation = 0"),
            "{e}"
        );
        let e = check_split_stream(&[], false, &data)
            .unwrap_err()
            .to_string();
        assert!(e.contains("data.test = 0.1"), "{e}");
        assert!(check_split_stream(&[1, 2], true, &data).is_ok());
    }
}
