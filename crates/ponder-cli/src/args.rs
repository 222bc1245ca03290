//! Command-line arguments of `ponder`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Adaptive test-time training for code models: tools around PonderTTT.
#[derive(Debug, Parser)]
#[command(name = "ponder", version, about)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Device to run on (cuda and metal need a build with `--features cuda` / `--features metal`).
    #[arg(long, global = true, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
    /// Floating-point type of weights and activations.
    #[arg(long, global = true, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// Never touch the network: read Hugging Face files from the local cache only
    /// (the same as HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    pub offline: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a model's configuration, parameter count, dtype and device.
    Info(InfoArgs),
    /// Mean next-token loss (nats/token) and perplexity of source files under a model.
    Score(ScoreArgs),
    /// Training: the backbone from scratch (the embedded default).
    #[command(subcommand)]
    Train(TrainCommand),
    /// Code corpora: list the named sources of code found on this machine.
    #[command(subcommand)]
    Data(DataCommand),
    /// Compare gating methods (SKIP, UPDATE_1, Random, Oracle, Ours, ...) on one evaluation
    /// stream, from one model pass; writes chunks.csv, summary.json, correlation.json and
    /// cost.json into the run folder.
    Compare(CompareArgs),
    /// Write `report.md` (the paper's tables, ours beside its numbers) and SVG plots of a
    /// config's trained fast layer and its evaluations.
    Report(ReportArgs),
    /// Latency per chunk of SKIP, UPDATE_1, the gating signal and the comparison pass, measured
    /// in one process (medians).
    Bench(BenchArgs),
    /// Continue a prompt file with a model: greedy or sampled, with the kv cache, and with a
    /// trained fast layer and a gate adapting over the prompt and the generated text; prints
    /// the completion, cut at the code stop sequences.
    Generate(Box<GenerateArgs>),
    /// Code generation benchmarks with executed tests: every sample runs in its own isolated
    /// python3 process; writes samples.jsonl and summary.json (outcomes and pass@k).
    Codegen(Box<CodegenArgs>),
    /// Sweeps (run by `cargo xtask sweep`): the points of a sweep file, and their aggregate.
    #[command(subcommand)]
    Sweep(SweepCommand),
}

/// `ponder sweep` subcommands.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Check a sweep file and every point's config, claim its folder (a folder made by another
    /// sweep file or base config is refused), and print the plan as JSON for `cargo xtask
    /// sweep`: the shared phases' overrides and each point's name, overrides and log file.
    Plan {
        /// The sweep file (e.g. configs/sweeps/tiny-seeds.toml).
        #[arg(long)]
        config: PathBuf,
    },
    /// Aggregate the points' comparisons (`eval-id`) over seeds: `aggregate.csv`, `report.md`
    /// and plots in the sweep's folder.
    Aggregate {
        /// The sweep file.
        #[arg(long)]
        config: PathBuf,
    },
}

/// The model and decoding settings shared by `ponder generate` and `ponder codegen`.
#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// The backbone: `tiny-random`, `random:PRESET`, a local folder or file (a trained
    /// backbone's `model/`), or a Hub id.
    #[arg(long)]
    pub model: Option<String>,
    /// Seed of a random model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A `tokenizer.json` file or Hub id; by default the one beside a local model, else GPT-2's.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// A trained fast layer (a `fast_layer/` folder of `ponder train fast`): decode with it and
    /// a gate in the loop.
    #[arg(long)]
    pub fast: Option<PathBuf>,
    /// Tokens per chunk of the fast layer's stream; default the `fast.chunk_len` of the
    /// config.toml beside the fast layer's folder.
    #[arg(long)]
    pub chunk_len: Option<usize>,
    /// The gate's budget ρ: the fraction of chunks it may update; default 0.5, or the
    /// `eval.budget` of `ponder codegen --config`.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Sample at this temperature (> 0) instead of decoding greedily.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// The nucleus mass of sampling, in (0, 1].
    #[arg(long, default_value_t = 1.0, requires = "temperature")]
    pub top_p: f64,
    /// The seed of sampling's draws.
    #[arg(long, default_value_t = 0)]
    pub sample_seed: u64,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// Decode without the backbone's kv cache (each token runs the whole window again).
    #[arg(long, conflicts_with = "fast")]
    pub no_cache: bool,
}

/// Arguments of `ponder generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The model and decoding settings.
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// With --fast, the gate deciding after each chunk whether to update the fast weights:
    /// skip, update_1, update_2, update_4, random, ours, pid, or a quantile controller's name.
    #[arg(long, default_value = "ours", requires = "fast")]
    pub gate: String,
    /// Do not cut the completion at the code stop sequences (a new top-level def, class,
    /// `if __name__`, comment, or three newlines); stop at EOS or the length only.
    #[arg(long)]
    pub no_stop: bool,
    /// The prompt: a text file, continued exactly as written.
    pub prompt: PathBuf,
}

