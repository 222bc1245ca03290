//! The sandbox: every sample runs in its own `python3` process, never in ponder's.
//!
//! Each process gets: a fresh tmpfs as its working directory (and the only place it can write),
//! the rest of the file system read-only, no network (a new network namespace without even
//! loopback), CPU-time, address-space, file-size, process-count and open-file limits, a minimal
//! environment, and its own unprivileged uid (one per concurrent slot, so that one sample's fork
//! bomb cannot starve another's process count). Its process group is killed when it ends, and
//! every process left with its uid after that. A wall-clock backstop kills a sample that sleeps or
//! blocks; a busy sample's timeout is its CPU limit, so the outcome does not depend on the
//! machine's load. See `docs/design/codegen.md` for the threat model.
//!
//! Isolation needs root (to mount, to enter namespaces and to change uid). Elsewhere
//! [`Sandbox::new`] refuses, naming the step the kernel refused, unless the caller allows running
//! samples unisolated, under the resource limits only.

mod host;
mod isolate;
mod outcome;
mod process;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::sys::resource::Resource;
use serde::{Deserialize, Serialize};

use crate::error::{CodegenError, Result};
use host::{find_python, user_of_uids};
use isolate::{Plan, Step};
pub use outcome::{Execution, Outcome, Tally};

/// The `PATH` of a sample, and where the interpreter is looked for by default.
pub const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The limits of one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU seconds a sample may use: its timeout.
    pub cpu_seconds: u64,
    /// Address space of each of its processes, MiB.
    pub memory_mib: u64,
    /// Size of its working directory, and of any one file it writes, MiB.
    pub disk_mib: u64,
    /// Processes its uid may have at once.
    pub processes: u64,
    /// Files each process may have open.
    pub open_files: u64,
    /// Wall-clock seconds after which the sample is killed whatever its CPU time: the backstop
    /// for samples that sleep or block. Must exceed `cpu_seconds`.
    pub wall_seconds: u64,
}

impl Limits {
    /// Checks every limit's range, naming the first one out of it.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("cpu_seconds", self.cpu_seconds),
            ("memory_mib", self.memory_mib),
            ("disk_mib", self.disk_mib),
            ("processes", self.processes),
            ("open_files", self.open_files),
            ("wall_seconds", self.wall_seconds),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(CodegenError::Limit {
                    key,
                    what: "must be at least 1".into(),
                });
            }
        }
        if self.wall_seconds <= self.cpu_seconds {
            return Err(CodegenError::Limit {
                key: "wall_seconds",
                what: format!(
                    "{} must exceed cpu_seconds ({}): the wall clock is only a backstop",
                    self.wall_seconds, self.cpu_seconds
                ),
            });
        }
        Ok(())
    }

    /// The resource limits: soft and hard, the hard CPU limit one second past the soft one
    /// (SIGXCPU first, then SIGKILL for a sample that catches it).
    fn rlimits(&self) -> Vec<(Resource, u64, u64)> {
        let mib = 1 << 20;
        vec![
            (Resource::RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + 1),
            (
                Resource::RLIMIT_AS,
                self.memory_mib * mib,
                self.memory_mib * mib,
            ),
            (
                Resource::RLIMIT_FSIZE,
                self.disk_mib * mib,
                self.disk_mib * mib,
            ),
            (Resource::RLIMIT_NPROC, self.processes, self.processes),
            (Resource::RLIMIT_NOFILE, self.open_files, self.open_files),
            (Resource::RLIMIT_CORE, 0, 0),
        ]
    }
}

/// How to build a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The interpreter; `None` looks for `python3` in [`SANDBOX_PATH`].
    pub python: Option<PathBuf>,
    /// The limits of each sample.
    pub limits: Limits,
    /// The uid of the first slot; slot `i` runs as `uid_base + i`. These uids must belong to no
    /// user: every process of a slot's uid is killed after each of its samples.
    pub uid_base: u32,
    /// Samples run at once.
    pub jobs: usize,
    /// Run samples under the resource limits only where they cannot be isolated.
    pub allow_unisolated: bool,
}

/// Runs programs in isolated `python3` processes.
#[derive(Debug)]
pub struct Sandbox {
    python: PathBuf,
    limits: Limits,
    uid_base: u32,
    jobs: usize,
    isolated: bool,
    /// Why isolation is off, when it is.
    refused: Option<String>,
}

