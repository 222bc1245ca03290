//! Preparing a corpus for training and evaluation: read every kept file, drop contaminated ones,
//! assign splits, write the manifest, tokenize each split in parallel (documents joined by
//! `<|endoftext|>`) and cache the token streams as shards keyed by the tokenizer and the
//! manifest, so that a second run reads them back instead of tokenizing again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::corpus::Corpus;
use crate::decontam::Decontaminator;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::pack::join_documents;
use crate::shard::{load_or_build, Rebuilt};
use crate::split::{Split, SplitFractions};
use crate::tokenizer::Tokenizer;

/// What to prepare.
pub struct PrepareSpec<'a> {
    /// The corpus.
    pub corpus: &'a Corpus,
    /// The tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// Split fractions.
    pub fractions: SplitFractions,
    /// Salt of the split hash.
    pub salt: &'a str,
    /// HumanEval decontamination, when the file is available.
    pub decontaminator: Option<&'a Decontaminator>,
    /// Folder of the cache: `<cache_dir>/<corpus name>/{manifest.json, train.tok, …}`.
    pub cache_dir: &'a Path,
}

/// A prepared corpus.
pub struct Prepared {
    /// The files the streams were made from.
    pub manifest: Manifest,
    /// Where the manifest and shards are.
    pub dir: PathBuf,
    /// The token stream of each split (documents joined by `<|endoftext|>`).
    pub streams: BTreeMap<Split, Vec<u32>>,
    /// Files dropped by decontamination.
    pub decontaminated: usize,
    /// Whether each split's shard was read from the cache or built, and why.
    pub rebuilt: BTreeMap<Split, Rebuilt>,
}

/// Prepares `spec.corpus` (see the module docs).
pub fn prepare(spec: &PrepareSpec<'_>) -> Result<Prepared> {
    spec.fractions.validate()?;
    let texts = spec.corpus.read_all()?;
    let keep: Vec<bool> = texts
        .par_iter()
        .map(|t| spec.decontaminator.is_none_or(|d| !d.is_contaminated(t)))
        .collect();
    let decontaminated = keep.iter().filter(|k| !**k).count();
    let mut corpus = spec.corpus.clone();
    let mut kept_texts = Vec::new();
    let mut files = Vec::new();
    for ((f, t), k) in spec.corpus.files.iter().zip(texts).zip(&keep) {
        if *k {
            files.push(f.clone());
            kept_texts.push(t);
        }
    }
    corpus.files = files;
    let corpus = corpus.non_empty()?;
    let splits: Vec<Split> = corpus
        .files
        .iter()
        .map(|f| spec.fractions.split_of(&f.rel_path, spec.salt))
        .collect();
    let manifest = Manifest::new(&corpus, &kept_texts, &splits);
    let dir = spec.cache_dir.join(&corpus.name);
    std::fs::create_dir_all(&dir).map_err(|source| crate::error::Error::Io {
        path: dir.clone(),
        source,
    })?;
    manifest.save(&dir.join("manifest.json"))?;
    let base_key = format!(
        "{}|{}|{}",
        spec.tokenizer.fingerprint(),
        manifest.digest(),
        crate::shard::VERSION
    );
    let mut streams = BTreeMap::new();
    let mut rebuilt = BTreeMap::new();
    for split in [Split::Train, Split::Validation, Split::Test] {
        let key: [u8; 32] = Sha256::new()
            .chain_update(base_key.as_bytes())
            .chain_update(format!("{split:?}").as_bytes())
            .finalize()
            .into();
        let path = dir.join(format!("{}.tok", split_name(split)));
        let (tokens, why) = load_or_build(&path, &key, || {
            let docs: Vec<&String> = kept_texts
                .iter()
                .zip(&splits)
                .filter(|(_, s)| **s == split)
                .map(|(t, _)| t)
                .collect();
            let ids = docs
                .par_iter()
                .map(|t| spec.tokenizer.encode(t))
                .collect::<Result<Vec<_>>>()?;
            Ok(join_documents(&ids, spec.tokenizer.eot_id()))
        })?;
        if why != Rebuilt::No {
            tracing::info!(corpus = %corpus.name, split = split_name(split), ?why, tokens = tokens.len(), "built token shard");
        }
        streams.insert(split, tokens);
        rebuilt.insert(split, why);
    }
    Ok(Prepared {
        manifest,
        dir,
        streams,
        decontaminated,
        rebuilt,
    })
}

/// File-name form of a split.
pub fn split_name(split: Split) -> &'static str {
    match split {
        Split::Train => "train",
        Split::Validation => "validation",
        Split::Test => "test",
    }
}
