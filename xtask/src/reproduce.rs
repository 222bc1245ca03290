//! `cargo xtask reproduce`: the paper's experiment, phase by phase, through the `ponder`
//! binary (built first, then run as a process). Finished phases are skipped, so a rerun only
//! does what is missing; an interrupted phase continues with `--resume`. `--emit slurm` writes
//! Slurm job arrays instead of running anything.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// The phases, in order.
pub const PHASES: &[&str] = &[
    "data",
    "backbone",
    "fast",
    "eval-id",
    "eval-ood",
    "latency",
    "ablations",
    "report",
];

/// Out-of-distribution sources and their languages (the original's JavaScript, Java and Go).
pub const OOD: &[(&str, &str)] = &[
    ("npm-global", "javascript"),
    ("jdk-src", "java"),
    ("go-src", "go"),
];

/// What to reproduce.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// `tiny`, `small`, `medium`, `large` or `xl`.
    pub size: String,
    /// Phases to run, in order.
    pub phases: Vec<String>,
    /// Continue interrupted phases.
    pub resume: bool,
    /// Write Slurm scripts instead of running.
    pub emit_slurm: bool,
    /// `--set` overrides passed to every `ponder` command that reads the config.
    pub overrides: Vec<String>,
}

/// Parses the arguments after `reproduce`.
pub fn parse(args: &[&str]) -> Result<Plan> {
    let mut plan = Plan {
        size: "tiny".into(),
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        resume: false,
        emit_slurm: false,
        overrides: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        match a {
            "--tiny" | "--small" | "--medium" | "--large" | "--xl" => {
                plan.size = a.trim_start_matches("--").into()
            }
            "--resume" => plan.resume = true,
            "--phases" => {
                let list = it.next().context("--phases needs a comma-separated list")?;
                plan.phases = list.split(',').map(|p| p.trim().to_string()).collect();
                for p in &plan.phases {
                    if !PHASES.contains(&p.as_str()) {
                        bail!("unknown phase {p:?}; the phases are {}", PHASES.join(", "));
                    }
                }
            }
            "--emit" => match it.next() {
                Some(&"slurm") => plan.emit_slurm = true,
                other => bail!("--emit takes `slurm`, got {other:?}"),
            },
            "--set" => plan
                .overrides
                .push(it.next().context("--set needs KEY=VALUE")?.to_string()),
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask reproduce [--tiny|--small|--medium|--large|--xl] [--phases {}] [--resume] [--emit slurm] [--set KEY=VALUE]",
                PHASES.join(",")
            ),
        }
    }
    if plan.size != "tiny" && plan.phases.iter().any(|p| p == "backbone") {
        // The GPT-2 presets load OpenAI's weights; only the embedded default trains its own.
        plan.phases.retain(|p| p != "backbone");
    }
    Ok(plan)
}

/// The config's `run.out_dir` and `data.language`, read from its TOML text.
pub fn config_facts(text: &str) -> Result<(PathBuf, String)> {
    let value: serde_json::Value = toml_to_json(text)?;
    let out = value["run"]["out_dir"]
        .as_str()
        .context("the config has no run.out_dir")?;
    let lang = value["data"]["language"]
        .as_str()
        .context("the config has no data.language")?;
    Ok((PathBuf::from(out), lang.to_string()))
}

/// The two keys `config_facts` needs, found line by line in their sections (xtask has no TOML
/// parser; the configs write these as `key = "value"`).
fn toml_to_json(text: &str) -> Result<serde_json::Value> {
    let mut out = serde_json::json!({"run": {}, "data": {}});
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim(), v.trim());
            if (section == "run" && k == "out_dir") || (section == "data" && k == "language") {
                let v = v.trim_matches('"').to_string();
                out[section.as_str()][k] = serde_json::Value::String(v);
            }
        }
    }
    Ok(out)
}

/// Whether a JSON Lines metrics file ends with a `done` record.
pub fn is_done(metrics: &Path) -> bool {
    std::fs::read_to_string(metrics)
        .ok()
        .and_then(|t| t.lines().last().map(|l| l.contains("\"done\":true")))
        .unwrap_or(false)
}

/// One `ponder` invocation of a phase, with the file that marks it finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The phase.
    pub phase: String,
    /// What it is for (shown in the log).
    pub label: String,
    /// Arguments of `ponder`.
    pub args: Vec<String>,
    /// Marks the step finished when present (for metrics files: when it ends with `done`).
    pub done_marker: Option<PathBuf>,
    /// The run folder it writes, which `--resume` continues.
    pub resumable: Option<PathBuf>,
    /// An optional step (an OOD language whose source is missing is skipped, not an error).
    pub optional: bool,
}

