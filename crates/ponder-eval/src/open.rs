//! Opening a comparison, in either mode: where its tokens come from (a held-out split of
//! `[data]` or another source), `ours_lh`'s selection (left out on the validation split, where it
//! is chosen; read back everywhere else), the model under the ablations, and the run folder with
//! its identity ([`open_comparison`]). [`crate::run_comparison`] and
//! [`crate::run_stream_comparison`] start here.

use ponder_data::Split;
use ponder_experiment::{
    EvalConfig, ExperimentConfig, Layout, RunDir, RunFolder, Stage, StateMode,
};
use ponder_model::PonderLm;

use crate::error::{Error, Result};
use crate::experiment::{check_split_stream, with_causal_k, CompareRequest, StreamChoice};
use crate::selection::Selection;

/// Where an evaluation's tokens come from.
struct Source {
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
    fn of(req: &CompareRequest<'_>) -> Result<Self> {
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
fn tokens(
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
fn resolve_selected(
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
        (Some(grid), false, true) => Ok(Some(Selection::of_experiment(config, eval, grid)?)),
        _ => Ok(None),
    }
}

/// The identity of an evaluation's run folder: the eval stage's config, the source, the fast
/// layer and the ablations.
fn identity(req: &CompareRequest<'_>, origin: &str, language: &str) -> String {
    format!(
        "{}\n# ponder compare\n# source = {origin:?}\n# language = {language:?}\n# fast = {:?}\n# shuffle = {}\n# causal_k = {:?}\n",
        req.config.stage_toml(Stage::Eval),
        req.fast_origin,
        req.ablation.shuffle,
        req.ablation.causal_k
    )
}

/// The model under `req`'s ablations (the diagonal ablation changes `causal_k`).
fn ablated_lm(req: &CompareRequest<'_>) -> Result<PonderLm> {
    match req.ablation.causal_k {
        Some(k) => with_causal_k(req.lm, k),
        None => Ok(req.lm.clone()),
    }
}

/// A comparison's run folder opened, with everything either mode's model pass reads.
pub(crate) struct Opened {
    /// The `[eval]` section, `ours_lh` left out on the validation split.
    pub eval: EvalConfig,
    /// The evaluation's name (`python`, `go`, `python-shuffled`, …).
    pub name: String,
    /// Whether the stream is the validation split.
    pub validation: bool,
    /// The run folder.
    pub folder: RunFolder,
    /// The run, opened in the folder, its data manifests recorded.
    pub run: RunDir,
    /// `ours_lh` read back from the validation split, where it is listed and not chosen here.
    pub selection: Option<Selection>,
    /// The model under the ablations.
    pub lm: PonderLm,
    /// The tokens, documents joined by `<|endoftext|>`.
    pub tokens: Vec<u32>,
}

/// Opens the comparison of `req` in `mode` (an error when `[eval] mode` is the other one): the
/// stream's source and tokens, `ours_lh`'s selection, the ablated model and the run folder
/// (`eval/`, `validation/` or `stream/` under the fast run, unless `req.out` names one).
/// `Ok(None)` when that folder holds a finished run of the same config and
/// `req.open.skip_finished` is set.
pub(crate) fn open_comparison(req: &CompareRequest<'_>, mode: StateMode) -> Result<Option<Opened>> {
    let config = req.config;
    let mut eval = config.eval()?.clone();
    if eval.mode != mode {
        return Err(Error::Config(
            match mode {
                StateMode::Reset => {
                    "eval.mode = \"stream\": a stream-mode comparison is run_stream_comparison's"
                }
                StateMode::Stream => "a stream-mode comparison needs eval.mode = \"stream\"",
            }
            .into(),
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
    let folder = match (&req.out, mode) {
        (Some(f), _) => f.clone(),
        (None, StateMode::Stream) if validation => {
            fast_folder.stream_eval(&format!("{language}-validation"), req.ablation)
        }
        (None, StateMode::Stream) => fast_folder.stream_eval(&language, req.ablation),
        (None, StateMode::Reset) if validation => {
            fast_folder.validation_eval(&language, req.ablation)
        }
        (None, StateMode::Reset) => fast_folder.eval(&language, req.ablation),
    };
    let selection = resolve_selected(config, &mut eval, validation)?;
    let lm = ablated_lm(req)?;
    let (tokens, manifests) = tokens(req, source.as_deref(), validation, &language)?;
    // The run folder only once the tokens exist: a source missing from the machine leaves no
    // partial folder behind.
    let identity = identity(req, &origin, &language);
    let Some(run) = RunDir::open(&folder, &identity, eval.seed, req.git_rev, req.open)? else {
        return Ok(None);
    };
    run.record_data(&manifests)?;
    Ok(Some(Opened {
        eval,
        name,
        validation,
        folder,
        run,
        selection,
        lm,
        tokens,
    }))
}
