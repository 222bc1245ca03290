//! `ponder compare`: every gating method on one evaluation stream, from one model pass.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ponder_eval::output::{cost_report, write_outputs};
use ponder_eval::{chunk_batches, CompareConfig};
use ponder_model::{FastLayer, PonderLm};
use ponder_train::{RunDir, TrainConfig};

use crate::args::{CompareArgs, Global};

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

/// The name of the evaluation: its language, then the ablations.
fn eval_name(a: &CompareArgs, language: &str) -> String {
    let mut name = language.to_string();
    if a.shuffle {
        name.push_str("-shuffled");
    }
    if let Some(k) = a.causal_k {
        name.push_str(&format!("-diagonal{k}"));
    }
    name
}

/// `lm` with the TTT layer's `causal_k` replaced (the diagonal ablation).
fn with_causal_k(lm: PonderLm, k: i64) -> Result<PonderLm> {
    let fast = match lm.fast_layer().clone() {
        FastLayer::TttLinear { mut config, params } => {
            config.causal_k = k;
            config.validate()?;
            FastLayer::TttLinear { config, params }
        }
        FastLayer::Lora { .. } => bail!("--causal-k applies to TTT fast layers, not LoRA"),
    };
    Ok(PonderLm::new(
        lm.backbone_model(),
        lm.fast_norm().clone(),
        fast,
    )?)
}

/// Runs `ponder compare`.
pub fn run(global: &Global, a: &CompareArgs) -> Result<()> {
    let config = TrainConfig::load(&a.config, &overrides(a))?;
    let table = config
        .eval
        .as_ref()
        .context("the config has no [eval] section")?;
    let eval = CompareConfig::from_table(table)?;
    eval.validate()?;
    let fast = config
        .fast
        .as_ref()
        .context("the config has no [fast] section (the backbone and fast layer to evaluate)")?;
    let fast_dir = a.fast.clone().unwrap_or_else(|| {
        config
            .run
            .out_dir
            .join(format!("fast-k{}", fast.k))
            .join("fast_layer")
    });
    let (language, source) = match (&a.source, &a.language) {
        (Some(s), Some(l)) => (l.clone(), Some(s.clone())),
        (None, None) => (config.data.language.clone(), None),
        _ => bail!(
            "--source and --language go together (an out-of-distribution source and its language)"
        ),
    };
    let name = eval_name(a, &language);
    let out: PathBuf = a
        .out
        .clone()
        .unwrap_or_else(|| config.run.out_dir.join("eval").join(&name));
    let identity = format!(
        "{}\n# ponder compare\n# source = {:?}\n# language = {language:?}\n# fast = {:?}\n# shuffle = {}\n# causal_k = {:?}\n",
        config.to_toml(),
        source.as_deref().unwrap_or("test split of [data] sources"),
        fast_dir.display().to_string(),
        a.shuffle,
        a.causal_k
    );
    let run = RunDir::open(
        &out,
        &identity,
        eval.seed,
        &crate::train::git_rev(),
        a.resume,
    )?;

    let backbone = crate::resolve::model(global, &fast.backbone, config.run.seed)
        .with_context(|| format!("loading the backbone {}", fast.backbone))?
        .model;
    let mut lm = ponder_model::checkpoint::load(&fast_dir, &backbone).with_context(|| {
        format!(
            "loading the fast layer from {} (train it with `ponder train fast`)",
            fast_dir.display()
        )
    })?;
    if let Some(k) = a.causal_k {
        lm = with_causal_k(lm, k)?;
    }

    let wait = crate::train::spinner(a.quiet, "preparing the evaluation data");
    let hints = crate::data::hints(global);
    let data = ponder_train::data::build(&config, &hints).context("preparing the data")?;
    crate::resolve::check_same_tokenizer(
        &fast.backbone,
        &data.tokenizer,
        data.tokenizer_path.as_deref(),
    )?;
    let (stream, manifests) = match &source {
        None => (data.test.clone(), data.manifests.clone()),
        Some(s) => {
            let (stream, manifest) =
                ponder_train::data::full_stream(&config, &data.tokenizer, s, &language, &hints)
                    .with_context(|| format!("preparing {s}"))?;
            (stream, vec![manifest])
        }
    };
    wait.finish_and_clear();
    run.record_data(&manifests)?;
    let chunks = chunk_batches(&stream, &eval, a.shuffle.then_some(eval.seed))?;
    ponder_eval::compare::check_stream_length(&eval, chunks.len())?;

    let bar = crate::train::progress(a.quiet, "compare", chunks.len() as u64, "chunk-batches");
    let device = backbone.device().clone();
    let extra_steps = eval.extra_update_steps();
    let (records, times) = ponder_eval::records::evaluate(
        &lm,
        &chunks,
        &device,
        &run.path().join(ponder_eval::output::files::RECORDS),
        &extra_steps,
        |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let comparison = ponder_eval::compare::compare(&records, &eval)?;
    let flops = ponder_eval::flops::chunk_flops(&lm, eval.batch_size, eval.chunk_len, &extra_steps);
    let cost = cost_report(&comparison, flops, times);
    write_outputs(run.path(), &records, &comparison, &cost)?;

    println!(
        "{name}: {} chunk-batches, budget ρ = {}",
        records.len(),
        eval.budget
    );
    println!(
        "{:<16} {:>8} {:>9} {:>7} {:>9} {:>9}",
        "method", "loss", "ppl", "rate", "recovery", "accuracy"
    );
    for m in &comparison.summary.methods {
        println!(
            "{:<16} {:>8.4} {:>9.2} {:>6.1}% {:>9} {:>8.1}%",
            m.method,
            m.loss.point,
            m.perplexity,
            100.0 * m.update_rate,
            m.recovery
                .map(|r| format!("{:.1}%", 100.0 * r))
                .unwrap_or_else(|| "-".into()),
            100.0 * m.decision_accuracy
        );
    }
    if let Some(t) = &comparison.summary.mcnemar {
        println!(
            "McNemar ours vs random (agreement with the oracle): n10 = {}, n01 = {}, p = {:.3e} (exact), {:.3e} (chi2)",
            t.n10, t.n01, t.p_exact, t.p_chi2
        );
    }
    if let Some(c) = &comparison.correlations.recon {
        println!(
            "signal vs advantage: Pearson r = {:.3} (p = {:.2e}), Spearman = {:.3}",
            c.pearson, c.pearson_p, c.spearman
        );
    }
    if let Some(r) = cost.comparison_over_update {
        println!("the comparison pass cost {r:.3}x one UPDATE forward per chunk-batch (measured)");
    }
    println!("results in {}", run.path().display());
    Ok(())
}
