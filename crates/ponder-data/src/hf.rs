//! Code from Hugging Face dataset repositories: JSON Lines files (`.jsonl`, optionally gzipped)
//! and, with the `parquet` feature (on by default), Parquet files, whose rows hold a file's
//! content and, optionally, its language. They are fetched through the standard HF cache
//! (offline: cache only). Each row becomes one document; rows of other languages are dropped, and
//! the usual skip rules apply to the content.
//!
//! A null content is skipped and counted as [`SkipReason::Null`]; a null language drops the row
//! like any other language. A column missing from a row (JSON Lines) or from the file (Parquet),
//! or one that is not a string, is an error naming it.
//!
//! Public repositories in these formats work without credentials; gated ones need `HF_TOKEN`.
//! The original's `bigcode/the-stack-v2-train-full-ids` holds only file ids, whose contents live
//! in Software Heritage's S3 bucket: [`stack_v2`] reads it (`hf-stack-v2:` sources) and [`swh`]
//! fetches and caches the contents.

#[cfg(feature = "parquet")]
mod parquet;
pub mod stack_v2;
#[cfg(feature = "parquet")]
mod stack_v2_rows;
pub mod swh;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ponder_hub::Hub;
use serde::{Deserialize, Serialize};

use crate::corpus::{skip_reason, Corpus, Origin, ScanOptions, SkipReason, SourceFile};
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

/// Parses `hf:ORG/NAME:path/in/repo.jsonl` (or `.parquet`) into `(repo, file)`.
pub fn parse_spec(spec: &str) -> Option<(&str, &str)> {
    let rest = spec.strip_prefix("hf:")?;
    let (repo, file) = rest.split_once(':')?;
    (!repo.is_empty() && !file.is_empty()).then_some((repo, file))
}

/// The corpus of one dataset file of `repo`: Parquet when the name ends in `.parquet`, JSON
/// Lines (`.jsonl`, `.jsonl.gz`) otherwise.
pub fn dataset_corpus(
    hub: &Hub,
    spec: &str,
    columns: &HfColumns,
    language: Language,
    opts: &ScanOptions,
) -> Result<Corpus> {
    let (repo, file) = parse_spec(spec).ok_or_else(|| {
        Error::Windows(format!(
            "{spec}: expected hf:ORG/NAME:path/in/repo.jsonl (or .jsonl.gz, .parquet)"
        ))
    })?;
    let is_parquet = file.ends_with(".parquet");
    if is_parquet && !cfg!(feature = "parquet") {
        // Refuse before downloading anything.
        return parquet_corpus(spec, Path::new(file), columns, language, opts);
    }
    let path = hub.get_dataset(repo, file)?;
    if is_parquet {
        parquet_corpus(spec, &path, columns, language, opts)
    } else {
        jsonl_corpus(spec, &path, columns, language, opts)
    }
}

/// The corpus of a local `.jsonl` or `.jsonl.gz` file in the same format. A row's relative path
/// is `rowNNNNNNNN`, its 1-based line number.
pub fn jsonl_corpus(
    name: &str,
    path: &Path,
    columns: &HfColumns,
    language: Language,
    opts: &ScanOptions,
) -> Result<Corpus> {
    let text = crate::text::read_maybe_gzipped(path)?;
    let mut rows = Rows::new(columns, language, opts);
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |reason: String| Error::BadDataset {
            path: path.to_path_buf(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let row: serde_json::Value =
            serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let content = json_string(&row, &columns.content).map_err(bad)?;
        let lang = match &columns.language {
            Some(col) => json_string(&row, col).map_err(bad)?,
            None => None,
        };
        rows.push(i + 1, lang, content.map(str::as_bytes));
    }
    Ok(rows.into_corpus(name, path))
}

/// The corpus of a local `.parquet` file in the same format, read row group by row group
/// (compressed with snappy, zstd, gzip or not at all). A row's relative path is `rowNNNNNNNN`,
/// its 1-based index in the file. The columns must be top-level strings (`BYTE_ARRAY`, UTF-8 or
/// unannotated).
///
/// Without the `parquet` feature this is an error saying how to rebuild.
pub fn parquet_corpus(
    name: &str,
    path: &Path,
    columns: &HfColumns,
    language: Language,
    opts: &ScanOptions,
) -> Result<Corpus> {
    #[cfg(feature = "parquet")]
    {
        let mut rows = Rows::new(columns, language, opts);
        parquet::read_rows(path, columns, &mut rows)?;
        Ok(rows.into_corpus(name, path))
    }
    #[cfg(not(feature = "parquet"))]
    {
        let _ = (name, columns, language, opts);
        Err(Error::BadDataset {
            path: path.to_path_buf(),
            reason: "this build reads no Parquet files: rebuild with `--features parquet` \
                     (`--features ponder-data/parquet` from a crate that depends on it)"
                .into(),
        })
    }
}

/// The rows of one dataset file, gathered into a corpus with the same rules for every format.
struct Rows<'a> {
    language: Language,
    /// Whether rows carry a language to compare.
    by_language: bool,
    opts: &'a ScanOptions,
    files: Vec<SourceFile>,
    skipped: BTreeMap<SkipReason, usize>,
}

