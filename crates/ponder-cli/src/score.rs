//! `ponder score`: the mean next-token loss and perplexity of source files, over strided windows
//! of the model's context, with a progress bar.

use anyhow::{bail, Context, Result};
use candle::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use ponder_data::windows::{score_windows, Window};

use crate::args::{Global, ScoreArgs};
use crate::resolve;

struct FileScore {
    tokens: usize,
    nll_sum: f64,
    n_scored: usize,
}

/// Scores every file and prints one line per file and a total.
pub fn run(global: &Global, args: &ScoreArgs) -> Result<()> {
    let loaded = resolve::model(global, &args.model, args.seed)?;
    let model = &loaded.model;
    let tokenizer = resolve::tokenizer(global, args.tokenizer.as_deref(), &args.model, model)?;
    let n_positions = model.config().n_positions;
    let context = args.context.unwrap_or(n_positions);
    if context > n_positions {
        bail!("--context {context} exceeds the model's n_positions {n_positions}");
    }
    let stride = args.stride.unwrap_or((context / 2).max(1));

    // Read and tokenize everything first, so that bad files fail before any model work.
    let mut inputs = Vec::new();
    for path in &args.files {
        let text = ponder_data::text::read_text(path)?;
        let ids = tokenizer
            .encode(&text)
            .with_context(|| format!("tokenizing {}", path.display()))?;
        if ids.len() < 2 {
            bail!(
                "{}: {} token(s), need at least 2 to score",
                path.display(),
                ids.len()
            );
        }
        let windows = score_windows(ids.len(), context, stride)?;
        inputs.push((path, ids, windows));
    }

    let n_windows: usize = inputs.iter().map(|(_, _, w)| w.len()).sum();
    let bar = ProgressBar::new(n_windows as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} scoring [{bar:30}] {pos}/{len} windows, {per_sec}, eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    println!(
        "{:<48} {:>9} {:>12} {:>12}",
        "file", "tokens", "nll/token", "perplexity"
    );
    let (mut total_nll, mut total_scored, mut total_tokens) = (0.0, 0usize, 0usize);
    for (path, ids, windows) in &inputs {
        let mut score = FileScore {
            tokens: ids.len(),
            nll_sum: 0.0,
            n_scored: 0,
        };
        for w in windows {
            score_window(model, ids, w, model.device(), &mut score)
                .with_context(|| format!("scoring {}", path.display()))?;
            bar.inc(1);
        }
        let mean = score.nll_sum / score.n_scored as f64;
        bar.suspend(|| {
            println!(
                "{:<48} {:>9} {:>12.4} {:>12.3}",
                path.display(),
                score.tokens,
                mean,
                mean.exp()
            )
        });
        total_nll += score.nll_sum;
        total_scored += score.n_scored;
        total_tokens += score.tokens;
    }
    bar.finish_and_clear();
    let mean = total_nll / total_scored as f64;
    println!(
        "{:<48} {:>9} {:>12.4} {:>12.3}",
        format!("total ({} files)", inputs.len()),
        total_tokens,
        mean,
        mean.exp()
    );
    Ok(())
}

fn score_window(
    model: &ponder_gpt2::Gpt2,
    ids: &[u32],
    w: &Window,
    device: &Device,
    score: &mut FileScore,
) -> Result<()> {
    let tokens = Tensor::from_slice(&ids[w.start..w.end], (1, w.end - w.start), device)?;
    let nll = model.token_nll(&tokens)?.squeeze(0)?; // (len − 1): prediction i targets start + 1 + i
    let nll = nll.narrow(0, w.score_from - w.start - 1, w.n_scored())?;
    let nll = nll.to_dtype(candle::DType::F64)?.to_vec1::<f64>()?;
    score.nll_sum += nll.iter().sum::<f64>();
    score.n_scored += nll.len();
    Ok(())
}