impl Sandbox {
    /// Finds the interpreter, checks the limits and the uids, and runs a probe sample at each
    /// step of the isolation; refuses (naming the step) where isolation is impossible unless
    /// `allow_unisolated`.
    pub fn new(config: SandboxConfig) -> Result<Self> {
        config.limits.validate()?;
        if config.jobs == 0 {
            return Err(CodegenError::Limit {
                key: "jobs",
                what: "must be at least 1".into(),
            });
        }
        let python = find_python(config.python.as_deref())?;
        let mut sandbox = Sandbox {
            python,
            limits: config.limits,
            uid_base: config.uid_base,
            jobs: config.jobs,
            isolated: true,
            refused: None,
        };
        if let Err(why) = sandbox.check_isolation() {
            if !config.allow_unisolated {
                return Err(CodegenError::Isolation { why });
            }
            sandbox.isolated = false;
            sandbox.refused = Some(why);
        }
        let probe = sandbox.run_in_slot("pass\n", 0)?;
        if probe.outcome != Outcome::Passed {
            return Err(CodegenError::Isolation {
                why: format!(
                    "a probe sample did not pass ({}): {}",
                    probe.detail,
                    probe.stderr.trim()
                ),
            });
        }
        Ok(sandbox)
    }

    /// Whether samples are isolated, in words for the output.
    pub fn describe(&self) -> String {
        match &self.refused {
            None => format!(
                "isolated: {} in new network/mount/IPC namespaces, read-only root, tmpfs working directory, uids {}..={}",
                self.python.display(),
                self.uid_base,
                self.last_uid()
            ),
            Some(why) => format!(
                "UNISOLATED ({why}): {} under resource limits only",
                self.python.display()
            ),
        }
    }

    /// Whether samples run isolated.
    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// The limits of each sample.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn last_uid(&self) -> u32 {
        self.uid_base + self.jobs as u32 - 1
    }

    /// Root, free uids, and every isolation step accepted by the kernel.
    fn check_isolation(&self) -> std::result::Result<(), String> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(format!(
                "ponder runs as uid {euid}, and entering namespaces and changing uid need root"
            ));
        }
        if self.uid_base < 1000
            || self
                .uid_base
                .checked_add(self.jobs as u32)
                .is_none_or(|end| end > 65534)
        {
            return Err(format!(
                "the sample uids {}..={} must lie in 1000..65534",
                self.uid_base,
                self.last_uid()
            ));
        }
        if let Some(user) = user_of_uids(Path::new("/etc/passwd"), self.uid_base..=self.last_uid())
        {
            return Err(format!(
                "{user} in /etc/passwd: the sample uids must belong to no user (every process of a sample's uid is killed after it)"
            ));
        }
        for step in Step::ALL {
            self.probe(step).map_err(|e| {
                format!(
                    "the kernel refused {} (or uid {} cannot run {}): {e}",
                    step.describe(),
                    self.uid_base,
                    self.python.display()
                )
            })?;
        }
        Ok(())
    }

    fn probe(&self, step: Step) -> std::io::Result<()> {
        let mut cmd = std::process::Command::new(&self.python);
        cmd.args(["-c", "pass"])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        isolate::install(&mut cmd, self.plan(0, Some(step)));
        let status = cmd.spawn()?.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "the probe ended with {status}"
            )))
        }
    }

    fn plan(&self, slot: usize, isolate_to: Option<Step>) -> Plan {
        let uid = self.uid_base + slot as u32;
        let options = format!(
            "size={}m,nr_inodes=4096,mode=0700,uid={uid},gid={uid}",
            self.limits.disk_mib
        );
        Plan {
            isolate_to,
            uid,
            tmpfs_options: CString::new(options).expect("no NUL in the mount options"),
            limits: self.limits.rlimits(),
        }
    }

    /// Runs one program in slot 0.
    pub fn run(&self, program: &str) -> Result<Execution> {
        self.run_in_slot(program, 0)
    }

    /// Runs every program, `jobs` at a time, and returns their executions in order; `progress`
    /// is called after each one.
    pub fn run_all(
        &self,
        programs: &[String],
        progress: impl Fn() + Sync,
    ) -> Result<Vec<Execution>> {
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<Result<Execution>>>> =
            Mutex::new((0..programs.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for slot in 0..self.jobs.min(programs.len()) {
                let (next, results, progress) = (&next, &results, &progress);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= programs.len() {
                        break;
                    }
                    let run = self.run_in_slot(&programs[i], slot);
                    results.lock().expect("no worker panics")[i] = Some(run);
                    progress();
                });
            }
        });
        results
            .into_inner()
            .expect("no worker panics")
            .into_iter()
            .map(|r| r.expect("every program ran"))
            .collect()
    }

    fn run_in_slot(&self, program: &str, slot: usize) -> Result<Execution> {
        let isolate_to = self.isolated.then_some(Step::Identity);
        process::run(self, program, self.plan(slot, isolate_to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn limits() -> Limits {
        Limits {
            cpu_seconds: 2,
            memory_mib: 512,
            disk_mib: 16,
            processes: 16,
            open_files: 64,
            wall_seconds: 10,
        }
    }

    #[test]
    fn limits_out_of_range_are_named() {
        let mut l = limits();
        l.processes = 0;
        assert!(l.validate().unwrap_err().to_string().contains("processes"));
        let mut l = limits();
        l.wall_seconds = 2;
        assert!(l
            .validate()
            .unwrap_err()
            .to_string()
            .contains("wall_seconds"));
        assert!(limits().validate().is_ok());
    }
}
