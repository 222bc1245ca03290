//! The data of an experiment's `[data]` section: its sources scanned, the tokenizer (GPT-2's, or
//! a byte-level BPE trained on the training split and cached), and the token streams of each
//! split, cached as shards beside their manifests; and the whole stream of another source for
//! out-of-distribution evaluation.

use std::path::{Path, PathBuf};

use crate::config::{DataConfig, TokenizerConfig};
use crate::dataset::{prepare, PrepareSpec, Prepared};
use crate::decontam::Decontaminator;
use crate::error::{Error, Result};
use crate::{
    scan_dir, Corpus, Language, Manifest, NamedSource, ScanOptions, SourceHints, Split,
    SplitFractions, Tokenizer,
};

/// The data of an experiment.
pub struct ExperimentData {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Where the tokenizer is saved (`tokenizer.json`), for BPE tokenizers.
    pub tokenizer_path: Option<PathBuf>,
    /// Training tokens of all sources, documents joined by `<|endoftext|>`.
    pub train: Vec<u32>,
    /// Validation tokens.
    pub validation: Vec<u32>,
    /// Test tokens.
    pub test: Vec<u32>,
    /// The manifest of each source.
    pub manifests: Vec<Manifest>,
}

/// Scans a source: a named one, an `hf:` dataset file, an `hf-stack-v2:` file of The Stack v2's
/// ids (contents from Software Heritage), or a folder of `language` files.
pub fn scan_source(
    source: &str,
    language: &str,
    hf: Option<&crate::hf::HfColumns>,
    hints: &SourceHints,
) -> Result<Corpus> {
    let lang = Language::parse(language)
        .ok_or_else(|| Error::Config(format!("data.language: unknown language {language:?}")))?;
    let corpus =
        match NamedSource::parse(source) {
            Some(named) => named.scan(hints)?,
            None if source.starts_with("hf-stack-v2:") => {
                let hub = hints.hub.as_ref().ok_or_else(|| {
                    Error::Config(format!("{source}: no Hugging Face Hub client"))
                })?;
                crate::hf::stack_v2::stack_v2_corpus(hub, source, lang, &ScanOptions::standard())?
            }
            None if source.starts_with("hf:") => {
                let columns = hf.ok_or_else(|| {
                    Error::Config(format!(
                        "data.sources has {source} but no [data.hf] section names its columns"
                    ))
                })?;
                let hub = hints.hub.as_ref().ok_or_else(|| {
                    Error::Config(format!("{source}: no Hugging Face Hub client"))
                })?;
                crate::hf::dataset_corpus(hub, source, columns, lang, &ScanOptions::standard())?
            }
            None => {
                let path = PathBuf::from(source);
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| source.to_string());
                scan_dir(&name, &path, lang, &ScanOptions::standard())?
            }
        };
    corpus.non_empty()
}

