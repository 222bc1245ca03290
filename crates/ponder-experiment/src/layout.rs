//! Where an experiment writes: [`Layout`] names every run folder under `run.out_dir`, and
//! [`RunFolder`] every file in a run folder. No other code of the workspace spells a run-folder
//! path (a tidy check enforces it).
//!
//! ```text
//! <out_dir>/                         the backbone stage (pretraining the embedded default)
//!   config.toml seed git_rev         what made the run, written first
//!   metrics.jsonl timing.jsonl       typed records (crate::records)
//!   checkpoint/ data/ model/         resumable state, data manifests, the trained backbone
//!   fast-<layer>-k<k>/               the fast stage: a trained fast layer (same files, and
//!     fast_layer/                    its checkpoint)
//!     eval/<language>[-shuffled][-diagonal<k>]/   comparisons on the test split (or another
//!                                    source): records.jsonl chunks.csv summary.json
//!                                    correlation.json cost.json
//!     validation/<language>[…]/      comparisons on the validation split, the same files, and
//!                                    selection.json (the controller chosen as `ours_lh`)
//!     latency/                       `ponder bench`: latency.json
//!     policy/                        `ponder train gate`: the learned gate's training run
//!       learned/                     (checkpoint/, metrics.jsonl, …) and the trained gate:
//!                                    policy.json policy.safetensors
//!     codegen/<bench>/               `ponder codegen`: samples.jsonl summary.json
//!                                    canonical_loss.json
//!     report.md plots/               `ponder report`
//! ```

use std::path::{Path, PathBuf};

use crate::config::ExperimentConfig;
use crate::error::Result;
use crate::sections::FastConfig;

/// The run folders of one experiment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

/// The ablations of an evaluation, which name its folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ablation {
    /// The tokens of every chunk row permuted.
    pub shuffle: bool,
    /// The fast layer's `causal_k` replaced (the diagonal ablation).
    pub causal_k: Option<i64>,
}

/// One run folder and the files in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    dir: PathBuf,
}

impl Layout {
    /// The experiment folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The experiment folder of `config` (`run.out_dir`).
    pub fn of(config: &ExperimentConfig) -> Self {
        Self::new(&config.run.out_dir)
    }

    /// The experiment folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The backbone stage's run folder: the experiment folder itself.
    pub fn backbone(&self) -> RunFolder {
        RunFolder::new(&self.root)
    }

    /// The fast stage's run folder for `fast`: `fast-<layer>-k<k>`, with `-stream` for a layer
    /// trained in stream mode.
    pub fn fast(&self, fast: &FastConfig) -> RunFolder {
        let mode = match fast.mode {
            crate::StateMode::Reset => "",
            crate::StateMode::Stream => "-stream",
        };
        RunFolder::new(
            self.root
                .join(format!("fast-{}-k{}{mode}", fast.layer, fast.k)),
        )
    }

    /// The fast stage's run folder of `config`, or an error when it has no `[fast]`.
    pub fn fast_of(config: &ExperimentConfig) -> Result<RunFolder> {
        Ok(Self::of(config).fast(config.fast()?))
    }

    /// The run folders of every fast layer trained under this experiment, sorted.
    pub fn fast_runs(&self) -> Vec<RunFolder> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("fast-"))
            })
            .collect();
        dirs.sort();
        dirs.into_iter().map(RunFolder::new).collect()
    }
}

impl Ablation {
    /// The name of an evaluation of `language` under these ablations: `python`,
    /// `python-shuffled`, `python-diagonal-1`.
    pub fn eval_name(&self, language: &str) -> String {
        let mut name = language.to_string();
        if self.shuffle {
            name.push_str("-shuffled");
        }
        if let Some(k) = self.causal_k {
            name.push_str(&format!("-diagonal{k}"));
        }
        name
    }

    /// Whether an evaluation folder name is that of an ablation (not a plain language).
    pub fn is_ablation_name(name: &str) -> bool {
        name.contains('-')
    }
}

impl RunFolder {
    /// The run folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Its name (the last component).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The resolved config that made the run.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The run's seed.
    pub fn seed(&self) -> PathBuf {
        self.dir.join("seed")
    }

    /// The git revision that made the run.
    pub fn git_rev(&self) -> PathBuf {
        self.dir.join("git_rev")
    }

