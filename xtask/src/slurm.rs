//! Slurm: the steps of `reproduce` (and `sweep`) as job arrays, one array per phase with one
//! task per step, each phase starting after the previous one succeeded (`afterok`). The
//! resources of each phase come from `configs/slurm.toml`; a GPU is asked for only by the tasks
//! that run the model with `--device cuda`. [`submit`] hands the scripts to `sbatch`, [`wait`] follows the jobs to the
//! end. Nothing runs locally.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::reproduce::{Device, Launch, Step, PHASES};
use crate::sweep::AGGREGATE;

/// The resources file, relative to the workspace root.
pub const RESOURCES: &str = "configs/slurm.toml";

/// What one task of a phase asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPUs per task (`--cpus-per-task`).
    pub cpus: u32,
    /// Memory per task in GB (`--mem`).
    pub mem_gb: u32,
    /// Time limit in minutes (`--time`).
    pub minutes: u32,
    /// GPUs per task (`--gres=gpu:N`), asked for only by tasks that run the model with
    /// `--device cuda`.
    pub gpus: u32,
}

/// `configs/slurm.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Shell lines every job runs before `ponder`.
    pub setup: Vec<String>,
    /// Per size, `default` and phases.
    pub resources: BTreeMap<String, BTreeMap<String, Resources>>,
}

impl Cluster {
    /// Reads and checks `root/configs/slurm.toml`.
    pub fn read(root: &Path) -> Result<Self> {
        let path = root.join(RESOURCES);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses and checks the resources file's text: every table key is `default`, a phase or a
    /// sweep's `aggregate` job.
    pub fn parse(text: &str) -> Result<Self> {
        let cluster: Self = toml::from_str(text)?;
        for (size, table) in &cluster.resources {
            for key in table.keys() {
                if key != "default" && key != AGGREGATE && !PHASES.contains(&key.as_str()) {
                    bail!(
                        "resources.{size}.{key}: not a phase; the keys are default, {AGGREGATE}, {}",
                        PHASES.join(", ")
                    );
                }
            }
        }
        Ok(cluster)
    }

    /// The resources of `phase` at `size`: the phase's own entry, else the size's `default`.
    pub fn of(&self, size: &str, phase: &str) -> Result<Resources> {
        let table = self.resources.get(size).with_context(|| {
            format!(
                "{RESOURCES} has no [resources.{size}] table (the resources of that size's jobs)"
            )
        })?;
        table
            .get(phase)
            .or_else(|| table.get("default"))
            .copied()
            .with_context(|| {
                format!("{RESOURCES}: [resources.{size}] has neither `{phase}` nor `default`")
            })
    }
}

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

/// The batch script of one phase: a job array over its steps, run from `$PONDER_ROOT` with the
/// `ponder` binary built there. Its tasks ask for `resources.gpus` GPUs when they run the model
/// on `--device cuda`, and for none otherwise; an error when such a phase has `gpus = 0`.
pub fn phase_script(
    job: &str,
    steps: &[&Step],
    resources: Resources,
    device: Device,
    setup: &[String],
) -> Result<String> {
    let gpu = device == Device::Cuda && steps.iter().any(|s| s.on_device);
    if gpu && resources.gpus == 0 {
        bail!(
            "job {job} runs the model on --device cuda, but its resources in {RESOURCES} ask for no GPU (gpus = 0)"
        );
    }
    let mut s = String::new();
    let _ = writeln!(s, "#!/usr/bin/env bash");
    let _ = writeln!(s, "#SBATCH --job-name={job}");
    let _ = writeln!(s, "#SBATCH --array=0-{}", steps.len().saturating_sub(1));
    let _ = writeln!(s, "#SBATCH --output=logs/%x-%a.out");
    let _ = writeln!(s, "#SBATCH --cpus-per-task={}", resources.cpus);
    let _ = writeln!(s, "#SBATCH --mem={}G", resources.mem_gb);
    let _ = writeln!(s, "#SBATCH --time={}", resources.minutes);
    if gpu {
        let _ = writeln!(s, "#SBATCH --gres=gpu:{}", resources.gpus);
    }
    let _ = writeln!(s, "set -euo pipefail");
    for line in setup {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "cd \"${{PONDER_ROOT:?set PONDER_ROOT to the ponder checkout}}\""
    );
    let _ = writeln!(s, "case \"$SLURM_ARRAY_TASK_ID\" in");
    for (i, step) in steps.iter().enumerate() {
        let args: Vec<String> = step.command(true).iter().map(|a| quote(a)).collect();
        // An optional step (an out-of-distribution language whose source the cluster may lack)
        // must not fail the array, or every later phase would wait forever.
        let tail = if step.optional {
            " || echo \"skipped: ponder exited with $?\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {i}) ./target/release/ponder {}{tail} ;;",
            args.join(" ")
        );
    }
    let _ = writeln!(s, "esac");
    Ok(s)
}

/// Writes one `<phase>.sbatch` per phase that has steps into `dir`, with `logs/` for the tasks'
/// output, and `submit.sh`, which submits them in order, each after the previous succeeded.
/// `name` prefixes the job names (`ponder-<name>-<phase>`).
pub fn emit(
    dir: &Path,
    name: &str,
    phases: &[(String, Vec<Step>)],
    cluster: &Cluster,
    size: &str,
    device: Device,
) -> Result<()> {
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("creating {}", dir.join("logs").display()))?;
    let mut submit = format!(
        "#!/usr/bin/env bash\n# Submits the phases in order, each after the previous succeeded.\n# Build first: cargo build --release -p ponder-cli{}\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\ndep=\n",
        device.cargo_features().map(|f| format!(" --features {f}")).unwrap_or_default()
    );
    for (phase, steps) in phases {
        if steps.is_empty() {
            continue;
        }
        let file = format!("{phase}.sbatch");
        let mine: Vec<&Step> = steps.iter().collect();
        let script = phase_script(
            &format!("ponder-{name}-{phase}"),
            &mine,
            cluster.of(size, phase)?,
            device,
            &cluster.setup,
        )
        .with_context(|| format!("size {size}, phase {phase}"))?;
        std::fs::write(dir.join(&file), script)
            .with_context(|| format!("writing {}", dir.join(&file).display()))?;
        let _ = writeln!(
            submit,
            "jid=$(sbatch --parsable ${{dep:+--dependency=afterok:$dep}} {file})\necho \"{phase}: job $jid\"\ndep=$jid"
        );
    }
    let path = dir.join("submit.sh");
    std::fs::write(&path, submit).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "Slurm scripts in {}; submit with `PONDER_ROOT=$PWD bash {}` (or pass --submit)",
        dir.display(),
        path.display()
    );
    Ok(())
}

