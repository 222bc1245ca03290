//! The original's corpus: `bigcode/the-stack-v2-train-full-ids` (gated: an HF token whose
//! account accepted the terms), whose rows are repositories with a `files` list of structs
//! (`blob_id`, `language`, `src_encoding`, `path`, …) and no content. The files whose `language`
//! equals the language's Stack v2 name exactly are taken in stream order (after `skip` of them,
//! at most `max_files`), and their contents fetched from Software Heritage ([`super::swh`]).
//!
//! A source is `hf-stack-v2:PATH/IN/REPO.parquet`, optionally followed by
//! `?skip=N&max_files=M`; the Parquet file comes through the HF cache like any `hf:` file.
//! Only UTF-8 contents are decoded: another `src_encoding` (or a null one) is skipped as
//! [`SkipReason::Encoding`] before any download. Failed downloads are skipped and counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ponder_hub::Hub;

use super::swh::{fetch_blobs, SwhOptions};
use crate::corpus::{skip_reason, Corpus, Origin, ScanOptions, SkipReason, SourceFile};
use crate::error::{Error, Result};
use crate::lang::Language;

/// The Hugging Face dataset of file ids the original trains and evaluates on.
pub const STACK_V2_IDS_REPO: &str = "bigcode/the-stack-v2-train-full-ids";

/// Which files of the language's stream to take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StackV2Slice {
    /// Files of the language passed over first, before any download (the original's
    /// `skip_examples`).
    pub skip: usize,
    /// At most this many files after them (each is downloaded, or skipped with a reason).
    pub max_files: Option<usize>,
}

/// One file of the language, as listed in a repository row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackV2File {
    /// Its 1-based position among the language's files of the Parquet file (`skip` included).
    pub index: usize,
    /// The 1-based repository row that lists it.
    pub row: usize,
    /// Its Software Heritage blob id.
    pub blob_id: String,
    /// Its path in the repository, if the row gives one.
    pub path: Option<String>,
    /// Its `src_encoding`, if not null.
    pub src_encoding: Option<String>,
}

/// The language's name in The Stack v2's `language` field (GitHub Linguist's names).
pub fn stack_v2_name(language: Language) -> &'static str {
    match language {
        Language::Python => "Python",
        Language::JavaScript => "JavaScript",
        Language::Java => "Java",
        Language::Go => "Go",
        Language::Rust => "Rust",
    }
}

/// Parses `hf-stack-v2:PATH[?skip=N&max_files=M]` into the file's path in
/// [`STACK_V2_IDS_REPO`] and the slice; `None` when it is not such a spec, or an unknown key or
/// a value that is not a number is given.
pub fn parse_stack_v2_spec(spec: &str) -> Option<(&str, StackV2Slice)> {
    let rest = spec.strip_prefix("hf-stack-v2:")?;
    let (file, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut slice = StackV2Slice::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=')? {
            ("skip", n) => slice.skip = n.parse().ok()?,
            ("max_files", n) => slice.max_files = Some(n.parse().ok()?),
            _ => return None,
        }
    }
    (!file.is_empty()).then_some((file, slice))
}

/// The corpus of a `hf-stack-v2:` source: the Parquet file through `hub` (its token for the
/// gated repository, its cache and offline mode), contents from Software Heritage's S3 bucket
/// cached under the HF cache folder (`<cache>/swh/<blob_id>`).
pub fn stack_v2_corpus(
    hub: &Hub,
    spec: &str,
    language: Language,
    scan: &ScanOptions,
) -> Result<Corpus> {
    let swh = SwhOptions::new(hub.options().cache_dir.clone(), hub.options().offline);
    stack_v2_corpus_with(hub, spec, language, scan, &swh)
}

/// [`stack_v2_corpus`] with explicit content-fetch settings (base URL, cache, offline, threads).
pub fn stack_v2_corpus_with(
    hub: &Hub,
    spec: &str,
    language: Language,
    scan: &ScanOptions,
    swh: &SwhOptions,
) -> Result<Corpus> {
    let (file, slice) = parse_stack_v2_spec(spec).ok_or_else(|| {
        Error::Windows(format!(
            "{spec}: expected hf-stack-v2:path/in/repo.parquet, optionally followed by \
             ?skip=N&max_files=M"
        ))
    })?;
    if !cfg!(feature = "parquet") {
        // Refuse before downloading anything.
        return Err(no_parquet(Path::new(file)));
    }
    let path = hub.get_dataset(STACK_V2_IDS_REPO, file)?;
    stack_v2_file_corpus(spec, &path, language, slice, scan, swh)
}

