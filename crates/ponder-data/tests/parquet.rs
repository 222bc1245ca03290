//! Hugging Face dataset files in Parquet: the fixtures written by `fixtures/gen_parquet.py` read
//! back row for row (against the script's `hf_rows.json`), language filtering, skip counts, each
//! error, and the `hf:` path through an HF cache.

mod common;

use common::fixture;

use ponder_data::hf::{dataset_corpus, parquet_corpus, HfColumns};
#[cfg(not(feature = "parquet"))]
use ponder_data::{Hub, HubOptions};
use ponder_data::{Language, ScanOptions};

fn columns(content: &str, language: Option<&str>) -> HfColumns {
    HfColumns {
        content: content.into(),
        language: language.map(Into::into),
    }
}

/// The rows `gen_parquet.py` wrote into `file`: (content, language), `None` where null.
fn written_rows(file: &str) -> Vec<(Option<String>, Option<String>)> {
    let text = std::fs::read_to_string(fixture("hf_rows.json")).unwrap();
    let sidecar: serde_json::Value = serde_json::from_str(&text).unwrap();
    let text_of = |v: &serde_json::Value| v.as_str().map(String::from);
    sidecar[file]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (text_of(&row["content"]), text_of(&row["lang"])))
        .collect()
}

#[cfg(feature = "parquet")]
mod with_parquet {
    use std::collections::BTreeMap;

    use std::path::Path;

    use crate::common::offline_hub_with;
    use ponder_data::corpus::skip_reason;
    use ponder_data::hf::jsonl_corpus;
    use ponder_data::SkipReason;

    use super::*;

    /// What the corpus of `rows` should hold as `language` (or any language, with `None`): the
    /// (relative path, text) of each kept row, and the skip counts.
    fn expected(
        rows: &[(Option<String>, Option<String>)],
        language: Option<Language>,
        opts: &ScanOptions,
    ) -> (Vec<(String, String)>, BTreeMap<SkipReason, usize>) {
        let mut kept = Vec::new();
        let mut skipped = BTreeMap::new();
        for (i, (content, lang)) in rows.iter().enumerate() {
            if language.is_some() && lang.as_deref().and_then(Language::parse) != language {
                continue;
            }
            let rel_path = format!("row{:08}", i + 1);
            let reason = match content {
                None => Some(SkipReason::Null),
                Some(c) => skip_reason(&rel_path, c.as_bytes(), opts),
            };
            match (reason, content) {
                (Some(r), _) => *skipped.entry(r).or_insert(0) += 1,
                (None, Some(c)) => kept.push((rel_path, c.clone())),
                (None, None) => unreachable!("a null row is skipped"),
            }
        }
        (kept, skipped)
    }

    fn read(c: &ponder_data::Corpus) -> Vec<(String, String)> {
        let texts = c.read_all().unwrap();
        c.files
            .iter()
            .map(|f| f.rel_path.clone())
            .zip(texts)
            .collect()
    }

    #[test]
    fn rows_read_back_as_written_with_the_language_filter_and_skip_counts() {
        let opts = ScanOptions::standard();
        let file = "hf_rows_snappy.parquet";
        let rows = written_rows(file);
        assert_eq!(rows.len(), 12);
        let cols = columns("content", Some("lang"));
        let c = parquet_corpus("mixed", &fixture(file), &cols, Language::Python, &opts).unwrap();
        let (kept, skipped) = expected(&rows, Some(Language::Python), &opts);
        assert_eq!(read(&c), kept);
        // Hand-counted from gen_parquet.py, so the expectation above cannot drift with the code.
        let paths: Vec<&str> = c.files.iter().map(|f| f.rel_path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "row00000001",
                "row00000003",
                "row00000007",
                "row00000010",
                "row00000012"
            ]
        );
        let hand = BTreeMap::from([
            (SkipReason::Minified, 1),
            (SkipReason::Null, 1),
            (SkipReason::Empty, 1),
        ]);
        assert_eq!(skipped, hand);
        assert_eq!(c.skipped, hand);
        assert_eq!(c.root, fixture(file));
        assert_eq!(c.files[3].size, "# café ☕\nname = 'naïve'\n".len() as u64);

