//! Code from Hugging Face dataset repositories: `.jsonl` files (optionally gzipped) whose rows
//! hold a file's content and, optionally, its language, fetched through the standard HF cache
//! (offline: cache only). Each row becomes one document; rows of other languages are dropped, and
//! the usual skip rules apply to the content.
//!
//! Public repositories in this format work without credentials. The original's
//! `bigcode/the-stack-v2-train-full-ids` holds only file ids (content lives in Software
//! Heritage's S3 bucket), so it is not supported.

use std::path::Path;
use std::sync::Arc;

use ponder_hub::Hub;
use serde::{Deserialize, Serialize};

use crate::corpus::{skip_reason, Corpus, Origin, ScanOptions, SourceFile};
use crate::error::{Error, Result};
use crate::lang::Language;

/// Which columns of the rows to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfColumns {
    /// The column holding a file's text.
    pub content: String,
    /// The column holding its language, if the file mixes languages (compared case-insensitively
    /// with the language's name).
    pub language: Option<String>,
}

/// Parses `hf:ORG/NAME:path/in/repo.jsonl` into `(repo, file)`.
pub fn parse_spec(spec: &str) -> Option<(&str, &str)> {
    let rest = spec.strip_prefix("hf:")?;
    let (repo, file) = rest.split_once(':')?;
    (!repo.is_empty() && !file.is_empty()).then_some((repo, file))
}

/// The corpus of one dataset file of `repo`.
pub fn dataset_corpus(
    hub: &Hub,
    spec: &str,
    columns: &HfColumns,
    language: Language,
    opts: &ScanOptions,
) -> Result<Corpus> {
    let (repo, file) = parse_spec(spec).ok_or_else(|| {
        Error::Windows(format!("{spec}: expected hf:ORG/NAME:path/in/repo.jsonl"))
    })?;
    let path = hub.get_dataset(repo, file)?;
    jsonl_corpus(spec, &path, columns, language, opts)
}

/// The corpus of a local `.jsonl` or `.jsonl.gz` file in the same format.
pub fn jsonl_corpus(
    name: &str,
    path: &Path,
    columns: &HfColumns,
    language: Language,
    opts: &ScanOptions,
) -> Result<Corpus> {
    let text = crate::text::read_maybe_gzipped(path)?;
    let mut files = Vec::new();
    let mut skipped = std::collections::BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |reason: String| Error::BadText {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let content = row
            .get(&columns.content)
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad(format!("no string column `{}`", columns.content)))?;
        if let Some(col) = &columns.language {
            let lang = row
                .get(col)
                .and_then(|v| v.as_str())
                .ok_or_else(|| bad(format!("no string column `{col}`")))?;
            if Language::parse(lang) != Some(language) {
                continue;
            }
        }
        let rel_path = format!("row{:08}", i + 1);
        match skip_reason(&rel_path, content.as_bytes(), opts) {
            Some(reason) => *skipped.entry(reason).or_insert(0) += 1,
            None => files.push(SourceFile {
                rel_path,
                size: content.len() as u64,
                origin: Origin::Text(Arc::from(content)),
            }),
        }
    }
    Ok(Corpus {
        name: name.to_string(),
        language,
        root: path.to_path_buf(),
        files,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ponder_hub::{insert_repo_file, HubOptions, RepoKind};

    #[test]
    fn rows_of_the_language_become_documents_offline_from_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let rows = [
            r#"{"content": "def f():\n    return 1\n", "lang": "Python"}"#,
            r#"{"content": "fn f() -> i32 { 1 }\n", "lang": "Rust"}"#,
            r#"{"content": "", "lang": "Python"}"#,
            r#"{"content": "x = [1, 2]\n", "lang": "python"}"#,
        ]
        .join("\n");
        insert_repo_file(
            cache.path(),
            RepoKind::Dataset,
            "org/code",
            "abc",
            "data/train.jsonl",
            rows.as_bytes(),
        )
        .unwrap();
        let hub = Hub::new(HubOptions {
            offline: true,
            ..HubOptions::new(cache.path())
        });
        let cols = HfColumns {
            content: "content".into(),
            language: Some("lang".into()),
        };
        let c = dataset_corpus(
            &hub,
            "hf:org/code:data/train.jsonl",
            &cols,
            Language::Python,
            &ScanOptions::standard(),
        )
        .unwrap();
        let texts = c.read_all().unwrap();
        assert_eq!(texts, ["def f():\n    return 1\n", "x = [1, 2]\n"]);
        assert_eq!(c.files[1].rel_path, "row00000004");
        assert_eq!(c.skipped.values().sum::<usize>(), 1);
        let err = dataset_corpus(
            &hub,
            "hf:org/other:x.jsonl",
            &cols,
            Language::Python,
            &ScanOptions::standard(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("org/other: x.jsonl is not in the Hugging Face cache"),
            "{err}"
        );
        let bad = HfColumns {
            content: "text".into(),
            language: None,
        };
        let err = dataset_corpus(
            &hub,
            "hf:org/code:data/train.jsonl",
            &bad,
            Language::Python,
            &ScanOptions::standard(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("line 1: no string column `text`"),
            "{err}"
        );
        assert!(parse_spec("hf:org/code").is_none());
    }
}