/// The steps of `plan`.
pub fn steps(plan: &Plan, config: &Path, out: &Path, language: &str) -> Vec<Step> {
    let cfg = config.display().to_string();
    let with_config = |cmd: &[&str], extra: &[String]| -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend(["--config".into(), cfg.clone()]);
        for o in &plan.overrides {
            a.extend(["--set".into(), o.clone()]);
        }
        a.extend(extra.iter().cloned());
        a
    };
    let compare = |name: &str, extra: &[String], optional: bool| Step {
        phase: String::new(),
        label: format!("compare {name}"),
        args: with_config(&["compare"], extra),
        done_marker: Some(out.join("eval").join(name).join("summary.json")),
        resumable: Some(out.join("eval").join(name)),
        optional,
    };
    let mut v = Vec::new();
    for phase in &plan.phases {
        let mut add = |mut s: Step| {
            s.phase = phase.clone();
            v.push(s);
        };
        match phase.as_str() {
            "data" => add(Step {
                phase: String::new(),
                label: "code sources on this machine".into(),
                args: vec!["data".into(), "sources".into()],
                done_marker: None,
                resumable: None,
                optional: false,
            }),
            "backbone" => add(Step {
                phase: String::new(),
                label: "backbone from scratch".into(),
                args: with_config(&["train", "backbone"], &[]),
                done_marker: Some(out.join("metrics.jsonl")),
                resumable: Some(out.to_path_buf()),
                optional: false,
            }),
            "fast" => add(Step {
                phase: String::new(),
                label: "fast layer UPDATE_1".into(),
                args: with_config(&["train", "fast"], &[]),
                done_marker: Some(out.join("fast-k1").join("metrics.jsonl")),
                resumable: Some(out.join("fast-k1")),
                optional: false,
            }),
            "eval-id" => add(compare(language, &[], false)),
            "eval-ood" => {
                for (source, lang) in OOD {
                    let mut extra = vec![
                        "--source".into(),
                        source.to_string(),
                        "--language".into(),
                        lang.to_string(),
                    ];
                    if plan.size == "small" || plan.size == "medium" {
                        // The original evaluates 500 batches out of distribution at these sizes.
                        extra.extend(["--set".into(), "eval.max_batches=500".into()]);
                    }
                    add(compare(lang, &extra, true));
                }
            }
            "latency" => {
                let mut extra = vec![
                    "--out".into(),
                    out.join("latency.json").display().to_string(),
                ];
                if plan.size == "tiny" {
                    extra.extend(["--random".into(), "gpt2".into()]);
                }
                add(Step {
                    phase: String::new(),
                    label: "latency per chunk".into(),
                    args: with_config(&["bench"], &extra),
                    done_marker: Some(out.join("latency.json")),
                    resumable: None,
                    optional: false,
                });
            }
            "ablations" => {
                add(compare(
                    &format!("{language}-shuffled"),
                    &["--shuffle".into()],
                    false,
                ));
                add(compare(
                    &format!("{language}-diagonal-1"),
                    &["--causal-k".into(), "-1".into()],
                    false,
                ));
            }
            "report" => {
                let mut args = vec!["report".into(), "--run".into(), out.display().to_string()];
                if plan.size != "tiny" {
                    args.extend(["--paper".into(), plan.size.clone()]);
                }
                add(Step {
                    phase: String::new(),
                    label: "report.md".into(),
                    args,
                    done_marker: None,
                    resumable: None,
                    optional: false,
                });
            }
            _ => unreachable!("phases are checked in parse"),
        }
    }
    v
}

/// Whether `step` has already finished.
pub fn finished(step: &Step) -> bool {
    match &step.done_marker {
        Some(p) if p.extension().is_some_and(|e| e == "jsonl") => is_done(p),
        Some(p) => p.is_file(),
        None => false,
    }
}

