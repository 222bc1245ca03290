//! A whole comparison of an experiment, as one call: [`run_comparison`] takes the config, the
//! trained model, the data, which stream to read and which ablations to apply, opens the
//! evaluation's run folder, runs the one model pass (resumable), applies every method, and
//! writes and returns the results. The `ponder compare` command is this call plus argument
//! mapping and printing.

use std::fmt;

use ponder_data::{ExperimentData, SourceHints};
use ponder_experiment::records::Done;
use ponder_experiment::{
    Ablation, ExperimentConfig, Layout, OpenOptions, RunDir, RunFolder, Stage,
};
use ponder_model::{FastLayer, PonderLm};

use crate::compare::{check_stream_length, compare, Comparison};
use crate::error::{Error, Result};
use crate::flops::chunk_flops;
use crate::output::{cost_report, write_outputs, CostReport};
use crate::records::evaluate;
use crate::stream::chunk_batches;

/// Which tokens an evaluation reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChoice {
    /// The test split of the experiment's `[data]` sources (in distribution).
    TestSplit,
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
    let config = req.config;
    let eval = config.eval()?;
    let (language, source) = match &req.stream {
        StreamChoice::TestSplit => (config.data.language.clone(), None),
        StreamChoice::Source { source, language } => (language.clone(), Some(source.as_str())),
    };
    let name = req.ablation.eval_name(&language);
    let folder = match &req.out {
        Some(f) => f.clone(),
        None => Layout::fast_of(config)?.eval(&language, req.ablation),
    };
    let identity = format!(
        "{}\n# ponder compare\n# source = {:?}\n# language = {language:?}\n# fast = {:?}\n# shuffle = {}\n# causal_k = {:?}\n",
        config.stage_toml(Stage::Eval),
        source.unwrap_or("test split of [data] sources"),
        req.fast_origin,
        req.ablation.shuffle,
        req.ablation.causal_k
    );
    let lm = match req.ablation.causal_k {
        Some(k) => with_causal_k(req.lm, k)?,
        None => req.lm.clone(),
    };
    let (stream, manifests) = match source {
        None => (req.data.test.clone(), req.data.manifests.clone()),
        Some(s) => {
            let (stream, manifest) = ponder_data::build::full_stream(
                &config.data,
                &config.run.cache_dir,
                &req.data.tokenizer,
                s,
                &language,
                req.hints,
            )?;
            (stream, vec![manifest])
        }
    };
    // The run folder only once the stream exists: a source missing from the machine leaves no
    // partial folder behind.
    let Some(run) = RunDir::open(&folder, &identity, eval.seed, req.git_rev, req.open)? else {
        return Ok(None);
    };
    run.record_data(&manifests)?;
    let chunks = chunk_batches(&stream, eval, req.ablation.shuffle.then_some(eval.seed))?;
    check_stream_length(eval, chunks.len())?;
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
    let comparison = compare(&records, eval)?;
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
        cost,
    }))
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
        if let Some(r) = self.cost.comparison_over_update {
            writeln!(
                f,
                "the comparison pass cost {r:.3}x one UPDATE forward per chunk-batch (measured)"
            )?;
        }
        write!(f, "results in {}", self.folder.path().display())
    }
}
