//! `ponder compare`: every gating method on one evaluation stream. The work is
//! [`ponder_eval::run_comparison`] (reset mode: one shared model pass) or
//! [`ponder_eval::run_stream_comparison`] (`[eval] mode = "stream"`: each method's own pass over
//! per-file streams); this file maps the arguments and prints.

use anyhow::{bail, Context, Result};
use ponder_eval::{run_comparison, run_stream_comparison, CompareRequest, StreamChoice};
use ponder_experiment::{Ablation, ExperimentConfig, Layout, OpenOptions, RunFolder, StateMode};

use crate::args::{CompareArgs, Global, SplitArg};

/// The overrides of `args` as `--set` strings: its shortcuts first, then `--set` itself.
fn overrides(a: &CompareArgs) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(b) = a.budget {
        out.push(format!("eval.budget={b}"));
    }
    if let Some(methods) = &a.methods {
        let list: Vec<String> = methods
            .split(',')
            .map(|m| format!("{:?}", m.trim()))
            .collect();
        out.push(format!("eval.methods=[{}]", list.join(", ")));
    }
    out.extend(a.overrides.iter().cloned());
    out
}

/// Runs `ponder compare`.
pub fn run(global: &Global, a: &CompareArgs) -> Result<()> {
    let config = ExperimentConfig::load(&a.config, &overrides(a))?;
    let mode = config.eval()?.mode;
    let fast = config.fast()?;
    if let (Some(dir), true) = (
        &a.fast,
        config
            .eval()?
            .methods
            .contains(&ponder_gate::Method::Learned),
    ) {
        bail!(
            "--fast {}: the `ppo` method runs the learned gate trained on the config's own fast layer (<fast run>/policy/learned), not one trained on this layer; leave ppo out of the methods with --fast",
            dir.display()
        );
    }
    let fast_dir = a
        .fast
        .clone()
        .unwrap_or_else(|| Layout::of(&config).fast(fast).fast_layer());
    let stream = match (&a.source, &a.language) {
        (Some(source), Some(language)) => StreamChoice::Source {
            source: source.clone(),
            language: language.clone(),
        },
        _ => StreamChoice::Split(match a.split {
            SplitArg::Validation => ponder_data::Split::Validation,
            SplitArg::Test => ponder_data::Split::Test,
        }),
    };
    let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)
        .with_context(|| format!("loading the backbone {}", fast.backbone))?
        .model;
    let lm = crate::resolve::fast_layer(&fast_dir, &backbone)?;
    let data = crate::train::prepare_data(global, &config, a.quiet)?;
    crate::resolve::check_same_tokenizer(
        &fast.backbone,
        &data.tokenizer,
        data.tokenizer_path.as_deref(),
    )?;
    let unit = match mode {
        StateMode::Reset => "chunk-batches",
        StateMode::Stream => "stream batches",
    };
    let bar = crate::train::progress(a.quiet, "compare", 0, unit);
    let request = CompareRequest {
        config: &config,
        lm: &lm,
        data: &data,
        hints: &crate::data::hints(global),
        stream,
        ablation: Ablation {
            shuffle: a.shuffle,
            causal_k: a.causal_k,
        },
        out: a.out.clone().map(RunFolder::new),
        fast_origin: fast_dir.display().to_string(),
        open: OpenOptions {
            resume: a.resume,
            skip_finished: a.skip_finished,
        },
        git_rev: &crate::train::git_rev(),
    };
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let printed = match mode {
        StateMode::Reset => run_comparison(&request, progress)?.map(|o| o.to_string()),
        StateMode::Stream => run_stream_comparison(&request, progress)?.map(|o| o.to_string()),
    };
    bar.finish_and_clear();
    match printed {
        Some(o) => println!("{o}"),
        None => println!("the comparison finished earlier with this config, skipped"),
    }
    Ok(())
}
