//! `ponder codegen`: a benchmark's samples through the sandbox, with outcome counts and pass@k,
//! into `samples.jsonl` and `summary.json`.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ponder_codegen::{
    classeval, humaneval, mbpp, summarize, Bench, CodegenSummary, Limits, Problem, SampleRecord,
    Sandbox, SandboxConfig,
};
use ponder_eval::learned::LearnedGate;
use ponder_eval::selection::Selection;
use ponder_experiment::run_dir::{write_atomic, write_json};
use ponder_experiment::{ExperimentConfig, Layout, RunFolder};
use ponder_gate::GateConfig;
use ponder_metrics::Resampling;

use crate::args::{CodegenArgs, DecodeArgs, Global, SandboxArgs};
use crate::generate::Decoder;
use crate::train::progress;

/// One sample before it runs.
struct Pending {
    task: usize,
    method: String,
    sample: usize,
    completion: String,
    window_slides: usize,
}

/// The settings of a run: the command line, completed from `--config` where it is given.
pub(crate) struct Resolved {
    /// The experiment config, where `--config` names one.
    pub(crate) config: Option<ExperimentConfig>,
    pub(crate) decode: DecodeArgs,
    pub(crate) out: RunFolder,
    pub(crate) resampling: Option<Resampling>,
    /// The controller `ours_lh` runs: the one the config's experiment chose on validation.
    pub(crate) selected: Option<GateConfig>,
}

/// Fills what the command line leaves open from `--config`: the backbone, the trained fast
/// layer, its chunk length, the budget, the bootstrap settings and the output folder.
fn resolve(args: &CodegenArgs) -> Result<Resolved> {
    let mut decode = args.decode.clone();
    let Some(path) = &args.config else {
        let out = args
            .out
            .clone()
            .context("--out is required without --config")?;
        return Ok(Resolved {
            config: None,
            decode,
            out: RunFolder::new(out),
            resampling: None,
            selected: None,
        });
    };
    let config = ExperimentConfig::load(path, &args.overrides)?;
    let fast = config.fast()?;
    let eval = config.eval()?;
    let run = Layout::fast_of(&config)?;
    decode.model.get_or_insert_with(|| fast.backbone.clone());
    decode.fast.get_or_insert_with(|| run.fast_layer());
    decode.chunk_len.get_or_insert(fast.chunk_len);
    decode.budget.get_or_insert(eval.budget);
    if decode.model.as_deref() == Some(fast.backbone.as_str()) {
        decode.seed = config.run.seed;
    }
    let selected = match &eval.select {
        Some(grid)
            if args
                .methods
                .iter()
                .any(|m| m.trim() == ponder_gate::SELECTED) =>
        {
            Some(Selection::of_experiment(&config, eval, grid)?.config)
        }
        _ => None,
    };
    Ok(Resolved {
        decode,
        out: args
            .out
            .clone()
            .map_or_else(|| run.codegen(args.bench.name()), RunFolder::new),
        resampling: Some(Resampling {
            resamples: eval.bootstrap_resamples,
            level: eval.ci_level,
            seed: eval.seed,
        }),
        selected,
        config: Some(config),
    })
}

/// Runs the benchmark's samples and writes the run folder.
pub fn run(global: &Global, args: &CodegenArgs) -> Result<()> {
    let problems = load(global, args)?;
    let resolved = resolve(args)?;
    if args.canonical_loss {
        return crate::solutions_loss::run(global, args, &resolved, &problems);
    }
    let n = if args.canonical { 1 } else { args.n };
    if n == 0 {
        bail!("--n 0: no samples");
    }
    ponder_codegen::check_ks(&args.k, n)?;
    let mut decoding = None;
    let pending = if args.canonical {
        problems
            .iter()
            .enumerate()
            .map(|(task, p)| Pending {
                task,
                method: "canonical".into(),
                sample: 0,
                completion: p.canonical_solution.clone(),
                window_slides: 0,
            })
            .collect()
    } else {
        let (pending, describe) = generate_all(global, args, &resolved, &problems, n)?;
        decoding = Some(describe);
        pending
    };
    let sandbox = sandbox(&args.sandbox)?;
    eprintln!("sandbox: {}", sandbox.describe());

    let programs: Vec<String> = pending
        .iter()
        .map(|s| problems[s.task].program(&s.completion))
        .collect();
    let bar = progress(args.quiet, "tests", programs.len() as u64, "samples");
    let runs = sandbox.run_all(&programs, || bar.inc(1))?;
    bar.finish_and_clear();
    let records: Vec<SampleRecord> = pending
        .iter()
        .zip(&runs)
        .map(|(s, e)| {
            SampleRecord::new(
                &problems[s.task].task_id,
                &s.method,
                s.sample,
                &s.completion,
                s.window_slides,
                e,
            )
        })
        .collect();

    let summary = CodegenSummary {
        bench: args.bench,
        problems: problems.len(),
        sandbox: sandbox.describe(),
        decoding,
        limits: sandbox.limits().clone(),
        methods: summarize(&records, &args.k)?,
    };
    let folder = &resolved.out;
    std::fs::create_dir_all(folder.path())
        .with_context(|| format!("creating {}", folder.path().display()))?;
    let mut lines = String::new();
    for r in &records {
        lines.push_str(&serde_json::to_string(r)?);
        lines.push('\n');
    }
    write_atomic(&folder.samples(), lines.as_bytes())?;
    write_atomic(&folder.git_rev(), crate::train::git_rev().as_bytes())?;
    write_json(&folder.summary(), &summary)?;

    println!(
        "{:<12} {:>7} {:>7} {:>9} {:>8}   pass@k",
        "method", "passed", "failed", "timed out", "crashed"
    );
    for m in &summary.methods {
        let ks: Vec<String> = m
            .pass_at_k
            .iter()
            .map(|p| format!("@{} {:.4} ± {:.4}", p.k, p.estimate, p.standard_error))
            .collect();
        println!(
            "{:<12} {:>7} {:>7} {:>9} {:>8}   {}",
            m.method,
            m.tally.passed,
            m.tally.failed,
            m.tally.timed_out,
            m.tally.crashed,
            ks.join(", ")
        );
    }
    if args.canonical {
        for r in records
            .iter()
            .filter(|r| r.outcome != ponder_codegen::Outcome::Passed)
        {
            println!("{}: {:?} ({})", r.task_id, r.outcome, r.detail);
        }
    }
    println!("wrote {}", folder.path().display());
    Ok(())
}