/// A 64-bit FNV-1a digest of the config text and the step's arguments, in hex: what a finished
/// step was made from.
pub fn fingerprint(config_text: &str, step: &Step) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in config_text
        .bytes()
        .chain(step.args.join("\u{1f}").into_bytes())
    {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `text` without its `[eval]` table, which training steps do not read.
pub fn without_eval(text: &str) -> String {
    let mut keep = true;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            keep = t != "[eval]" && !t.starts_with("[eval.");
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The fingerprints of finished steps, kept in `<out>/reproduce-state.json`.
fn read_state(path: &Path) -> serde_json::Map<String, serde_json::Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Runs the plan from the workspace `root`.
pub fn run(root: &Path, plan: &Plan) -> Result<()> {
    let config = PathBuf::from("configs").join(format!("{}.toml", plan.size));
    let text = std::fs::read_to_string(root.join(&config))
        .with_context(|| format!("reading {}", config.display()))?;
    let (out, language) = config_facts(&text)?;
    let steps = steps(plan, &config, &out, &language);
    if plan.emit_slurm {
        return crate::slurm::emit(root, plan, &out, &steps);
    }
    let status = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "-p", "ponder-cli"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building ponder failed");
    }
    let ponder = root.join("target/release/ponder");
    let state_path = root.join(&out).join("reproduce-state.json");
    let mut state = read_state(&state_path);
    let start = Instant::now();
    for step in &steps {
        let training = step.phase == "backbone" || step.phase == "fast";
        let fp = if training {
            fingerprint(&without_eval(&text), step)
        } else {
            fingerprint(&text, step)
        };
        if finished(step) {
            match state.get(&step.label).and_then(|v| v.as_str()) {
                Some(old) if old != fp => bail!(
                    "[{}] {} finished earlier with a different config or arguments; delete {} to redo it",
                    step.phase,
                    step.label,
                    step.resumable
                        .as_deref()
                        .or(step.done_marker.as_deref())
                        .unwrap_or(Path::new("its output"))
                        .display()
                ),
                _ => println!("[{}] {}: finished earlier, skipped", step.phase, step.label),
            }
            continue;
        }
        let mut args = step.args.clone();
        if plan.resume
            && step
                .resumable
                .as_ref()
                .is_some_and(|d| d.join("config.toml").is_file())
        {
            args.push("--resume".into());
        }
        println!("[{}] {}: ponder {}", step.phase, step.label, args.join(" "));
        let t = Instant::now();
        let output = Command::new(&ponder)
            .current_dir(root)
            .args(&args)
            // Optional steps capture stderr to recognise a missing source; the others show
            // their progress bars.
            .stderr(if step.optional {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::inherit()
            })
            .spawn()
            .and_then(|c| c.wait_with_output())
            .with_context(|| format!("running {}", ponder.display()))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            if step.optional && stderr.contains("not found on this machine") {
                println!("[{}] {}: skipped, source not on this machine (`cargo xtask data --yes` installs it)", step.phase, step.label);
                continue;
            }
            eprint!("{stderr}");
            bail!("phase {} ({}) failed", step.phase, step.label);
        }
        println!(
            "[{}] {}: done in {:.0} s",
            step.phase,
            step.label,
            t.elapsed().as_secs_f64()
        );
        if step.done_marker.is_some() {
            state.insert(step.label.clone(), serde_json::Value::String(fp));
            if let Some(dir) = state_path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = state_path.with_extension("tmp");
            std::fs::write(&tmp, serde_json::to_string_pretty(&state)? + "\n")?;
            std::fs::rename(&tmp, &state_path)?;
        }
    }
    println!(
        "reproduce --{}: finished in {:.1} min; report in {}",
        plan.size,
        start.elapsed().as_secs_f64() / 60.0,
        out.join("report.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_phases() {
        let plan = parse(&["--small", "--phases", "fast,report", "--resume"]).unwrap();
        assert_eq!(plan.size, "small");
        assert_eq!(plan.phases, vec!["fast", "report"]);
        assert!(plan.resume);
        let e = parse(&["--phases", "fast,dance"]).unwrap_err().to_string();
        assert!(e.contains("unknown phase \"dance\""), "{e}");
        assert!(parse(&["--gigantic"]).is_err());
        // The GPT-2 presets never train a backbone.
        assert!(!parse(&["--xl"])
            .unwrap()
            .phases
            .contains(&"backbone".to_string()));
    }

    #[test]
    fn reads_out_dir_and_language() {
        let text = "[run]\nseed = 0\nout_dir = \"runs/tiny\"\n[data]\nlanguage = \"python\"\n";
        let (out, lang) = config_facts(text).unwrap();
        assert_eq!((out, lang.as_str()), (PathBuf::from("runs/tiny"), "python"));
    }

    #[test]
    fn eval_changes_leave_training_fingerprints_alone() {
        let a = "[run]\nseed = 0\n[eval]\nbudget = 0.5\n[fast.ttt]\nx = 1\n";
        let b = "[run]\nseed = 0\n[eval]\nbudget = 0.3\n[fast.ttt]\nx = 1\n";
        assert_eq!(without_eval(a), without_eval(b));
        assert!(without_eval(a).contains("[fast.ttt]"));
        let plan = parse(&["--tiny"]).unwrap();
        let all = steps(
            &plan,
            Path::new("configs/tiny.toml"),
            Path::new("runs/tiny"),
            "python",
        );
        assert_ne!(fingerprint(a, &all[1]), fingerprint(b, &all[1]));
        assert_eq!(
            all.iter().map(|s| s.phase.as_str()).collect::<Vec<_>>(),
            vec![
                "data",
                "backbone",
                "fast",
                "eval-id",
                "eval-ood",
                "eval-ood",
                "eval-ood",
                "latency",
                "ablations",
                "ablations",
                "report"
            ]
        );
    }
}
