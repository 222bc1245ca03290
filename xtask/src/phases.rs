//! The steps of `cargo xtask reproduce`: which `ponder` commands each phase runs for a plan and
//! its preset, in order. [`crate::reproduce`] runs them; [`crate::slurm`] writes them as job
//! arrays.

use std::path::Path;

use crate::reproduce::{Device, Plan, Preset, OOD};

/// The overrides that train a fast layer in stream mode: the state carried across windows of 4
/// chunks (`docs/design/stream.md`). Where the size has a stream-mode preset, the `fast` phase
/// trains this layer beside the reset-trained one, `eval-validation` chooses its `ours_lh`,
/// `gate` trains the learned gate on each layer, and `eval-stream` compares both layers in
/// stream mode.
pub const STREAM_TRAINING: &[&str] = &["fast.mode=\"stream\"", "fast.chunks_per_window=4"];

/// The methods of the other languages' stream-mode comparisons: those that decide at the budget
/// and their references, the greedy oracle on one batch of streams only (the config sets its
/// batches, so it stays listed).
const OOD_STREAM_METHODS: [&str; 2] = [
    r#"eval.methods=["none", "skip", "update_1", "random", "ours", "ours_lh", "ppo", "greedy_oracle"]"#,
    "eval.greedy_oracle_batches=1",
];

/// One `ponder` invocation of a phase, with the file that marks it finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The phase.
    pub phase: String,
    /// What it is for (shown in the log).
    pub label: String,
    /// Arguments of `ponder`.
    pub args: Vec<String>,
    /// Whether it writes a run folder, which `--skip-finished` and `--resume` apply to.
    pub run_folder: bool,
    /// An optional step (an OOD language whose source is missing is skipped, not an error).
    pub optional: bool,
    /// Whether it runs the model, on `--device` (listing sources, writing the report or a
    /// sweep's aggregate need no device).
    pub on_device: bool,
}

impl Step {
    /// The arguments of `ponder` for this step: a step that writes a run folder leaves a
    /// finished run alone (`--skip-finished`) and, with `resume`, continues an interrupted one.
    pub fn command(&self, resume: bool) -> Vec<String> {
        let mut args = self.args.clone();
        if self.run_folder {
            args.push("--skip-finished".into());
            if resume {
                args.push("--resume".into());
            }
        }
        args
    }
}

