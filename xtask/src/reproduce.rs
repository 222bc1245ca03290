//! `cargo xtask reproduce`: the paper's experiment, phase by phase, through the `ponder`
//! binary (built first, then run as a process). Every step runs with `--skip-finished`, so
//! `ponder` itself leaves alone a run folder that holds a finished run of the same config (and
//! refuses one made by another config): a rerun only does what is missing. An interrupted step
//! continues with `--resume`. `--device` picks where the model phases run (CPU by default).
//! `--emit slurm` writes Slurm job arrays instead of running anything, and `--submit` hands them
//! to `sbatch`. Where each run writes is `ponder`'s business (its layout), not this file's.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

pub use crate::phases::{steps, Step, STREAM_TRAINING};
pub use crate::runner::{build, run_step, Device, Launch};

/// The preset sizes: `configs/<size>.toml`.
pub const SIZES: &[&str] = &["tiny", "small", "medium", "large", "xl"];

/// The phases, in order.
pub const PHASES: &[&str] = &[
    "data",
    "backbone",
    "fast",
    "eval-validation",
    "eval-id",
    "eval-ood",
    "latency",
    "ablations",
    "gate",
    "eval-stream",
    "codegen",
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
    /// Where the model phases run, and whether as Slurm scripts.
    pub launch: Launch,
    /// `--set` overrides passed to every `ponder` command that reads the config.
    pub overrides: Vec<String>,
}

/// Parses the arguments after `reproduce`.
pub fn parse(args: &[&str]) -> Result<Plan> {
    let mut plan = Plan {
        size: "tiny".into(),
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        resume: false,
        launch: Launch::local(),
        overrides: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        if plan.launch.take(a, &mut it)? {
            continue;
        }
        match a {
            size if size.strip_prefix("--").is_some_and(|s| SIZES.contains(&s)) => {
                plan.size = size.trim_start_matches("--").into()
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
            "--set" => plan
                .overrides
                .push(it.next().context("--set needs KEY=VALUE")?.to_string()),
            other => bail!(
                "unknown argument {other:?}; usage: cargo xtask reproduce [--tiny|--small|--medium|--large|--xl] [--phases {}] [--resume] {} [--set KEY=VALUE]",
                PHASES.join(","),
                Launch::USAGE
            ),
        }
    }
    plan.launch.check()?;
    Ok(plan)
}

/// What the xtask needs to know of a preset: read with the `toml` crate.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    /// The config file, relative to the workspace root.
    pub path: PathBuf,
    /// Whether it trains its own backbone (a `[backbone]` section).
    pub trains_backbone: bool,
    /// Its fast layer (`fast.layer`, after the overrides).
    pub layer: String,
    /// Whether it is a layer variant of the size's preset (which then sets `fast.layer` itself).
    pub variant: bool,
    /// The size's stream-mode preset, `configs/<size>-stream.toml` (the same experiment with a
    /// stream-mode `[eval]`), when it exists and the preset is not a layer variant.
    pub stream: Option<PathBuf>,
}

impl Preset {
    /// Reads `configs/<size>.toml` under `root`. When `overrides` set `fast.layer` to a layer
    /// other than the preset's and the preset has a variant for it, `configs/<size>-<layer>.toml`
    /// (whose `[fast]` holds that layer's own section, as LoRA needs), that variant; otherwise the
    /// preset, with the override passed on to `ponder` (TTT-MLP reads the same `[fast.ttt]`).
    pub fn resolve(root: &Path, size: &str, overrides: &[String]) -> Result<Self> {
        Self::resolve_file(
            root,
            &PathBuf::from("configs").join(format!("{size}.toml")),
            overrides,
        )
    }