/// The decoder of a run and its methods, checked: `ours_lh` runs the config's selection, and
/// `ppo` the learned gate trained on the config's fast layer for its budget and chunk length
/// (without `--config`, the one beside `--fast`).
pub(crate) fn decoder_and_methods(
    global: &Global,
    args: &CodegenArgs,
    resolved: &Resolved,
) -> Result<(Decoder, Vec<ponder_gate::Method>)> {
    let mut decoder =
        Decoder::new(global, &resolved.decode)?.with_selected(resolved.selected.clone());
    let wants_ppo = args
        .methods
        .iter()
        .any(|m| m.trim() == ponder_gate::LEARNED);
    if let (Some(config), true, Some((lm, _))) = (&resolved.config, wants_ppo, decoder.fast()) {
        let device = lm.backbone_model().device().clone();
        let gate = LearnedGate::for_comparison(config, config.eval()?, &device)?;
        decoder = decoder.with_learned(Some(gate));
    }
    let methods = args
        .methods
        .iter()
        .map(|m| decoder.method(m.trim()))
        .collect::<Result<Vec<_>>>()?;
    Ok((decoder, methods))
}

/// `n` completions of every problem under every method, with a progress bar.
fn generate_all(
    global: &Global,
    args: &CodegenArgs,
    resolved: &Resolved,
    problems: &[Problem],
    n: usize,
) -> Result<(Vec<Pending>, String)> {
    let (decoder, methods) = decoder_and_methods(global, args, resolved)?;
    eprintln!("{}", decoder.describe);
    let total = problems.len() * n * methods.len();
    let bar = progress(args.quiet, "generate", total as u64, "samples");
    let (mut tokens, mut seconds) = (0usize, 0.0f64);
    let mut pending = Vec::with_capacity(total);
    for method in &methods {
        for (task, problem) in problems.iter().enumerate() {
            for sample in 0..n {
                let c = decoder
                    .complete(&problem.prompt, method, sample as u64, true)
                    .with_context(|| format!("generating for {}", problem.task_id))?;
                tokens += c.generated.ids.len();
                seconds += c.seconds;
                pending.push(Pending {
                    task,
                    method: method.name(),
                    sample,
                    completion: c.text,
                    window_slides: c.report.slides,
                });
                bar.inc(1);
            }
        }
    }
    bar.finish_and_clear();
    eprintln!(
        "generated {total} samples, {tokens} tokens in {seconds:.1} s ({:.1} tokens/s)",
        tokens as f64 / seconds.max(1e-9)
    );
    Ok((pending, decoder.describe.clone()))
}

/// The benchmark's problems, the first `--limit` of them.
fn load(global: &Global, args: &CodegenArgs) -> Result<Vec<Problem>> {
    let path = match (&args.data, args.bench) {
        (Some(spec), _) => match ponder_data::hf::parse_spec(spec) {
            // Through the standard Hub cache: offline, only what is cached.
            Some((repo, file)) => crate::resolve::hub(global)
                .get_dataset(repo, file)
                .with_context(|| format!("--data {spec}: fetching {file} of the dataset {repo}"))?,
            None => PathBuf::from(spec),
        },
        (None, Bench::HumanEval) => {
            let path = PathBuf::from(humaneval::DEFAULT_PATH);
            if !path.exists() {
                bail!(
                    "{} not found on this machine: install it with `cargo xtask data --yes humaneval`, or name the file with --data",
                    path.display()
                );
            }
            path
        }
        (None, bench) => bail!(
            "--bench {bench} needs --data: its release file (MBPP: sanitized-mbpp.json; ClassEval: ClassEval_data.json), local or hf:ORG/NAME:path through the Hub cache; neither ships offline"
        ),
    };
    let mut problems = match args.bench {
        Bench::HumanEval => humaneval::load(&path)?,
        Bench::Mbpp => mbpp::load(&path)?,
        Bench::ClassEval => classeval::load(&path)?,
    };
    if let Some(n) = args.limit {
        if n == 0 {
            bail!("--limit 0 leaves no problem");
        }
        problems.truncate(n);
    }
    Ok(problems)
}

/// The sandbox the arguments describe.
fn sandbox(args: &SandboxArgs) -> Result<Sandbox> {
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    Ok(Sandbox::new(SandboxConfig {
        python: args.python.clone(),
        limits: Limits {
            cpu_seconds: args.cpu_seconds,
            memory_mib: args.memory_mib,
            disk_mib: args.disk_mib,
            processes: args.processes,
            open_files: args.open_files,
            wall_seconds: args.wall_seconds,
        },
        uid_base: args.sandbox_uid,
        jobs,
        allow_unisolated: args.allow_unisolated,
    })?)
}
