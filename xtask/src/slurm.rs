//! `cargo xtask reproduce --emit slurm`: the plan's steps as Slurm job arrays, one array per
//! phase with one task per step (per language for the evaluations), chained so that each phase
//! starts after the previous one succeeded. Nothing runs locally.

#![allow(clippy::print_stdout)]

use std::fmt::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::reproduce::{Plan, Step};

/// Shell-quotes one argument.
fn quote(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The batch script of one phase: a job array over its steps.
pub fn phase_script(plan: &Plan, phase: &str, steps: &[&Step]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "#!/usr/bin/env bash");
    let _ = writeln!(s, "#SBATCH --job-name=ponder-{}-{phase}", plan.size);
    let _ = writeln!(s, "#SBATCH --array=0-{}", steps.len().saturating_sub(1));
    let _ = writeln!(s, "#SBATCH --output=slurm-%x-%a.out");
    let gpu = !matches!(phase, "data" | "report");
    if gpu {
        let _ = writeln!(s, "#SBATCH --gres=gpu:1");
    }
    let _ = writeln!(s, "set -euo pipefail");
    let _ = writeln!(
        s,
        "cd \"${{PONDER_ROOT:?set PONDER_ROOT to the ponder checkout}}\""
    );
    let _ = writeln!(s, "case \"$SLURM_ARRAY_TASK_ID\" in");
    for (i, step) in steps.iter().enumerate() {
        let mut args: Vec<String> = step.args.iter().map(|a| quote(a)).collect();
        if gpu {
            args.extend(["--device".into(), "cuda".into()]);
        }
        // An optional step (an out-of-distribution language whose source the cluster may lack)
        // must not fail the array, or every later phase would wait forever.
        let tail = if step.optional {
            " || echo \"skipped: ponder exited with $?\""
        } else {
            ""
        };
        if step.run_folder {
            // A requeued task continues its run folder; a finished one is left alone.
            let _ = writeln!(
                s,
                "  {i}) ./target/release/ponder {} --skip-finished --resume{tail} ;;",
                args.join(" ")
            );
        } else {
            let _ = writeln!(s, "  {i}) ./target/release/ponder {} ;;", args.join(" "));
        }
    }
    let _ = writeln!(s, "esac");
    s
}

/// Writes `target/slurm/<size>/<phase>.sbatch` for each phase and `submit.sh` chaining them.
pub fn emit(root: &Path, plan: &Plan, steps: &[Step]) -> Result<()> {
    let dir = root.join("target").join("slurm").join(&plan.size);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut submit = String::from(
        "#!/usr/bin/env bash\n# Submits the phases in order, each after the previous succeeded.\n# Build first: cargo build --release -p ponder-cli --features cuda\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\ndep=\n",
    );
    for phase in &plan.phases {
        let mine: Vec<&Step> = steps.iter().filter(|s| &s.phase == phase).collect();
        if mine.is_empty() {
            continue;
        }
        let file = format!("{phase}.sbatch");
        std::fs::write(dir.join(&file), phase_script(plan, phase, &mine))
            .with_context(|| format!("writing {}", dir.join(&file).display()))?;
        let _ = writeln!(
            submit,
            "jid=$(sbatch --parsable ${{dep:+--dependency=afterok:$dep}} {file})\necho \"{phase}: job $jid\"\ndep=$jid"
        );
    }
    let path = dir.join("submit.sh");
    std::fs::write(&path, submit).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "Slurm scripts in {}; submit with `PONDER_ROOT=$PWD bash {}`",
        dir.display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::{parse, steps, Preset};

    #[test]
    fn one_array_task_per_language() {
        let plan = parse(&["--small", "--phases", "eval-ood,report"]).unwrap();
        let preset = Preset::resolve(&crate::tidy::workspace_root(), "small", &[]).unwrap();
        let all = steps(&plan, &preset);
        let ood: Vec<&Step> = all.iter().filter(|s| s.phase == "eval-ood").collect();
        let script = phase_script(&plan, "eval-ood", &ood);
        assert!(script.contains("#SBATCH --array=0-2"), "{script}");
        assert!(script.contains("--source go-src --language go"), "{script}");
        assert!(script.contains("--device cuda"), "{script}");
        assert!(
            script.contains("--skip-finished --resume || echo"),
            "{script}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a-b"), "a-b");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
