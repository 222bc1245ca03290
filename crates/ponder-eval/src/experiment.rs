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
use ponder_experiment::{
    Ablation, ExperimentConfig, Layout, OpenOptions, RunDir, RunFolder, Stage,
};
use ponder_model::{FastLayer, PonderLm};

use crate::compare::{check_stream_length, compare, Comparison};
use crate::error::{Error, Result};
use crate::flops::chunk_flops;
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

/// Where an evaluation's tokens come from.
pub(crate) struct Source {
    /// Their language.
    pub language: String,
    /// The named source; `None` for a split of `[data]`.
    pub source: Option<String>,
    /// Whether they are the validation split.
    pub validation: bool,
    /// Where they come from, for the run folder's identity.
    pub origin: String,
}

impl Source {
    /// The source of `req`'s stream; the training split is refused.
    pub(crate) fn of(req: &CompareRequest<'_>) -> Result<Self> {
        match &req.stream {
            StreamChoice::Split(Split::Train) => Err(Error::Config(
                "--split train: a comparison reads held-out data, the validation or test split"
                    .into(),
            )),
            StreamChoice::Split(split) => Ok(Self {
                language: req.config.data.language.clone(),
                source: None,
                validation: *split == Split::Validation,
                origin: format!("{split:?} split of [data] sources").to_lowercase(),
            }),
            StreamChoice::Source { source, language } => Ok(Self {
                language: language.clone(),
                source: Some(source.clone()),
                validation: false,
                origin: source.clone(),
            }),
        }
    }
}

/// The tokens of an evaluation (documents joined by `<|endoftext|>`) and their manifests: a
/// held-out split of `[data]` (an error when it is empty), or every file of `source`.
pub(crate) fn tokens(
    req: &CompareRequest<'_>,
    source: Option<&str>,
    validation: bool,
    language: &str,
) -> Result<(Vec<u32>, Vec<ponder_data::Manifest>)> {
    let config = req.config;
    match source {
        None => {
            let stream = if validation {
                req.data.validation.clone()
            } else {
                req.data.test.clone()
            };
            check_split_stream(&stream, validation, &config.data)?;
            Ok((stream, req.data.manifests.clone()))
        }
        Some(s) => {
            let (stream, manifest) = ponder_data::build::full_stream(
                &config.data,
                &config.run.cache_dir,
                &req.data.tokenizer,
                s,
                language,
                req.hints,
            )?;
            Ok((stream, vec![manifest]))
        }
    }
}

/// `ours_lh`, left out of `eval.methods` where it is chosen (the validation split), and read
/// back everywhere else from the selection of the experiment's own language; `None` where it is
/// not listed, or listed without `[eval.select]` (which `compare` names).
pub(crate) fn resolve_selected(
    config: &ExperimentConfig,
    eval: &mut ponder_experiment::EvalConfig,
    validation: bool,
) -> Result<Option<Selection>> {
    let selected_listed = eval.methods.contains(&ponder_gate::Method::Selected);
    match (&eval.select, validation, selected_listed) {
        (_, true, _) => {
            eval.methods.retain(|m| m != &ponder_gate::Method::Selected);
            Ok(None)
        }
        (Some(grid), false, true) => {
            let file = Layout::fast_of(config)?
                .validation_eval(&config.data.language, Ablation::default())
                .selection();
            Ok(Some(Selection::read_for(&file, eval.budget, grid)?))
        }
        _ => Ok(None),
    }
}

/// The identity of an evaluation's run folder: the eval stage's config, the source, the fast
/// layer and the ablations.
pub(crate) fn identity(req: &CompareRequest<'_>, origin: &str, language: &str) -> String {
    format!(
        "{}\n# ponder compare\n# source = {origin:?}\n# language = {language:?}\n# fast = {:?}\n# shuffle = {}\n# causal_k = {:?}\n",
        req.config.stage_toml(Stage::Eval),
        req.fast_origin,
        req.ablation.shuffle,
        req.ablation.causal_k
    )
}

/// The model under `req`'s ablations (the diagonal ablation changes `causal_k`).
pub(crate) fn ablated_lm(req: &CompareRequest<'_>) -> Result<PonderLm> {
    match req.ablation.causal_k {
        Some(k) => with_causal_k(req.lm, k),
        None => Ok(req.lm.clone()),
    }
}

/// Runs the comparison of `req`; `Ok(None)` when its run folder already holds a finished
/// comparison of the same config and `req.open.skip_finished` is set. `on_chunk(done, total)`
/// reports progress over the chunk-batches.
pub fn run_comparison(
    req: &CompareRequest<'_>,
    mut on_chunk: impl FnMut(usize, usize),
) -> Result<Option<CompareOutcome>> {
    let config = req.config;
    let mut eval = config.eval()?.clone();
    if eval.mode != ponder_experiment::StateMode::Reset {
        return Err(Error::Config(
            "eval.mode = \"stream\": a stream-mode comparison is run_stream_comparison's".into(),
        ));
    }
    let Source {
        language,
        source,
        validation,
        origin,
    } = Source::of(req)?;
    let name = req.ablation.eval_name(&language);
    let fast_folder = Layout::fast_of(config)?;
    let folder = match &req.out {
        Some(f) => f.clone(),
        None if validation => fast_folder.validation_eval(&language, req.ablation),
        None => fast_folder.eval(&language, req.ablation),
    };
    let selection = resolve_selected(config, &mut eval, validation)?;
    let identity = identity(req, &origin, &language);
    let lm = ablated_lm(req)?;
    let (stream, manifests) = tokens(req, source.as_deref(), validation, &language)?;
    // The run folder only once the stream exists: a source missing from the machine leaves no
    // partial folder behind.
    let Some(run) = RunDir::open(&folder, &identity, eval.seed, req.git_rev, req.open)? else {
        return Ok(None);
    };
    run.record_data(&manifests)?;
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
