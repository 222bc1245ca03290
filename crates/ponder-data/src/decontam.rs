//! Benchmark decontamination as the original does it for HumanEval (`docs/original.md` §6.2):
//! a file is dropped when it contains, as a substring, any reference solution longer than 40
//! characters once stripped, of the benchmark files `data.decontaminate` lists (HumanEval's,
//! MBPP's or ClassEval's release format, read by `ponder-codegen`).

use std::path::Path;

use crate::error::{Error, Result};

/// Canonical solutions kept for matching (stripped, longer than 40 characters).
#[derive(Debug, Clone, Default)]
pub struct Decontaminator {
    solutions: Vec<String>,
}

impl Decontaminator {
    /// The solutions of every benchmark file of `paths` (`data.decontaminate`: HumanEval's,
    /// MBPP's or ClassEval's release format), stripped, those longer than 40 characters; a
    /// missing file is an error that names the key and says how to install HumanEval.
    pub fn from_files(paths: &[String]) -> Result<Self> {
        let mut solutions = Vec::new();
        for p in paths {
            let path = Path::new(p);
            if !path.is_file() {
                return Err(Error::Config(format!(
                    "data.decontaminate: {p} not found (install HumanEval with `cargo xtask data --yes humaneval`, or set data.decontaminate = [])"
                )));
            }
            let problems = ponder_codegen::load_any(path)
                .map_err(|e| Error::Config(format!("data.decontaminate: {e}")))?;
            solutions.extend(
                problems
                    .into_iter()
                    .map(|p| p.canonical_solution.trim().to_string())
                    .filter(|s| s.chars().count() > 40),
            );
        }
        Ok(Self { solutions })
    }

    /// Number of solutions matched against.
    pub fn len(&self) -> usize {
        self.solutions.len()
    }

    /// Whether no solution is matched against.
    pub fn is_empty(&self) -> bool {
        self.solutions.is_empty()
    }

    /// Whether `text` contains a solution.
    pub fn is_contaminated(&self, text: &str) -> bool {
        self.solutions.iter().any(|s| text.contains(s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_every_benchmark_format_and_matches_long_solutions_only() {
        let dir = tempfile::tempdir().unwrap();
        let humaneval = dir.path().join("HumanEval.jsonl.gz");
        let long = "    return sorted(set(l1) & set(l2), key=lambda x: (x, -x))\\n";
        let row = |id: usize, solution: &str| {
            format!("{{\"task_id\": \"HumanEval/{id}\", \"prompt\": \"def f(l1, l2):\\n\", \"entry_point\": \"f\", \"canonical_solution\": \"{solution}\", \"test\": \"def check(c):\\n    pass\\n\"}}\n")
        };
        let lines = row(0, long) + &row(1, "    return x\\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(lines.as_bytes()).unwrap();
        std::fs::write(&humaneval, gz.finish().unwrap()).unwrap();
        let mbpp = dir.path().join("sanitized-mbpp.json");
        std::fs::write(&mbpp, r#"[{"source_file": "x", "task_id": 7, "prompt": "Find words.", "code": "import re\ndef find_char_long(text):\n  return (re.findall(r\"\\b\\w{4,}\\b\", text))", "test_imports": [], "test_list": ["assert find_char_long('Please move back') == ['Please', 'move', 'back']"]}]"#).unwrap();
        let paths = [humaneval.display().to_string(), mbpp.display().to_string()];
        let d = Decontaminator::from_files(&paths).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.is_contaminated(
            "def common(l1, l2):\n    return sorted(set(l1) & set(l2), key=lambda x: (x, -x))\n"
        ));
        assert!(d.is_contaminated("x = 1\nimport re\ndef find_char_long(text):\n  return (re.findall(r\"\\b\\w{4,}\\b\", text))\n"));
        assert!(!d.is_contaminated("def f(x):\n    return x\n"));
        std::fs::write(dir.path().join("bad.jsonl"), "{\"x\": 1}\n").unwrap();
        let err = Decontaminator::from_files(&[dir.path().join("bad.jsonl").display().to_string()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data.decontaminate") && err.contains("bad.jsonl"),
            "{err}"
        );
    }
}
