//! `cargo xtask sweep --config configs/sweeps/NAME.toml`: every point of a sweep file run as an
//! experiment of its own, through the `ponder` binary. `ponder sweep plan` checks the file and
//! every point's config and says what to run; the shared phases run once, then the points'
//! phases, `--jobs N` points at a time, each step with `--skip-finished --resume` (a rerun, or
//! a rerun after a kill, does only what is missing); the end is `ponder sweep aggregate`. With
//! `--emit slurm` the same steps become job arrays: one per phase, a task per point.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::reproduce::{build, run_step, steps, Device, Plan, Preset, Step, PHASES};

/// The arguments of `cargo xtask sweep`.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepArgs {
    /// The sweep file.
    pub config: PathBuf,
    /// Points run at once.
    pub jobs: usize,
    /// Where the model phases run.
    pub device: Device,
    /// Write Slurm scripts instead of running.
    pub emit_slurm: bool,
    /// Submit them.
    pub submit: bool,
}

/// Parses the arguments after `sweep`.
pub fn parse(args: &[&str]) -> Result<SweepArgs> {
    let usage = "usage: cargo xtask sweep --config FILE [--jobs N] [--device cpu|cuda|metal] [--emit slurm [--submit]]";
    let mut out = SweepArgs {
        config: PathBuf::new(),
        jobs: 1,
        device: Device::Cpu,
        emit_slurm: false,
        submit: false,
    };
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        match a {
            "--config" => out.config = it.next().context("--config needs a sweep file")?.into(),
            "--jobs" => {
                let n = it.next().context("--jobs needs a number")?;
                out.jobs = n
                    .parse()
                    .ok()
                    .filter(|&j| j > 0)
                    .with_context(|| format!("--jobs takes a positive number, got {n:?}"))?;
            }
            "--device" => out.device = Device::parse(it.next().context("--device needs a name")?)?,
            "--emit" => match it.next() {
                Some(&"slurm") => out.emit_slurm = true,
                other => bail!("--emit takes `slurm`, got {other:?}"),
            },
            "--submit" => out.submit = true,
            other => bail!("unknown argument {other:?}; {usage}"),
        }
    }
    if out.config.as_os_str().is_empty() {
        bail!("no sweep file; {usage}");
    }
    if out.submit && !out.emit_slurm {
        bail!("--submit goes with --emit slurm");
    }
    Ok(out)
}

/// What `ponder sweep plan` prints.
#[derive(Debug, Deserialize)]
struct SweepPlan {
    base: PathBuf,
    shared: Vec<String>,
    shared_overrides: Vec<String>,
    shared_log: PathBuf,
    phases: Vec<String>,
    points: Vec<PlanPoint>,
}

#[derive(Debug, Deserialize)]
struct PlanPoint {
    name: String,
    overrides: Vec<String>,
    log: PathBuf,
}

/// The steps of `phases` for a run of `base` with `overrides`, labelled with `who`.
fn steps_of(
    root: &Path,
    base: &Path,
    phases: &[String],
    overrides: &[String],
    device: Device,
    who: &str,
) -> Result<Vec<Step>> {
    let mut preset = Preset::resolve_file(root, base, overrides)?;
    // The stream-mode layer is trained and validated only for a sweep of the stream phases.
    if !phases.iter().any(|p| p == "gate" || p == "eval-stream") {
        preset.stream = None;
    }
    let plan = Plan {
        size: size_of(base),
        phases: phases.to_vec(),
        resume: true,
        emit_slurm: false,
        submit: false,
        device,
        overrides: overrides.to_vec(),
    };
    Ok(steps(&plan, &preset)
        .into_iter()
        .map(|mut s| {
            s.label = format!("{who}: {}", s.label);
            s
        })
        .collect())
}

