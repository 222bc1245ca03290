//! `ponder codegen --canonical-loss`: every method's loss of the benchmark's own solutions given
//! their prompts ([`ponder_eval::canonical`]), printed and written to `canonical_loss.json`.

#![allow(clippy::print_stdout)]

use anyhow::{bail, Context, Result};
use ponder_codegen::Problem;
use ponder_eval::canonical::{canonical_losses, Choosers, ScoredText};
use ponder_experiment::run_dir::{write_atomic, write_json};

use crate::args::{CodegenArgs, Global};
use crate::codegen::{decoder_and_methods, Resolved};
use crate::train::progress;

/// `--canonical-loss`: every method's loss of the benchmark's solutions given their prompts.
pub(crate) fn run(
    global: &Global,
    args: &CodegenArgs,
    resolved: &Resolved,
    problems: &[Problem],
) -> Result<()> {
    let (mut decoder, methods) = decoder_and_methods(global, args, resolved)?;
    if decoder.fast().is_none() {
        bail!("--canonical-loss needs a trained fast layer (--fast, or the config's)");
    }
    let choosers = Choosers {
        selected: decoder.selected().cloned(),
        learned: decoder.take_learned(),
    };
    let (lm, chunk_len) = decoder.fast().expect("checked above");
    let tokenizer = decoder.tokenizer();
    let texts = problems
        .iter()
        .map(|p| {
            let mut ids = tokenizer.encode(&p.prompt)?;
            let solution_start = ids.len();
            ids.extend(tokenizer.encode(&p.canonical_solution)?);
            Ok(ScoredText {
                id: p.task_id.clone(),
                ids,
                solution_start,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let resampling = resolved
        .resampling
        .expect("--canonical-loss requires --config");
    let bar = progress(
        args.quiet,
        "scoring",
        (problems.len() * methods.len()) as u64,
        "problems",
    );
    let table = canonical_losses(
        lm,
        &texts,
        chunk_len,
        &methods,
        choosers,
        decoder.budget(),
        resampling,
        || bar.inc(1),
    )?;
    bar.finish_and_clear();
    let folder = &resolved.out;
    std::fs::create_dir_all(folder.path())
        .with_context(|| format!("creating {}", folder.path().display()))?;
    write_json(&folder.canonical_loss(), &table)?;
    write_atomic(&folder.git_rev(), crate::train::git_rev().as_bytes())?;
    println!(
        "{} solutions given their prompts, chunks of {chunk_len} tokens, budget {}:",
        args.bench, table.budget
    );
    println!(
        "{:<12} {:>8} {:>20} {:>8} {:>9} {:>6}",
        "method", "loss", "95% interval", "tokens", "updates", "cost"
    );
    for m in &table.methods {
        println!(
            "{:<12} {:>8.4} {:>20} {:>8} {:>9} {:>6.2}",
            m.method,
            m.loss.point,
            format!("[{:.4}, {:.4}]", m.loss.lo, m.loss.hi),
            m.tokens,
            format!("{}/{}", m.updates, m.chunks),
            m.cost
        );
    }
    for d in &table.differences {
        println!(
            "{} − {}: {:+.4} [{:+.4}, {:+.4}]",
            d.a, d.b, d.difference.point, d.difference.lo, d.difference.hi
        );
    }
    println!("wrote {}", folder.canonical_loss().display());
    Ok(())
}