/// The steps of `plan` for `preset`.
pub fn steps(plan: &Plan, preset: &Preset) -> Vec<Step> {
    let with_file = |cfg: &Path, cmd: &[&str], extra: &[String]| -> Vec<String> {
        let mut a: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        a.extend(["--config".into(), cfg.display().to_string()]);
        for o in plan
            .overrides
            .iter()
            .filter(|o| !(preset.variant && o.starts_with("fast.layer=")))
        {
            a.extend(["--set".into(), o.clone()]);
        }
        a.extend(extra.iter().cloned());
        a
    };
    let with_config = |cmd: &[&str], extra: &[String]| with_file(&preset.path, cmd, extra);
    let stream_training: Vec<String> = STREAM_TRAINING
        .iter()
        .flat_map(|o| ["--set".to_string(), o.to_string()])
        .collect();
    let step = |label: String, args: Vec<String>, run_folder: bool, optional: bool| Step {
        phase: String::new(),
        label,
        args,
        run_folder,
        optional,
        on_device: false,
    };
    let mut v = Vec::new();
    for phase in &plan.phases {
        let mut add = |mut s: Step| {
            s.phase = phase.clone();
            // The model phases run on the device asked for; listing sources and writing the
            // report need none.
            s.on_device = !matches!(phase.as_str(), "data" | "report");
            let device = plan.launch.device;
            if s.on_device && device != Device::Cpu {
                s.args.extend(["--device".into(), device.as_str().into()]);
            }
            v.push(s);
        };
        match phase.as_str() {
            "data" => add(step(
                "code sources on this machine".into(),
                vec!["data".into(), "sources".into()],
                false,
                false,
            )),
            "backbone" if preset.trains_backbone => add(step(
                "backbone from scratch".into(),
                with_config(&["train", "backbone"], &[]),
                true,
                false,
            )),
            "backbone" => {}
            "fast" => {
                add(step(
                    format!("fast layer {}", preset.layer),
                    with_config(&["train", "fast"], &[]),
                    true,
                    false,
                ));
                if preset.stream.is_some() {
                    add(step(
                        format!("fast layer {} trained in stream mode", preset.layer),
                        with_config(&["train", "fast"], &stream_training),
                        true,
                        false,
                    ));
                }
            }
            "eval-validation" => {
                let validation = ["--split".to_string(), "validation".to_string()];
                add(step(
                    "compare on the validation split, choose ours_lh".into(),
                    with_config(&["compare"], &validation),
                    true,
                    false,
                ));
                if preset.stream.is_some() {
                    add(step(
                        "the same for the stream-trained layer".into(),
                        with_config(&["compare"], &[&stream_training[..], &validation].concat()),
                        true,
                        false,
                    ));
                }
            }
            "eval-id" => add(step(
                "compare in distribution".into(),
                with_config(&["compare"], &[]),
                true,
                false,
            )),
            "eval-ood" => {
                for (source, lang) in OOD {
                    let mut extra = vec![
                        "--source".into(),
                        source.to_string(),
                        "--language".into(),
                        lang.to_string(),
                    ];
                    let capped = plan
                        .overrides
                        .iter()
                        .any(|o| o.starts_with("eval.max_batches="));
                    if (plan.size == "small" || plan.size == "medium") && !capped {
                        // The original evaluates 500 batches out of distribution at these
                        // sizes, unless `--set eval.max_batches=` says otherwise.
                        extra.extend(["--set".into(), "eval.max_batches=500".into()]);
                    }
                    add(step(
                        format!("compare {lang}"),
                        with_config(&["compare"], &extra),
                        true,
                        true,
                    ));
                }
            }
            "latency" => {
                let mut extra = Vec::new();
                if plan.size == "tiny" {
                    extra.extend(["--random".into(), "gpt2".into()]);
                }
                add(step(
                    "latency per chunk".into(),
                    with_config(&["bench"], &extra),
                    true,
                    false,
                ));
            }
            "ablations" => {
                add(step(
                    "compare, shuffled input".into(),
                    with_config(&["compare"], &["--shuffle".into()]),
                    true,
                    false,
                ));
                // The diagonal ablation changes the TTT inner loop's mask; LoRA has none.
                if preset.layer.starts_with("ttt") {
                    add(step(
                        "compare, diagonal k = -1".into(),
                        with_config(&["compare"], &["--causal-k".into(), "-1".into()]),
                        true,
                        false,
                    ));
                }
            }
            "gate" => {
                // Without a stream-mode preset there is nothing to run; `reproduce::run` says so.
                if let Some(cfg) = &preset.stream {
                    add(step(
                        "learned gate on the reset-trained layer".into(),
                        with_file(cfg, &["train", "gate"], &[]),
                        true,
                        false,
                    ));
                    add(step(
                        "learned gate on the stream-trained layer".into(),
                        with_file(cfg, &["train", "gate"], &stream_training),
                        true,
                        false,
                    ));
                }
            }
            "eval-stream" => {
                // Without a stream-mode preset there is nothing to run; `reproduce::run` says so.
                if let Some(cfg) = &preset.stream {
                    add(step(
                        "stream mode, the reset-trained layer".into(),
                        with_file(cfg, &["compare"], &[]),
                        true,
                        false,
                    ));
                    add(step(
                        "stream mode, the stream-trained layer".into(),
                        with_file(cfg, &["compare"], &stream_training),
                        true,
                        false,
                    ));
                    // The other languages' files found on the machine, 72 streams each.
                    for (source, lang) in OOD {
                        for (layer, training) in [
                            ("reset-trained", &[][..]),
                            ("stream-trained", &stream_training[..]),
                        ] {
                            let mut extra = training.to_vec();
                            extra.extend(
                                [
                                    "--source",
                                    source,
                                    "--language",
                                    lang,
                                    "--set",
                                    "eval.max_batches=18",
                                    "--set",
                                    OOD_STREAM_METHODS[0],
                                    "--set",
                                    OOD_STREAM_METHODS[1],
                                ]
                                .map(String::from),
                            );
                            add(step(
                                format!("stream mode, {lang}, the {layer} layer"),
                                with_file(cfg, &["compare"], &extra),
                                true,
                                true,
                            ));
                        }
                    }
                }
            }
            "codegen" => {
                // HumanEval (`cargo xtask data --yes humaneval`) on the reported fast layer:
                // skipped where the file is missing or the sandbox cannot isolate samples.
                let methods = |list: &str| vec!["--methods".to_string(), list.to_string()];
                // Where the preset has a stream mode, the `gate` phase trained the learned gate
                // and `eval-validation` chose `ours_lh`: both are scored too.
                let (scored, generated) = if preset.stream.is_some() {
                    (
                        "none,skip,update_1,random,ours,ours_lh,ppo",
                        "none,skip,update_1,ours,ours_lh,ppo",
                    )
                } else {
                    ("none,skip,update_1,random,ours", "none,skip,update_1,ours")
                };
                add(step(
                    "HumanEval: the solutions' loss per method".into(),
                    with_config(
                        &[
                            "codegen",
                            "--bench",
                            "humaneval",
                            "--canonical-loss",
                            "--quiet",
                        ],
                        &methods(scored),
                    ),
                    false,
                    true,
                ));
                add(step(
                    "HumanEval: greedy samples per method, run against the tests".into(),
                    with_config(
                        &["codegen", "--bench", "humaneval", "--quiet"],
                        &methods(generated),
                    ),
                    false,
                    true,
                ));
            }
            "report" => {
                let mut extra = Vec::new();
                if plan.size != "tiny" {
                    extra.extend(["--paper".into(), plan.size.clone()]);
                }
                add(step(
                    "the report".into(),
                    with_config(&["report"], &extra),
                    false,
                    false,
                ));
            }
            _ => unreachable!("phases are checked in parse"),
        }
    }
    v
}
