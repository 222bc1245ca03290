//! Source-code corpora: the files of one language under a folder (or inside a zip archive such
//! as the JDK's `src.zip`), filtered by skip rules, in a deterministic order.
//!
//! Skipped files are counted by reason, never fatal: larger than the size limit, minified,
//! inside an excluded folder (vendored code, test data), generated, empty, or not UTF-8 text
//! (and, for dataset rows, null; for Stack v2 files, an encoding other than UTF-8, a failed
//! download, corrupt gzip, or a blob not cached while offline).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lang::Language;

/// Rules that decide which files of a language count.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanOptions {
    /// Files larger than this many bytes are skipped (1 MB by default).
    pub max_file_bytes: u64,
    /// Folder names whose contents are skipped (vendored code, test data).
    pub excluded_dirs: Vec<String>,
    /// Keep only files whose relative path starts with this prefix (e.g. `java.base/`).
    pub only_under: Option<String>,
}

impl ScanOptions {
    /// The default rules: 1 MB, and the folders `vendor`, `third_party`, `third-party`,
    /// `node_modules`, `testdata`, `__pycache__`, `site-packages`, `dist-packages`.
    pub fn standard() -> Self {
        Self {
            max_file_bytes: 1 << 20,
            excluded_dirs: [
                "vendor",
                "third_party",
                "third-party",
                "node_modules",
                "testdata",
                "__pycache__",
                "site-packages",
                "dist-packages",
            ]
            .map(String::from)
            .to_vec(),
            only_under: None,
        }
    }
}

/// Why a file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Larger than `max_file_bytes`.
    TooLarge,
    /// Minified code (`.min.` in the name, or very long lines).
    Minified,
    /// Inside an excluded folder.
    ExcludedDir,
    /// Marked as generated (`Code generated … DO NOT EDIT`, `@generated`, `*_pb2.py`, …).
    Generated,
    /// Empty.
    Empty,
    /// Not UTF-8 text (or holds NUL bytes).
    NotText,
    /// Could not be read.
    Unreadable,
    /// A dataset row whose content is null.
    Null,
    /// A Stack v2 file whose `src_encoding` is not UTF-8 (only UTF-8 is decoded; not fetched).
    Encoding,
    /// A Stack v2 file whose content could not be downloaded (HTTP error, timeout, network).
    DownloadFailed,
    /// A Stack v2 file whose downloaded content is not valid gzip.
    CorruptGzip,
    /// A Stack v2 file not in the content cache while offline.
    NotCached,
}

/// Where a file's bytes live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file on disk.
    File(PathBuf),
    /// Text already in memory (a row of a dataset file).
    Text(std::sync::Arc<str>),
    /// An entry of a zip archive, read in place.
    Zip {
        /// The archive.
        archive: PathBuf,
        /// The entry's name inside it.
        entry: String,
    },
}

/// One kept source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Path relative to the corpus root, with `/` separators: the file's identity for splits
    /// and manifests.
    pub rel_path: String,
    /// Size in bytes.
    pub size: u64,
    /// Where to read it.
    pub origin: Origin,
}

/// The kept files of one language under one root, sorted by relative path.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// A name for reports (`python-stdlib`, a folder name, …).
    pub name: String,
    /// The language.
    pub language: Language,
    /// The folder or archive scanned.
    pub root: PathBuf,
    /// Kept files, sorted by `rel_path`.
    pub files: Vec<SourceFile>,
    /// Skipped files by reason.
    pub skipped: BTreeMap<SkipReason, usize>,
}

impl SourceFile {
    /// The file's text (it passed the UTF-8 check when it was scanned).
    pub fn read(&self) -> Result<String> {
        let bytes = read_bytes(&self.origin)?;
        String::from_utf8(bytes).map_err(|_| Error::BadText {
            path: PathBuf::from(&self.rel_path),
            reason: "the file is no longer UTF-8 text (it changed since the scan)".into(),
        })
    }
}

