//! `[data]` of an experiment: where the code comes from, how files are split, how long the
//! training windows are, and which tokenizer. Every field that moves a number is spelled out;
//! unknown keys are errors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::hf::HfColumns;
use crate::lang::Language;
use crate::split::SplitFractions;

/// The `[data]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Named sources (`python-stdlib`, `cargo-registry`, …), folders, Hugging Face dataset
    /// files in JSON Lines or Parquet (`hf:ORG/NAME:path/in/repo.jsonl` or `.parquet`, read with
    /// the `[data.hf]` columns), or The Stack v2's id files (`hf-stack-v2:path.parquet`), all of
    /// one language.
    pub sources: Vec<String>,
    /// Columns of `hf:` dataset sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hf: Option<HfColumns>,
    /// Language of folder sources (`python`, `rust`, …); named sources carry their own.
    pub language: String,
    /// Fraction of files held out for validation.
    pub validation: f64,
    /// Fraction of files held out for testing.
    pub test: f64,
    /// Tokens per training window.
    pub seq_len: usize,
    /// The tokenizer.
    pub tokenizer: TokenizerConfig,
    /// Benchmark files (HumanEval's `.jsonl` or `.jsonl.gz`) whose canonical solutions must not
    /// be trained on: a file holding one of them longer than 40 characters is dropped before
    /// the split, from the tokenizer's training text too. Every listed file must exist
    /// (`cargo xtask data --yes humaneval`); `[]` decontaminates nothing.
    pub decontaminate: Vec<String>,
}

/// Which tokenizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerConfig {
    /// GPT-2's BPE (50,257 ids).
    Gpt2,
    /// A byte-level BPE trained on the training split.
    Bpe {
        /// Vocabulary size.
        vocab_size: usize,
        /// Minimum pair frequency for a merge.
        min_frequency: u64,
    },
}

impl DataConfig {
    /// The split fractions.
    pub fn fractions(&self) -> SplitFractions {
        SplitFractions {
            validation: self.validation,
            test: self.test,
        }
    }

    /// Checks the values that do not need the model; each error names its key.
    pub fn validate(&self) -> Result<()> {
        if self.sources.is_empty() {
            return Err(Error::Config("data.sources is empty".into()));
        }
        if Language::parse(&self.language).is_none() {
            return Err(Error::Config(format!(
                "data.language: unknown language {:?}",
                self.language
            )));
        }
        self.fractions().validate()?;
        if self.seq_len < 2 {
            return Err(Error::Config(format!(
                "data.seq_len = {}, expected at least 2 tokens",
                self.seq_len
            )));
        }
        Ok(())
    }
}