/// The steps grouped by phase, in the order of `phases`.
pub fn by_phase(phases: &[String], steps: &[Step]) -> Vec<(String, Vec<Step>)> {
    phases
        .iter()
        .map(|p| {
            (
                p.clone(),
                steps.iter().filter(|s| &s.phase == p).cloned().collect(),
            )
        })
        .collect()
}

/// Writes the scripts of `phases` into [`default_dir`]`(root, name)` with the resources of
/// `size`, and submits them with `--submit` (checking first that `sbatch` runs here, before
/// anything is written).
pub fn emit_plan(
    root: &Path,
    name: &str,
    size: &str,
    phases: &[(String, Vec<Step>)],
    launch: Launch,
) -> Result<()> {
    let dir = default_dir(root, name);
    if launch.submit {
        require_sbatch(&dir)?;
    }
    let cluster = Cluster::read(root)?;
    emit(&dir, name, phases, &cluster, size, launch.device)?;
    if launch.submit {
        submit(root, &dir)?;
    }
    Ok(())
}

/// An error unless `sbatch` runs here, saying what to do instead of submitting from `dir`.
pub fn require_sbatch(dir: &Path) -> Result<()> {
    match Command::new("sbatch").arg("--version").output() {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "cannot submit: `sbatch` is not available ({e}); install Slurm's client tools (Debian: slurm-client), or emit without --submit and run {} on a cluster login node",
            dir.join("submit.sh").display()
        ),
    }
}

