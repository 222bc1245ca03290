//! What became of one sample: passed, failed, timed out or crashed, decided from how its process
//! ended and the CPU time it used, never from the wall clock alone.

use serde::{Deserialize, Serialize};

/// The four outcomes of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The program ran to its end: every test passed.
    Passed,
    /// The program ended by itself before its end: a failed assert, an exception (a refused
    /// allocation, a refused socket or file), or an early `exit`.
    Failed,
    /// The program used up its CPU time, or outlived the wall-clock backstop.
    TimedOut,
    /// The program was killed by a signal other than the CPU limit's: a segfault, an abort, the
    /// file-size limit.
    Crashed,
}

impl Outcome {
    /// Every outcome, in the order of the summaries.
    pub const ALL: [Outcome; 4] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::TimedOut,
        Outcome::Crashed,
    ];
}

/// One sample's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// What became of it.
    pub outcome: Outcome,
    /// How its process ended, in words: `exit 1`, `signal SIGSEGV`, `CPU limit`, `wall backstop`.
    pub detail: String,
    /// CPU seconds of the process and the children it waited for (10 ms resolution).
    pub cpu_seconds: f64,
    /// Wall-clock seconds from start to end.
    pub wall_seconds: f64,
    /// The last bytes of its standard output, without the sandbox's end marker.
    pub stdout: String,
    /// The last bytes of its standard error.
    pub stderr: String,
}

/// How the process ended, as the host saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It exited with this status.
    Exit(i32),
    /// A signal killed it.
    Signal(nix::sys::signal::Signal),
    /// The wall-clock backstop killed it.
    Backstop,
}

/// The outcome of a process that ended so, used `cpu_seconds` of CPU against a limit of
/// `cpu_limit` seconds, and printed (`reached_end`) or did not print the end marker.
pub(crate) fn classify(
    ending: Ending,
    cpu_seconds: f64,
    cpu_limit: u64,
    reached_end: bool,
) -> (Outcome, String) {
    use nix::sys::signal::Signal;
    match ending {
        Ending::Backstop => (Outcome::TimedOut, "wall backstop".into()),
        Ending::Signal(Signal::SIGXCPU) => (Outcome::TimedOut, "CPU limit".into()),
        // The hard CPU limit, one second past the soft one, kills a sample that ignores SIGXCPU.
        Ending::Signal(Signal::SIGKILL) if cpu_seconds >= cpu_limit as f64 => {
            (Outcome::TimedOut, "CPU limit".into())
        }
        Ending::Signal(s) => (Outcome::Crashed, format!("signal {}", s.as_str())),
        Ending::Exit(0) if reached_end => (Outcome::Passed, "exit 0".into()),
        Ending::Exit(0) => (Outcome::Failed, "exit 0 before the end of the tests".into()),
        Ending::Exit(code) => (Outcome::Failed, format!("exit {code}")),
    }
}

/// Counts of each outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Passed samples.
    pub passed: usize,
    /// Failed samples.
    pub failed: usize,
    /// Timed-out samples.
    pub timed_out: usize,
    /// Crashed samples.
    pub crashed: usize,
}

impl Tally {
    /// Counts the outcomes of `executions`.
    pub fn of<'a>(executions: impl IntoIterator<Item = &'a Execution>) -> Self {
        Self::of_outcomes(executions.into_iter().map(|e| e.outcome))
    }

    /// Counts `outcomes`.
    pub fn of_outcomes(outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        let mut t = Tally::default();
        for outcome in outcomes {
            *match outcome {
                Outcome::Passed => &mut t.passed,
                Outcome::Failed => &mut t.failed,
                Outcome::TimedOut => &mut t.timed_out,
                Outcome::Crashed => &mut t.crashed,
            } += 1;
        }
        t
    }

    /// All samples counted.
    pub fn total(&self) -> usize {
        self.passed + self.failed + self.timed_out + self.crashed
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::signal::Signal;

    use super::*;

    #[test]
    fn endings_map_to_outcomes() {
        let c = |e, cpu, end| classify(e, cpu, 3, end).0;
        assert_eq!(c(Ending::Exit(0), 0.1, true), Outcome::Passed);
        assert_eq!(c(Ending::Exit(0), 0.1, false), Outcome::Failed);
        assert_eq!(c(Ending::Exit(1), 0.1, true), Outcome::Failed);
        assert_eq!(
            c(Ending::Signal(Signal::SIGXCPU), 3.0, false),
            Outcome::TimedOut
        );
        assert_eq!(
            c(Ending::Signal(Signal::SIGKILL), 4.0, false),
            Outcome::TimedOut
        );
        // A SIGKILL before the CPU limit is the sample's own doing.
        assert_eq!(
            c(Ending::Signal(Signal::SIGKILL), 0.2, false),
            Outcome::Crashed
        );
        assert_eq!(
            c(Ending::Signal(Signal::SIGSEGV), 0.1, false),
            Outcome::Crashed
        );
        assert_eq!(c(Ending::Backstop, 0.0, false), Outcome::TimedOut);
        assert_eq!(
            classify(Ending::Signal(Signal::SIGSEGV), 0.1, 3, false).1,
            "signal SIGSEGV"
        );
    }

    #[test]
    fn tally_counts_each_outcome() {
        let e = |outcome| Execution {
            outcome,
            detail: String::new(),
            cpu_seconds: 0.0,
            wall_seconds: 0.0,
            stdout: String::new(),
            stderr: String::new(),
        };
        let runs = [
            e(Outcome::Passed),
            e(Outcome::Passed),
            e(Outcome::Crashed),
            e(Outcome::TimedOut),
        ];
        let t = Tally::of(&runs);
        assert_eq!(
            (t.passed, t.failed, t.timed_out, t.crashed, t.total()),
            (2, 0, 1, 1, 4)
        );
    }
}