/// Arguments of `ponder codegen`.
#[derive(Debug, Args)]
pub struct CodegenArgs {
    /// The benchmark: humaneval (offline, `cargo xtask data --yes humaneval`), mbpp or
    /// classeval.
    #[arg(long)]
    pub bench: ponder_codegen::Bench,
    /// The benchmark's release file (`.json`, `.jsonl`, optionally `.gz`), or
    /// `hf:ORG/NAME:path/in/repo` fetched through the Hub cache; default
    /// data/bench/HumanEval.jsonl.gz for humaneval (MBPP and ClassEval need it).
    #[arg(long)]
    pub data: Option<String>,
    /// Run the benchmark's own solutions (a check of the harness: every one should pass)
    /// instead of generating.
    #[arg(long, conflicts_with_all = ["model", "fast", "config", "canonical_loss"])]
    pub canonical: bool,
    /// Instead of generating, score the benchmark's own solutions: per method, the mean
    /// next-token loss of each solution given its prompt, with intervals over problems
    /// (canonical_loss.json).
    #[arg(long, requires = "config")]
    pub canonical_loss: bool,
    /// An experiment config: its trained backbone (`fast.backbone`), fast layer, chunk length,
    /// budget (`eval.budget`) and bootstrap settings, and the output folder
    /// `<fast run>/codegen/<bench>/`, for whatever is not given on the command line.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config value by its dotted key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "config")]
    pub overrides: Vec<String>,
    /// The model and decoding settings of generated samples.
    #[command(flatten)]
    pub decode: DecodeArgs,
    /// The methods to generate with, comma-separated: `none` (the backbone alone, over a
    /// sliding window) and, with --fast, the gates (skip, update_1, ours, random, pid, ...).
    #[arg(long, value_delimiter = ',', default_value = "none")]
    pub methods: Vec<String>,
    /// Samples per problem and method.
    #[arg(long, default_value_t = 1)]
    pub n: usize,
    /// Only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// The run folder for samples.jsonl and summary.json (or canonical_loss.json); default
    /// `<fast run>/codegen/<bench>/` of --config.
    #[arg(long, required_unless_present = "config")]
    pub out: Option<PathBuf>,
    /// pass@k for these k (comma-separated), each at most the samples per problem.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub k: Vec<usize>,
    /// The sandbox's settings.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// How `ponder codegen` runs samples.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Samples run at once; default the number of CPUs.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// The interpreter; default python3 in /usr/local/bin:/usr/bin:/bin (it must be readable
    /// by the samples' unprivileged uids).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// The uid of the first concurrent slot (slot i runs as uid + i); these uids must belong
    /// to no user.
    #[arg(long, default_value_t = 60000)]
    pub sandbox_uid: u32,
    /// Where samples cannot be isolated (not root, or the kernel refuses a namespace), run
    /// them anyway under resource limits only. Never with code you do not trust.
    #[arg(long)]
    pub allow_unisolated: bool,
    /// CPU seconds per sample: its timeout.
    #[arg(long, default_value_t = 10)]
    pub cpu_seconds: u64,
    /// Address space per process of a sample, MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_mib: u64,
    /// A sample's working directory (a tmpfs), and any one file it writes, MiB.
    #[arg(long, default_value_t = 64)]
    pub disk_mib: u64,
    /// Processes a sample's uid may have at once.
    #[arg(long, default_value_t = 64)]
    pub processes: u64,
    /// Open files per process of a sample.
    #[arg(long, default_value_t = 256)]
    pub open_files: u64,
    /// Wall-clock backstop per sample, seconds (for samples that sleep or block).
    #[arg(long, default_value_t = 60)]
    pub wall_seconds: u64,
}

/// Arguments of `ponder report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The TOML config of the experiment (e.g. configs/tiny.toml); the report goes into its
    /// fast layer's run folder.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value by its dotted key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Show the paper's numbers for this GPT-2 size beside ours: small, medium, large or xl.
    #[arg(long)]
    pub paper: Option<String>,
}

/// Arguments of `ponder bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Measure the trained backbone and fast layer of this config, at its `fast.chunk_len`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config value by its dotted key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Also measure a randomly initialized preset (tiny, gpt2, gpt2-medium, ...) with a random
    /// fast layer of the original's shape, at `--tokens` (repeatable).
    #[arg(long)]
    pub random: Vec<String>,
    /// Tokens per chunk of the random presets (512 in the original).
    #[arg(long, default_value_t = 512)]
    pub tokens: usize,
    /// Sequences per chunk (1 in the original's latency measurement).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Timed rounds of the paths, which take turns (at least this many; fast paths get more,
    /// about two seconds' worth), after two warm-up rounds.
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
    /// Write the measurements as JSON here; with `--config`, by default into the fast layer's
    /// `latency/` run folder, where the report reads them.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue into an existing latency run folder made by the same config.
    #[arg(long)]
    pub resume: bool,
    /// Leave a finished measurement of the same config alone (exit 0).
    #[arg(long)]
    pub skip_finished: bool,
}

