//! The report's code-generation section: on HumanEval, each method's loss of the benchmark's
//! own solutions given their prompts (`canonical_loss.json`, with intervals over problems and
//! each method minus the first), and the executed samples' outcomes and pass@k
//! (`summary.json`), as `ponder codegen` wrote them into `<fast run>/codegen/humaneval/`.

use std::fmt::Write;

use ponder_codegen::{Bench, CodegenSummary};
use ponder_experiment::run_dir::read_json;
use ponder_experiment::RunFolder;

use crate::canonical::CanonicalTable;
use crate::error::Result;

/// Appends the section for the fast layer of `fast` (nothing when `ponder codegen` has not run).
pub(crate) fn codegen_section(s: &mut String, fast: &RunFolder) -> Result<()> {
    let folder = fast.codegen(Bench::HumanEval.name());
    let loss_path = folder.canonical_loss();
    let summary_path = folder.summary();
    if !loss_path.is_file() && !summary_path.is_file() {
        return Ok(());
    }
    s.push_str("## Code generation (HumanEval)\n\n");
    if loss_path.is_file() {
        let t: CanonicalTable = read_json(&loss_path)?;
        let m0 = &t.methods[0];
        let _ = writeln!(
            s,
            "The loss of each problem's reference solution given its prompt (nats per solution token, mean over {} problems with its 95% bootstrap interval), each problem one stream of chunks of {} tokens, gates at ρ = {}. {} solution tokens are predicted; {} more start a chunk and are predicted by no method.\n",
            m0.problems, t.chunk_len, t.budget, m0.tokens, m0.unpredicted
        );
        s.push_str("| method | loss | 95% interval | updates / chunks | cost per chunk |\n|---|---|---|---|---|\n");
        for m in &t.methods {
            let _ = writeln!(
                s,
                "| {} | {:.4} | [{:.4}, {:.4}] | {} / {} | {:.2} |",
                m.method, m.loss.point, m.loss.lo, m.loss.hi, m.updates, m.chunks, m.cost
            );
        }
        s.push('\n');
        for d in &t.differences {
            let _ = writeln!(
                s,
                "- {} − {}: {:+.4} [{:+.4}, {:+.4}] (paired over problems)",
                d.a, d.b, d.difference.point, d.difference.lo, d.difference.hi
            );
        }
        s.push('\n');
    }
    if summary_path.is_file() {
        let summary: CodegenSummary = read_json(&summary_path)?;
        let _ = writeln!(
            s,
            "Generated samples run against the tests ({} problems; {}; CPU limit {} s per sample):\n",
            summary.problems, summary.sandbox, summary.limits.cpu_seconds
        );
        // "context full": samples whose backbone window slid (prompt and completion outgrew
        // `n_positions`); the fast-layer methods read chunk by chunk and never slide.
        s.push_str("| method | samples per problem | passed | failed | timed out | crashed | pass@k | context full |\n|---|---|---|---|---|---|---|---|\n");
        for m in &summary.methods {
            let ks: Vec<String> = m
                .pass_at_k
                .iter()
                .map(|p| format!("pass@{} {:.3} ± {:.3}", p.k, p.estimate, p.standard_error))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                m.method,
                m.samples_per_problem,
                m.tally.passed,
                m.tally.failed,
                m.tally.timed_out,
                m.tally.crashed,
                ks.join(", "),
                m.slid_samples
            );
        }
        s.push('\n');
    }
    Ok(())
}