    /// [`Preset::resolve`] for any config file `path` (relative to `root`): its stream-mode
    /// preset and layer variants are the files beside it named `<stem>-stream.toml` and
    /// `<stem>-<layer>.toml`.
    pub fn resolve_file(root: &Path, path: &Path, overrides: &[String]) -> Result<Self> {
        let mut base = Self::read(root, path)?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("{}: not a config file name", path.display()))?;
        let sibling = |suffix: &str| path.with_file_name(format!("{stem}-{suffix}.toml"));
        let stream = sibling("stream");
        base.stream = root.join(&stream).is_file().then_some(stream);
        let wanted = overrides
            .iter()
            .filter_map(|o| o.strip_prefix("fast.layer="))
            .map(|v| v.trim().trim_matches('"').to_string())
            .next_back();
        match wanted {
            Some(layer) if layer != base.layer => {
                let path = sibling(&layer);
                if root.join(&path).is_file() {
                    Ok(Self {
                        variant: true,
                        stream: None,
                        ..Self::read(root, &path)?
                    })
                } else {
                    Ok(Self { layer, ..base })
                }
            }
            _ => Ok(base),
        }
    }

    fn read(root: &Path, path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(root.join(path))
            .with_context(|| format!("reading {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("parsing {}", path.display()))?;
        let layer = table
            .get("fast")
            .and_then(|f| f.get("layer"))
            .and_then(|l| l.as_str())
            .with_context(|| format!("{}: no fast.layer", path.display()))?
            .to_string();
        Ok(Self {
            path: path.to_path_buf(),
            trains_backbone: table.contains_key("backbone"),
            layer,
            variant: false,
            stream: None,
        })
    }
}

/// Runs the plan from the workspace `root`.
pub fn run(root: &Path, plan: &Plan) -> Result<()> {
    let preset = Preset::resolve(root, &plan.size, &plan.overrides)?;
    let steps = steps(plan, &preset);
    for phase in ["gate", "eval-stream"] {
        if preset.stream.is_none() && plan.phases.iter().any(|p| p == phase) {
            println!(
                "[{phase}] no stream-mode preset for {} (configs/{}-stream.toml): skipped",
                preset.path.display(),
                plan.size
            );
        }
    }
    if plan.launch.emit_slurm {
        let phases = crate::slurm::by_phase(&plan.phases, &steps);
        return crate::slurm::emit_plan(root, &plan.size, &plan.size, &phases, plan.launch);
    }
    let ponder = build(root, plan.launch.device)?;
    let start = Instant::now();
    for step in &steps {
        run_step(root, &ponder, step, plan.resume, None)?;
    }
    println!(
        "reproduce --{} ({}): finished in {:.1} min",
        plan.size,
        preset.path.display(),
        start.elapsed().as_secs_f64() / 60.0
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
        let e = parse(&["--submit"]).unwrap_err().to_string();
        assert!(e.contains("--submit goes with --emit slurm"), "{e}");
        let e = parse(&["--device", "tpu"]).unwrap_err().to_string();
        assert!(e.contains("cpu, cuda or metal"), "{e}");
    }

    #[test]
    fn the_device_goes_to_the_model_phases_only() {
        let root = crate::tidy::workspace_root();
        let plan = parse(&[
            "--small",
            "--device",
            "cuda",
            "--phases",
            "data,fast,report",
        ])
        .unwrap();
        let preset = Preset::resolve(&root, "small", &[]).unwrap();
        let all = steps(&plan, &preset);
        let device = |s: &Step| s.args.windows(2).any(|w| w == ["--device", "cuda"]);
        assert_eq!(
            all.iter()
                .map(|s| (s.phase.as_str(), device(s)))
                .collect::<Vec<_>>(),
            vec![("data", false), ("fast", true), ("report", false)]
        );
        let cpu = parse(&["--small", "--phases", "fast"]).unwrap();
        assert!(steps(&cpu, &preset)
            .iter()
            .all(|s| !s.args.contains(&"--device".to_string())));
    }

    #[test]
    fn presets_and_their_layer_variants() {
        let root = crate::tidy::workspace_root();
        let tiny = Preset::resolve(&root, "tiny", &[]).unwrap();
        assert_eq!(
            (tiny.trains_backbone, tiny.layer.as_str()),
            (true, "ttt_linear")
        );
        let lora = Preset::resolve(&root, "tiny", &["fast.layer=lora".into()]).unwrap();
        assert_eq!(lora.path, PathBuf::from("configs/tiny-lora.toml"));
        assert_eq!(lora.layer, "lora");
        // TTT-MLP reads the same [fast.ttt] section: the preset itself, with the override.
        let mlp = Preset::resolve(&root, "tiny", &["fast.layer=\"ttt_mlp\"".into()]).unwrap();
        assert_eq!(mlp.path, PathBuf::from("configs/tiny.toml"));
        assert_eq!((mlp.layer.as_str(), mlp.variant), ("ttt_mlp", false));
        let small = Preset::resolve(&root, "small", &[]).unwrap();
        assert!(!small.trains_backbone);
        // Without a variant the override goes to ponder, which says what is missing.
        let plan = parse(&["--small", "--set", "fast.layer=lora"]).unwrap();
        let preset = Preset::resolve(&root, "small", &plan.overrides).unwrap();
        assert!(steps(&plan, &preset)[1]
            .args
            .contains(&"fast.layer=lora".to_string()));
    }

    #[test]
    fn steps_pass_the_overrides_and_skip_the_backbone_of_gpt2_presets() {
        let root = crate::tidy::workspace_root();
        let plan = parse(&["--tiny", "--set", "fast.k=2"]).unwrap();
        let preset = Preset::resolve(&root, "tiny", &plan.overrides).unwrap();
        let all = steps(&plan, &preset);
        assert_eq!(
            all.iter().map(|s| s.phase.as_str()).collect::<Vec<_>>(),
            vec![
                "data",
                "backbone",
                "fast",
                "fast",
                "eval-validation",
                "eval-validation",
                "eval-id",
                "eval-ood",
                "eval-ood",
                "eval-ood",
                "latency",
                "ablations",
                "ablations",
                "gate",
                "gate",
                "eval-stream",
                "eval-stream",
                "eval-stream",
                "eval-stream",
                "eval-stream",
                "eval-stream",
                "eval-stream",
                "eval-stream",
                "codegen",
                "codegen",
                "report"
            ]
        );
        let codegen = all[all.len() - 3].args.join(" ");
        assert!(
            codegen.starts_with("codegen --bench humaneval --canonical-loss --quiet --config configs/tiny.toml --set fast.k=2"),
            "{codegen}"
        );
        assert!(all[all.len() - 3].optional && !all[all.len() - 3].run_folder);
        let gate = all[all.len() - 13].args.join(" ");
        assert!(
            gate.starts_with("train gate --config configs/tiny-stream.toml --set fast.k=2"),
            "{gate}"
        );
        assert!(all[all.len() - 12]
            .args
            .join(" ")
            .ends_with("fast.chunks_per_window=4"));
        let stream_trained = all[all.len() - 10].args.join(" ");
        assert!(
            stream_trained.starts_with("compare --config configs/tiny-stream.toml --set fast.k=2")
                && stream_trained.ends_with("fast.chunks_per_window=4"),
            "{stream_trained}"
        );
        // The other languages in stream mode: optional (their files may be missing), the
        // greedy oracle on one batch, on both layers.
        let java: Vec<&Step> = all
            .iter()
            .filter(|s| s.phase == "eval-stream" && s.label.contains("java,"))
            .collect();
        assert_eq!(java.len(), 2);
        let (reset, carried) = (java[0].args.join(" "), java[1].args.join(" "));
        assert!(java.iter().all(|s| s.optional && s.run_folder));
        assert!(reset.contains("--source jdk-src --language java --set eval.max_batches=18"));
        assert!(reset.ends_with("eval.greedy_oracle_batches=1"), "{reset}");
        assert!(
            carried.contains("fast.chunks_per_window=4 --source jdk-src"),
            "{carried}"
        );
        assert!(all[2]
            .args
            .join(" ")
            .ends_with("--config configs/tiny.toml --set fast.k=2"));
        assert!(all[4]
            .args
            .join(" ")
            .ends_with("--set fast.k=2 --split validation"));
        assert!(all[3].args.join(" ").ends_with("fast.chunks_per_window=4"));
        let small = parse(&["--small"]).unwrap();
        let preset = Preset::resolve(&root, "small", &[]).unwrap();
        assert!(steps(&small, &preset).iter().all(|s| s.phase != "backbone"));
        // LoRA has no diagonal ablation: one ablation step, on the tiny preset's LoRA variant.
        let plan = parse(&["--tiny", "--set", "fast.layer=lora"]).unwrap();
        let preset = Preset::resolve(&root, "tiny", &plan.overrides).unwrap();
        let all = steps(&plan, &preset);
        assert_eq!(all.iter().filter(|s| s.phase == "ablations").count(), 1);
        // Nor a stream-mode preset: no stream-trained layer, no learned gate, no stream-mode
        // comparison.
        assert_eq!(all.iter().filter(|s| s.phase == "eval-stream").count(), 0);
        assert_eq!(all.iter().filter(|s| s.phase == "gate").count(), 0);
        assert_eq!(all.iter().filter(|s| s.phase == "fast").count(), 1);
        assert!(all
            .iter()
            .all(|s| !s.args.iter().any(|a| a.starts_with("fast.layer"))));
    }
}
