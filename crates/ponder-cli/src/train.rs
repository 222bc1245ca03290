//! `ponder train`: training runs driven by a TOML config.

use std::path::Path;

use anyhow::{Context, Result};
use ponder_train::data::TrainData;
use ponder_train::{train_backbone, train_fast, RunDir, TrainConfig};

use crate::args::{Global, TrainArgs, TrainCommand};

/// The git revision of the working tree, or `unknown` outside a checkout.
pub(crate) fn git_rev() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// A spinner on stderr while `msg` happens (hidden with `--quiet`).
pub(crate) fn spinner(quiet: bool, msg: &'static str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(msg);
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A progress bar with ETA on stderr over `total` items (hidden with `--quiet`).
pub(crate) fn progress(quiet: bool, label: &str, total: u64, unit: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {label} [{{bar:30}}] {{pos}}/{{len}} {unit}, eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Opens the run folder `out` for `config` (written first: config, seed, git revision), then
/// prepares the data and records its manifests there.
fn open_run(
    global: &Global,
    a: &TrainArgs,
    config: &TrainConfig,
    out: &Path,
) -> Result<(RunDir, TrainData)> {
    // Training does not read [eval], so changing it must not make a finished run look foreign.
    let training = TrainConfig {
        eval: None,
        ..config.clone()
    };
    let run = RunDir::open(
        out,
        &training.to_toml(),
        config.run.seed,
        &git_rev(),
        a.resume,
    )?;
    let wait = spinner(
        a.quiet,
        "preparing the data: scanning sources, tokenizer, token shards",
    );
    let data = ponder_train::data::build(config, &crate::data::hints(global))
        .context("preparing the data")?;
    wait.finish_and_clear();
    run.record_data(&data.manifests)?;
    Ok((run, data))
}

/// Runs a `ponder train` subcommand.
pub fn run(global: &Global, cmd: &TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Fast(a) => {
            let config = TrainConfig::load(&a.config, &a.overrides)?;
            let fast = config
                .fast
                .as_ref()
                .context("the config has no [fast] section")?;
            let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)
                .with_context(|| {
                    format!(
                        "loading the backbone {} (train it first with `ponder train backbone`)",
                        fast.backbone
                    )
                })?
                .model;
            let out = config.run.out_dir.join(format!("fast-k{}", fast.k));
            let (run, data) = open_run(global, a, &config, &out)?;
            crate::resolve::check_same_tokenizer(
                &fast.backbone,
                &data.tokenizer,
                data.tokenizer_path.as_deref(),
            )?;
            let report = train_fast(&config, &backbone, &data, &run, !a.quiet)?;
            println!(
                "fast layer (UPDATE_{}): validation SKIP {:.4} -> UPDATE {:.4} nats/token over {} steps ({} cached backbone passes); checkpoint in {}",
                fast.k,
                report.val_skip_loss,
                report.val_update_loss,
                report.steps_run,
                report.cache_hits,
                run.path().join("fast_layer").display()
            );
            Ok(())
        }
        TrainCommand::Backbone(a) => {
            let config = TrainConfig::load(&a.config, &a.overrides)?;
            // The device first: an unusable --device must fail before the run folder exists.
            let device = crate::resolve::device(global.device)?;
            let (run, data) = open_run(global, a, &config, &config.run.out_dir)?;
            eprintln!(
                "data: {} train / {} validation tokens from {} files; tokenizer {} ({} ids)",
                data.train.len(),
                data.validation.len(),
                data.manifests.iter().map(|m| m.files.len()).sum::<usize>(),
                data.tokenizer.kind(),
                data.tokenizer.vocab_size()
            );
            let report = train_backbone(&config, &data, &run, &device, !a.quiet)?;
            println!(
                "backbone: validation loss {:.4} nats/token (unigram baseline {:.4}), {} steps at {:.0} tokens/s; model in {}",
                report.val_loss,
                report.unigram_val_loss,
                report.steps_run,
                report.tokens_per_s,
                run.path().join("model").display()
            );
            Ok(())
        }
    }
}