fn read_bytes(origin: &Origin) -> Result<Vec<u8>> {
    match origin {
        Origin::File(path) => std::fs::read(path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        }),
        Origin::Text(text) => Ok(text.as_bytes().to_vec()),
        Origin::Zip { archive, entry } => {
            let io = |source| Error::Io {
                path: archive.clone(),
                source,
            };
            let file = std::fs::File::open(archive).map_err(io)?;
            let mut zip = zip::ZipArchive::new(file).map_err(|e| zip_err(archive, e))?;
            let mut f = zip.by_name(entry).map_err(|e| zip_err(archive, e))?;
            let mut out = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut out).map_err(io)?;
            Ok(out)
        }
    }
}

fn zip_err(archive: &Path, e: zip::result::ZipError) -> Error {
    Error::Io {
        path: archive.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// Why `bytes` (named `rel_path`) should be skipped, if it should.
pub fn skip_reason(rel_path: &str, bytes: &[u8], opts: &ScanOptions) -> Option<SkipReason> {
    if bytes.len() as u64 > opts.max_file_bytes {
        return Some(SkipReason::TooLarge);
    }
    let name = rel_path.rsplit('/').next().unwrap_or(rel_path);
    if name.contains(".min.") {
        return Some(SkipReason::Minified);
    }
    if name.ends_with("_pb2.py") || name.ends_with(".pb.go") || name.ends_with("_pb2_grpc.py") {
        return Some(SkipReason::Generated);
    }
    if bytes.is_empty() || bytes.iter().all(u8::is_ascii_whitespace) {
        return Some(SkipReason::Empty);
    }
    if bytes.contains(&0) {
        return Some(SkipReason::NotText);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some(SkipReason::NotText);
    };
    let head: String = text
        .lines()
        .take(10)
        .collect::<Vec<_>>()
        .join("\n")
        .to_ascii_lowercase();
    if (head.contains("code generated") && head.contains("do not edit"))
        || head.contains("@generated")
        || head.contains("autogenerated")
        || head.contains("auto-generated")
    {
        return Some(SkipReason::Generated);
    }
    let (n_lines, longest) = text
        .lines()
        .fold((0usize, 0usize), |(n, m), l| (n + 1, m.max(l.len())));
    if longest > 1000 && text.len() / n_lines.max(1) > 200 {
        return Some(SkipReason::Minified);
    }
    None
}

fn excluded(rel_path: &str, opts: &ScanOptions) -> bool {
    let mut parts: Vec<&str> = rel_path.split('/').collect();
    parts.pop(); // the file name
    parts
        .iter()
        .any(|p| opts.excluded_dirs.iter().any(|e| e == p))
}

/// Scans a folder (recursively, following no symlinks) for files of `language`.
pub fn scan_dir(name: &str, root: &Path, language: Language, opts: &ScanOptions) -> Result<Corpus> {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    if !root.is_dir() {
        return Err(Error::Io {
            path: root.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
        });
    }
    let mut candidates = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(io(&path))?;
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() && language.matches(&path) {
                let rel = path.strip_prefix(root).expect("under root");
                let rel: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                candidates.push((rel.join("/"), Origin::File(path)));
            }
        }
    }
    Ok(filter(name, root, language, candidates, opts))
}

/// Scans a zip archive (such as the JDK's `src.zip`) for files of `language`, read in place in
/// one pass over the archive.
pub fn scan_zip(
    name: &str,
    archive: &Path,
    language: Language,
    opts: &ScanOptions,
) -> Result<Corpus> {
    let mut zip = open_zip(archive)?;
    let mut entries: Vec<(String, usize)> = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| zip_err(archive, e))?;
        let n = entry.name().map_err(|e| zip_err(archive, e))?.to_string();
        let keep_prefix = opts
            .only_under
            .as_ref()
            .is_none_or(|p| n.starts_with(p.as_str()));
        if entry.is_file() && keep_prefix && language.matches(Path::new(&n)) {
            entries.push((n, i));
        }
    }
    entries.sort();
    let mut files = Vec::new();
    let mut skipped = BTreeMap::new();
    for (rel_path, i) in entries {
        let verdict = if excluded(&rel_path, opts) {
            Err(SkipReason::ExcludedDir)
        } else {
            let mut bytes = Vec::new();
            match zip.by_index(i).map(|mut f| f.read_to_end(&mut bytes)) {
                Ok(Ok(_)) => {
                    skip_reason(&rel_path, &bytes, opts).map_or(Ok(bytes.len() as u64), Err)
                }
                _ => Err(SkipReason::Unreadable),
            }
        };
        match verdict {
            Ok(size) => {
                let origin = Origin::Zip {
                    archive: archive.to_path_buf(),
                    entry: rel_path.clone(),
                };
                files.push(SourceFile {
                    rel_path,
                    size,
                    origin,
                });
            }
            Err(reason) => *skipped.entry(reason).or_insert(0) += 1,
        }
    }
    Ok(Corpus {
        name: name.to_string(),
        language,
        root: archive.to_path_buf(),
        files,
        skipped,
    })
}