    /// Deterministic records ([`crate::records::Metric`]), one JSON object per line.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.jsonl")
    }

    /// Wall-clock records ([`crate::records::Timing`]).
    pub fn timing(&self) -> PathBuf {
        self.dir.join("timing.jsonl")
    }

    /// The live checkpoint folder, the one being written, and the one being replaced.
    pub fn checkpoints(&self) -> [PathBuf; 3] {
        ["checkpoint", "checkpoint.tmp", "checkpoint.old"].map(|n| self.dir.join(n))
    }

    /// The tensors of a checkpoint folder.
    pub fn checkpoint_tensors(checkpoint: &Path) -> PathBuf {
        checkpoint.join("tensors.safetensors")
    }

    /// The state of a checkpoint folder ([`crate::records::CheckpointState`]).
    pub fn checkpoint_state(checkpoint: &Path) -> PathBuf {
        checkpoint.join("state.json")
    }

    /// The data manifests the run saw.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The trained backbone (backbone stage).
    pub fn model(&self) -> PathBuf {
        self.dir.join("model")
    }

    /// The trained fast layer's checkpoint (fast stage).
    pub fn fast_layer(&self) -> PathBuf {
        self.dir.join("fast_layer")
    }

    /// The evaluations of this fast layer.
    pub fn evals(&self) -> PathBuf {
        self.dir.join("eval")
    }

    /// The evaluation of `language` under `ablation`.
    pub fn eval(&self, language: &str, ablation: Ablation) -> RunFolder {
        RunFolder::new(self.evals().join(ablation.eval_name(language)))
    }

    /// The evaluations of this fast layer on the validation split.
    pub fn validation_evals(&self) -> PathBuf {
        self.dir.join("validation")
    }

    /// The evaluation of the validation split of `language` under `ablation`.
    pub fn validation_eval(&self, language: &str, ablation: Ablation) -> RunFolder {
        RunFolder::new(self.validation_evals().join(ablation.eval_name(language)))
    }

    /// The stream-mode evaluations of this fast layer (`[eval] mode = "stream"`).
    pub fn stream_evals(&self) -> PathBuf {
        self.dir.join("stream")
    }

    /// The stream-mode evaluation of `language` under `ablation`.
    pub fn stream_eval(&self, language: &str, ablation: Ablation) -> RunFolder {
        RunFolder::new(self.stream_evals().join(ablation.eval_name(language)))
    }

    /// The controller a validation evaluation chose (`ours_lh`), with every candidate's
    /// figures.
    pub fn selection(&self) -> PathBuf {
        self.dir.join("selection.json")
    }

    /// The learned gate's training run on this fast layer (`ponder train gate`).
    pub fn policy_run(&self) -> RunFolder {
        RunFolder::new(self.dir.join("policy"))
    }

    /// The trained learned gate of a policy run.
    pub fn learned_policy(&self) -> PathBuf {
        self.dir.join("learned")
    }

    /// The settings of a learned gate's folder.
    pub fn policy_meta(dir: &Path) -> PathBuf {
        dir.join("policy.json")
    }

    /// The weights of a learned gate's folder.
    pub fn policy_tensors(dir: &Path) -> PathBuf {
        dir.join("policy.safetensors")
    }

    /// The latency measurement of this fast layer (`ponder bench`).
    pub fn latency_run(&self) -> RunFolder {
        RunFolder::new(self.dir.join("latency"))
    }

    /// The latency table of a latency run.
    pub fn latency(&self) -> PathBuf {
        self.dir.join("latency.json")
    }

    /// The code-generation run of benchmark `bench` (`ponder codegen`).
    pub fn codegen(&self, bench: &str) -> RunFolder {
        RunFolder::new(self.dir.join("codegen").join(bench))
    }

    /// A code-generation run's loss of the benchmark's own solutions, per method.
    pub fn canonical_loss(&self) -> PathBuf {
        self.dir.join("canonical_loss.json")
    }

    /// A code-generation run's samples, one JSON line each.
    pub fn samples(&self) -> PathBuf {
        self.dir.join("samples.jsonl")
    }

    /// An evaluation's per-chunk-batch records (resumable).
    pub fn records(&self) -> PathBuf {
        self.dir.join("records.jsonl")
    }

    /// An evaluation's per-chunk-batch table.
    pub fn chunks(&self) -> PathBuf {
        self.dir.join("chunks.csv")
    }

    /// An evaluation's summary per method.
    pub fn summary(&self) -> PathBuf {
        self.dir.join("summary.json")
    }

    /// An evaluation's correlations with the advantage.
    pub fn correlation(&self) -> PathBuf {
        self.dir.join("correlation.json")
    }

    /// An evaluation's costs and timings.
    pub fn cost(&self) -> PathBuf {
        self.dir.join("cost.json")
    }

    /// The report of a fast layer's experiment.
    pub fn report(&self) -> PathBuf {
        self.dir.join("report.md")
    }

    /// The report's plots.
    pub fn plots(&self) -> PathBuf {
        self.dir.join("plots")
    }

    /// The evaluation folders under [`RunFolder::evals`] that hold a finished comparison,
    /// sorted by name.
    pub fn finished_evals(&self) -> Vec<RunFolder> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.evals())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| RunFolder::new(p).summary().is_file())
            .collect();
        dirs.sort();
        dirs.into_iter().map(RunFolder::new).collect()
    }
}

/// The folders of a sweep (`cargo xtask sweep`, [`crate::sweep`]):
///
/// ```text
/// <out_dir>/sweep.toml        the sweep and its base config as resolved, written first
///   shared/                   the experiment folder of the shared phases (its backbone)
///   points/<key=value,…>/     one experiment folder per point, and sweep.log: its output
///   aggregate.csv report.md plots/   `ponder sweep aggregate`
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepLayout {
    root: PathBuf,
}

impl SweepLayout {
    /// The sweep folder `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// What the sweep was made from ([`crate::sweep::SweepConfig::identity`]).
    pub fn lock(&self) -> PathBuf {
        self.root.join("sweep.toml")
    }

    /// The experiment folder of the shared phases.
    pub fn shared(&self) -> PathBuf {
        self.root.join("shared")
    }

    /// The experiment folder of the point `name`.
    pub fn point(&self, name: &str) -> PathBuf {
        self.root.join("points").join(name)
    }

    /// The output of the point `name`'s `ponder` commands.
    pub fn point_log(&self, name: &str) -> PathBuf {
        self.point(name).join("sweep.log")
    }

    /// The output of the shared phases' `ponder` commands.
    pub fn shared_log(&self) -> PathBuf {
        self.shared().join("sweep.log")
    }

    /// Every point's figures, one row per group, method and metric.
    pub fn aggregate(&self) -> PathBuf {
        self.root.join("aggregate.csv")
    }

    /// The sweep's report and its plots (the names a fast layer's report uses).
    pub fn report(&self) -> RunFolder {
        RunFolder::new(&self.root)
    }
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