/// Arguments of `ponder compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The TOML config with `[fast]` (backbone and fast layer) and `[eval]` sections.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value by its dotted key, e.g. `--set eval.max_batches=50` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The budget ρ in [0, 1] (shortcut for `--set eval.budget=...`).
    #[arg(long)]
    pub budget: Option<f64>,
    /// Comma-separated methods (shortcut for `--set eval.methods=[...]`): skip, update_1,
    /// update_2, update_4, random, random_seedN, oracle, ours, pid, ttt_improvement, ….
    #[arg(long)]
    pub methods: Option<String>,
    /// Which held-out split of the config's own sources to read: `test` (the results) or
    /// `validation` (where `ours_lh` is chosen, with `[eval.select]`).
    #[arg(long, value_enum, default_value_t = SplitArg::Test, conflicts_with = "source")]
    pub split: SplitArg,
    /// An out-of-distribution source (a named source such as go-src, a folder, or hf:...),
    /// instead of a split.
    #[arg(long, requires = "language")]
    pub source: Option<String>,
    /// The language of `--source`.
    #[arg(long, requires = "source")]
    pub language: Option<String>,
    /// The fast-layer checkpoint folder; default the fast run's
    /// (`<run.out_dir>/fast-<layer>-k<k>/fast_layer`).
    #[arg(long)]
    pub fast: Option<PathBuf>,
    /// The shuffled-input ablation: permute the tokens of every chunk.
    #[arg(long)]
    pub shuffle: bool,
    /// The diagonal ablation: the TTT layer's `causal_k` (-1 excludes each token's own
    /// update from its output).
    #[arg(long, allow_hyphen_values = true)]
    pub causal_k: Option<i64>,
    /// The run folder; default `<fast run>/eval/<language>[-shuffled][-diagonal<k>]`
    /// (`validation/…` for the validation split).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue an interrupted comparison in the same folder (its config must match).
    #[arg(long)]
    pub resume: bool,
    /// Leave a finished comparison of the same config alone (exit 0).
    #[arg(long)]
    pub skip_finished: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// A held-out split, as `--split` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    /// The validation split.
    Validation,
    /// The test split.
    Test,
}

/// `ponder train` subcommands.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Pretrain a GPT-2-architecture backbone from scratch on the config's code.
    Backbone(TrainArgs),
    /// Train the fast layer (`fast.layer`: TTT-Linear, TTT-MLP or LoRA) and fast_norm on the
    /// config's frozen `fast.backbone`, the original's Phase 1; writes
    /// `<run.out_dir>/fast-<layer>-k<k>`.
    Fast(TrainArgs),
    /// Train the learned gate of stream mode (`[policy]`: PPO with a PID-Lagrangian budget) on
    /// the trained fast layer, and choose its budget correction on validation streams; writes
    /// `<fast run>/policy`, whose `learned/` the `ppo` method of `ponder compare` runs.
    Gate(TrainArgs),
}

/// Arguments of a training command.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The TOML config (e.g. configs/tiny.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value by its dotted key, e.g. `--set backbone.steps=100` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue the run in the config's run folder from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Leave a finished run of the same config alone (exit 0).
    #[arg(long)]
    pub skip_finished: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `ponder data` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Each named source (python-stdlib, cargo-registry, npm-global, go-src, jdk-src): where it
    /// is, how many files and bytes it keeps, and what was skipped; or how to get it.
    Sources,
}

/// Arguments of `ponder info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// `tiny-random`, `random:PRESET` (tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl), a local
    /// folder or `.safetensors` file, or a Hub id such as `gpt2`.
    #[arg(long)]
    pub model: String,
    /// Seed of a random model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the model into this folder as `config.json` and `model.safetensors`, the
    /// file names Hugging Face transformers reads.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
}

/// Arguments of `ponder score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// `tiny-random`, `random:PRESET` (tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl), a local
    /// folder or `.safetensors` file, or a Hub id such as `gpt2`.
    #[arg(long)]
    pub model: String,
    /// Seed of a random model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A `tokenizer.json` file or Hub id; by default the one beside a local model, else GPT-2's
    /// BPE (compiled in) for models with GPT-2's vocabulary.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Tokens of context per window; defaults to the model's `n_positions`.
    #[arg(long)]
    pub context: Option<usize>,
    /// Step between windows; defaults to half the context. Every token is scored once.
    #[arg(long)]
    pub stride: Option<usize>,
    /// Source files to score.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `--device` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The CPU (default).
    Cpu,
    /// The first CUDA GPU.
    Cuda,
    /// The first Metal GPU.
    Metal,
}

/// `--dtype` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// 32-bit floats (default).
    F32,
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
}