/// The corpus of a local Parquet file of `the-stack-v2-train-full-ids`: the language's files in
/// stream order, each a document named `NNNNNNNN/path` (`NNNNNNNN` its [`StackV2File::index`]).
pub fn stack_v2_file_corpus(
    name: &str,
    path: &Path,
    language: Language,
    slice: StackV2Slice,
    scan: &ScanOptions,
    swh: &SwhOptions,
) -> Result<Corpus> {
    let ids = read_ids(path, language, slice)?;
    let mut skipped = BTreeMap::new();
    let (utf8, other): (Vec<&StackV2File>, Vec<&StackV2File>) = ids
        .iter()
        .partition(|f| is_utf8_label(f.src_encoding.as_deref()));
    if !other.is_empty() {
        skipped.insert(SkipReason::Encoding, other.len());
    }
    let blob_ids: Vec<String> = utf8.iter().map(|f| f.blob_id.clone()).collect();
    let contents = fetch_blobs(&blob_ids, swh)?;
    let mut files = Vec::new();
    for (f, content) in utf8.iter().zip(contents) {
        let file_path = f.path.as_deref().unwrap_or(&f.blob_id);
        let rel_path = format!("{:08}/{}", f.index, file_path.trim_start_matches('/'));
        let verdict = content.and_then(|bytes| match skip_reason(&rel_path, &bytes, scan) {
            Some(reason) => Err(reason),
            None => String::from_utf8(bytes).map_err(|_| SkipReason::NotText),
        });
        match verdict {
            Ok(text) => files.push(SourceFile {
                rel_path,
                size: text.len() as u64,
                origin: Origin::Text(Arc::from(text)),
            }),
            Err(reason) => *skipped.entry(reason).or_insert(0) += 1,
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

/// The language's files listed in the Parquet file at `path`, in stream order, after `skip` of
/// them and at most `max_files`. Without the `parquet` feature this is an error saying how to
/// rebuild.
pub fn read_ids(path: &Path, language: Language, slice: StackV2Slice) -> Result<Vec<StackV2File>> {
    #[cfg(feature = "parquet")]
    {
        super::parquet::catching_panics(path, || {
            super::stack_v2_rows::read_ids(path, stack_v2_name(language), slice)
        })
    }
    #[cfg(not(feature = "parquet"))]
    {
        let _ = (language, slice);
        Err(no_parquet(path))
    }
}

/// The error of a build without the `parquet` feature.
fn no_parquet(path: &Path) -> Error {
    Error::BadDataset {
        path: path.to_path_buf(),
        reason: "this build reads no Parquet files: rebuild with `--features parquet` \
                 (`--features ponder-data/parquet` from a crate that depends on it)"
            .into(),
    }
}

/// Whether content labelled `encoding` is decoded (UTF-8 and ASCII, a subset of it).
fn is_utf8_label(encoding: Option<&str>) -> bool {
    encoding.is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "utf-8" | "utf8" | "utf_8" | "ascii" | "us-ascii"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_names() {
        assert_eq!(
            parse_stack_v2_spec("hf-stack-v2:data/a.parquet"),
            Some(("data/a.parquet", StackV2Slice::default()))
        );
        assert_eq!(
            parse_stack_v2_spec("hf-stack-v2:a.parquet?skip=3&max_files=5"),
            Some((
                "a.parquet",
                StackV2Slice {
                    skip: 3,
                    max_files: Some(5)
                }
            ))
        );
        assert_eq!(parse_stack_v2_spec("hf-stack-v2:a.parquet?skip=x"), None);
        assert_eq!(parse_stack_v2_spec("hf-stack-v2:a.parquet?limit=1"), None);
        assert_eq!(parse_stack_v2_spec("hf-stack-v2:"), None);
        assert_eq!(parse_stack_v2_spec("hf:org/x:a.parquet"), None);
        assert_eq!(stack_v2_name(Language::JavaScript), "JavaScript");
        assert!(is_utf8_label(Some("UTF-8")));
        assert!(!is_utf8_label(Some("ISO-8859-1")));
        assert!(!is_utf8_label(None));
    }
}
