//! How xtask runs `ponder`: the device the model phases run on, the flags that say where a plan
//! runs (`--device`, `--emit slurm`, `--submit`, shared by `reproduce` and `sweep`), the build
//! of the binary, and one step run as a process with its output on the terminal or in a log.

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::phases::Step;

/// Where the model phases run: `ponder --device`, the cargo feature it needs, and whether Slurm
/// jobs ask for GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// The default: no feature, no GPU request.
    Cpu,
    /// An NVIDIA GPU: built with `--features cuda`, jobs ask for `gpus` of `configs/slurm.toml`.
    Cuda,
    /// Apple's GPU: built with `--features metal`.
    Metal,
}

impl Device {
    /// Parses `cpu`, `cuda` or `metal`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            "metal" => Ok(Self::Metal),
            other => bail!("--device takes cpu, cuda or metal, got {other:?}"),
        }
    }

    /// The name `ponder --device` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
            Self::Metal => "metal",
        }
    }

    /// The cargo feature of `ponder-cli` that the device needs.
    pub fn cargo_features(self) -> Option<&'static str> {
        match self {
            Self::Cpu => None,
            Self::Cuda => Some("cuda"),
            Self::Metal => Some("metal"),
        }
    }
}

/// Where a plan runs: locally on a device, or as Slurm scripts, maybe submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// Where the model phases run.
    pub device: Device,
    /// Write Slurm scripts instead of running.
    pub emit_slurm: bool,
    /// Submit the written Slurm scripts.
    pub submit: bool,
}

impl Launch {
    /// The flags, for usage lines.
    pub const USAGE: &'static str = "[--device cpu|cuda|metal] [--emit slurm [--submit]]";

    /// On this machine's CPU.
    pub fn local() -> Self {
        Self {
            device: Device::Cpu,
            emit_slurm: false,
            submit: false,
        }
    }

    /// Takes `flag`, with its value from `rest`, when it is one of these flags; whether it was.
    pub fn take<'a>(
        &mut self,
        flag: &str,
        rest: &mut impl Iterator<Item = &'a &'a str>,
    ) -> Result<bool> {
        match flag {
            "--device" => {
                self.device =
                    Device::parse(rest.next().context("--device needs cpu, cuda or metal")?)?
            }
            "--emit" => match rest.next() {
                Some(&"slurm") => self.emit_slurm = true,
                other => bail!("--emit takes `slurm`, got {other:?}"),
            },
            "--submit" => self.submit = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// An error for flags that do not go together.
    pub fn check(&self) -> Result<()> {
        if self.submit && !self.emit_slurm {
            bail!("--submit goes with --emit slurm");
        }
        Ok(())
    }
}

/// Builds `ponder` (release, with the device's feature); its path.
pub fn build(root: &Path, device: Device) -> Result<PathBuf> {
    let mut args = vec!["build", "--release", "-p", "ponder-cli"];
    if let Some(f) = device.cargo_features() {
        args.extend(["--features", f]);
    }
    let status = Command::new("cargo")
        .current_dir(root)
        .args(&args)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building ponder failed (cargo {})", args.join(" "));
    }
    Ok(root.join("target").join("release").join("ponder"))
}

/// Runs one step with `ponder` from `root`, printing a line when it starts and ends. Its output
/// goes to the terminal, or is appended to `log`. An optional step whose data is missing or
/// whose samples cannot be isolated is skipped with a note; any other failure is an error.
pub fn run_step(
    root: &Path,
    ponder: &Path,
    step: &Step,
    resume: bool,
    log: Option<&Path>,
) -> Result<()> {
    let args = step.command(resume);
    println!("[{}] {}: ponder {}", step.phase, step.label, args.join(" "));
    let t = Instant::now();
    let (stdout, stderr) = match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        // Optional steps capture stderr to recognise a missing source; the others show their
        // progress bars.
        None if step.optional => (Stdio::inherit(), Stdio::piped()),
        None => (Stdio::inherit(), Stdio::inherit()),
    };
    // Where this step's output starts in an appended log, so that a failure is judged on what
    // this step wrote and not on an earlier step's or run's lines.
    let start = log.map_or(0, |p| std::fs::metadata(p).map_or(0, |m| m.len()));
    let output = Command::new(ponder)
        .current_dir(root)
        .args(&args)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .and_then(|c| c.wait_with_output())
        .with_context(|| format!("running {}", ponder.display()))?;
    if !output.status.success() {
        let stderr = match log {
            Some(path) => {
                let bytes = std::fs::read(path).unwrap_or_default();
                let mine =
                    usize::try_from(start).map_or(&[][..], |s| bytes.get(s..).unwrap_or(&[]));
                String::from_utf8_lossy(mine).into_owned()
            }
            None => String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        let tail: String = stderr
            .lines()
            .rev()
            .take(200)
            .collect::<Vec<_>>()
            .join("\n");
        if step.optional && tail.contains("not found on this machine") {
            println!("[{}] {}: skipped, its data is not on this machine (`cargo xtask data --yes` installs it)", step.phase, step.label);
            return Ok(());
        }
        if step.optional && tail.contains("cannot isolate samples") {
            println!("[{}] {}: skipped, this machine cannot isolate generated code (the sandbox needs root)", step.phase, step.label);
            return Ok(());
        }
        match log {
            Some(path) => bail!(
                "phase {} ({}) failed; its output is in {}",
                step.phase,
                step.label,
                path.display()
            ),
            None => {
                eprint!("{stderr}");
                bail!("phase {} ({}) failed", step.phase, step.label)
            }
        }
    }
    println!(
        "[{}] {}: done in {:.0} s",
        step.phase,
        step.label,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for `ponder` that prints `message` to stderr and exits with `code`.
    fn fake(dir: &Path, message: &str, code: i32) -> PathBuf {
        let path = dir.join("ponder");
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho '{message}' >&2\nexit {code}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn an_optional_step_is_judged_on_its_own_output() {
        let dir = tempfile::tempdir().unwrap();
        let step = Step {
            phase: "eval-ood".into(),
            label: "go".into(),
            args: vec!["compare".into()],
            run_folder: false,
            optional: true,
            on_device: true,
        };
        let log = dir.path().join("sweep.log");
        // An earlier run's line in the appended log does not excuse this step's failure.
        std::fs::write(&log, "source go-src not found on this machine\n").unwrap();
        let failing = fake(dir.path(), "out of memory", 1);
        let e = run_step(dir.path(), &failing, &step, false, Some(&log)).unwrap_err();
        assert!(e.to_string().contains("phase eval-ood (go) failed"), "{e}");
        let missing = fake(dir.path(), "source go-src not found on this machine", 1);
        run_step(dir.path(), &missing, &step, false, Some(&log)).unwrap();
        let required = Step {
            optional: false,
            ..step
        };
        assert!(run_step(dir.path(), &missing, &required, false, Some(&log)).is_err());
    }
}