/// Runs `dir/submit.sh` with `PONDER_ROOT=root`; the submitted jobs, as (phase, job id).
/// Without `sbatch` on the PATH, an error that says so before anything is submitted.
pub fn submit(root: &Path, dir: &Path) -> Result<Vec<(String, String)>> {
    require_sbatch(dir)?;
    let out = Command::new("bash")
        .arg(dir.join("submit.sh"))
        .env("PONDER_ROOT", root)
        .output()
        .context("running submit.sh")?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            dir.join("submit.sh").display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let jobs: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(": job "))
        .map(|(p, j)| (p.to_string(), j.trim().to_string()))
        .collect();
    for (phase, job) in &jobs {
        println!("submitted {phase}: job {job}");
    }
    Ok(jobs)
}

/// Output of a Slurm client command, an error naming it otherwise.
fn query(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Waits until none of `jobs` is queued or running (at most `limit`), checking that every task
/// of every job completed; the number of tasks Slurm ran. A failed task, or a job whose
/// dependency can never be met (an earlier phase failed), ends the wait with an error, after
/// cancelling the rest.
pub fn wait(jobs: &[(String, String)], limit: Duration, logs: &Path) -> Result<usize> {
    let ids: Vec<&str> = jobs.iter().map(|(_, j)| j.as_str()).collect();
    let mut left: Vec<&(String, String)> = jobs.iter().collect();
    let mut tasks = 0;
    let start = Instant::now();
    let cancel = |e: anyhow::Error| {
        let _ = query("scancel", &ids);
        e
    };
    loop {
        // All of this user's jobs, kept when their array job is ours: `squeue -j` would fail
        // on an id that the controller has already forgotten.
        let all = query("squeue", &["-h", "--me", "-o", "%F %i %T %r"])?;
        let queued: Vec<&str> = all
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|j| ids.contains(&j))
            })
            .collect();
        // A job that has left the queue is asked for its tasks' end states at once, while the
        // controller still remembers it (it forgets finished jobs after `MinJobAge`, 300 s
        // by default).
        let mut still = Vec::new();
        for job in left {
            if queued
                .iter()
                .any(|l| l.split_whitespace().next() == Some(&job.1))
            {
                still.push(job);
            } else {
                tasks += completed_tasks(&job.0, &job.1, logs).map_err(cancel)?;
            }
        }
        left = still;
        if left.is_empty() {
            return Ok(tasks);
        }
        let stuck = queued
            .iter()
            .any(|l| l.contains("DependencyNeverSatisfied"));
        if stuck || start.elapsed() > limit {
            return Err(cancel(anyhow::anyhow!(
                "Slurm jobs did not finish ({}): {}; logs in {}",
                if stuck {
                    "an earlier phase failed"
                } else {
                    "time limit"
                },
                queued.join("; "),
                logs.display()
            )));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The number of tasks of a job that has left the queue; an error unless all completed.
fn completed_tasks(phase: &str, job: &str, logs: &Path) -> Result<usize> {
    let shown = query("scontrol", &["show", "job", "-o", job])?;
    let mut tasks = 0;
    for line in shown.lines().filter(|l| !l.trim().is_empty()) {
        let state = line
            .split_whitespace()
            .find_map(|f| f.strip_prefix("JobState="))
            .unwrap_or("?");
        if state != "COMPLETED" {
            bail!(
                "phase {phase} (job {job}): a task ended {state}; logs in {}",
                logs.display()
            );
        }
        tasks += 1;
    }
    Ok(tasks)
}

/// The folder `--emit slurm` writes to by default: `target/slurm/<name>/`.
pub fn default_dir(root: &Path, name: &str) -> PathBuf {
    root.join("target").join("slurm").join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reproduce::{parse, steps, Preset};

    fn cluster() -> Cluster {
        Cluster::read(&crate::tidy::workspace_root()).unwrap()
    }

    fn script(size: &str, phase: &str, device: Device) -> String {
        let root = crate::tidy::workspace_root();
        let size_flag = format!("--{size}");
        let plan = parse(&[&size_flag, "--phases", phase, "--device", device.as_str()]).unwrap();
        let preset = Preset::resolve(&root, size, &[]).unwrap();
        let all = steps(&plan, &preset);
        let mine: Vec<&Step> = all.iter().filter(|s| s.phase == phase).collect();
        let c = cluster();
        phase_script("job", &mine, c.of(size, phase).unwrap(), device, &c.setup).unwrap()
    }

    #[test]
    fn one_array_task_per_language() {
        let script = script("small", "eval-ood", Device::Cuda);
        assert!(script.contains("#SBATCH --array=0-2"), "{script}");
        assert!(script.contains("--source go-src --language go"), "{script}");
        assert!(script.contains("--device cuda"), "{script}");
        assert!(script.contains("#SBATCH --gres=gpu:1"), "{script}");
        assert!(script.contains("#SBATCH --mem=32G"), "{script}");
        assert!(
            script.contains("--skip-finished --resume || echo"),
            "{script}"
        );
    }

    #[test]
    fn a_cpu_run_asks_for_no_gpu_and_passes_no_device() {
        for (size, phase) in [("tiny", "fast"), ("small", "fast"), ("small", "report")] {
            let s = script(size, phase, Device::Cpu);
            assert!(!s.contains("gres") && !s.contains("--device"), "{s}");
            assert!(s.contains("#SBATCH --cpus-per-task="), "{s}");
        }
        // With CUDA only the model phases ask for a GPU, whatever their resources say.
        for (size, phase, gpu) in [
            ("tiny", "fast", true),
            ("tiny", "report", false),
            ("tiny", "data", false),
            ("small", "report", false),
        ] {
            let s = script(size, phase, Device::Cuda);
            assert_eq!(
                s.contains("#SBATCH --gres=gpu:1"),
                gpu,
                "{size} {phase}: {s}"
            );
        }
        let aggregate = Step {
            phase: AGGREGATE.into(),
            label: "aggregate".into(),
            args: vec!["sweep".into(), "aggregate".into()],
            run_folder: false,
            optional: false,
            on_device: false,
        };
        let c = cluster();
        let s = phase_script(
            "a",
            &[&aggregate],
            c.of("small", AGGREGATE).unwrap(),
            Device::Cuda,
            &c.setup,
        )
        .unwrap();
        assert!(!s.contains("gres"), "{s}");
    }

    #[test]
    fn a_model_phase_on_cuda_without_gpus_is_refused() {
        let root = crate::tidy::workspace_root();
        let plan = parse(&["--tiny", "--phases", "fast", "--device", "cuda"]).unwrap();
        let preset = Preset::resolve(&root, "tiny", &[]).unwrap();
        let all = steps(&plan, &preset);
        let mine: Vec<&Step> = all.iter().collect();
        let none = Resources {
            cpus: 1,
            mem_gb: 1,
            minutes: 1,
            gpus: 0,
        };
        let e = phase_script("ponder-tiny-fast", &mine, none, Device::Cuda, &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ponder-tiny-fast runs the model on --device cuda")
                && e.contains("gpus = 0"),
            "{e}"
        );
        phase_script("ponder-tiny-fast", &mine, none, Device::Cpu, &[]).unwrap();
    }

    #[test]
    fn resource_files_are_checked() {
        let ok = "setup = []\n[resources.tiny]\ndefault = { cpus = 1, mem_gb = 1, minutes = 1, gpus = 0 }\n";
        let c = Cluster::parse(ok).unwrap();
        assert_eq!(c.of("tiny", "fast").unwrap().cpus, 1);
        let e = c.of("huge", "fast").unwrap_err().to_string();
        assert!(e.contains("[resources.huge]"), "{e}");
        let bad = ok.replace("default", "dance");
        let e = Cluster::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("resources.tiny.dance: not a phase"), "{e}");
        let e = Cluster::parse(&ok.replace("gpus", "gpu"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `gpu`"), "{e}");
        let ok = ok.replace("default", AGGREGATE)
            + "default = { cpus = 1, mem_gb = 1, minutes = 1, gpus = 0 }\n";
        assert_eq!(
            Cluster::parse(&ok)
                .unwrap()
                .of("tiny", AGGREGATE)
                .unwrap()
                .cpus,
            1
        );
        for size in crate::reproduce::SIZES {
            for phase in PHASES.iter().chain([&AGGREGATE]) {
                cluster().of(size, phase).unwrap();
            }
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a-b"), "a-b");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
