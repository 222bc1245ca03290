//! One benchmark problem, whichever benchmark it comes from, and the program that tests a
//! completion of it.
//!
//! A completion is what a model writes after the prompt. The program the sandbox runs is the
//! prompt and the completion exactly as given (no whitespace stripped), then the benchmark's tests
//! in the form its harness expects.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The benchmarks ponder can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bench {
    /// OpenAI's HumanEval: 164 functions with docstrings and `check(candidate)` tests.
    HumanEval,
    /// MBPP, the sanitized test set: a description, one function, assert statements.
    Mbpp,
    /// ClassEval: class skeletons with unittest test classes.
    ClassEval,
}

impl Bench {
    /// Every benchmark, in the order of the docs.
    pub const ALL: [Bench; 3] = [Bench::HumanEval, Bench::Mbpp, Bench::ClassEval];

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Bench::HumanEval => "humaneval",
            Bench::Mbpp => "mbpp",
            Bench::ClassEval => "classeval",
        }
    }
}

impl fmt::Display for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Bench {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bench::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                format!("unknown benchmark `{s}`: expected humaneval, mbpp or classeval")
            })
    }
}

/// How a problem's tests are run after the code under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Harness {
    /// The tests define `check(candidate)`, which is called with the entry point (HumanEval).
    CheckFunction,
    /// The tests are statements (MBPP's imports and asserts), run in order.
    Statements,
    /// The tests define `unittest.TestCase` classes, run by unittest; the program fails when any
    /// test fails or errs (ClassEval).
    Unittest,
}

/// One problem: what the model sees, what it must define, and how it is tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The benchmark.
    pub bench: Bench,
    /// The benchmark's own id, e.g. `HumanEval/0`.
    pub task_id: String,
    /// The text the model continues, exactly as the benchmark gives it.
    pub prompt: String,
    /// What the program puts before the completion: the prompt itself where the model
    /// continues it (HumanEval, MBPP), the import statements where the model writes the whole
    /// class (ClassEval).
    pub program_prefix: String,
    /// The function or class the tests call.
    pub entry_point: String,
    /// The test code.
    pub test: String,
    /// The benchmark's reference completion of the prompt.
    pub canonical_solution: String,
    /// How the tests are run.
    pub harness: Harness,
}

impl Problem {
    /// The program that tests `completion`: the program prefix, the completion, then the tests.
    /// It exits with status 0 only when every test passed (a failing assert raises, a failing
    /// unittest exits 1).
    pub fn program(&self, completion: &str) -> String {
        let mut p = String::with_capacity(
            self.program_prefix.len() + completion.len() + self.test.len() + 128,
        );
        p.push_str(&self.program_prefix);
        p.push_str(completion);
        p.push_str("\n\n");
        p.push_str(&self.test);
        p.push('\n');
        match self.harness {
            Harness::CheckFunction => {
                p.push_str(&format!("\ncheck({})\n", self.entry_point));
            }
            Harness::Statements => {}
            Harness::Unittest => p.push_str(UNITTEST_MAIN),
        }
        p
    }

    /// The program that tests the benchmark's own solution.
    pub fn canonical_program(&self) -> String {
        self.program(&self.canonical_solution)
    }
}

/// Runs every `TestCase` of the program and exits 1 unless all passed.
const UNITTEST_MAIN: &str = r#"
import sys as _ponder_sys, unittest as _ponder_unittest
_ponder_result = _ponder_unittest.main(module="__main__", exit=False, verbosity=0).result
if not _ponder_result.wasSuccessful():
    _ponder_sys.exit(1)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(harness: Harness) -> Problem {
        Problem {
            bench: Bench::HumanEval,
            task_id: "T/0".into(),
            prompt: "def f(x):\n    ".into(),
            program_prefix: "def f(x):\n    ".into(),
            entry_point: "f".into(),
            test: "def check(c):\n    assert c(1) == 2\n".into(),
            canonical_solution: "return x + 1\n".into(),
            harness,
        }
    }

    #[test]
    fn program_keeps_prompt_and_completion_exactly() {
        let p = problem(Harness::CheckFunction).program("return x + 1  \n");
        assert_eq!(
            p,
            "def f(x):\n    return x + 1  \n\n\ndef check(c):\n    assert c(1) == 2\n\n\ncheck(f)\n"
        );
        assert!(problem(Harness::Statements)
            .program("")
            .ends_with("assert c(1) == 2\n\n"));
        assert!(problem(Harness::Unittest)
            .program("")
            .contains("unittest.main"));
    }

    #[test]
    fn bench_names_round_trip() {
        for b in Bench::ALL {
            assert_eq!(b.name().parse::<Bench>().unwrap(), b);
        }
        assert!("humaneval+"
            .parse::<Bench>()
            .unwrap_err()
            .contains("humaneval+"));
    }
}
