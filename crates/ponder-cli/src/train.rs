//! `ponder train`: training runs driven by a TOML config, and the pieces every command that
//! opens a run folder shares.

use anyhow::{Context, Result};
use ponder_data::ExperimentData;
use ponder_experiment::{ExperimentConfig, Layout, OpenOptions, RunDir, RunFolder, Stage};
use ponder_train::{train_backbone, train_fast, train_policy};

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

/// Opens `folder` for `stage` of `config`; `None` (after saying so) when it holds a finished run
/// of the same config and `skip_finished` is set.
pub(crate) fn open_stage(
    folder: &RunFolder,
    config: &ExperimentConfig,
    stage: Stage,
    options: OpenOptions,
) -> Result<Option<RunDir>> {
    let run = RunDir::open(
        folder,
        &config.stage_toml(stage),
        config.run.seed,
        &git_rev(),
        options,
    )?;
    if run.is_none() {
        println!(
            "{}: finished earlier with this config, skipped",
            folder.path().display()
        );
    }
    Ok(run)
}

/// Prepares the config's data (scanning sources, the tokenizer, the token shards), with a
/// spinner.
pub(crate) fn prepare_data(
    global: &Global,
    config: &ExperimentConfig,
    quiet: bool,
) -> Result<ExperimentData> {
    let wait = spinner(
        quiet,
        "preparing the data: scanning sources, tokenizer, token shards",
    );
    let data = ponder_data::build::build(
        &config.data,
        &config.run.cache_dir,
        config.model.vocab_size,
        &crate::data::hints(global),
    )
    .context("preparing the data")?;
    wait.finish_and_clear();
    Ok(data)
}

fn options(a: &TrainArgs) -> OpenOptions {
    OpenOptions {
        resume: a.resume,
        skip_finished: a.skip_finished,
    }
}

/// Opens `folder` for `stage` (`None` when it is finished and skipped), prepares the data,
/// records its manifests, and checks that the tokenizer is the one `fast.backbone` was trained
/// with: what every stage on a frozen backbone starts with.
fn open_on_backbone(
    global: &Global,
    config: &ExperimentConfig,
    folder: &RunFolder,
    stage: Stage,
    a: &TrainArgs,
) -> Result<Option<(RunDir, ExperimentData)>> {
    let Some(run) = open_stage(folder, config, stage, options(a))? else {
        return Ok(None);
    };
    let data = prepare_data(global, config, a.quiet)?;
    run.record_data(&data.manifests)?;
    let backbone = &config.fast()?.backbone;
    crate::resolve::check_same_tokenizer(
        backbone,
        &data.tokenizer,
        data.tokenizer_path.as_deref(),
    )?;
    Ok(Some((run, data)))
}

/// Runs a `ponder train` subcommand.
pub fn run(global: &Global, cmd: &TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Fast(a) => {
            let config = ExperimentConfig::load(&a.config, &a.overrides)?;
            let fast = config.fast()?;
            let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)
                .with_context(|| format!("loading the backbone {}", fast.backbone))?
                .model;
            let folder = Layout::fast_of(&config)?;
            let Some((run, data)) = open_on_backbone(global, &config, &folder, Stage::Fast, a)?
            else {
                return Ok(());
            };
            let report = train_fast(&config, &backbone, &data, &run, !a.quiet)?;
            println!(
                "fast layer {} (k = {}): validation SKIP {:.4} -> UPDATE {:.4} nats/token over {} steps ({} cached backbone passes); checkpoint in {}",
                fast.layer,
                fast.k,
                report.val_skip_loss,
                report.val_update_loss,
                report.steps_run,
                report.cache_hits,
                folder.fast_layer().display()
            );
            Ok(())
        }
        TrainCommand::Gate(a) => {
            let config = ExperimentConfig::load(&a.config, &a.overrides)?;
            let policy = config.policy()?;
            let fast = config.fast()?;
            let fast_folder = Layout::fast_of(&config)?;
            let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)
                .with_context(|| format!("loading the backbone {}", fast.backbone))?
                .model;
            let lm = crate::resolve::fast_layer(&fast_folder.fast_layer(), &backbone)?;
            let folder = fast_folder.policy_run();
            let Some((run, data)) = open_on_backbone(global, &config, &folder, Stage::Policy, a)?
            else {
                return Ok(());
            };
            let report = train_policy(&config, &lm, &data, &run, !a.quiet)?;
            let ponder_eval::learned::Correction { beta, cost, loss } = report.correction;
            println!(
                "learned gate: {} iterations over {} training streams at {:.1} chunks/s; budget \
                 correction {beta:.4} with gain {} gives a mean cost of {cost:.3} (budget {}) and a \
                 loss of {loss:.4} on {} validation streams; gate in {}",
                report.iterations_run,
                report.streams.0,
                report.chunks_per_s,
                report.gain,
                policy.budget,
                report.streams.1,
                folder.learned_policy().display()
            );
            Ok(())
        }
        TrainCommand::Backbone(a) => {
            let config = ExperimentConfig::load(&a.config, &a.overrides)?;
            config.backbone()?;
            // The device first: an unusable --device must fail before the run folder exists.
            let device = crate::resolve::device(global.device)?;
            let folder = Layout::of(&config).backbone();
            let Some(run) = open_stage(&folder, &config, Stage::Backbone, options(a))? else {
                return Ok(());
            };
            let data = prepare_data(global, &config, a.quiet)?;
            run.record_data(&data.manifests)?;
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
                folder.model().display()
            );
            Ok(())
        }
    }
}