        let rust = parquet_corpus("mixed", &fixture(file), &cols, Language::Rust, &opts).unwrap();
        assert_eq!(read(&rust), expected(&rows, Some(Language::Rust), &opts).0);
        assert_eq!(rust.files.len(), 2);
        assert!(rust.skipped.is_empty());

        // Without a language column every row counts, whatever its language.
        let all = columns("content", None);
        let c = parquet_corpus("mixed", &fixture(file), &all, Language::Python, &opts).unwrap();
        let (kept, skipped) = expected(&rows, None, &opts);
        assert_eq!(read(&c), kept);
        assert_eq!(c.skipped, skipped);
        assert_eq!(c.files.len(), 9);
    }

    #[test]
    fn every_codec_reads_the_same_rows() {
        let opts = ScanOptions::standard();
        for file in [
            "hf_rows_zstd.parquet",
            "hf_rows_gzip.parquet",
            "hf_rows_none.parquet",
        ] {
            let rows = written_rows(file);
            let cols = columns("content", None);
            let c = parquet_corpus(file, &fixture(file), &cols, Language::Python, &opts).unwrap();
            let texts: Vec<String> = rows.into_iter().map(|(c, _)| c.unwrap()).collect();
            assert_eq!(c.read_all().unwrap(), texts, "{file}");
            assert!(c.skipped.is_empty(), "{file}");
        }
    }

    #[test]
    fn parquet_and_json_lines_rows_go_through_the_same_rules() {
        let rows = written_rows("hf_rows_snappy.parquet");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.jsonl");
        let lines: Vec<String> = rows
            .iter()
            .map(|(c, l)| serde_json::json!({ "content": c, "lang": l }).to_string())
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        let opts = ScanOptions::standard();
        let cols = columns("content", Some("lang"));
        let from_json = jsonl_corpus("j", &path, &cols, Language::Python, &opts).unwrap();
        let from_parquet = parquet_corpus(
            "p",
            &fixture("hf_rows_snappy.parquet"),
            &cols,
            Language::Python,
            &opts,
        )
        .unwrap();
        assert_eq!(from_json.files, from_parquet.files);
        assert_eq!(from_json.skipped, from_parquet.skipped);
    }

    #[test]
    fn bad_files_and_columns_are_errors_naming_them() {
        let opts = ScanOptions::standard();
        let err_of = |path: &Path, cols: &HfColumns| {
            parquet_corpus("x", path, cols, Language::Python, &opts)
                .unwrap_err()
                .to_string()
        };
        let mixed = fixture("hf_rows_snappy.parquet");
        let err = err_of(&mixed, &columns("text", None));
        assert!(
            err.ends_with(
                "hf_rows_snappy.parquet: no column `text` (the file's columns are `path`, \
                 `content`, `lang`)"
            ),
            "{err}"
        );
        let err = err_of(&mixed, &columns("content", Some("language")));
        assert!(err.contains("no column `language`"), "{err}");

        let wrong = fixture("hf_wrong_type.parquet");
        let err = err_of(&wrong, &columns("content", Some("lang")));
        assert!(
            err.ends_with("hf_wrong_type.parquet: column `content` has type INT64, not string"),
            "{err}"
        );
        let err = err_of(&wrong, &columns("tags", None));
        assert!(
            err.ends_with("column `tags` has type group (List), not string"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("text.parquet");
        std::fs::write(&text, "def f():\n    return 1\n").unwrap();
        let err = err_of(&text, &columns("content", None));
        assert!(
            err.contains("text.parquet: not a readable Parquet file ("),
            "{err}"
        );
        let bytes = std::fs::read(&mixed).unwrap();
        let truncated = dir.path().join("truncated.parquet");
        std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
        let err = err_of(&truncated, &columns("content", None));
        assert!(
            err.contains("truncated.parquet: not a readable Parquet file ("),
            "{err}"
        );
        // The footer (its length, then `PAR1`, end the file) intact but every byte before it
        // garbled: the row groups point at garbage.
        let n = bytes.len();
        let footer_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
        let mut shifted = bytes.clone();
        shifted[4..n - 8 - footer_len].fill(0xA5);
        let garbled = dir.path().join("garbled.parquet");
        std::fs::write(&garbled, &shifted).unwrap();
        let err = err_of(&garbled, &columns("content", None));
        assert!(
            err.contains("garbled.parquet: row group 0: corrupt Parquet data ("),
            "{err}"
        );
        let err = err_of(
            &dir.path().join("missing.parquet"),
            &columns("content", None),
        );
        assert!(err.contains("missing.parquet"), "{err}");
    }

    #[test]
    fn single_byte_corruptions_are_errors_or_rows_never_panics() {
        // The parquet crate asserts on a few of these (a negative offset in the footer); the
        // reader turns those into errors too.
        let bytes = std::fs::read(fixture("hf_rows_none.parquet")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flipped.parquet");
        let cols = columns("content", None);
        let opts = ScanOptions::standard();
        let mut n_caught = 0;
        for pos in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[pos] ^= 0xFF;
            std::fs::write(&path, &flipped).unwrap();
            let read = || parquet_corpus("x", &path, &cols, Language::Python, &opts);
            match std::panic::catch_unwind(read) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    let e = e.to_string();
                    assert!(e.contains("flipped.parquet: "), "byte {pos}: {e}");
                    n_caught += usize::from(e.contains("the parquet crate panicked"));
                }
                Err(_) => panic!("byte {pos}: a panic escaped"),
            }
        }
        assert!(n_caught > 0, "no corruption reached a parquet assertion");
    }

    #[test]
    fn hf_specs_dispatch_on_the_extension_through_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let file = "data/train-00000-of-00001.parquet";
        let hub = offline_hub_with(cache.path(), "org/code", file, "hf_rows_snappy.parquet");
        let opts = ScanOptions::standard();
        let cols = columns("content", Some("lang"));
        let spec = format!("hf:org/code:{file}");
        let c = dataset_corpus(&hub, &spec, &cols, Language::Python, &opts).unwrap();
        let local = parquet_corpus(
            "local",
            &fixture("hf_rows_snappy.parquet"),
            &cols,
            Language::Python,
            &opts,
        )
        .unwrap();
        assert_eq!(c.name, spec);
        assert_eq!(c.files, local.files);
        assert_eq!(c.skipped, local.skipped);
        let err = dataset_corpus(
            &hub,
            "hf:org/code:x.parquet",
            &cols,
            Language::Python,
            &opts,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("org/code: x.parquet is not in the Hugging Face cache"),
            "{err}"
        );
    }
}

#[cfg(not(feature = "parquet"))]
#[test]
fn without_the_feature_parquet_asks_for_a_rebuild() {
    let cache = tempfile::tempdir().unwrap();
    let hub = Hub::new(HubOptions {
        offline: true,
        ..HubOptions::new(cache.path())
    });
    let cols = columns("content", None);
    let opts = ScanOptions::standard();
    // Refused before the cache is consulted, so a missing file does not hide the reason.
    let err = dataset_corpus(
        &hub,
        "hf:org/code:data/train.parquet",
        &cols,
        Language::Python,
        &opts,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "data/train.parquet: this build reads no Parquet files: \
             rebuild with `--features parquet`"
        ),
        "{err}"
    );
    let err = parquet_corpus(
        "x",
        &fixture("hf_rows_snappy.parquet"),
        &cols,
        Language::Python,
        &opts,
    )
    .unwrap_err();
    assert!(err.to_string().contains("--features parquet"), "{err}");
    // The rows are still there for a build with the feature.
    assert_eq!(written_rows("hf_rows_snappy.parquet").len(), 12);
}