fn open_zip(archive: &Path) -> Result<zip::ZipArchive<std::fs::File>> {
    let file = std::fs::File::open(archive).map_err(|source| Error::Io {
        path: archive.to_path_buf(),
        source,
    })?;
    zip::ZipArchive::new(file).map_err(|e| zip_err(archive, e))
}

fn filter(
    name: &str,
    root: &Path,
    language: Language,
    mut candidates: Vec<(String, Origin)>,
    opts: &ScanOptions,
) -> Corpus {
    use rayon::prelude::*;
    if let Some(prefix) = &opts.only_under {
        candidates.retain(|(rel, _)| rel.starts_with(prefix.as_str()));
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    let verdicts: Vec<std::result::Result<SourceFile, SkipReason>> = candidates
        .into_par_iter()
        .map(|(rel_path, origin)| {
            if excluded(&rel_path, opts) {
                return Err(SkipReason::ExcludedDir);
            }
            let bytes = read_bytes(&origin).map_err(|_| SkipReason::Unreadable)?;
            match skip_reason(&rel_path, &bytes, opts) {
                Some(reason) => Err(reason),
                None => Ok(SourceFile {
                    rel_path,
                    size: bytes.len() as u64,
                    origin,
                }),
            }
        })
        .collect();
    let mut files = Vec::new();
    let mut skipped = BTreeMap::new();
    for v in verdicts {
        match v {
            Ok(f) => files.push(f),
            Err(reason) => *skipped.entry(reason).or_insert(0) += 1,
        }
    }
    Corpus {
        name: name.to_string(),
        language,
        root: root.to_path_buf(),
        files,
        skipped,
    }
}

impl Corpus {
    /// An error if nothing is left after filtering, naming the corpus and what was skipped.
    pub fn non_empty(self) -> Result<Self> {
        if self.files.is_empty() {
            return Err(Error::EmptyCorpus {
                name: self.name.clone(),
                language: self.language,
                root: self.root.clone(),
                skipped: format!("{:?}", self.skipped),
            });
        }
        Ok(self)
    }

    /// The text of every kept file, in order: files in parallel, zip entries in one pass per
    /// archive.
    pub fn read_all(&self) -> Result<Vec<String>> {
        use rayon::prelude::*;
        let mut zips: BTreeMap<&Path, zip::ZipArchive<std::fs::File>> = BTreeMap::new();
        let mut out: Vec<Option<String>> = vec![None; self.files.len()];
        for (i, f) in self.files.iter().enumerate() {
            if let Origin::Zip { archive, entry } = &f.origin {
                if !zips.contains_key(archive.as_path()) {
                    zips.insert(archive, open_zip(archive)?);
                }
                let zip = zips.get_mut(archive.as_path()).expect("opened");
                let mut text = String::new();
                zip.by_name(entry)
                    .map_err(|e| zip_err(archive, e))?
                    .read_to_string(&mut text)
                    .map_err(|source| Error::Io {
                        path: archive.clone(),
                        source,
                    })?;
                out[i] = Some(text);
            }
        }
        let rest: Vec<Result<Option<String>>> = self
            .files
            .par_iter()
            .zip(out.into_par_iter())
            .map(|(f, done)| match done {
                Some(t) => Ok(Some(t)),
                None => f.read().map(Some),
            })
            .collect();
        rest.into_iter()
            .map(|r| r.map(|t| t.expect("read")))
            .collect()
    }

    /// Total bytes of the kept files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