/// Builds (or reads back from `cache_dir`) the data of `d`, whose tokenizer must have
/// `vocab_size` ids (the model's).
pub fn build(
    d: &DataConfig,
    cache_dir: &Path,
    vocab_size: usize,
    hints: &SourceHints,
) -> Result<ExperimentData> {
    let fractions = d.fractions();
    fractions.validate()?;
    let salt = "";
    let decontaminator = Decontaminator::from_files(&d.decontaminate)?;
    let corpora = d
        .sources
        .iter()
        .map(|s| scan_source(s, &d.language, d.hf.as_ref(), hints))
        .collect::<Result<Vec<_>>>()?;
    let (tokenizer, tokenizer_path) = match &d.tokenizer {
        TokenizerConfig::Gpt2 => (Tokenizer::gpt2()?, None),
        TokenizerConfig::Bpe {
            vocab_size,
            min_frequency,
        } => {
            // Train on the training split only; cache by what it was trained on.
            let mut texts = Vec::new();
            let mut ids = Vec::new();
            for c in &corpora {
                for (f, t) in c.files.iter().zip(c.read_all()?) {
                    if fractions.split_of(&f.rel_path, salt) == Split::Train
                        && !decontaminator.is_contaminated(&t)
                    {
                        ids.push(format!("{}/{}", c.name, f.rel_path));
                        texts.push(t);
                    }
                }
            }
            let digest = crate::manifest::sha256_hex(
                format!(
                    "{}|{}|{vocab_size}|{min_frequency}",
                    ids.join("\n"),
                    texts
                        .iter()
                        .map(|t| crate::manifest::sha256_hex(t.as_bytes()))
                        .collect::<String>()
                )
                .as_bytes(),
            );
            let path = cache_dir
                .join("tokenizers")
                .join(format!("bpe-{vocab_size}-{}.json", &digest[..16]));
            let tok = if path.is_file() {
                Tokenizer::from_file(&path)?
            } else {
                tracing::info!(
                    files = texts.len(),
                    vocab_size,
                    "training the byte-level BPE"
                );
                let tok = Tokenizer::train_byte_level_bpe(&texts, *vocab_size, *min_frequency)?;
                std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(
                    |source| Error::Io {
                        path: path.clone(),
                        source,
                    },
                )?;
                tok.save(&path)?;
                tok
            };
            (tok, Some(path))
        }
    };
    if tokenizer.vocab_size() != vocab_size {
        return Err(Error::Config(format!(
            "model.vocab_size is {vocab_size} but the tokenizer has {} ids (a BPE may stop short of its target on a small corpus: set model.vocab_size to match)",
            tokenizer.vocab_size()
        )));
    }
    let mut out = ExperimentData {
        tokenizer,
        tokenizer_path,
        train: Vec::new(),
        validation: Vec::new(),
        test: Vec::new(),
        manifests: Vec::new(),
    };
    for corpus in &corpora {
        let prepared: Prepared = prepare(&PrepareSpec {
            corpus,
            tokenizer: &out.tokenizer,
            fractions,
            salt,
            decontaminator: (!decontaminator.is_empty()).then_some(&decontaminator),
            cache_dir,
        })?;
        if prepared.decontaminated > 0 {
            tracing::info!(
                corpus = %corpus.name,
                files = prepared.decontaminated,
                "dropped files holding a benchmark solution"
            );
        }
        let eot = out.tokenizer.eot_id();
        for (split, dst) in [
            (Split::Train, &mut out.train),
            (Split::Validation, &mut out.validation),
            (Split::Test, &mut out.test),
        ] {
            if !dst.is_empty() {
                dst.push(eot);
            }
            dst.extend_from_slice(&prepared.streams[&split]);
        }
        out.manifests.push(prepared.manifest);
    }
    Ok(out)
}

/// The whole token stream of `source` (every file, no split) under `tokenizer`, cached like the
/// training data: the out-of-distribution evaluation sets, which training never sees.
pub fn full_stream(
    d: &DataConfig,
    cache_dir: &Path,
    tokenizer: &Tokenizer,
    source: &str,
    language: &str,
    hints: &SourceHints,
) -> Result<(Vec<u32>, Manifest)> {
    let corpus = scan_source(source, language, d.hf.as_ref(), hints)?;
    let prepared = prepare(&PrepareSpec {
        corpus: &corpus,
        tokenizer,
        fractions: SplitFractions {
            validation: 0.0,
            test: 0.0,
        },
        salt: "",
        decontaminator: None,
        cache_dir,
    })?;
    let stream = prepared.streams[&Split::Train].clone();
    Ok((stream, prepared.manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_sources_need_their_columns_and_a_hub() {
        let hints = SourceHints::default();
        let err = scan_source("hf:org/code:train.jsonl", "python", None, &hints)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no [data.hf] section"), "{err}");
        let cols = crate::hf::HfColumns {
            content: "content".into(),
            language: None,
        };
        let err = scan_source("hf:org/code:train.jsonl", "python", Some(&cols), &hints)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("no Hugging Face Hub client"), "{err}");
        let err = scan_source("x", "klingon", None, &hints)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown language \"klingon\""), "{err}");
    }
}