/// The size of a base config, for `configs/slurm.toml`: its file stem (`tiny`).
fn size_of(base: &Path) -> String {
    base.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs (or emits) the sweep from the workspace `root`.
pub fn run(root: &Path, args: &SweepArgs) -> Result<()> {
    let ponder = build(root, args.device)?;
    let out = Command::new(&ponder)
        .current_dir(root)
        .args(["sweep", "plan", "--config"])
        .arg(&args.config)
        .output()
        .with_context(|| format!("running {}", ponder.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let plan: SweepPlan =
        serde_json::from_slice(&out.stdout).context("reading `ponder sweep plan`'s output")?;
    for phase in plan.shared.iter().chain(&plan.phases) {
        if !PHASES.contains(&phase.as_str()) {
            bail!(
                "{}: unknown phase {phase:?}; the phases are {}",
                args.config.display(),
                PHASES.join(", ")
            );
        }
    }
    if let Some(p) = plan.phases.iter().find(|p| plan.shared.contains(p)) {
        bail!(
            "{}: phase {p:?} is both shared and per point",
            args.config.display()
        );
    }
    let shared = steps_of(
        root,
        &plan.base,
        &plan.shared,
        &plan.shared_overrides,
        args.device,
        "shared",
    )?;
    let mut points = Vec::new();
    for p in &plan.points {
        let s = steps_of(
            root,
            &plan.base,
            &plan.phases,
            &p.overrides,
            args.device,
            &p.name,
        )?;
        points.push((p, s));
    }
    let aggregate = Step {
        phase: "aggregate".into(),
        label: "aggregate over seeds".into(),
        args: vec![
            "sweep".into(),
            "aggregate".into(),
            "--config".into(),
            args.config.display().to_string(),
        ],
        run_folder: false,
        optional: false,
    };
    if args.emit_slurm {
        let name = format!("sweep-{}", size_of(&args.config));
        let dir = crate::slurm::default_dir(root, &name);
        if args.submit {
            crate::slurm::require_sbatch(&dir)?;
        }
        let mut phases: Vec<(String, Vec<Step>)> = plan
            .shared
            .iter()
            .map(|ph| {
                (
                    ph.clone(),
                    shared.iter().filter(|s| &s.phase == ph).cloned().collect(),
                )
            })
            .collect();
        for ph in &plan.phases {
            let all = points
                .iter()
                .flat_map(|(_, s)| s.iter().filter(|s| &s.phase == ph));
            phases.push((ph.clone(), all.cloned().collect()));
        }
        phases.push(("aggregate".into(), vec![aggregate]));
        let cluster = crate::slurm::Cluster::read(root)?;
        crate::slurm::emit(
            &dir,
            &name,
            &phases,
            &cluster,
            &size_of(&plan.base),
            args.device,
        )?;
        if args.submit {
            crate::slurm::submit(root, &dir)?;
        }
        return Ok(());
    }
    let start = Instant::now();
    if let Some(parent) = plan.shared_log.parent() {
        std::fs::create_dir_all(root.join(parent))
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    for step in &shared {
        run_step(
            root,
            &ponder,
            step,
            true,
            Some(&root.join(&plan.shared_log)),
        )?;
    }
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(points.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((point, steps)) = points.get(i) else {
                    break;
                };
                let t = Instant::now();
                let log = root.join(&point.log);
                let result = log
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .context("creating the point's folder")
                    .and_then(|()| {
                        steps
                            .iter()
                            .try_for_each(|s| run_step(root, &ponder, s, true, Some(&log)))
                    });
                let k = done.fetch_add(1, Ordering::SeqCst) + 1;
                match result {
                    Ok(()) => println!(
                        "[{k}/{}] point {}: done in {:.0} s",
                        points.len(),
                        point.name,
                        t.elapsed().as_secs_f64()
                    ),
                    Err(e) => {
                        println!("[{k}/{}] point {}: FAILED: {e:#}", points.len(), point.name);
                        failed
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(point.name.clone());
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    if !failed.is_empty() {
        bail!(
            "{} of {} points failed ({}); rerun the sweep to continue them",
            failed.len(),
            points.len(),
            failed.join("; ")
        );
    }
    run_step(root, &ponder, &aggregate, false, None)?;
    println!(
        "sweep {} ({} points, --jobs {}): finished in {:.1} min",
        args.config.display(),
        points.len(),
        args.jobs,
        start.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a = parse(&["--config", "s.toml", "--jobs", "2"]).unwrap();
        assert_eq!((a.jobs, a.device, a.emit_slurm), (2, Device::Cpu, false));
        for (args, want) in [
            (&["--jobs", "2"][..], "no sweep file"),
            (
                &["--config", "s.toml", "--jobs", "0"][..],
                "positive number",
            ),
            (
                &["--config", "s.toml", "--submit"][..],
                "--submit goes with --emit slurm",
            ),
            (&["--config", "s.toml", "--fast"][..], "unknown argument"),
        ] {
            let e = parse(args).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
