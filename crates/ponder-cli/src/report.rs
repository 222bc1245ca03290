//! `ponder report` and `ponder bench`: the report of a config's trained fast layer, and the
//! latency table it shows.

use anyhow::{Context, Result};
use candle::DType;
use ponder_eval::latency::{measure, Latency};
use ponder_eval::report::{eval_runs, write_report, ReportSpec};
use ponder_experiment::records::Done;
use ponder_experiment::run_dir::write_json;
use ponder_experiment::{ExperimentConfig, Layout, OpenOptions, RunFolder, Stage, StateMode};
use ponder_model::{FastLayer, FastLayerKind, FastNorm, PonderLm, TttConfig};

use crate::args::{BenchArgs, Global, ReportArgs};

fn read_trimmed(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs `ponder report`.
pub fn report(a: &ReportArgs) -> Result<()> {
    let config = ExperimentConfig::load(&a.config, &a.overrides)?;
    let layout = Layout::of(&config);
    let fast = Layout::fast_of(&config)?;
    let paper = match a.paper.as_deref() {
        None => None,
        Some(size) => Some(
            ponder_eval::paper::paper(size)
                .with_context(|| format!("--paper {size}: expected small, medium, large or xl"))?,
        ),
    };
    let mut provenance = Vec::new();
    for (what, folder) in [
        ("Backbone", layout.backbone()),
        ("Fast layer", fast.clone()),
    ] {
        if folder.config().is_file() {
            provenance.push(format!(
                "{what} run `{}`: resolved config `config.toml`, seed {}, git revision {}.",
                folder.path().display(),
                read_trimmed(&folder.seed()),
                read_trimmed(&folder.git_rev())
            ));
        }
    }
    for run in eval_runs(&fast)? {
        provenance.push(format!(
            "Evaluation `{}`: seed {}, git revision {}, data manifest and config in its folder.",
            run.name,
            read_trimmed(&run.folder.seed()),
            read_trimmed(&run.folder.git_rev())
        ));
    }
    // The same layer trained in stream mode, when the reported one was trained in reset mode.
    let mut streamed = config.fast()?.clone();
    streamed.mode = StateMode::Stream;
    let stream_trained = layout.fast(&streamed);
    let stream_trained = (stream_trained.path() != fast.path()
        && stream_trained.fast_layer().is_dir())
    .then_some(stream_trained);
    let path = write_report(&ReportSpec {
        layout: &layout,
        fast: &fast,
        language: &config.data.language,
        paper,
        provenance,
        stream_trained: stream_trained.as_ref(),
    })?;
    println!("report in {}", path.display());
    Ok(())
}

/// A random TTT-Linear fast layer of the original's shape for `backbone` (latency only).
fn random_lm(backbone: &ponder_gpt2::Gpt2, seed: u64) -> Result<PonderLm> {
    let c = backbone.config();
    let ttt = TttConfig::for_gpt2(c.n_embd, c.n_head);
    let device = backbone.device().clone();
    let fast = FastLayer::init(
        FastLayerKind::TttLinear,
        Some(&ttt),
        None,
        seed,
        DType::F32,
        &device,
    )?;
    Ok(PonderLm::new(
        backbone,
        FastNorm::init(c.n_embd, DType::F32, &device)?,
        fast,
    )?)
}

/// Runs `ponder bench`.
pub fn bench(global: &Global, a: &BenchArgs) -> Result<()> {
    let mut rows: Vec<Latency> = Vec::new();
    let mut out = a.out.clone();
    let mut run = None;
    if let Some(path) = &a.config {
        let config = ExperimentConfig::load(path, &a.overrides)?;
        let fast = config.fast()?;
        let fast_run = Layout::fast_of(&config)?;
        if out.is_none() {
            let folder: RunFolder = fast_run.latency_run();
            let options = OpenOptions {
                resume: a.resume,
                skip_finished: a.skip_finished,
            };
            let Some(opened) = crate::train::open_stage(&folder, &config, Stage::Eval, options)?
            else {
                return Ok(());
            };
            out = Some(folder.latency());
            run = Some(opened);
        }
        let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)?.model;
        let dir = fast_run.fast_layer();
        let lm = crate::resolve::fast_layer(&dir, &backbone)?;
        let label = format!("{} (trained)", fast_run.path().display());
        eprintln!("measuring {label}");
        rows.push(measure(
            &lm,
            &label,
            a.batch,
            fast.chunk_len,
            a.reps,
            config.run.seed,
            backbone.device(),
        )?);
    }
    for preset in &a.random {
        let backbone = crate::resolve::model(global, &format!("random:{preset}"), 0)?.model;
        let lm = random_lm(&backbone, 0)?;
        let label = format!("{preset} (random weights)");
        eprintln!("measuring {label}");
        rows.push(measure(
            &lm,
            &label,
            a.batch,
            a.tokens,
            a.reps,
            0,
            backbone.device(),
        )?);
    }
    anyhow::ensure!(
        !rows.is_empty(),
        "nothing to measure: pass --config and/or --random PRESET"
    );
    for l in &rows {
        println!("{l}");
    }
    if let Some(out) = &out {
        write_json(out, &rows)?;
        println!("latency table in {}", out.display());
    }
    if let Some(run) = run {
        run.finish(Done::empty())?;
    }
    Ok(())
}
