//! `ponder report` and `ponder bench`: the experiment's report, and the latency table it shows.

use anyhow::{Context, Result};
use candle::DType;
use ponder_eval::latency::{measure, Latency};
use ponder_eval::report::{write_report, ReportSpec};
use ponder_model::{FastLayer, FastNorm, PonderLm, TttConfig, TttParams};
use ponder_train::TrainConfig;

use crate::args::{BenchArgs, Global, ReportArgs};

fn read_trimmed(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs `ponder report`.
pub fn report(a: &ReportArgs) -> Result<()> {
    let root = &a.run;
    let config_path = root.join("config.toml");
    let config: toml::Table = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?
        .parse()
        .with_context(|| format!("parsing {}", config_path.display()))?;
    let language = config
        .get("data")
        .and_then(|d| d.get("language"))
        .and_then(|l| l.as_str())
        .with_context(|| format!("{}: no data.language", config_path.display()))?
        .to_string();
    let paper = match a.paper.as_deref() {
        None => None,
        Some(size) => Some(
            ponder_eval::paper::paper(size)
                .with_context(|| format!("--paper {size}: expected small, medium, large or xl"))?,
        ),
    };
    let mut provenance = vec![format!(
        "Experiment folder `{}`: resolved config `config.toml`, seed {}, git revision {}.",
        root.display(),
        read_trimmed(&root.join("seed")),
        read_trimmed(&root.join("git_rev"))
    )];
    for run in ponder_eval::report::eval_runs(root)? {
        provenance.push(format!(
            "Evaluation `{}`: seed {}, git revision {}, data manifest and config in its folder.",
            run.name,
            read_trimmed(&run.dir.join("seed")),
            read_trimmed(&run.dir.join("git_rev"))
        ));
    }
    let path = write_report(&ReportSpec {
        root,
        language: &language,
        paper,
        provenance,
    })?;
    println!("report in {}", path.display());
    Ok(())
}

/// A random fast layer of the original's shape for `backbone` (latency only).
fn random_lm(backbone: &ponder_gpt2::Gpt2, seed: u64) -> Result<PonderLm> {
    let c = backbone.config();
    let ttt = TttConfig::for_gpt2(c.n_embd, c.n_head);
    let device = backbone.device().clone();
    let params = TttParams::init(&ttt, seed, DType::F32, &device)?;
    let fast = FastLayer::TttLinear {
        config: ttt,
        params,
    };
    Ok(PonderLm::new(
        backbone,
        FastNorm::init(c.n_embd, DType::F32, &device)?,
        fast,
    )?)
}

/// Runs `ponder bench`.
pub fn bench(global: &Global, a: &BenchArgs) -> Result<()> {
    let mut rows: Vec<Latency> = Vec::new();
    if let Some(path) = &a.config {
        let config = TrainConfig::load(path, &a.overrides)?;
        let fast = config
            .fast
            .as_ref()
            .context("the config has no [fast] section")?;
        let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)?.model;
        let dir = config
            .run
            .out_dir
            .join(format!("fast-k{}", fast.k))
            .join("fast_layer");
        let lm = ponder_model::checkpoint::load(&dir, &backbone)
            .with_context(|| format!("loading the fast layer from {}", dir.display()))?;
        let label = format!("{} (trained)", config.run.out_dir.display());
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
        println!(
            "{}: {} x {} tokens: SKIP {:.1} ms, UPDATE_1 {:.1} ms ({:.3}x), signal {:.1}% of SKIP, comparison {:.3}x UPDATE",
            l.label,
            l.rows,
            l.tokens,
            1e3 * l.skip_s,
            1e3 * l.update_s,
            l.update_over_skip(),
            100.0 * l.signal_over_skip(),
            l.compare_over_update()
        );
    }
    if let Some(out) = &a.out {
        ponder_eval::run::write_json(out, &rows)?;
        println!("latency table in {}", out.display());
    }
    Ok(())
}