impl<'a> Rows<'a> {
    fn new(columns: &HfColumns, language: Language, opts: &'a ScanOptions) -> Self {
        Self {
            language,
            by_language: columns.language.is_some(),
            opts,
            files: Vec::new(),
            skipped: BTreeMap::new(),
        }
    }

    /// Adds row `row_no` (1-based): `lang` is its language (`None` when null; ignored when the
    /// rows carry no language) and `content` its text (`None` when null).
    fn push(&mut self, row_no: usize, lang: Option<&str>, content: Option<&[u8]>) {
        if self.by_language && lang.and_then(Language::parse) != Some(self.language) {
            return;
        }
        let rel_path = format!("row{row_no:08}");
        let verdict = match content {
            None => Err(SkipReason::Null),
            Some(bytes) => match skip_reason(&rel_path, bytes, self.opts) {
                Some(reason) => Err(reason),
                None => std::str::from_utf8(bytes).map_err(|_| SkipReason::NotText),
            },
        };
        match verdict {
            Ok(text) => self.files.push(SourceFile {
                rel_path,
                size: text.len() as u64,
                origin: Origin::Text(Arc::from(text)),
            }),
            Err(reason) => *self.skipped.entry(reason).or_insert(0) += 1,
        }
    }

    fn into_corpus(self, name: &str, path: &Path) -> Corpus {
        Corpus {
            name: name.to_string(),
            language: self.language,
            root: path.to_path_buf(),
            files: self.files,
            skipped: self.skipped,
        }
    }
}

/// The string in column `col` of a JSON row: `None` when null, an error when absent or of
/// another type.
fn json_string<'r>(
    row: &'r serde_json::Value,
    col: &str,
) -> std::result::Result<Option<&'r str>, String> {
    let Some(object) = row.as_object() else {
        return Err(format!("not a JSON object but {}", json_kind(row)));
    };
    match object.get(col) {
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Null) => Ok(None),
        Some(other) => Err(format!(
            "column `{col}` is {}, not a string",
            json_kind(other)
        )),
        None => {
            let present: Vec<String> = object.keys().map(|k| format!("`{k}`")).collect();
            Err(format!(
                "no string column `{col}` (the row's columns are {})",
                present.join(", ")
            ))
        }
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
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
            r#"{"content": null, "lang": "Python"}"#,
            r#"{"content": "y = 3\n", "lang": null}"#,
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
        let expected = BTreeMap::from([(SkipReason::Empty, 1), (SkipReason::Null, 1)]);
        assert_eq!(c.skipped, expected);
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
            err.to_string().contains(
                "line 1: no string column `text` (the row's columns are `content`, `lang`)"
            ),
            "{err}"
        );
        assert!(parse_spec("hf:org/code").is_none());
    }

    #[test]
    fn json_columns_of_another_type_are_errors_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        std::fs::write(&path, "{\"content\": \"x = 1\\n\", \"lang\": 3}\n").unwrap();
        let cols = HfColumns {
            content: "content".into(),
            language: Some("lang".into()),
        };
        let opts = ScanOptions::standard();
        let err = jsonl_corpus("rows", &path, &cols, Language::Python, &opts).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("rows.jsonl: line 1: column `lang` is a number, not a string"),
            "{err}"
        );
        std::fs::write(&path, "[1, 2]\n").unwrap();
        let err = jsonl_corpus("rows", &path, &cols, Language::Python, &opts).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: not a JSON object but an array"),
            "{err}"
        );
    }
}
